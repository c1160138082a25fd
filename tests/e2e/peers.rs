//! Across sites: SLIM servers linked as SLIM peers (`slim-node server --peer URL`), each with its
//! own members. Names subscribed at one server are reached from the other.

use std::time::Duration;

use crate::certs::Certs;
use crate::harness::*;

const CHANNEL: &str = "e2e/peers/telemetry";
const RECEIVER: &str = "e2e/peers/receiver";
const PARTICIPANT: &str = "e2e/peers/participant";

#[tokio::test(flavor = "multi_thread")]
async fn a_moderator_on_one_server_reaches_a_participant_on_a_peered_server_and_delivers_once() {
    // Site B: a SLIM server and the participant; site A: a server linked to B's, and the
    // receiving moderator.
    let site_b = Mesh::start();
    let site_a = Mesh::start_peered_with(&site_b);
    let (participant, out) = site_b.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (receiver, port) =
        site_a.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    let health = wait_state(port, "active", &receiver).await;
    assert_eq!(health["node"]["joined"][0], PARTICIPANT);
    wait_until(
        Duration::from_secs(10),
        || site_a.server_log().contains("SLIM peer link up"),
        || {
            format!(
                "server A never logged its peer link up:\n{}",
                site_a.server_log()
            )
        },
    );

    for signal in ["traces", "metrics", "logs"] {
        post_json(
            port,
            &format!("/v1/{signal}"),
            example(&format!("{signal}.json")),
        )
        .await;
    }
    let lines = wait_jsonl_exactly(&out, 3, &participant).await;
    let signals: Vec<&str> = lines.iter().filter_map(|l| l["signal"].as_str()).collect();
    assert_eq!(signals, ["traces", "metrics", "logs"]);
    assert!(lines.iter().all(|l| l["from"] == RECEIVER), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_is_down_when_the_server_starts_is_linked_once_it_is_up() {
    let port_b = free_port();
    let site_a = Mesh::start_peered_with_url(&format!("http://127.0.0.1:{port_b}"));
    // Site A serves at once, though its peer is not there.
    let (receiver, port) =
        site_a.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "inviting", &receiver).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !site_a.server_log().contains("SLIM peer link up"),
        "{}",
        site_a.server_log()
    );
    let site_b = Mesh::start_on_port(port_b);
    let (participant, out) = site_b.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    wait_state(port, "active", &receiver).await;
    post_json(port, "/v1/logs", example("logs.json")).await;
    let lines = wait_jsonl_exactly(&out, 1, &participant).await;
    assert_eq!(lines[0]["signal"], "logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_link_runs_over_mtls_to_a_server_that_requires_client_certificates() {
    let pki = tempfile::tempdir().unwrap();
    let certs = Certs::generate(pki.path());
    // Site B requires client certificates of everyone, its nodes and its peers.
    let site_b = Mesh::start_tls(&certs, true);
    let path = |p: &std::path::PathBuf| p.display().to_string();
    let site_a = Mesh::start_peered_with_args(vec![
        "--peer".into(),
        site_b.url.clone(),
        "--peer-ca".into(),
        path(&certs.ca),
        "--peer-cert".into(),
        path(&certs.client_cert),
        "--peer-key".into(),
        path(&certs.client_key),
    ]);
    assert!(site_b.url.starts_with("https://"));
    let (participant, out) = site_b.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (receiver, port) =
        site_a.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;
    post_json(port, "/v1/traces", example("traces.json")).await;
    let lines = wait_jsonl_exactly(&out, 1, &participant).await;
    assert_eq!(lines[0]["signal"], "traces");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_peer_server_restarts_the_sites_are_linked_again_and_deliver() {
    let site_b = Mesh::start();
    let site_a = Mesh::start_peered_with(&site_b);
    let mut site_b = site_b;
    let (participant, out) = site_b.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (receiver, port) =
        site_a.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;
    post_json(port, "/v1/logs", example("logs.json")).await;
    wait_jsonl_exactly(&out, 1, &participant).await;

    site_b.crash_server_for(Duration::from_secs(3));
    post_json(port, "/v1/traces", example("traces.json")).await;
    let lines = wait_jsonl_exactly(&out, 2, &participant).await;
    assert_eq!(lines[1]["signal"], "traces");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_given_two_servers_moves_to_the_second_when_its_server_dies_and_misses_nothing() {
    // Site A is the hub: B's and C's servers are each linked to it.
    let site_a = Mesh::start();
    let mut site_b = Mesh::start_peered_with(&site_a);
    let site_c = Mesh::start_peered_with(&site_a);
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--slim", &site_c.url]);
    let (participant, out) = site_b.sink_node("participant", PARTICIPANT, &args);
    let (receiver, port) =
        site_a.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream(port, "failover", "steady", stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    site_b.kill_server();
    wait_for(
        "the participant to move to C's server",
        &participant,
        || {
            participant
                .stderr_text()
                .contains("connected to SLIM again")
        },
    )
    .await;
    // It is back in the group, and what is sent now reaches it through C.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.cancel();
    let accepted = load.await.unwrap();
    assert!(
        accepted.len() > 100,
        "the receiver kept answering 200: {}",
        accepted.len()
    );
    let lines = wait_jsonl_exactly(&out, accepted.len(), &participant).await;
    let mut bodies = log_bodies(&lines);
    bodies.sort();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(bodies, expected, "every record answered 200 arrives once");
    assert!(
        participant.stderr_text().contains(&site_c.url),
        "{}",
        participant.stderr_text()
    );
}
