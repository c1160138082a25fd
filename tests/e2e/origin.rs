//! `--stamp-origin`: every sink can tell who sent what — the ingest key a request came with
//! and the member that published it, as MLS verified it — and a sender cannot pose as another.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use crate::backend::Backend;
use crate::harness::*;
use crate::live::Client;

const CHANNEL: &str = "e2e/origin/telemetry";
const RECEIVER: &str = "e2e/origin/receiver";
const MEMBER: &str = "e2e/origin/member";
const ACME_TOKEN: &str = "e2e-token-acme-1b9f03c4d2e5";

/// The values of resource attribute `key` in every resource of an OTLP/JSON logs request.
fn attribute(request: &Value, key: &str) -> Vec<String> {
    request["resourceLogs"]
        .as_array()
        .expect("resourceLogs")
        .iter()
        .flat_map(|r| {
            r["resource"]["attributes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|kv| kv["key"] == key)
        .map(|kv| {
            kv["value"]["stringValue"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Asserts that `request` (as `sink` gave it) says the key `acme` sent it through `RECEIVER`.
fn assert_stamped(sink: &str, request: &Value) {
    assert_eq!(
        attribute(request, "slim.ingest.key"),
        ["acme"],
        "{sink}: {request}"
    );
    let senders = attribute(request, "slim.sender");
    assert_eq!(senders.len(), 1, "{sink}: {request}");
    assert!(
        senders[0].starts_with(RECEIVER),
        "{sink}: the verified sender, not the forged one: {request}"
    );
    assert_eq!(
        attribute(request, "service.name"),
        ["checkout"],
        "{sink}: {request}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_stamp_origin_the_store_the_backend_and_the_live_view_get_the_key_and_the_verified_sender_over_http_and_grpc(
) {
    let mesh = Mesh::start();
    let tokens = mesh.path("acme-tokens");
    std::fs::write(&tokens, format!("acme={ACME_TOKEN}\n")).unwrap();
    let backend = Backend::start().await;
    let (api_port, ws_port) = (free_port(), free_port());
    let store = format!("store:{}", mesh.path("store").display());
    let forward = format!("otlp:{}", backend.url());
    let ws = format!("ws:127.0.0.1:{ws_port}");
    let api = format!("127.0.0.1:{api_port}");
    let mut member_args = PARTICIPANT_ROLE.to_vec();
    member_args.extend([
        "--stamp-origin",
        "--sink",
        &store,
        "--sink",
        &forward,
        "--sink",
        &ws,
        "--query-api",
        &api,
    ]);
    let member = mesh.node("member", MEMBER, &member_args);
    let tokens = tokens.display().to_string();
    let grpc = format!("127.0.0.1:{}", free_port());
    let mut args = moderator(CHANNEL, &[MEMBER]);
    args.extend([
        "--auth-token-file",
        &tokens,
        "--stamp-origin",
        "--otlp-grpc",
        &grpc,
    ]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    wait_state(port, "active", &receiver).await;
    let viewer = Client::start(
        mesh.dir.path(),
        "viewer",
        &[
            &format!("ws://127.0.0.1:{ws_port}/ws/logs"),
            "read",
            "1",
            "60",
        ],
    );
    viewer.wait_open().await;

    // The client claims another member and another key.
    let forged = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "checkout"}},
            {"key": "slim.sender", "value": {"stringValue": "globex/otel/receiver"}},
            {"key": "slim.ingest.key", "value": {"stringValue": "globex"}}]},
        "scopeLogs": [{"logRecords": [{"body": {"stringValue": "who sent me"}}]}]}]});
    let auth = format!("Bearer {ACME_TOKEN}");
    let sent = post_with(
        port,
        "/v1/logs",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        forged.to_string().into_bytes(),
    )
    .await;
    assert_eq!(sent.status(), 200);

    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while backend.exports().is_empty() || viewer.frames().is_empty() {
        assert!(
            Instant::now() < deadline,
            "forwarded {} and streamed {}; log:\n{}",
            backend.exports().len(),
            viewer.frames().len(),
            member.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_stamped("otlp", &backend.exports()[0].json);
    assert_stamped("ws", &viewer.frames()[0]);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let page = loop {
        let page: Value = client
            .post(format!("http://{api}/api/logs/fetch"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["resourceLogs"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break page;
        }
        assert!(Instant::now() < deadline, "never stored: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_stamped("store", &page);

    // Over gRPC too: the key comes from the guard, whatever the transport.
    let channel = crate::grpc::channel_to(&grpc).await;
    let protobuf = otlp::json::from_json(otlp::Signal::Logs, forged.to_string().as_bytes())
        .unwrap()
        .to_protobuf();
    let request: ExportLogsServiceRequest = prost::Message::decode(protobuf.as_slice()).unwrap();
    let mut call = tonic::Request::new(request);
    call.metadata_mut()
        .insert("authorization", auth.parse().unwrap());
    LogsServiceClient::new(channel).export(call).await.unwrap();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while backend.exports().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the gRPC request was not forwarded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_stamped("otlp, sent over gRPC", &backend.exports()[1].json);
}
