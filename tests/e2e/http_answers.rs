//! How the OTLP/HTTP receiver answers, per the OTLP specification. The receiver here is a
//! participant nobody invites: every answer below is decided before publishing.

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
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"high"}]}]}]}"#
        .to_vec();
    let resp = post(r.port, "/v1/logs", "application/json", body).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.headers().get("retry-after").is_none(),
        "bad data is not retryable"
    );
    let status = json_status(resp).await;
    assert_eq!(status["code"], 3);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("severityNumber"),
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
