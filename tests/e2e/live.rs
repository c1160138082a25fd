//! The `ws` sink, watched by a real WebSocket client (the Python `websockets` library from
//! .ci/venv, driven by `ws_client.py`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const CHANNEL: &str = "e2e/live/telemetry";
const RECEIVER: &str = "e2e/live/receiver";
const VIEWER: &str = "e2e/live/viewer";

/// A WebSocket client process; its output (one line per frame) goes to a file.
pub(crate) struct Client {
    child: Child,
    out: PathBuf,
}

impl Client {
    pub(crate) fn start(dir: &Path, label: &str, args: &[&str]) -> Client {
        Client::start_with_env(dir, label, args, &[])
    }

    fn start_with_env(dir: &Path, label: &str, args: &[&str], env: &[(&str, &str)]) -> Client {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".ci/venv/bin/python");
        assert!(python.exists(), "no {}: run .ci/deps.sh", python.display());
        let out = dir.join(format!("{label}.frames"));
        let child = Command::new(python)
            .arg(root.join("tests/e2e/ws_client.py"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{label}.client.err"))).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("the WebSocket client starts");
        Client { child, out }
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The frames received (every line after "open"), parsed.
    pub(crate) fn frames(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("a frame of JSON"))
            .collect()
    }

    pub(crate) async fn wait_open(&self) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        while !self.lines().iter().any(|l| l == "open") {
            assert!(Instant::now() < deadline, "the client never connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log(service: &str, body: &str) -> Vec<u8> {
    log_request(service, body)
}

fn rendering(body: &[u8], signal: &str) -> Value {
    otlp::json::to_json_value(&otlp::json::from_json(signal.parse().unwrap(), body).unwrap())
}

/// A receiver and a participant serving the live view on a free port; returns the
/// receiver's port and the view's base URL.
async fn mesh_watched(mesh: &Mesh, options: &str, extra: &[&str]) -> (Proc, Proc, u16, String) {
    let ws_port = free_port();
    let sink = format!("ws:127.0.0.1:{ws_port}{options}");
    let mut args = vec!["--sink", &sink];
    args.extend_from_slice(extra);
    let (receiver, viewer, port) = mesh
        .receiver_and_participant(("viewer", VIEWER), &args, &[], (RECEIVER, CHANNEL))
        .await;
    (receiver, viewer, port, format!("ws://127.0.0.1:{ws_port}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_path_gets_every_request_as_sent_and_the_service_filter_keeps_its_own() {
    let mesh = Mesh::start();
    let (_receiver, viewer, port, base) = mesh_watched(&mesh, "", &[]).await;
    let dir = mesh.dir.path();
    let traces = Client::start(
        dir,
        "traces",
        &[&format!("{base}/ws/traces"), "read", "1", "30"],
    );
    let all = Client::start(dir, "all", &[&format!("{base}/ws/all"), "read", "3", "30"]);
    let wanted = Client::start(
        dir,
        "wanted",
        &[
            &format!("{base}/ws/logs?service.name=wanted"),
            "read",
            "1",
            "30",
        ],
    );
    for c in [&traces, &all, &wanted] {
        c.wait_open().await;
    }
    post_json(port, "/v1/traces", example("traces.json")).await;
    post_json(port, "/v1/logs", log("other", "not this")).await;
    post_json(port, "/v1/logs", log("wanted", "this")).await;
    wait_for("every frame", &viewer, || {
        traces.frames().len() == 1 && all.frames().len() == 3 && wanted.frames().len() == 1
    })
    .await;
    assert_eq!(
        traces.frames()[0],
        rendering(&example("traces.json"), "traces")
    );
    let wrapped = all.frames();
    assert_eq!(wrapped[0]["signal"], "traces");
    assert_eq!(wrapped[0]["from"], RECEIVER);
    assert!(wrapped[0]["verified_sender"]
        .as_str()
        .is_some_and(|v| v.starts_with(RECEIVER)));
    assert_eq!(
        wrapped[0]["payload"],
        rendering(&example("traces.json"), "traces")
    );
    assert_eq!(
        wrapped[2]["payload"],
        rendering(&log("wanted", "this"), "logs")
    );
    assert_eq!(wanted.frames(), [rendering(&log("wanted", "this"), "logs")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_disconnected_while_the_others_get_everything() {
    let mesh = Mesh::start();
    let health_port = free_port();
    let health_addr = format!("127.0.0.1:{health_port}");
    let (_receiver, viewer, port, base) = mesh_watched(
        &mesh,
        ";client-buffer-bytes=6291456",
        &["--health", &health_addr],
    )
    .await;
    let dir = mesh.dir.path();
    let reader = Client::start(
        dir,
        "reader",
        &[&format!("{base}/ws/traces"), "read", "300", "60"],
    );
    let staller = Client::start(
        dir,
        "staller",
        &[&format!("{base}/ws/traces"), "stall", "20"],
    );
    reader.wait_open().await;
    staller.wait_open().await;
    // 300 requests of 100 spans (~40 KB of JSON each), 50 a second: more than a stalled
    // connection holds, at a pace a reading client keeps up with.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slim-node"))
        .args([
            "loadgen",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
            "--items",
            "100",
            "--requests",
            "300",
            "--rate",
            "50",
            "--duration",
            "60",
            "--json",
        ])
        .output()
        .expect("loadgen runs");
    let report: Value = serde_json::from_slice(&out.stdout).expect("loadgen's report");
    assert_eq!(report["ok"], 300, "{report}");
    wait_for("the reader to get all 300", &viewer, || {
        reader.frames().len() == 300
    })
    .await;
    let deadline = Instant::now() + FORM_TIMEOUT;
    loop {
        let h = health_of(health_port).await;
        if h["sinks"][0]["detail"]["disconnected_slow"].as_u64() >= Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled client was never counted: {h}\n{}",
            viewer.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !staller.lines().iter().any(|l| l.starts_with("closed")) {
        assert!(
            Instant::now() < deadline,
            "the stalled client never saw the end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed = staller
        .lines()
        .into_iter()
        .find(|l| l.starts_with("closed"))
        .unwrap();
    eprintln!(
        "reader got {} of 300 frames; the stalled client read {} and saw `{closed}`",
        reader.frames().len(),
        staller.frames().len()
    );
    assert!(
        closed == "closed 1008" || closed == "closed 1006" || closed == "closed None",
        "disconnected as too slow (1008), or cut when it could not even take the close: {closed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_view_with_a_token_file_refuses_strangers_and_ingest_keys() {
    let mesh = Mesh::start();
    let viewer_token = "e2e-token-live-viewer-0b5d9e27";
    let keys = mesh.path("live-keys");
    std::fs::write(
        &keys,
        format!(
            "viewer:live={viewer_token}\nteam-a:ingest={}\n",
            TOKENS[0].1
        ),
    )
    .unwrap();
    let (_receiver, _viewer, _port, base) =
        mesh_watched(&mesh, &format!(";token-file={}", keys.display()), &[]).await;
    let http = base.replace("ws://", "http://");
    let client = reqwest::Client::new();
    let none = client
        .get(format!("{http}/ws/traces"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let wrong = client
        .get(format!("{http}/ws/traces?token=not-a-valid-token-at-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let ingest_key = client
        .get(format!("{http}/ws/traces"))
        .bearer_auth(TOKENS[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ingest_key.status(),
        403,
        "an ingest key does not read the live feed"
    );
    let dir = mesh.dir.path();
    let allowed = Client::start(
        dir,
        "allowed",
        &[
            &format!("{base}/ws/traces?token={viewer_token}"),
            "read",
            "0",
            "1",
        ],
    );
    allowed.wait_open().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_view_is_served_over_tls() {
    let pki = tempfile::tempdir().unwrap();
    let certs = crate::certs::Certs::generate(pki.path());
    let mesh = Mesh::start();
    let options = format!(
        ";tls-cert={};tls-key={}",
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let (_receiver, viewer, port, base) = mesh_watched(&mesh, &options, &[]).await;
    let wss = base.replace("ws://127.0.0.1", "wss://localhost");
    let ca = certs.ca.display().to_string();
    let client = Client::start_with_env(
        mesh.dir.path(),
        "tls",
        &[&format!("{wss}/ws/logs"), "read", "1", "30"],
        &[("SSL_CERT_FILE", &ca)],
    );
    client.wait_open().await;
    post_json(port, "/v1/logs", log("tls", "over tls")).await;
    wait_for("the frame over TLS", &viewer, || client.frames().len() == 1).await;
    assert_eq!(
        client.frames(),
        [rendering(&log("tls", "over tls"), "logs")]
    );
}
