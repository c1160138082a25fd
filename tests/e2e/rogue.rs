//! Trust between members: a rogue member, written against the SLIM bindings (Python
//! `slim-bindings`: tests/e2e/rogue_member.py), not slim-node, tries to act for another member.
//! The real member still receives everything, once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;
use crate::py_peer::Peer;

const CHANNEL: &str = "e2e/trust/telemetry";
const RECEIVER: &str = "e2e/trust/receiver";
const VICTIM: &str = "e2e/trust/victim";
const ROGUE: &str = "e2e/trust/rogue";

/// Posts `n` log records from service `real` (bodies `real I`), each answered 200.
async fn send_real(port: u16, n: usize) -> BTreeSet<String> {
    let mut sent = BTreeSet::new();
    for i in 0..n {
        let body = format!("real {i}");
        post_json(port, "/v1/logs", log_request("real", &body)).await;
        sent.insert(body);
    }
    sent
}

/// Starts the rogue member `ROGUE` on `mesh`'s server with `args` (its identity and its tricks).
fn rogue(mesh: &Mesh, args: &[&str]) -> Peer {
    let mut all = vec![
        "--slim".to_string(),
        mesh.url.clone(),
        "--name".into(),
        ROGUE.into(),
    ];
    all.extend(args.iter().map(ToString::to_string));
    Peer::spawn(mesh, "rogue", "rogue_member.py", &all)
}

/// What the victim wrote that its moderator sent, each once, and what it wrote from others.
fn from_receiver_once(out: &Path) -> (BTreeSet<String>, Vec<serde_json::Value>) {
    let lines = jsonl(out);
    let (real, other): (Vec<_>, Vec<_>) = lines.into_iter().partition(|l| l["from"] == RECEIVER);
    let bodies = log_bodies(&real);
    let unique: BTreeSet<String> = bodies.iter().cloned().collect();
    assert_eq!(unique.len(), bodies.len(), "copies among {bodies:?}");
    (unique, other)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_replays_another_members_ids_first_cannot_suppress_its_data() {
    let mesh = Mesh::start();
    let (victim, out) = mesh.sink_node("victim", VICTIM, PARTICIPANT_ROLE);
    // The rogue sends a forged message under every id it sees, again and again for 20 s: to a
    // member that was away, its copy may well arrive before the moderator's re-send.
    let rogue = rogue(
        &mesh,
        &[
            "--secret",
            SECRET,
            "--replay-repeat",
            "1000",
            "--replay-interval",
            "0.02",
        ],
    );
    rogue
        .wait_line("the rogue to listen", |l| l["event"] == "listening")
        .await;
    let (receiver, port) =
        mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[VICTIM, ROGUE]));
    wait_for("both members to join", &receiver, || {
        receiver.stderr_text().matches("invitee joined").count() >= 2
    })
    .await;

    // The victim is away while data is sent; the rogue replays every id meanwhile.
    victim.kill9();
    let sent = send_real(port, 10).await;
    rogue
        .wait_line("the rogue to replay", |l| l["event"] == "replayed")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (victim, out_2) = mesh.sink_node("victim-2", VICTIM, PARTICIPANT_ROLE);
    wait_for("the victim to get every record back", &victim, || {
        from_receiver_once(&out_2).0.len() + from_receiver_once(&out).0.len() >= sent.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (before, _) = from_receiver_once(&out);
    let (after, forged) = from_receiver_once(&out_2);
    let got: BTreeSet<String> = before.union(&after).cloned().collect();
    assert_eq!(got, sent, "every record the receiver answered 200 arrives");
    assert!(
        before.intersection(&after).next().is_none(),
        "nothing twice across the restart"
    );
    // What the rogue forged under those ids is the rogue's own, shown as such.
    for line in &forged {
        assert_eq!(line["from"], ROGUE, "{line}");
        assert!(
            line["verified_sender"]
                .as_str()
                .is_some_and(|v| v.starts_with(ROGUE)),
            "{line}"
        );
    }
    assert!(!rogue.events("replayed").is_empty(), "{}", rogue.log());
}

/// An Ed25519 private key (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it) in
/// `dir/NAME.pem`.
fn private_key(dir: &Path, name: &str) -> PathBuf {
    use base64::Engine;
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    der.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, pem).expect("key file");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_with_a_key_of_its_own_cannot_answer_another_members_invitation() {
    let mesh = Mesh::start();
    let dir = mesh.dir.path();
    let keys: Vec<(&str, PathBuf)> = [("receiver", RECEIVER), ("victim", VICTIM), ("rogue", ROGUE)]
        .into_iter()
        .map(|(file, name)| (name, private_key(dir, file)))
        .collect();
    // The trust list, as `slim-node trust-list` writes it.
    let members: Vec<String> = keys
        .iter()
        .map(|(name, key)| format!("{name}={}", key.display()))
        .collect();
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_slim-node"))
        .arg("trust-list")
        .args(&members)
        .output()
        .expect("slim-node trust-list");
    assert!(listed.status.success(), "{listed:?}");
    let trust = dir.join("members.jwks");
    std::fs::write(&trust, &listed.stdout).expect("trust file");
    let key = |name: &str| {
        keys.iter()
            .find(|(n, _)| *n == name)
            .expect("a key")
            .1
            .display()
            .to_string()
    };
    let trust_arg = trust.display().to_string();

    // The rogue, with its own key, also subscribes an app to the victim's name, before the
    // victim is there: an invitation to that name would reach it first.
    let rogue_key = key(ROGUE);
    let rogue = rogue(
        &mesh,
        &[
            "--key",
            &rogue_key,
            "--trust",
            &trust_arg,
            "--impersonate",
            VICTIM,
            "--no-replay",
        ],
    );
    rogue
        .wait_line("the rogue to subscribe the victim's name", |l| {
            l["event"] == "subscribed"
        })
        .await;
    let out = mesh.path("victim.jsonl");
    let sink = format!("jsonl:{}", out.display());
    let (victim_key, receiver_key) = (key(VICTIM), key(RECEIVER));
    let with_keys = |name: &'static str, key: &str| -> Vec<String> {
        [
            "node",
            "--name",
            name,
            "--slim",
            &mesh.url,
            "--identity-key",
            key,
            "--trust",
            &trust_arg,
        ]
        .map(String::from)
        .to_vec()
    };
    let mut victim_args = with_keys(VICTIM, &victim_key);
    victim_args.extend(["--role", "participant", "--sink", &sink].map(String::from));
    let victim_args: Vec<&str> = victim_args.iter().map(String::as_str).collect();
    let victim = Proc::spawn(dir, "victim", &victim_args);
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let mut receiver_args = with_keys(RECEIVER, &receiver_key);
    receiver_args.extend(["--otlp-http", &http].map(String::from));
    // Only the victim is invited: the rogue holds a valid key of its own, but the group is
    // the victim's, and only the rogue's app subscribed to the victim's name could get in.
    receiver_args.extend(moderator(CHANNEL, &[VICTIM]).into_iter().map(String::from));
    let receiver_args: Vec<&str> = receiver_args.iter().map(String::as_str).collect();
    let receiver = Proc::spawn(dir, "receiver", &receiver_args);
    wait_state(port, "active", &receiver).await;

    let sent = send_real(port, 10).await;
    wait_for("the victim to get every record", &victim, || {
        from_receiver_once(&out).0.len() >= sent.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(from_receiver_once(&out).0, sent);
    assert!(
        rogue.events("impersonating").is_empty() && rogue.events("stolen").is_empty(),
        "the rogue got into the group as the victim: {}",
        rogue.log()
    );
    let health = health_of(port).await;
    let joined = health["node"]["joined"].as_array().expect("joined");
    assert!(joined.iter().any(|n| n == VICTIM), "{health}");
}
