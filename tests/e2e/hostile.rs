//! Hostile input: each gets a clear answer, memory stays bounded, the node stays up and
//! good requests keep flowing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use prost::Message;

use crate::harness::*;

/// A good request still gets through (and arrives) after the hostile one.
async fn good_request_flows(active: &Active, already: usize) {
    let resp = post(
        active.port,
        "/v1/traces",
        "application/json",
        example("traces.json"),
    )
    .await;
    assert_eq!(resp.status(), 200, "a good request after the hostile one");
    wait_jsonl(&active.out, already + 1, &active.participant).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_attribute_values_are_400() {
    let active = active_mesh(&[]).await;
    let mut value = r#"{"stringValue":"leaf"}"#.to_string();
    for _ in 0..500 {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    let body = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"deep","value":{value}}}]}}}}]}}"#
    );
    let resp = post(
        active.port,
        "/v1/logs",
        "application/json",
        body.into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    // The same nesting as protobuf: prost refuses past its recursion limit.
    let mut any = opentelemetry_proto::tonic::common::v1::AnyValue::default();
    for _ in 0..500 {
        any = opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(
                opentelemetry_proto::tonic::common::v1::any_value::Value::ArrayValue(
                    opentelemetry_proto::tonic::common::v1::ArrayValue { values: vec![any] },
                ),
            ),
        };
    }
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "deep".into(),
                    value: Some(any),
                    key_strindex: 0,
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    let resp = post(
        active.port,
        "/v1/logs",
        "application/x-protobuf",
        request.encode_to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    good_request_flows(&active, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_a_protobuf_string_is_400() {
    let active = active_mesh(&[]).await;
    // ExportLogsServiceRequest{resource_logs{scope_logs{log_records{severity_text = 0xff 0xfe}}}}
    let record = [0x1au8, 0x02, 0xff, 0xfe]; // field 3 (severity_text), length 2
    let scope = [&[0x12u8, record.len() as u8][..], &record].concat(); // field 2 (log_records)
    let resource = [&[0x12u8, scope.len() as u8][..], &scope].concat(); // field 2 (scope_logs)
    let body = [&[0x0au8, resource.len() as u8][..], &resource].concat(); // field 1 (resource_logs)
    let resp = post(active.port, "/v1/logs", "application/x-protobuf", body).await;
    assert_eq!(resp.status(), 400);
    let resp = post(
        active.port,
        "/v1/logs",
        "application/json",
        b"{\"resourceLogs\":[{\"schemaUrl\":\"\xff\"}]}".to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    good_request_flows(&active, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_attributes_are_refused_with_bounded_memory() {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    let active = active_mesh(&[]).await;
    let attributes: Vec<KeyValue> = (0..1_000_000)
        .map(|i| KeyValue {
            key: format!("k{i}"),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(i)),
            }),
        })
        .collect();
    let mut request =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
            example("traces.pb").as_slice(),
        )
        .unwrap();
    request.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .extend(attributes);
    let body = request.encode_to_vec();
    assert!(body.len() > 10 << 20);
    let resp = post(active.port, "/v1/traces", "application/x-protobuf", body).await;
    assert_eq!(
        resp.status(),
        413,
        "a resource larger than a SLIM message can never be sent"
    );
    let peak_mib = peak_rss_kib(active.receiver.pid()) / 1024;
    assert!(peak_mib < 1024, "peak RSS {peak_mib} MiB");
    good_request_flows(&active, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_loris_headers_are_cut_off_while_good_requests_flow() {
    let active = active_mesh(&["--header-read-timeout", "1"]).await;
    let mut slow = TcpStream::connect(("127.0.0.1", active.port)).unwrap();
    slow.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    good_request_flows(&active, 0).await;
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    // The server answers 408 or just closes; either way the connection ends.
    loop {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the slow connection was not closed: {e}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_idle_connections_do_not_starve_good_requests() {
    let active = active_mesh(&[]).await;
    let idle: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(("127.0.0.1", active.port)).expect("connect"))
        .collect();
    good_request_flows(&active, 0).await;
    let peak_mib = peak_rss_kib(active.receiver.pid()) / 1024;
    assert!(
        peak_mib < 1024,
        "peak RSS {peak_mib} MiB with {} idle connections",
        idle.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_beyond_the_limit_wait_and_are_served_once_others_are_cut() {
    let active = active_mesh(&["--max-connections", "16", "--header-read-timeout", "3"]).await;
    // 16 silent clients take every slot; they are cut after the header timeout.
    let idle: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(("127.0.0.1", active.port)).expect("connect"))
        .collect();
    let port = active.port;
    let waiting = tokio::spawn(async move {
        post(
            port,
            "/v1/traces",
            "application/json",
            example("traces.json"),
        )
        .await
        .status()
    });
    // Well inside the header timeout every slot is still held: the request waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the request was served while every connection slot was taken"
    );
    assert_eq!(
        waiting.await.unwrap(),
        200,
        "served once the idle ones were cut"
    );
    wait_jsonl(&active.out, 1, &active.participant).await;
    drop(idle);
}
