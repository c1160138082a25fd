//! Start-up errors: clear words and a non-zero exit, before anything is half running.

use std::time::Duration;

use crate::harness::*;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::spawn(dir.path(), "node", args);
    let code = p.wait_exit(Duration::from_secs(60));
    (code, p.stderr_text())
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
    let (code, err) = run(&[
        "node",
        "--role",
        "participant",
        "--name",
        "a/b/p",
        "--secret",
        "too-short",
    ]);
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
    let (code, err) = run(&[
        "node",
        "--role",
        "participant",
        "--name",
        "a/b/p",
        "--secret",
        SECRET,
        "--slim",
        &url,
        "--connect-attempts",
        "2",
    ]);
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
    let (code, err) = run(&[
        "node",
        "--role",
        "participant",
        "--name",
        "a/b/p",
        "--secret",
        SECRET,
        "--telemetry",
        "off,mesh",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--telemetry off records no metrics: it takes no other destination"),
        "{err}"
    );
}
