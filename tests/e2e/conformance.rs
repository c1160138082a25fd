//! OTLP/HTTP conformance: each test is one rule of the OTLP specification (opentelemetry-proto
//! `docs/specification.md`). Rules decided before publishing use a receiver nobody invited;
//! rules about what is forwarded use an active mesh.

use prost::Message;
use serde_json::Value;

use crate::harness::*;

struct Receiver {
    _mesh: Mesh,
    _node: Proc,
    port: u16,
}

async fn receiver(extra: &[&str]) -> Receiver {
    let mesh = Mesh::start();
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend_from_slice(extra);
    let (node, port) = mesh.receiver("receiver", "e2e/http/receiver", &args);
    wait_state(port, "awaiting_invite", &node).await;
    Receiver {
        _mesh: mesh,
        _node: node,
        port,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn json_status(resp: reqwest::Response) -> Value {
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_protobuf_is_400_with_a_protobuf_status() {
    let r = receiver(&[]).await;
    let resp = post(
        r.port,
        "/v1/traces",
        "application/x-protobuf",
        vec![0xff, 0xff, 0xff, 0x01],
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let status = tonic_types::pb::Status::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(
        status.message.contains("ExportTraceServiceRequest"),
        "{}",
        status.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_is_400_with_a_json_status_naming_the_field() {
    let r = receiver(&[]).await;
    let body =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#.to_vec();
    let resp = post(r.port, "/v1/logs", "application/json", body).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers().get("retry-after").is_none(),
        "bad data is not retryable"
    );
    let status = json_status(resp).await;
    assert_eq!(status["code"], 3);
    assert!(
        status["message"].as_str().unwrap().contains("timeUnixNano"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_content_types_are_415() {
    let r = receiver(&[]).await;
    let resp = post(r.port, "/v1/traces", "text/plain", b"hello".to_vec()).await;
    assert_eq!(resp.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_are_404_and_other_methods_405() {
    let r = receiver(&[]).await;
    let resp = post(r.port, "/v1/profiles", "application/json", b"{}".to_vec()).await;
    assert_eq!(resp.status(), 404);
    let resp = reqwest::get(format!("http://127.0.0.1:{}/v1/traces", r.port))
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_are_413_before_and_after_decompression() {
    let r = receiver(&["--max-body-size", "1000"]).await;
    let big = format!(r#"{{"resourceLogs":[],"pad":"{}"}}"#, "x".repeat(2000)).into_bytes();
    let resp = post(r.port, "/v1/logs", "application/json", big.clone()).await;
    assert_eq!(resp.status(), 413);
    let packed = gzip(&big);
    assert!(packed.len() < 1000);
    let resp = post_with(
        r.port,
        "/v1/logs",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        packed,
    )
    .await;
    assert_eq!(
        resp.status(),
        413,
        "the limit holds after decompression too"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_gzip_is_400() {
    let r = receiver(&[]).await;
    let mut packed = gzip(&example("traces.json"));
    packed.truncate(packed.len() / 2);
    let resp = post_with(
        r.port,
        "/v1/traces",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        packed,
    )
    .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_content_encoding_is_400_naming_what_is_supported() {
    let r = receiver(&[]).await;
    let resp = post_with(
        r.port,
        "/v1/traces",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "br"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let status = json_status(resp).await;
    assert!(
        status["message"].as_str().unwrap().contains("gzip"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_requests_succeed_in_both_encodings() {
    let r = receiver(&[]).await;
    let resp = post(r.port, "/v1/metrics", "application/x-protobuf", vec![]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    assert!(
        resp.bytes().await.unwrap().is_empty(),
        "an empty ExportMetricsServiceResponse"
    );
    let resp = post(r.port, "/v1/metrics", "application/json", b"{}".to_vec()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "{}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_the_slim_message_cap_is_413() {
    let r = receiver(&[]).await;
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{}"}}}}]}}]}}]}}"#,
        "y".repeat(4 * 1024 * 1024)
    );
    let resp = post(r.port, "/v1/logs", "application/json", body.into_bytes()).await;
    assert_eq!(resp.status(), 413);
    let status = json_status(resp).await;
    assert!(
        status["message"].as_str().unwrap().contains("SLIM"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_response_content_type_equals_the_request_content_type() {
    let r = receiver(&[]).await;
    for ct in ["application/x-protobuf", "application/json"] {
        let body = if ct == "application/json" {
            b"{}".to_vec()
        } else {
            vec![]
        };
        let resp = post(r.port, "/v1/logs", ct, body).await;
        assert_eq!(resp.headers()["content-type"], ct);
        let resp = post(r.port, "/v1/logs", ct, b"\xff\xff".to_vec()).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], ct, "error bodies too");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retryable_answers_carry_retry_after_and_others_do_not() {
    let r = receiver(&[]).await;
    let resp = post(
        r.port,
        "/v1/traces",
        "application/json",
        example("traces.json"),
    )
    .await;
    assert_eq!(resp.status(), 503);
    let secs: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs > 0);
    let resp = post(r.port, "/v1/traces", "application/json", b"[".to_vec()).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("retry-after").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn deflate_and_zstd_bodies_are_accepted() {
    use std::io::Write;
    let active = active_mesh(&[]).await;
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&example("logs.json")).unwrap();
    let zlib = zlib.finish().unwrap();
    let zstd = zstd::stream::encode_all(example("traces.pb").as_slice(), 3).unwrap();
    let resp = post_with(
        active.port,
        "/v1/logs",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "deflate"),
        ],
        zlib,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = post_with(
        active.port,
        "/v1/traces",
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "zstd"),
        ],
        zstd,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let lines = wait_jsonl(&active.out, 2, &active.participant).await;
    assert_eq!(
        (lines[0]["signal"].as_str(), lines[1]["signal"].as_str()),
        (Some("logs"), Some("traces"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_gzip_when_the_client_accepts_gzip() {
    use std::io::Read;
    let r = receiver(&[]).await;
    let headers = [
        ("content-type", "application/json"),
        ("accept-encoding", "gzip"),
    ];
    let resp = post_with(
        r.port,
        "/v1/traces",
        &headers,
        br#"{"resourceSpans":5}"#.to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let packed = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(packed.as_ref())
        .read_to_string(&mut text)
        .unwrap();
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["code"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    let r = receiver(&[]).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = client
        .post(format!("http://127.0.0.1:{}/v1/metrics", r.port))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_is_answered_only_for_configured_origins() {
    let r = receiver(&["--cors-origin", "https://app.example.com"]).await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("http://127.0.0.1:{}/v1/traces", r.port),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_cors_origins_no_cors_headers_are_sent() {
    let r = receiver(&[]).await;
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/traces", r.port))
        .header("origin", "https://app.example.com")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

/// `json` as sent with `content_type`: as written, or its protobuf encoding.
fn encoded(signal: otlp::Signal, content_type: &str, json: &[u8]) -> Vec<u8> {
    if content_type == "application/json" {
        json.to_vec()
    } else {
        otlp::json::from_json(signal, json).unwrap().to_protobuf()
    }
}

/// The `partial_success` of a trace export answer, as (rejected spans, error message).
async fn traces_partial_success(resp: reqwest::Response) -> Option<(i64, String)> {
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    let body = resp.bytes().await.unwrap();
    if ct == "application/json" {
        let v: Value = serde_json::from_slice(&body).unwrap();
        let p = v.get("partialSuccess")?;
        Some((
            p["rejectedSpans"].as_str().unwrap().parse().unwrap(),
            p["errorMessage"].as_str().unwrap().to_string(),
        ))
    } else {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
        let p = ExportTraceServiceResponse::decode(body)
            .unwrap()
            .partial_success?;
        Some((p.rejected_spans, p.error_message))
    }
}

async fn invalid_spans_are_a_partial_success(content_type: &str) {
    let active = active_mesh(&[]).await;
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"kept"},
        {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0000000000000000","name":"zero span id"}]}]}]}"#;
    let body = encoded(otlp::Signal::Traces, content_type, body);
    let resp = post(active.port, "/v1/traces", content_type, body).await;
    assert_eq!(
        resp.status(),
        200,
        "partial success is a 200: the client must not retry"
    );
    let (rejected, message) = traces_partial_success(resp).await.expect("partial success");
    assert_eq!(rejected, 1);
    assert!(message.contains("span_id"), "{message}");
    let lines = wait_jsonl(&active.out, 1, &active.participant).await;
    let spans = &lines[0]["payload"]["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(spans.as_array().unwrap().len(), 1);
    assert_eq!(spans[0]["name"], "kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spans_are_a_partial_success_and_the_rest_is_forwarded() {
    invalid_spans_are_a_partial_success("application/json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spans_in_protobuf_are_a_partial_success_and_the_rest_is_forwarded() {
    invalid_spans_are_a_partial_success("application/x-protobuf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_with_fields_unknown_to_this_version_is_taken_and_delivered() {
    let active = active_mesh(&[]).await;
    let mut body = otlp::json::from_json(otlp::Signal::Traces, &example("traces.json"))
        .unwrap()
        .to_protobuf();
    // Field 15 (length-delimited) of the request: a newer OTLP may add it; decoders skip it.
    body.extend_from_slice(&[15 << 3 | 2, 3, b'n', b'e', b'w']);
    let resp = post(active.port, "/v1/traces", "application/x-protobuf", body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(traces_partial_success(resp).await, None);
    let lines = wait_jsonl(&active.out, 1, &active.participant).await;
    assert_eq!(
        lines[0]["payload"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"],
        "GET /checkout"
    );
}

async fn requests_above_the_slim_message_cap_are_split(content_type: &str) {
    let active = active_mesh(&[]).await;
    // 3 resources × 40 records × 50 KiB ≈ 6 MiB: two SLIM messages at least.
    let record = format!(
        r#"{{"body":{{"stringValue":"{}"}}}}"#,
        "z".repeat(50 * 1024)
    );
    let scope = format!(
        r#"{{"scopeLogs":[{{"logRecords":[{}]}}]}}"#,
        vec![record; 40].join(",")
    );
    let body = format!(r#"{{"resourceLogs":[{}]}}"#, vec![scope; 3].join(","));
    let body = encoded(otlp::Signal::Logs, content_type, body.as_bytes());
    let resp = post(active.port, "/v1/logs", content_type, body).await;
    assert_eq!(resp.status(), 200);
    let answer = resp.bytes().await.unwrap();
    assert!(
        answer.is_empty() || answer.as_ref() == b"{}",
        "nothing was rejected: {answer:?}"
    );
    let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT;
    let count = |lines: &[Value]| -> usize {
        lines
            .iter()
            .flat_map(|l| {
                l["payload"]["resourceLogs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .flat_map(|rl| rl["scopeLogs"].as_array().cloned().unwrap_or_default())
            .map(|sl| sl["logRecords"].as_array().map_or(0, Vec::len))
            .sum()
    };
    let mut lines = jsonl(&active.out);
    while count(&lines) < 120 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        lines = jsonl(&active.out);
    }
    assert_eq!(count(&lines), 120, "every record arrives");
    assert!(lines.len() >= 2, "in more than one message");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_above_the_slim_message_cap_are_split_and_all_delivered() {
    requests_above_the_slim_message_cap_are_split("application/json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_requests_above_the_slim_message_cap_are_split_and_all_delivered() {
    requests_above_the_slim_message_cap_are_split("application/x-protobuf").await;
}
