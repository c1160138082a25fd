//! Across sites on three hosts: network namespaces on one segment, made by the test. Host A
//! runs a SLIM server and the receiving moderator; hosts B and C each run a SLIM server peered
//! to A's and a participant. Everything answered 200 at A arrives at B and at C, once, through
//! a cut A–B link and the death of B's server.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::*;
use crate::netns::Lan;

const CHANNEL: &str = "e2e/sites/telemetry";
const RECEIVER: &str = "e2e/sites/receiver";
const AT_B: &str = "e2e/sites/central-b";
const AT_C: &str = "e2e/sites/central-c";

/// The log bodies a participant wrote, each once, or the copies named.
fn once_each(lines: &[serde_json::Value], site: &str) -> BTreeSet<String> {
    let bodies = log_bodies(lines);
    let unique: BTreeSet<String> = bodies.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        bodies.len(),
        "{site} got {} copies",
        bodies.len() - unique.len()
    );
    unique
}

#[tokio::test(flavor = "multi_thread")]
async fn three_sites_deliver_everything_once_through_a_cut_link_and_a_dead_server() {
    let Some(lan) = crate::netns::or_skip(Lan::create(3, 2)) else {
        return;
    };
    let (b_host, c_host) = (0, 1);
    let site_a = Mesh::start_on(&lan.host_ip);
    let peer_a = vec!["--peer".to_string(), site_a.url.clone()];
    let mut site_b = Mesh::start_in(&lan.wrapper(b_host), lan.ip(b_host), peer_a.clone());
    let site_c = Mesh::start_in(&lan.wrapper(c_host), lan.ip(c_host), peer_a);
    // B's participant knows C's server too.
    let mut b_args = PARTICIPANT_ROLE.to_vec();
    b_args.extend(["--slim", &site_c.url]);
    let (at_b, out_b) = site_b.sink_node("b", AT_B, &b_args);
    let (at_c, out_c) = site_c.sink_node("c", AT_C, PARTICIPANT_ROLE);
    let (receiver, port) =
        site_a.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[AT_B, AT_C]));
    wait_for("both sites to join", &receiver, || {
        receiver.stderr_text().matches("invitee joined").count() >= 2
    })
    .await;

    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream(port, "sites", "steady", stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!jsonl(&out_b).is_empty() && !jsonl(&out_c).is_empty());

    // The A–B link goes down for 20 s. C goes on receiving all along.
    lan.cut(b_host);
    let mut c_seen = jsonl(&out_c).len();
    let b_at_cut = jsonl(&out_b).len();
    for window in 0..4 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = jsonl(&out_c).len();
        eprintln!(
            "cut, {}-{} s: C took {} records, B {}",
            window * 5,
            window * 5 + 5,
            now - c_seen,
            jsonl(&out_b).len() - b_at_cut
        );
        assert!(
            now > c_seen,
            "C got nothing in the {}th 5 s of the cut; its log:\n{}",
            window + 1,
            at_c.stderr_text()
        );
        c_seen = now;
    }
    lan.restore(b_host);
    wait_for("B's site to join again", &receiver, || {
        receiver.stderr_text().matches("invitee joined").count() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // B's server dies: B's participant moves to C's server and is invited there.
    site_b.kill_server();
    wait_for("B's participant to move to C's server", &at_b, || {
        at_b.stderr_text().contains("connected to SLIM again")
    })
    .await;
    wait_for("B's participant to join from C's server", &receiver, || {
        receiver.stderr_text().matches("invitee joined").count() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    let accepted = load.await.expect("the load ran");
    assert!(
        accepted.len() > 1000,
        "the receiver kept answering 200: {}",
        accepted.len()
    );
    let expected: BTreeSet<String> = accepted.iter().cloned().collect();
    let at_b_lines = wait_jsonl_exactly(&out_b, accepted.len(), &at_b).await;
    let at_c_lines = wait_jsonl_exactly(&out_c, accepted.len(), &at_c).await;
    assert_eq!(once_each(&at_b_lines, "B"), expected, "B got every record");
    assert_eq!(once_each(&at_c_lines, "C"), expected, "C got every record");
    eprintln!(
        "three sites: answered 200 {}, delivered at B {}, at C {}, copies 0",
        accepted.len(),
        at_b_lines.len(),
        at_c_lines.len()
    );
}
