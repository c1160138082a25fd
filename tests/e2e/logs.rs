//! What the log says: one line per event, SLIM's retry chains on one line and not repeated
//! within the window, nothing alarming at a clean shutdown.

use std::time::Duration;

use crate::harness::*;

const CHANNEL: &str = "e2e/logs/telemetry";
const RECEIVER: &str = "e2e/logs/receiver";
const PARTICIPANT: &str = "e2e/logs/participant";

/// Fails unless every line of `log` is one event: it starts with the event's time.
fn assert_one_line_per_event(who: &str, log: &str) {
    for line in log.lines() {
        assert!(
            line.len() > 20 && line.starts_with("20") && line.as_bytes()[10] == b'T',
            "{who}: a line that is not an event of its own: {line:?}\n{log}"
        );
    }
}

/// The lines of `log` at WARN or ERROR.
fn alarms(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_shutdown_of_a_group_logs_no_warning_and_no_error() {
    let mesh = Mesh::start();
    let (mut receiver, mut participant, port) = mesh
        .receiver_and_participant(
            ("participant", PARTICIPANT),
            &["--sink", "stdout"],
            &[],
            (RECEIVER, CHANNEL),
        )
        .await;
    post_json(port, "/v1/traces", example("traces.json")).await;

    receiver.signal_term();
    assert_eq!(receiver.wait_exit(Duration::from_secs(30)), Some(0));
    participant.signal_term();
    assert_eq!(participant.wait_exit(Duration::from_secs(30)), Some(0));

    for (who, log) in [
        ("receiver", receiver.stderr_text()),
        ("participant", participant.stderr_text()),
    ] {
        assert!(log.contains("node stopped"), "{who}: {log}");
        assert_one_line_per_event(who, &log);
        assert_eq!(alarms(&log), Vec::<&str>::new(), "{who}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_cannot_reach_its_server_says_why_on_one_line_once_per_window_and_stops_at_a_signal(
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("secret file");
    let secret = secret.display().to_string();
    // Nothing listens there: SLIM tries again and again, several times a second at first.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let mut node = Proc::spawn(
        dir.path(),
        "participant",
        &[
            "node",
            "--role",
            "participant",
            "--name",
            PARTICIPANT,
            "--slim",
            &nowhere,
            "--secret-file",
            &secret,
            "--sink",
            "stdout",
        ],
    );
    // SLIM's client retries after about 0.3 s, 2.5 s, 2.5 s, 4.5 s: four tries within 8 s.
    let mut log = String::new();
    for _ in 0..80 {
        log = node.stderr_text();
        if log.contains("transient connect error") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    node.signal_term();
    assert_eq!(
        node.wait_exit(Duration::from_secs(5)),
        Some(0),
        "stops at once, though still connecting: {log}"
    );
    let log = node.stderr_text();
    assert_one_line_per_event("participant", &log);
    let tries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("transient connect error"))
        .collect();
    assert_eq!(tries.len(), 1, "once per window: {log}");
    assert!(
        tries[0].contains("Connection refused"),
        "with the cause a user can act on: {log}"
    );
    assert!(log.contains("stopped before the node was up"), "{log}");
}
