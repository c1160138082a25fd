//! Nothing lost: faults with real processes, counting every record.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::*;

const CHANNEL: &str = "e2e/faults/telemetry";
const RECEIVER: &str = "e2e/faults/receiver";
const PARTICIPANT: &str = "e2e/faults/participant";

fn body(i: usize) -> Vec<u8> {
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"record {i}"}}}}]}}]}}]}}"#)
        .into_bytes()
}

/// Waits until every accepted record arrived in the `outs` sinks (or the form timeout), prints
/// the counts, fails naming what never arrived, and returns the distinct records delivered.
async fn assert_all_delivered(
    sent: usize,
    accepted: &BTreeSet<String>,
    refused: usize,
    outs: &[&Path],
    node: &Proc,
) -> BTreeSet<String> {
    let deadline = std::time::Instant::now() + FORM_TIMEOUT;
    let delivered = loop {
        let got: Vec<String> = outs
            .iter()
            .flat_map(|out| log_bodies(&jsonl(out)))
            .collect();
        let unique: BTreeSet<String> = got.iter().cloned().collect();
        if unique.is_superset(accepted) || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let unique: BTreeSet<String> = delivered.iter().cloned().collect();
    eprintln!(
        "sent {sent}, accepted {}, refused {refused}, delivered {}, duplicates {}",
        accepted.len(),
        unique.len(),
        delivered.len() - unique.len()
    );
    let missing: Vec<&String> = accepted.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "accepted but never delivered: {missing:?}\n{}",
        node.stderr_text()
    );
    unique
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_participant_gone_the_queue_fills_then_503_and_everything_taken_arrives_when_it_is_back(
) {
    let mesh = Mesh::start();
    let (participant, first_out) = mesh.sink_node("p1", PARTICIPANT, PARTICIPANT_ROLE);
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--queue-max-messages", "15"]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    wait_state(port, "active", &receiver).await;

    let mut sent = 0;
    let mut accepted = BTreeSet::new();
    for _ in 0..3 {
        assert_eq!(
            post(port, "/v1/logs", "application/json", body(sent))
                .await
                .status(),
            200
        );
        accepted.insert(format!("record {sent}"));
        sent += 1;
    }
    wait_jsonl(&first_out, 3, &participant).await;
    participant.kill9();

    // Keep sending: what is taken waits in the outbox; once it is full, 503 + Retry-After.
    let mut refused = 0;
    while refused < 3 && sent < 100 {
        let resp = post(port, "/v1/logs", "application/json", body(sent)).await;
        match resp.status().as_u16() {
            200 => {
                accepted.insert(format!("record {sent}"));
            }
            503 => {
                assert!(
                    resp.headers().get("retry-after").is_some(),
                    "503 says when to retry"
                );
                refused += 1;
            }
            other => panic!("unexpected answer {other}"),
        }
        sent += 1;
    }
    assert_eq!(refused, 3, "the outbox is bounded");
    let full = health_of(port).await;
    assert!(full["outbox"]["messages"].as_u64().unwrap() <= 15, "{full}");

    // The participant comes back: it is invited again and gets everything that was taken.
    let (back, second_out) = mesh.sink_node("p2", PARTICIPANT, PARTICIPANT_ROLE);
    let unique =
        assert_all_delivered(sent, &accepted, refused, &[&first_out, &second_out], &back).await;
    assert!(unique.is_subset(&accepted), "nothing refused was delivered");
    let outbox = &health_of(port).await["outbox"];
    assert!(
        outbox["slim_messages"].as_u64() < outbox["sent"].as_u64(),
        "what waited travelled packed: {outbox}"
    );
}

/// Posts `n` log records to `port`, one every 40 ms; returns the records that got 200 and
/// how many were refused.
fn steady_stream(port: u16, n: usize) -> tokio::task::JoinHandle<(BTreeSet<String>, usize)> {
    tokio::spawn(async move {
        let mut accepted = BTreeSet::new();
        let mut refused = 0;
        for i in 0..n {
            let resp = post(port, "/v1/logs", "application/json", body(i)).await;
            match resp.status().as_u16() {
                200 => {
                    accepted.insert(format!("record {i}"));
                }
                _ => refused += 1,
            }
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        }
        (accepted, refused)
    })
}

/// Runs a steady stream through a receiver (moderator) to a participant while `outage`
/// happens to the mesh, then checks that every record was taken and arrived.
async fn stream_through(outage: impl FnOnce(&mut Mesh) + Send + 'static) {
    let mut mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;

    let stream = steady_stream(port, 200);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let _mesh = tokio::task::spawn_blocking(move || {
        outage(&mut mesh);
        mesh
    })
    .await
    .unwrap();
    let (accepted, refused) = stream.await.unwrap();

    assert_all_delivered(200, &accepted, refused, &[&out], &participant).await;
    assert_eq!(refused, 0, "the outbox takes what comes while SLIM is away");
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slim_server_killed_and_restarted_during_a_stream_loses_nothing_that_got_200() {
    stream_through(|mesh| mesh.crash_server_for(std::time::Duration::from_secs(4))).await;
}

// SLIM's client tries once to reopen its stream after the connection drops; a port that
// resets makes it give up and forget the connection. The node must notice and rebuild it.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_reconnect_after_slim_gave_up_on_a_server_that_reset_connections() {
    stream_through(|mesh| mesh.crash_server_resetting_for(std::time::Duration::from_secs(4))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moderator_killed_and_restarted_gets_its_participant_back() {
    let mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (first, port) = mesh.receiver("r1", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &first).await;
    assert_eq!(
        post(port, "/v1/logs", "application/json", body(0))
            .await
            .status(),
        200
    );
    wait_jsonl(&out, 1, &participant).await;
    first.kill9();

    // SLIM never tells the participant its group lost the moderator; the new moderator's
    // invitation must move it to the new group.
    let (second, port) = mesh.receiver("r2", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &second).await;
    assert_eq!(
        post(port, "/v1/logs", "application/json", body(1))
            .await
            .status(),
        200
    );
    let lines = wait_jsonl(&out, 2, &participant).await;
    assert_eq!(log_bodies(&lines), vec!["record 0", "record 1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_with_a_spool_killed_mid_stream_delivers_everything_it_answered_200_after_restart(
) {
    let mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let spool = mesh.path("spool");
    let spool = spool.to_str().unwrap().to_string();
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--otlp-http", &http, "--spool", &spool]);
    let first = mesh.node("r1", RECEIVER, &args);
    wait_state(port, "active", &first).await;

    let stream = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut accepted = BTreeSet::new();
        for i in 0..150 {
            let sent = client
                .post(format!("http://127.0.0.1:{port}/v1/logs"))
                .header("content-type", "application/json")
                .body(body(i))
                .send()
                .await;
            if sent.is_ok_and(|r| r.status() == 200) {
                accepted.insert(format!("record {i}"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        }
        accepted
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    first.kill9();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let second = mesh.node("r2", RECEIVER, &args);
    let accepted = stream.await.unwrap();
    wait_state(port, "active", &second).await;

    assert_all_delivered(150, &accepted, 0, &[&out], &second).await;
    drop(participant);
}
