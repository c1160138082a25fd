//! The `otlp` sink: what a receiver takes reaches an OTLP backend through the mesh, field for
//! field, and nothing answered 200 is lost when the backend is down, the participant is
//! killed, or a durable sink is full.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{Backend, POISON};
use crate::harness::*;

const CHANNEL: &str = "e2e/forward/telemetry";
const RECEIVER: &str = "e2e/forward/receiver";
const FORWARDER: &str = "e2e/forward/forwarder";

fn log(body: &str) -> Vec<u8> {
    log_request("fwd", body)
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON")
}

/// A receiver (moderator) and a participant forwarding with `sink`; returns them and the
/// receiver's port once the group is up.
async fn mesh_forwarding_to(mesh: &Mesh, sink: &str, extra: &[&str]) -> (Proc, Proc, u16) {
    let mut args = vec!["--sink", sink];
    args.extend_from_slice(extra);
    mesh.receiver_and_participant(("forwarder", FORWARDER), &args, &[], (RECEIVER, CHANNEL))
        .await
}

/// The far end of a second hop: a receiver (moderator of its own channel) started with
/// `receiver_args`, and its participant writing jsonl.
struct FarEnd {
    participant: Proc,
    out: std::path::PathBuf,
    /// Kept running while the far end is in use.
    _receiver: Proc,
    http_port: u16,
}

async fn far_end(mesh: &Mesh, receiver_args: &[&str]) -> FarEnd {
    let (participant, out) = mesh.sink_node("far-end", "e2e/forward/far-end", PARTICIPANT_ROLE);
    let mut args = moderator("e2e/forward/second", &["e2e/forward/far-end"]);
    args.extend_from_slice(receiver_args);
    let (receiver, http_port) = mesh.receiver("second", "e2e/forward/second-receiver", &args);
    wait_state(http_port, "active", &receiver).await;
    FarEnd {
        participant,
        out,
        _receiver: receiver,
        http_port,
    }
}

/// Posts a log record per body; each must be answered 200.
async fn post_logs(port: u16, bodies: &[String]) {
    for body in bodies {
        let status = post(port, "/v1/logs", "application/json", log(body))
            .await
            .status();
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_signal_reaches_an_otlp_http_backend_field_for_field() {
    let mesh = Mesh::start();
    let protobuf = Backend::start().await;
    let json = Backend::start().await;
    let second = format!("otlp:{};protocol=http/json;compression=gzip", json.url());
    let (_receiver, forwarder, port) = mesh_forwarding_to(
        &mesh,
        &format!("otlp:{}", protobuf.url()),
        &["--sink", &second],
    )
    .await;
    for (signal, file) in [
        ("traces", "traces.json"),
        ("metrics", "metrics.json"),
        ("logs", "logs.json"),
    ] {
        let resp = post(
            port,
            &format!("/v1/{signal}"),
            "application/json",
            example(file),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    wait_for("three exports at each backend", &forwarder, || {
        protobuf.exports().len() >= 3 && json.exports().len() >= 3
    })
    .await;
    for backend in [&protobuf, &json] {
        let exports = backend.exports();
        assert_eq!(exports.len(), 3, "each request once");
        for (signal, file) in [
            ("traces", "traces.json"),
            ("metrics", "metrics.json"),
            ("logs", "logs.json"),
        ] {
            let got = exports
                .iter()
                .find(|e| e.signal == signal)
                .expect("the signal arrived");
            assert_eq!(
                got.json,
                otlp_json(&example(file), signal),
                "{signal} arrived as sent"
            );
        }
    }
    assert!(protobuf
        .exports()
        .iter()
        .all(|e| e.content_type == "application/x-protobuf"));
    assert!(json
        .exports()
        .iter()
        .all(|e| e.content_type == "application/json"
            && e.content_encoding.as_deref() == Some("gzip")));
}

/// `body` (OTLP/JSON of `signal`) as the codec renders it.
fn otlp_json(body: &[u8], signal: &str) -> Value {
    let request = otlp::json::from_json(signal.parse().unwrap(), body).unwrap();
    otlp::json::to_json_value(&request)
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_over_grpc_into_a_second_slim_node_receiver_every_item_arrives_once() {
    let mesh = Mesh::start();
    // The second mesh hop: a receiver with OTLP/gRPC, and its participant writing jsonl.
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    let far = far_end(&mesh, &["--otlp-grpc", &grpc]).await;
    let far_out = far.out.clone();

    let sink = format!("otlp:http://{grpc};protocol=grpc");
    let (_receiver, forwarder, port) = mesh_forwarding_to(&mesh, &sink, &[]).await;
    let sent: Vec<String> = (0..20).map(|i| format!("over grpc {i}")).collect();
    post_logs(port, &sent).await;
    // Every record, then nothing more through the quiet period: a late copy would show.
    let lines = read_until_quiet(
        FORM_TIMEOUT,
        || jsonl(&far_out),
        |l| log_bodies_all(l).len() >= sent.len(),
    )
    .await;
    drop(far);
    assert_eq!(
        log_bodies_all(&lines),
        sent,
        "each once, in order; forwarder log:\n{}",
        forwarder.stderr_text()
    );
    // The requests that waited together travelled as one export: each kept its resource.
    let first = &lines[0]["payload"]["resourceLogs"][0];
    assert_otlp_json_contains(
        &parse(&log("over grpc 0"))["resourceLogs"][0],
        first,
        "resourceLogs[0]",
    );
}

/// The path of the Rotel collector binary the Python package ships (installed by .ci/deps.sh).
fn rotel_agent() -> std::path::PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/venv/lib");
    std::fs::read_dir(&venv)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no rotel-agent under {}: run .ci/deps.sh", venv.display()))
}

/// Starts Rotel forwarding OTLP/HTTP to `to_port`; returns it and its OTLP/HTTP port once it
/// listens. Its ports are picked free a moment before it binds them, and a test running beside
/// it can take one first: when Rotel exits, it is started again on other ports (three times at
/// most), and the failure shows what Rotel said.
fn start_rotel(mesh: &Mesh, to_port: u16) -> (std::process::Child, u16) {
    let mut said = String::new();
    for attempt in 1..=3 {
        let http = free_port();
        let err = mesh.path(&format!("rotel-{attempt}.err"));
        let mut rotel = std::process::Command::new(rotel_agent())
            .args([
                "start",
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{http}"),
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{}", free_port()),
                "--exporter",
                "otlp",
                "--otlp-exporter-protocol",
                "http",
                "--otlp-exporter-endpoint",
                &format!("http://127.0.0.1:{to_port}"),
                "--pid-file",
                &mesh
                    .path(&format!("rotel-{attempt}.pid"))
                    .display()
                    .to_string(),
            ])
            .stdout(
                std::fs::File::create(mesh.path(&format!("rotel-{attempt}.log")))
                    .expect("rotel log"),
            )
            .stderr(std::fs::File::create(&err).expect("rotel err"))
            .spawn()
            .expect("rotel-agent starts");
        let deadline = Instant::now() + FORM_TIMEOUT;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", http)).is_ok() {
                return (rotel, http);
            }
            if let Ok(Some(status)) = rotel.try_wait() {
                said = format!(
                    "rotel exited ({status}): {}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if rotel.try_wait().ok().flatten().is_none() {
            let _ = rotel.kill();
            panic!(
                "rotel did not listen within {FORM_TIMEOUT:?}: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
    }
    panic!("rotel did not start in three attempts; the last: {said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_rotel_collector_every_item_arrives_once_field_for_field() {
    let mesh = Mesh::start();
    // The far end: a slim-node receiver whose participant writes jsonl.
    let far = far_end(&mesh, &[]).await;
    let (far_out, second_port) = (far.out.clone(), far.http_port);
    // Rotel between the two: OTLP/HTTP in, OTLP/HTTP out to the second receiver.
    let (mut rotel, rotel_http) = start_rotel(&mesh, second_port);

    let sink = format!("otlp:http://127.0.0.1:{rotel_http}");
    let (_receiver, _forwarder, port) = mesh_forwarding_to(&mesh, &sink, &[]).await;
    let sent: Vec<String> = (0..20).map(|i| format!("through rotel {i}")).collect();
    post_logs(port, &sent).await;
    // Every record, then nothing more through the quiet period: a late copy would show.
    let lines = read_until_quiet(
        FORM_TIMEOUT,
        || jsonl(&far_out),
        |l| log_bodies_all(l).len() >= sent.len(),
    )
    .await;
    let _ = rotel.kill();
    let _ = rotel.wait();
    let got: BTreeSet<String> = log_bodies_all(&lines).into_iter().collect();
    assert_eq!(
        got,
        sent.iter().cloned().collect::<BTreeSet<_>>(),
        "each once; far end's log:\n{}",
        far.participant.stderr_text()
    );
    assert_eq!(log_bodies_all(&lines).len(), sent.len(), "none twice");
    // Field for field: every record keeps its resource, time and body (Rotel may regroup them).
    for line in &lines {
        for rl in line["payload"]["resourceLogs"].as_array().unwrap() {
            assert_otlp_json_contains(
                &parse(&log("x"))["resourceLogs"][0]["resource"],
                &rl["resource"],
                "resource",
            );
            for sl in rl["scopeLogs"].as_array().unwrap() {
                for lr in sl["logRecords"].as_array().unwrap() {
                    assert_eq!(lr["timeUnixNano"], "1700000000000000000");
                }
            }
        }
    }
}

/// Every log record body in jsonl lines, however the requests group them.
fn log_bodies_all(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|l| crate::backend::log_bodies_of(&l["payload"]))
        .collect()
}

/// Waits until the backend holds every accepted record; prints the counts; fails on loss or
/// disorder; returns the duplicates.
async fn assert_all_forwarded(
    what: &str,
    accepted: &[String],
    backend: &Backend,
    node: &Proc,
) -> usize {
    let wanted: BTreeSet<&String> = accepted.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<String> = backend.log_bodies().into_iter().collect();
        if wanted.iter().all(|w| got.contains(*w)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let got = backend.log_bodies();
    let unique: BTreeSet<&String> = got.iter().collect();
    let duplicates = got.len() - unique.len();
    eprintln!(
        "{what}: answered 200 {}, at the backend {}, duplicates {duplicates}",
        accepted.len(),
        unique.len()
    );
    let missing: Vec<&&String> = wanted.iter().filter(|w| !unique.contains(**w)).collect();
    assert!(
        missing.is_empty(),
        "{what}: lost {missing:?}\n{}",
        node.stderr_text()
    );
    duplicates
}

/// Fails unless the first arrival of each record at the backend follows the order in which
/// they were answered 200 (the order per publisher the README promises, except after
/// backpressure).
fn assert_in_answer_order(what: &str, accepted: &[String], backend: &Backend) {
    let wanted: BTreeSet<&String> = accepted.iter().collect();
    let mut firsts: Vec<String> = Vec::new();
    for g in backend.log_bodies() {
        if !firsts.contains(&g) {
            firsts.push(g);
        }
    }
    let in_answer_order: Vec<&String> = firsts.iter().filter(|f| wanted.contains(f)).collect();
    assert_eq!(
        in_answer_order,
        accepted.iter().collect::<Vec<_>>(),
        "{what}: out of order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_backend_down_for_30s_nothing_is_lost_and_everything_arrives_in_order() {
    let mesh = Mesh::start();
    let mut backend = Backend::start().await;
    let (receiver, forwarder, port) = mesh_forwarding_to(
        &mesh,
        &format!("otlp:{};retry-max-delay=2", backend.url()),
        &[],
    )
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream(port, "fwd", "steady", stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    backend.down();
    tokio::time::sleep(Duration::from_secs(30)).await;
    backend.up().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let accepted = load.await.unwrap();
    assert!(
        accepted.len() > 1000,
        "the receiver kept answering 200: {}",
        accepted.len()
    );
    let duplicates =
        assert_all_forwarded("backend down 30 s", &accepted, &backend, &forwarder).await;
    assert_in_answer_order("backend down 30 s", &accepted, &backend);
    assert!(duplicates <= 5, "{duplicates} records arrived twice");
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_killed_while_its_backend_is_down_delivers_everything_after_restart() {
    let mesh = Mesh::start();
    let mut backend = Backend::start().await;
    backend.down();
    let sink = format!("otlp:{};retry-max-delay=2", backend.url());
    let (_receiver, forwarder, port) = mesh_forwarding_to(&mesh, &sink, &[]).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream(port, "fwd", "held", stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    forwarder.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The same name, so the same data directory: its queue is still there.
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--sink", &sink]);
    let restarted = mesh.node("forwarder-2", FORWARDER, &args);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let accepted = load.await.unwrap();
    backend.up().await;
    let duplicates = assert_all_forwarded(
        "participant killed with its backend down",
        &accepted,
        &backend,
        &restarted,
    )
    .await;
    assert_in_answer_order(
        "participant killed with its backend down",
        &accepted,
        &backend,
    );
    assert!(duplicates <= 5, "{duplicates} records arrived twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_durable_sink_stops_acknowledgements_so_the_receiver_answers_503_and_loses_nothing()
{
    let mesh = Mesh::start();
    let mut backend = Backend::start().await;
    backend.down();
    let sink = format!(
        "otlp:{};queue=memory;queue-max-messages=5;retry-max-delay=1",
        backend.url()
    );
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--sink", &sink]);
    let forwarder = mesh.node("forwarder", FORWARDER, &args);
    let mut receiver_args = moderator(CHANNEL, &[FORWARDER]);
    receiver_args.extend(["--queue-max-messages", "20"]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &receiver_args);
    wait_state(port, "active", &receiver).await;

    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..400 {
        let body = format!("bounded {i}");
        let resp = post(port, "/v1/logs", "application/json", log(&body)).await;
        match resp.status().as_u16() {
            200 => accepted.push(body),
            503 => {
                assert!(
                    resp.headers().get("retry-after").is_some(),
                    "503 says when to retry"
                );
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            other => panic!("unexpected answer {other}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        refused, 3,
        "the full sink held acknowledgements back until the outbox was full"
    );
    assert!(accepted.len() <= 5 + 20 + 1, "{} taken", accepted.len());
    backend.up().await;
    let duplicates =
        assert_all_forwarded("durable sink full", &accepted, &backend, &forwarder).await;
    // No order check here: what a full sink refused comes when its publisher sends it again.
    assert!(duplicates <= 5, "{duplicates} records arrived twice");
}

/// With a memory queue a message is acknowledged only once exported, so its publisher sends
/// no more until then: an export waiting out `batch-delay` for more would wait for what cannot
/// come. Each export goes with what waits (here a delay of an hour, never waited out).
#[tokio::test(flavor = "multi_thread")]
async fn with_a_memory_queue_an_export_goes_with_what_waits_without_waiting_out_batch_delay() {
    let mesh = Mesh::start();
    let backend = Backend::start().await;
    let (_receiver, forwarder, port) = mesh_forwarding_to(
        &mesh,
        &format!("otlp:{};queue=memory;batch-delay=3600000", backend.url()),
        &[],
    )
    .await;
    let accepted: Vec<String> = (0..3).map(|i| format!("one at a time {i}")).collect();
    for body in &accepted {
        post_logs(port, std::slice::from_ref(body)).await;
        assert_all_forwarded(
            "memory queue, one request",
            std::slice::from_ref(body),
            &backend,
            &forwarder,
        )
        .await;
    }
    assert_in_answer_order("memory queue", &accepted, &backend);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_backend_refuses_with_400_is_dropped_counted_and_logged_and_the_rest_flow() {
    let mesh = Mesh::start();
    let backend = Backend::start().await;
    let health_port = free_port();
    let health_addr = format!("127.0.0.1:{health_port}");
    let (_receiver, forwarder, port) = mesh_forwarding_to(
        &mesh,
        &format!("otlp:{}", backend.url()),
        &["--health", &health_addr],
    )
    .await;
    let bodies: Vec<String> = (0..10)
        .map(|i| {
            if i == 5 {
                POISON.to_string()
            } else {
                format!("fine {i}")
            }
        })
        .collect();
    for body in &bodies {
        post_json(port, "/v1/logs", log(body)).await;
    }
    let expected: Vec<String> = bodies.iter().filter(|b| *b != POISON).cloned().collect();
    wait_for("the other nine at the backend", &forwarder, || {
        backend.log_bodies().len() >= expected.len()
    })
    .await;
    assert_eq!(backend.log_bodies(), expected);
    assert!(backend.refused() >= 1);
    let h = health_of(health_port).await;
    let sink = &h["sinks"][0];
    assert_eq!(sink["dropped"]["refused by the backend"], 1, "{h}");
    assert_eq!(sink["delivered"], 9, "{h}");
    assert!(
        forwarder
            .stderr_text()
            .contains("log record body is poison"),
        "the backend's message is logged"
    );
}

/// Forwards over `protocol` into a second receiver that serves OTLP over TLS and requires
/// client certificates: every record arrives, in order.
async fn forward_over_mtls(protocol: &str) {
    let pki = tempfile::tempdir().unwrap();
    let certs = crate::certs::Certs::generate(pki.path());
    let path = |p: &std::path::PathBuf| p.display().to_string();
    let mesh = Mesh::start();
    let (far_end, far_out) = mesh.sink_node("far-end", "e2e/forward/far-end", PARTICIPANT_ROLE);
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    let mtls = certs.receiver_mtls_args();
    let ca = path(&certs.ca);
    let mut args = moderator("e2e/forward/second", &["e2e/forward/far-end"]);
    args.extend(["--otlp-grpc", &grpc]);
    args.extend(mtls.iter().map(String::as_str));
    let (second, http_port) = mesh.receiver("second", "e2e/forward/second-receiver", &args);
    let port = if protocol == "grpc" {
        grpc_port
    } else {
        http_port
    };
    let sink = format!(
        "otlp:https://localhost:{port};protocol={protocol};ca={ca};client-cert={};client-key={}",
        path(&certs.client_cert),
        path(&certs.client_key)
    );
    let (_receiver, forwarder, port) = mesh_forwarding_to(&mesh, &sink, &[]).await;
    for i in 0..5 {
        let body = format!("over mtls {i}");
        post_json(port, "/v1/logs", log(&body)).await;
    }
    wait_for("every record over mTLS", &forwarder, || {
        log_bodies_all(&jsonl(&far_out)).len() >= 5
    })
    .await;
    let expected: Vec<String> = (0..5).map(|i| format!("over mtls {i}")).collect();
    assert_eq!(log_bodies_all(&jsonl(&far_out)), expected);
    drop((second, far_end));
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_over_grpc_with_tls_presents_the_client_certificate() {
    forward_over_mtls("grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_over_http_with_tls_presents_the_client_certificate() {
    forward_over_mtls("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_url_with_credentials_never_shows_them_in_the_log_or_health() {
    const PASSWORD: &str = "e2e-url-password-51f0";
    const QUERY_TOKEN: &str = "e2e-url-query-token-8c2d";
    let mesh = Mesh::start();
    // Nothing listens there: every export fails, and the error names the URL.
    let sink = format!(
        "otlp:http://forwarder:{PASSWORD}@127.0.0.1:{}/?token={QUERY_TOKEN}",
        free_port()
    );
    let health_port = free_port();
    let health = format!("127.0.0.1:{health_port}");
    let mut args = vec!["--sink", sink.as_str(), "--health", &health];
    args.extend_from_slice(PARTICIPANT_ROLE);
    let forwarder = mesh.node("forwarder", FORWARDER, &args);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[FORWARDER]));
    wait_state(port, "active", &receiver).await;
    post_json(port, "/v1/traces", example("traces.json")).await;

    let mut health = Value::Null;
    for _ in 0..100 {
        health = health_of(health_port).await;
        if health["sinks"][0]["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_error = health["sinks"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    // The client's error names the URL (its user part already gone to a header): the query
    // is hidden; the log's start-up line names the endpoint with both hidden.
    assert!(last_error.contains("/?REDACTED"), "{health}");
    let log = forwarder.stderr_text();
    assert!(log.contains("REDACTED@127.0.0.1"), "{log}");
    for shown in [health.to_string(), log] {
        assert!(
            !shown.contains(PASSWORD) && !shown.contains(QUERY_TOKEN),
            "{shown}"
        );
    }
}
