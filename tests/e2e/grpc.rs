//! The OTLP/gRPC receiver: the three Export services, gzip, status codes and partial success.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;
use tonic::codec::CompressionEncoding;
use tonic_types::StatusExt;

use crate::harness::*;

fn decode<T: Message + Default>(name: &str) -> T {
    T::decode(example(name).as_slice()).unwrap()
}

/// A connection to the OTLP/gRPC receiver at `127.0.0.1:port`.
pub(crate) async fn channel(port: u16) -> tonic::transport::Channel {
    channel_to(&format!("127.0.0.1:{port}")).await
}

/// A connection to the OTLP/gRPC receiver at `addr` (`HOST:PORT`).
pub(crate) async fn channel_to(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("gRPC receiver unreachable")
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&example(name)).unwrap()
}

/// A participant nobody invites, serving OTLP/gRPC (and HTTP) with `extra` arguments;
/// returns the mesh, the node and the gRPC port.
async fn uninvited_grpc_receiver(extra: &[&str]) -> (Mesh, Proc, u16) {
    let mesh = Mesh::start();
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--otlp-grpc", &grpc]);
    args.extend_from_slice(extra);
    let (receiver, http_port) = mesh.receiver("receiver", "e2e/grpc/receiver", &args);
    wait_state(http_port, "awaiting_invite", &receiver).await;
    (mesh, receiver, grpc_port)
}

/// An active mesh whose receiver also serves OTLP/gRPC; returns it and the gRPC port.
async fn active_grpc_mesh() -> (Active, u16) {
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    (active_mesh(&["--otlp-grpc", &grpc]).await, grpc_port)
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_exports_of_every_signal_reach_the_participant() {
    let (active, grpc_port) = active_grpc_mesh().await;

    let ch = channel(grpc_port).await;
    let traces = TraceServiceClient::new(ch.clone()).send_compressed(CompressionEncoding::Gzip);
    let resp = traces
        .clone()
        .export(decode::<ExportTraceServiceRequest>("traces.pb"))
        .await
        .unwrap();
    assert_eq!(
        resp.into_inner().partial_success,
        None,
        "full success leaves partial_success unset"
    );
    let resp = MetricsServiceClient::new(ch.clone())
        .export(decode::<ExportMetricsServiceRequest>("metrics.pb"))
        .await
        .unwrap();
    assert_eq!(resp.into_inner().partial_success, None);
    let resp = LogsServiceClient::new(ch)
        .send_compressed(CompressionEncoding::Gzip)
        .export(decode::<ExportLogsServiceRequest>("logs.pb"))
        .await
        .unwrap();
    assert_eq!(resp.into_inner().partial_success, None);

    let lines = wait_jsonl(&active.out, 3, &active.participant).await;
    for (line, name) in lines
        .iter()
        .zip(["traces.json", "metrics.json", "logs.json"])
    {
        assert_eq!(line["signal"], name.trim_end_matches(".json"));
        assert_otlp_json_contains(&json(name), &line["payload"], "payload");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_without_a_session_is_unavailable_with_retry_info() {
    let (_mesh, _receiver, grpc_port) = uninvited_grpc_receiver(&[]).await;
    let status = TraceServiceClient::new(channel(grpc_port).await)
        .export(decode::<ExportTraceServiceRequest>("traces.pb"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let retry = status
        .get_details_retry_info()
        .expect("UNAVAILABLE carries RetryInfo");
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO));
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_partial_success_counts_invalid_spans() {
    let (active, grpc_port) = active_grpc_mesh().await;

    let mut request = decode::<ExportTraceServiceRequest>("traces.pb");
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    let mut bad = spans[0].clone();
    bad.trace_id = vec![0; 16];
    spans.push(bad);
    let resp = TraceServiceClient::new(channel(grpc_port).await)
        .export(request)
        .await
        .unwrap();
    let partial = resp.into_inner().partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id"),
        "{}",
        partial.error_message
    );
    let lines = wait_jsonl(&active.out, 1, &active.participant).await;
    let sent = &lines[0]["payload"]["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(
        sent.as_array().unwrap().len(),
        1,
        "only the valid span is forwarded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_requests_over_the_body_limit_are_invalid_argument_not_retryable() {
    let (_mesh, _receiver, grpc_port) = uninvited_grpc_receiver(&["--max-body-size", "100"]).await;
    let status = TraceServiceClient::new(channel(grpc_port).await)
        .export(decode::<ExportTraceServiceRequest>("traces.pb"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("too large"),
        "{}",
        status.message()
    );
}

/// Sends one gRPC message of raw bytes to `path` and returns the `grpc-status` and
/// `grpc-message` of the answer.
async fn grpc_raw(port: u16, path: &str, message: &[u8]) -> (String, String) {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    let resp = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "gRPC answers errors with HTTP 200");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    (header("grpc-status"), header("grpc-message"))
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_undecodable_requests_are_invalid_argument_naming_the_type() {
    let (_mesh, _receiver, grpc_port) = uninvited_grpc_receiver(&[]).await;
    let (code, message) = grpc_raw(
        grpc_port,
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        &[0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(code, "3", "INVALID_ARGUMENT: {message}");
    assert!(message.contains("ExportLogsServiceRequest"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_unknown_methods_are_unimplemented() {
    let (_mesh, _receiver, grpc_port) = uninvited_grpc_receiver(&[]).await;
    let (code, _) = grpc_raw(
        grpc_port,
        "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
        &[],
    )
    .await;
    assert_eq!(code, "12", "UNIMPLEMENTED");
}
