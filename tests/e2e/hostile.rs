//! Hostile input: each gets a clear answer, memory stays bounded, the node stays up and
//! good requests keep flowing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

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

/// What became of a client that sent its request headers slowly.
#[derive(Debug, PartialEq, Eq)]
enum Trickled {
    /// The node closed the connection (or answered and closed it) after the client had sent
    /// `sent` of the header value's `of` bytes.
    Cut { sent: usize, of: usize },
    /// The whole request went out and was answered with this status line.
    Answered(String),
}

/// A slow-loris client: header bytes one every 300 ms, 16 of them (about 5 s).
const TRICKLE_BYTES: usize = 16;
const TRICKLE_GAP: Duration = Duration::from_millis(300);

/// Sends `GET /health/live` to the receiver on `port` at once, except for an `X-Slow` header
/// whose `bytes` value bytes go one every `gap`, and says what became of it. Blocking.
fn trickle_headers(port: u16, bytes: usize, gap: Duration) -> Trickled {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("the first bytes");
    for sent in 0..bytes {
        std::thread::sleep(gap);
        // Closed meanwhile? Then a read gives the end, an answer (such as 408) or a reset.
        conn.set_nonblocking(true).expect("non-blocking");
        let mut probe = [0u8; 64];
        let open = matches!(
            conn.read(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        conn.set_nonblocking(false).expect("blocking");
        if !open || conn.write_all(b"a").is_err() {
            return Trickled::Cut { sent, of: bytes };
        }
    }
    let cut_at_the_end = Trickled::Cut {
        sent: bytes,
        of: bytes,
    };
    if conn.write_all(b"\r\n\r\n").is_err() {
        return cut_at_the_end;
    }
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return cut_at_the_end,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    Trickled::Answered(answer.split("\r\n").next().unwrap_or_default().to_string())
}

/// A receiver (a participant not invited yet: it answers its health checks) with `extra`
/// arguments; returns it and its port once it answers.
async fn lone_receiver(mesh: &Mesh, extra: &[&str]) -> (Proc, u16) {
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend_from_slice(extra);
    let (receiver, port) = mesh.receiver("receiver", "e2e/hostile/receiver", &args);
    wait_state(port, "awaiting_invite", &receiver).await;
    (receiver, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_1s_header_read_timeout_headers_trickled_over_5s_are_cut_off_while_good_requests_flow(
) {
    let active = active_mesh(&["--header-read-timeout", "1"]).await;
    let port = active.port;
    let slow =
        tokio::task::spawn_blocking(move || trickle_headers(port, TRICKLE_BYTES, TRICKLE_GAP));
    good_request_flows(&active, 0).await;
    let slow = slow.await.unwrap();
    assert!(
        matches!(slow, Trickled::Cut { sent, of } if sent < of),
        "a client still sending its headers after 1 s is cut off before it finishes: {slow:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_1s_header_read_timeout_headers_trickled_within_it_are_served() {
    let mesh = Mesh::start();
    let (_receiver, port) = lone_receiver(&mesh, &["--header-read-timeout", "1"]).await;
    // Two header bytes 100 ms apart: the headers are complete well inside the second.
    let quick =
        tokio::task::spawn_blocking(move || trickle_headers(port, 2, Duration::from_millis(100)))
            .await
            .unwrap();
    assert_eq!(quick, Trickled::Answered("HTTP/1.1 200 OK".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_default_header_read_timeout_headers_trickled_over_5s_are_served() {
    // The slow client the 1 s timeout cuts off; only the flag differs.
    let mesh = Mesh::start();
    let (_receiver, port) = lone_receiver(&mesh, &[]).await;
    let slow =
        tokio::task::spawn_blocking(move || trickle_headers(port, TRICKLE_BYTES, TRICKLE_GAP))
            .await
            .unwrap();
    assert_eq!(
        slow,
        Trickled::Answered("HTTP/1.1 200 OK".into()),
        "headers complete after about 5 s are within the default 10 s"
    );
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
