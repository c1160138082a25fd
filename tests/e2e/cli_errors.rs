//! Start-up errors: clear words and a non-zero exit, before anything is half running.

use std::time::Duration;

use crate::harness::*;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::spawn(dir.path(), "node", args);
    let code = p.wait_exit(Duration::from_secs(60));
    (code, p.stderr_text())
}

/// Runs a participant `a/b/p` with `secret` and `extra`.
fn participant(secret: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec![
        "node",
        "--role",
        "participant",
        "--name",
        "a/b/p",
        "--secret",
        secret,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn a_malformed_name_is_refused() {
    let (code, err) = run(&[
        "node",
        "--role",
        "participant",
        "--name",
        "acme-receiver",
        "--secret",
        SECRET,
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("invalid SLIM name") && err.contains("ORG/NAMESPACE/APP"),
        "{err}"
    );
}

#[test]
fn a_moderator_without_a_channel_is_refused() {
    let (code, err) = run(&[
        "node",
        "--role",
        "moderator",
        "--name",
        "a/b/m",
        "--secret",
        SECRET,
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("a moderator needs a channel"), "{err}");
}

#[test]
fn a_short_secret_is_refused_with_the_minimum_length() {
    let (code, err) = participant("too-short", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("at least 32 bytes"), "{err}");
    assert!(
        !err.contains("too-short"),
        "the secret itself is never printed"
    );
}

#[test]
fn an_unreachable_server_is_an_error_after_the_retries() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, err) = participant(SECRET, &["--slim", &url, "--connect-attempts", "2"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot connect to the SLIM server") && err.contains(&url),
        "{err}"
    );
}

#[test]
fn a_secret_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "short\n").unwrap();
    let (code, err) = run(&[
        "node",
        "--role",
        "participant",
        "--name",
        "a/b/p",
        "--secret-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("is 5 bytes long"),
        "the file's content, trimmed, was used: {err}"
    );
}

#[test]
fn telemetry_off_with_a_destination_is_refused() {
    let (code, err) = participant(SECRET, &["--telemetry", "off,mesh"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--telemetry off records no metrics: it takes no other destination"),
        "{err}"
    );
}

/// A credential as a user would paste it into a sink's header option.
const HEADER_TOKEN: &str = "e2e-sink-header-token-9d41c7";

#[test]
fn a_sink_typo_is_refused_without_echoing_the_value() {
    for (sink, why) in [
        (
            format!("otlpx:http://collector:4318;header=Authorization=Bearer {HEADER_TOKEN}"),
            "unknown sink \"otlpx\"",
        ),
        (
            format!("otlp:http://collector:4318;{HEADER_TOKEN}"),
            "an option is not KEY=VALUE",
        ),
    ] {
        let (code, err) = participant(SECRET, &["--sink", &sink]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(!err.contains(HEADER_TOKEN), "the value is echoed: {err}");
    }
}

#[test]
fn help_shows_no_sink_credential_from_the_environment_or_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = format!("otlp:http://collector:4318;header=Authorization=Bearer {HEADER_TOKEN}");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, format!("sink = [{sink:?}]\n")).unwrap();
    let config = config.display().to_string();
    for (label, args, env) in [
        (
            "env",
            vec!["node", "--help"],
            vec![("SLIM_NODE_SINK", sink.as_str())],
        ),
        ("file", vec!["node", "--config", &config, "--help"], vec![]),
    ] {
        let mut p = Proc::spawn_with_env(dir.path(), label, &args, &env);
        assert_eq!(p.wait_exit(Duration::from_secs(60)), Some(0));
        let help = std::fs::read_to_string(&p.stdout).unwrap();
        assert!(help.contains("--sink <SPEC>"), "{help}");
        assert!(
            !help.contains(HEADER_TOKEN),
            "{label}: --help shows the token"
        );
    }
}
