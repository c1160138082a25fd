//! The slim-otel wire: slim-node against peers that use SLIM exactly as the OpenTelemetry
//! Collector's SLIM exporter and receiver (agntcy/slim-otel) do: one group channel per signal,
//! one request's protobuf bytes per message and nothing else. The peers are written against the
//! SLIM bindings (Python `slim-bindings`: tests/e2e/slim_otel_*.py), not slim-node.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use crate::harness::*;
use crate::py_peer::Peer;

const SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];
const PARTICIPANT: &str = "e2e/otel/participant";
const MODERATOR: &str = "e2e/otel/receiver";
const OTEL_RECEIVER: &str = "e2e/otel/collector";

fn channel(signal: &str) -> String {
    format!("e2e/otel/channel-{signal}")
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_takes_every_signal_a_slim_otel_exporter_sends_on_its_own_channel() {
    let mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    wait_for(
        "the participant to wait for invitations",
        &participant,
        || participant.stderr_text().contains("awaiting_invite"),
    )
    .await;
    let mut args = vec![
        "--slim".into(),
        mesh.url.clone(),
        "--secret".into(),
        SECRET.into(),
    ];
    for signal in SIGNALS {
        args.extend([
            "--name".into(),
            format!("{signal}=e2e/otel/exporter-{signal}"),
            "--channel".into(),
            format!("{signal}={}", channel(signal)),
        ]);
    }
    args.extend(["--invite".into(), PARTICIPANT.into()]);
    let mut exporter = Peer::spawn(&mesh, "exporter", "slim_otel_exporter.py", &args);
    {
        let mut stdin = exporter.stdin();
        for signal in SIGNALS {
            let path = repo_root().join(format!("examples/{signal}.pb"));
            writeln!(stdin, "{signal} {}", path.display()).expect("a line to the exporter");
        }
    }
    let done = exporter
        .wait_line("the exporter to finish", |l| l.get("done").is_some())
        .await;
    assert_eq!(done["errors"], 0, "{}", exporter.log());

    let lines = wait_jsonl_exactly(&out, 3, &participant).await;
    for signal in SIGNALS {
        let line = lines
            .iter()
            .find(|l| l["signal"] == signal)
            .unwrap_or_else(|| panic!("no {signal} among {lines:?}"));
        assert_eq!(line["from"], format!("e2e/otel/exporter-{signal}"));
        let sent: Value = serde_json::from_slice(&example(&format!("{signal}.json"))).unwrap();
        assert_otlp_json_contains(&sent, &line["payload"], signal);
    }
    // It stayed in all three channels: none was left for a later one.
    assert!(
        !participant.stderr_text().contains("leaving the old one"),
        "{}",
        participant.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moderator_with_signal_channels_publishes_each_request_as_slim_otel_does() {
    let mesh = Mesh::start();
    let collector = Peer::spawn(
        &mesh,
        "collector",
        "slim_otel_receiver.py",
        &[
            "--slim".into(),
            mesh.url.clone(),
            "--name".into(),
            OTEL_RECEIVER.into(),
            "--secret".into(),
            SECRET.into(),
        ],
    );
    collector
        .wait_line("the collector to listen", |l| l["event"] == "listening")
        .await;
    let mut args = vec!["--role", "moderator", "--invite", OTEL_RECEIVER];
    let channels: Vec<String> = SIGNALS
        .iter()
        .map(|s| format!("{s}={}", channel(s)))
        .collect();
    for c in &channels {
        args.extend(["--signal-channel", c]);
    }
    let (moderator, port) = mesh.receiver("moderator", MODERATOR, &args);
    wait_state(port, "active", &moderator).await;

    let mut sent = Vec::new();
    for signal in SIGNALS {
        let body = example(&format!("{signal}.pb"));
        let answer = post(
            port,
            &format!("/v1/{signal}"),
            "application/x-protobuf",
            body.clone(),
        )
        .await;
        assert_eq!(answer.status(), 200, "{signal}");
        sent.push((signal, body));
    }
    let messages = |c: &Peer| -> Vec<Value> {
        c.lines()
            .into_iter()
            .filter(|l| l.get("bytes").is_some())
            .collect()
    };
    collector
        .wait_line("the third message", |_| messages(&collector).len() >= 3)
        .await;
    // Nothing else comes: no pings, no copies.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = messages(&collector);
    assert_eq!(got.len(), 3, "{got:?}");
    for (signal, body) in sent {
        let m = got
            .iter()
            .find(|m| m["channel"] == channel(signal))
            .unwrap_or_else(|| panic!("nothing on {}: {got:?}", channel(signal)));
        assert_eq!(
            m["signal"], signal,
            "found by trial decoding, as slim-otel does"
        );
        assert_eq!(
            m["sha256"],
            sha256_hex(&body),
            "the request's bytes, unchanged"
        );
        assert_eq!(m["payload_type"], "msg", "no payload type");
        let metadata = m["metadata"].as_object().expect("metadata");
        assert!(
            metadata.keys().all(|k| k == "slim-peer-subject"),
            "no metadata of slim-node's: {metadata:?}"
        );
    }
    // Completed publishes count as acknowledged: nothing waits.
    let health = health_of(port).await;
    assert_eq!(health["outbox"]["messages"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_without_a_signal_channel_is_answered_404() {
    let mesh = Mesh::start();
    let (moderator, port) = mesh.receiver(
        "moderator",
        MODERATOR,
        &[
            "--role",
            "moderator",
            "--invite",
            OTEL_RECEIVER,
            "--signal-channel",
            "traces=e2e/otel/channel-traces",
        ],
    );
    wait_state(port, "inviting", &moderator).await;
    let answer = post(
        port,
        "/v1/logs",
        "application/x-protobuf",
        example("logs.pb"),
    )
    .await;
    assert_eq!(answer.status(), 404);
    let text = answer.text().await.unwrap_or_default();
    assert!(text.contains("--signal-channel logs="), "{text}");
}
