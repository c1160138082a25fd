//! Security: TLS on every hop, bearer tokens on ingest and admin, a wrong shared secret kept
//! out, and (in the harness, for every test) no secret in any log.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use serde_json::Value;

use crate::certs::Certs;
use crate::harness::*;

const CHANNEL: &str = "e2e/sec/telemetry";
const RECEIVER: &str = "e2e/sec/receiver";
const PARTICIPANT: &str = "e2e/sec/participant";

fn record(text: &str) -> Vec<u8> {
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{text}"}}}}]}}]}}]}}"#)
        .into_bytes()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// POSTs an OTLP/JSON log record with `Authorization: auth`.
async fn post_authorized(port: u16, auth: &str, text: &str) -> reqwest::Response {
    post_with(
        port,
        "/v1/logs",
        &[
            ("content-type", "application/json"),
            ("authorization", auth),
        ],
        record(text),
    )
    .await
}

/// `/health` as a holder of `token` sees it.
async fn health_as(port: u16, token: &str) -> Value {
    let auth = bearer(token);
    get_json(
        &format!("http://127.0.0.1:{port}/health"),
        &[("authorization", auth.as_str())],
    )
    .await
}

/// A receiver requiring the mesh's tokens, and its participant, joined.
async fn authenticated_mesh() -> (Mesh, Proc, Proc, std::path::PathBuf, u16) {
    let mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let tokens = mesh.path("tokens").display().to_string();
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--auth-token-file", &tokens]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    wait_state(port, "active", &receiver).await;
    (mesh, receiver, participant, out, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_401_with_a_wrong_one_403_and_neither_reaches_the_channel() {
    let (_mesh, _receiver, participant, out, port) = authenticated_mesh().await;

    let missing = post_with(
        port,
        "/v1/logs",
        &[("content-type", "application/json")],
        record("no token"),
    )
    .await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let forbidden = post_authorized(port, &bearer("not-a-valid-token-at-all"), "wrong token").await;
    assert_eq!(forbidden.status(), 403);
    let body: Value = forbidden.json().await.unwrap();
    assert_eq!(body["code"], 7, "PERMISSION_DENIED in the Status body");

    let ok = post_authorized(port, &bearer(TOKENS[1].1), "with token").await;
    assert_eq!(ok.status(), 200);
    wait_jsonl(&out, 1, &participant).await;
    // The accepted request arrived; had the refused ones been published, they would be first.
    assert_eq!(log_bodies(&jsonl(&out)), ["with token"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_without_a_token_is_unauthenticated_and_with_a_wrong_one_permission_denied() {
    let mesh = Mesh::start();
    let tokens = mesh.path("tokens").display().to_string();
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--otlp-grpc", &grpc, "--auth-token-file", &tokens]);
    let (receiver, http_port) = mesh.receiver("receiver", RECEIVER, &args);
    wait_state(http_port, "awaiting_invite", &receiver).await;

    let channel = crate::grpc::channel_to(&grpc).await;
    let request = ExportLogsServiceRequest::decode(example("logs.pb").as_slice()).unwrap();
    let mut client = LogsServiceClient::new(channel);
    let err = client.export(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut wrong = tonic::Request::new(request.clone());
    wrong.metadata_mut().insert(
        "authorization",
        bearer("not-a-valid-token-at-all").parse().unwrap(),
    );
    let err = client.export(wrong).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // A valid key gets past the guard: this participant has no members yet, so UNAVAILABLE.
    let mut good = tonic::Request::new(request);
    good.metadata_mut()
        .insert("authorization", bearer(TOKENS[0].1).parse().unwrap());
    let err = client.export(good).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_names_members_only_to_an_admin_key() {
    let (_mesh, _receiver, _participant, _out, port) = authenticated_mesh().await;
    let open = health_of(port).await;
    assert_eq!(open["node"]["state"], "active");
    let text = open.to_string();
    assert!(
        !text.contains(PARTICIPANT) && !text.contains(CHANNEL),
        "{text}"
    );

    let ingest_only = health_as(port, TOKENS[0].1).await;
    assert!(
        ingest_only.get("sinks").is_none() && !ingest_only.to_string().contains(PARTICIPANT),
        "an ingest key sees the summary only: {ingest_only}"
    );
    let full = health_as(port, TOKENS[ADMIN_TOKEN].1).await;
    assert_eq!(full["node"]["joined"][0], PARTICIPANT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_key_rate_limit_answers_429_with_retry_after() {
    let mesh = Mesh::start();
    let (participant, _out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let tokens = mesh.path("tokens").display().to_string();
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--auth-token-file", &tokens, "--rate-limit", "2"]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    wait_state(port, "active", &receiver).await;

    let key = |i: usize| bearer(TOKENS[i].1);
    let send = |auth: String| async move { post_authorized(port, &auth, "limited").await };
    let mut limited = None;
    for _ in 0..10 {
        let resp = send(key(0)).await;
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let limited = limited.expect("ten requests at once exceed 2 per second");
    assert!(limited.headers().get("retry-after").is_some());
    // Another key has its own budget.
    assert_eq!(send(key(1)).await.status(), 200);
    drop(participant);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_invites_and_removes_a_member_at_runtime() {
    let mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let tokens = mesh.path("tokens").display().to_string();
    let mut args = moderator(CHANNEL, &[]);
    args.extend(["--auth-token-file", &tokens]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    let admin = |path: &'static str, auth: Option<String>| {
        let body = format!(r#"{{"name":"{PARTICIPANT}"}}"#).into_bytes();
        async move {
            let mut headers = vec![("content-type", "application/json".to_string())];
            headers.extend(auth.map(|a| ("authorization", a)));
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_with(port, path, &headers, body).await
        }
    };
    wait_state(port, "active", &receiver).await;
    assert_eq!(admin("/admin/invite", None).await.status(), 401);
    let ingest_only = admin("/admin/invite", Some(bearer(TOKENS[0].1))).await;
    assert_eq!(
        ingest_only.status(),
        403,
        "an ingest key may not administer"
    );
    assert!(ingest_only.text().await.unwrap().contains("`admin` scope"));

    let admin_key = bearer(TOKENS[ADMIN_TOKEN].1);
    let invited = admin("/admin/invite", Some(admin_key.clone())).await;
    assert_eq!(invited.status(), 200);
    let invited: Value = invited.json().await.unwrap();
    assert_eq!(invited["added"], true);
    // Active again once the new invitee joined (inviting meanwhile).
    let deadline = std::time::Instant::now() + FORM_TIMEOUT;
    loop {
        let h = health_of(port).await;
        if h["status"] == "ok" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never joined: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let auth = bearer(TOKENS[0].1);
    let sent = post_authorized(port, &auth, "hello").await;
    assert_eq!(sent.status(), 200);
    wait_jsonl(&out, 1, &participant).await;

    let removed = admin("/admin/remove", Some(admin_key)).await;
    assert_eq!(removed.status(), 200);
    let removed: Value = removed.json().await.unwrap();
    assert_eq!(removed["removed"], true);
    assert_eq!(removed["invitees"], serde_json::json!([]));
    // What is taken now waits for nobody that was removed.
    let after = post_authorized(port, &auth, "after").await;
    assert_eq!(after.status(), 200);
    let full = health_as(port, TOKENS[ADMIN_TOKEN].1).await;
    assert_eq!(full["node"]["joined"], serde_json::json!([]), "{full}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_the_wrong_shared_secret_cannot_join_nor_read() {
    const INTRUDER: &str = "e2e/sec/intruder";
    let mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let intruder_out = mesh.path("intruder.jsonl");
    let sink = format!("jsonl:{}", intruder_out.display());
    let intruder_health = free_port();
    let intruder_addr = format!("127.0.0.1:{intruder_health}");
    let mut intruder_args = PARTICIPANT_ROLE.to_vec();
    intruder_args.extend(["--sink", &sink, "--health", &intruder_addr]);
    let intruder = mesh.node_with_secret("intruder", INTRUDER, "wrong-secret", &intruder_args);
    // It runs, connected to SLIM and waiting for an invitation like any participant.
    wait_state(intruder_health, "awaiting_invite", &intruder).await;
    let (receiver, port) = mesh.receiver(
        "receiver",
        RECEIVER,
        &moderator(CHANNEL, &[PARTICIPANT, INTRUDER]),
    );

    // The rightful participant joins; the intruder stays pending.
    let deadline = std::time::Instant::now() + FORM_TIMEOUT;
    loop {
        let h = health_of(port).await;
        if h["node"]["joined"] == serde_json::json!([PARTICIPANT]) {
            assert_eq!(h["node"]["pending"], serde_json::json!([INTRUDER]), "{h}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never formed: {h}\n{}",
            receiver.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..3 {
        let resp = post(
            port,
            "/v1/logs",
            "application/json",
            record(&format!("secret data {i}")),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    wait_jsonl(&out, 3, &participant).await;
    // Give the intruder every chance a member would have had.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        jsonl(&intruder_out).is_empty(),
        "the intruder read the channel"
    );
    let h = health_of(port).await;
    assert_eq!(h["node"]["pending"], serde_json::json!([INTRUDER]), "{h}");
    let intruder_state = health_of(intruder_health).await;
    assert_eq!(
        intruder_state["node"]["state"], "awaiting_invite",
        "never let in"
    );
    drop(intruder);
}

/// An HTTPS client trusting the test CA.
fn https_client(certs: &Certs) -> reqwest::Client {
    let ca = std::fs::read(&certs.ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_scenario_runs_over_mtls_to_slim_and_tls_on_the_receiver() {
    let pki = tempfile::tempdir().unwrap();
    let certs = Certs::generate(pki.path());
    let mesh = Mesh::start_tls(&certs, true);
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (cert, key) = (
        certs.server_cert.display().to_string(),
        certs.server_key.display().to_string(),
    );
    let tokens = mesh.path("tokens").display().to_string();
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend([
        "--otlp-tls-cert",
        &cert,
        "--otlp-tls-key",
        &key,
        "--auth-token-file",
        &tokens,
    ]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    let client = https_client(&certs);
    let base = format!("https://127.0.0.1:{port}");

    let deadline = std::time::Instant::now() + FORM_TIMEOUT;
    loop {
        let h: Option<Value> = match client.get(format!("{base}/health")).send().await {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        if h.as_ref().is_some_and(|h| h["node"]["state"] == "active") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never active over TLS: {h:?}\n{}",
            receiver.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Plain HTTP to the TLS port gets nowhere.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .is_err());
    let resp = client
        .post(format!("{base}/v1/logs"))
        .header("content-type", "application/json")
        .header("authorization", bearer(TOKENS[0].1))
        .body(record("over tls"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_jsonl(&out, 1, &participant).await;
    assert_eq!(log_bodies(&jsonl(&out)), ["over tls"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_a_client_certificate_cannot_connect_to_an_mtls_server() {
    let pki = tempfile::tempdir().unwrap();
    let certs = Certs::generate(pki.path());
    let mesh = Mesh::start_tls(&certs, true);
    let secret = mesh.path("secret").display().to_string();
    let ca = certs.ca.display().to_string();
    let mut node = Proc::spawn(
        mesh.dir.path(),
        "no-cert",
        &[
            "node",
            "--role",
            "participant",
            "--name",
            PARTICIPANT,
            "--slim",
            &mesh.url,
            "--secret-file",
            &secret,
            "--ca",
            &ca,
            "--connect-attempts",
            "2",
        ],
    );
    let code = node.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{}", node.stderr_text());
    assert!(
        node.stderr_text()
            .contains("cannot connect to the SLIM server"),
        "{}",
        node.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_requiring_client_certificates_refuses_clients_without_one() {
    let pki = tempfile::tempdir().unwrap();
    let certs = Certs::generate(pki.path());
    let mesh = Mesh::start();
    let mtls = certs.receiver_mtls_args();
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(mtls.iter().map(String::as_str));
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    let url = format!("https://127.0.0.1:{port}/health");

    let mut pem = std::fs::read(&certs.client_cert).unwrap();
    pem.extend(std::fs::read(&certs.client_key).unwrap());
    let with_cert = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap(),
        )
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + FORM_TIMEOUT;
    let answered = loop {
        if let Ok(resp) = with_cert.get(&url).send().await {
            break resp;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            receiver.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answered.status(), 200);
    assert!(
        https_client(&certs).get(&url).send().await.is_err(),
        "a client without a certificate gets no answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_without_a_key_is_refused_on_a_non_loopback_address_and_the_start_warns() {
    // The namespace only lends this host a non-loopback address: the host's end of its link.
    let Some(link) = crate::netns::or_skip(crate::netns::Netns::create(2)) else {
        return;
    };
    let mesh = Mesh::start();
    let (_participant, _out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let public = format!("{}:{}", link.host_ip, free_port());
    let local_port = free_port();
    let local = format!("127.0.0.1:{local_port}");
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--otlp-http", &public, "--health", &local]);
    let receiver = mesh.node("receiver", RECEIVER, &args);
    wait_state(local_port, "active", &receiver).await;
    assert!(
        receiver.stderr_text().contains("non-loopback address"),
        "a listener open to the network without keys is warned about:\n{}",
        receiver.stderr_text()
    );
    let client = reqwest::Client::new();
    let invite = |base: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/admin/invite"))
                .header("content-type", "application/json")
                .body(r#"{"name":"e2e/sec/stranger"}"#)
                .send()
                .await
                .unwrap()
        }
    };
    let refused = invite(format!("http://{public}")).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("loopback"));
    let summary = get_json(&format!("http://{public}/health"), &[]).await;
    assert!(
        summary.get("sinks").is_none() && !summary.to_string().contains(PARTICIPANT),
        "the anonymous caller on the public address sees the summary only: {summary}"
    );
    let ingest = post_with_url(&format!("http://{public}/v1/logs"), record("still open")).await;
    assert_eq!(ingest.status(), 200, "sending stays open without keys");
    // On loopback, the same node still administers without a key.
    let members = get_json(&format!("http://{local}/health"), &[]).await;
    assert_eq!(members["node"]["joined"][0], PARTICIPANT);
}

/// POSTs an OTLP/JSON body to `url`.
async fn post_with_url(url: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}
