//! Outages under steady load, as an operator sees them: what `/health` says while a part is
//! down, how long a restarted participant takes to get data again, and which records arrive
//! twice after restarts: none, except what a participant killed with SIGKILL had taken after
//! its acknowledgements last left (README, *Delivery*: copies after a restart).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const CHANNEL: &str = "e2e/outages/telemetry";
const RECEIVER: &str = "e2e/outages/receiver";
const PARTICIPANT: &str = "e2e/outages/participant";
/// Records a second, one request each.
const RATE: u64 = 50;
/// What a participant killed with SIGKILL may hand on again once restarted: what it took after
/// its acknowledgements last left. They leave as soon as it has caught up (at most 2 ms
/// apart), and at [`RATE`] a request comes every 20 ms: the one in hand at the kill.
const ACK_WINDOW: usize = 1;

pub(crate) fn body(i: usize) -> Vec<u8> {
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"record {i}"}}}}]}}]}}]}}"#)
        .into_bytes()
}

/// A steady stream of log records to a receiver, each record sent once.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    /// When each record was sent, by number.
    sent_at: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<(BTreeSet<String>, usize)>,
}

impl Load {
    /// [`RATE`] records a second to the receiver on `port`.
    pub(crate) fn start(port: u16) -> Load {
        Load::at_rate(port, RATE)
    }

    /// `rate` records a second to the receiver on `port`.
    pub(crate) fn at_rate(port: u16, rate: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent_at = Arc::new(Mutex::new(Vec::new()));
        let (stop2, sent_at2) = (stop.clone(), sent_at.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut accepted = BTreeSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
            let mut i = 0;
            while !stop2.load(Ordering::Relaxed) {
                tick.tick().await;
                sent_at2.lock().unwrap().push(Instant::now());
                let answer = client
                    .post(format!("http://127.0.0.1:{port}/v1/logs"))
                    .header("content-type", "application/json")
                    .body(body(i))
                    .send()
                    .await;
                if answer.is_ok_and(|r| r.status() == 200) {
                    accepted.insert(format!("record {i}"));
                }
                i += 1;
            }
            (accepted, i)
        });
        Load {
            stop,
            sent_at,
            task,
        }
    }

    /// The number of the first record sent at or after `t`.
    pub(crate) fn first_sent_after(&self, t: Instant) -> Option<usize> {
        self.sent_at.lock().unwrap().iter().position(|at| *at >= t)
    }

    /// Stops; returns the records answered 200 and how many were sent.
    pub(crate) async fn finish(self) -> (BTreeSet<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// `/health` and `/health/ready` of a receiver, every 250 ms, with the time of each sample.
pub(crate) struct Samples {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Instant, Value, u16)>>,
}

impl Samples {
    pub(crate) fn start(port: u16) -> Samples {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let at = Instant::now();
                let ready = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
                    .await
                    .map_or(0, |r| r.status().as_u16());
                if let Some(h) = health(port).await {
                    samples.push((at, h, ready));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            samples
        });
        Samples { stop, task }
    }

    pub(crate) async fn finish(self) -> Vec<(Instant, Value, u16)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// The samples taken between `from` and `to`.
pub(crate) fn between(
    samples: &[(Instant, Value, u16)],
    from: Instant,
    to: Instant,
) -> Vec<&(Instant, Value, u16)> {
    samples
        .iter()
        .filter(|(at, _, _)| *at >= from && *at < to)
        .collect()
}

/// One line per sample: seconds since `t0`, status, ready code, link and member states.
pub(crate) fn describe(samples: &[&(Instant, Value, u16)], t0: Instant) -> String {
    samples
        .iter()
        .map(|(at, h, ready)| {
            let members: Vec<String> = h["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "{}={}",
                        m["name"].as_str().unwrap_or("?"),
                        m["state"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!(
                "  +{:.1}s status={} ready={ready} link={} state={} members=[{}] outbox={} oldest_ms={} problems={}",
                at.saturating_duration_since(t0).as_secs_f64(),
                h["status"],
                h["link"]["state"],
                h["node"]["state"],
                members.join(" "),
                h["outbox"]["messages"],
                h["outbox"]["oldest_ms"],
                h["problems"],
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until every accepted record is in `outs`, and through [`QUIET_PERIOD`] after; prints
/// and returns (delivered, duplicates). Fails naming what never arrived.
pub(crate) async fn count_delivery(
    what: &str,
    sent: usize,
    accepted: &BTreeSet<String>,
    outs: &[&PathBuf],
    nodes: &[&Proc],
) -> (usize, usize) {
    // Every accepted record, then the quiet period: a copy arriving late is counted too.
    let got = read_until_quiet(
        FORM_TIMEOUT,
        || -> Vec<String> { outs.iter().flat_map(|o| log_bodies(&jsonl(o))).collect() },
        |got| {
            let unique: BTreeSet<&String> = got.iter().collect();
            accepted.iter().all(|a| unique.contains(a))
        },
    )
    .await;
    let mut copies: BTreeMap<&String, usize> = BTreeMap::new();
    for g in &got {
        *copies.entry(g).or_default() += 1;
    }
    let duplicates = got.len() - copies.len();
    eprintln!(
        "{what}: sent {sent}, answered 200 {}, delivered {}, duplicates {duplicates}",
        accepted.len(),
        copies.len()
    );
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|a| !copies.contains_key(a))
        .collect();
    let logs: Vec<String> = nodes.iter().map(|n| n.stderr_text()).collect();
    assert!(
        missing.is_empty(),
        "{what}: answered 200 but never delivered: {missing:?}\n{}",
        logs.join("\n-----\n")
    );
    (copies.len(), duplicates)
}

/// The records written more than once in `bodies`.
fn written_twice(bodies: &[String]) -> Vec<&String> {
    let mut seen = BTreeSet::new();
    bodies.iter().filter(|b| !seen.insert(*b)).collect()
}

/// Checks the copies around a participant's kill, from its outputs `before` and `after`: none
/// within either life, and across them at most [`ACK_WINDOW`], the last it wrote before it
/// was killed.
pub(crate) fn assert_only_the_last_ack_window_twice(what: &str, before: &Path, after: &Path) {
    let first = log_bodies(&jsonl(before));
    let second = log_bodies(&jsonl(after));
    assert_eq!(
        written_twice(&first),
        Vec::<&String>::new(),
        "{what}: written twice before the kill"
    );
    assert_eq!(
        written_twice(&second),
        Vec::<&String>::new(),
        "{what}: written twice after the restart"
    );
    let again: BTreeSet<&String> = second.iter().collect();
    let again: Vec<&String> = first.iter().filter(|b| again.contains(b)).collect();
    let last = &first[first.len().saturating_sub(ACK_WINDOW)..];
    eprintln!(
        "{what}: written again after the restart: {again:?}; the last before the kill: {:?}",
        &first[first.len().saturating_sub(3)..]
    );
    assert!(
        again.len() <= ACK_WINDOW && again.iter().all(|b| last.contains(b)),
        "{what}: written before the kill and again after it: {again:?}; only the last \
         {ACK_WINDOW} before the kill may be ({last:?})"
    );
}

/// A participant (label `label`) writing jsonl and a receiver with a spool inviting it, once
/// every member is live; returns both, the participant's output and the receiver's port.
async fn spooled_mesh(mesh: &Mesh, label: &str) -> (Proc, PathBuf, Proc, u16) {
    let (participant, out) = mesh.sink_node(label, PARTICIPANT, PARTICIPANT_ROLE);
    let spool = mesh.path("spool").display().to_string();
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--spool", &spool]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    wait_state(port, "active", &receiver).await;
    wait_status(port, "ok", &receiver).await;
    (participant, out, receiver, port)
}

/// Starts the participant again (label `label`, same name, so the same state directory) and
/// waits for the first record sent after that; prints how long it took. Returns it and its
/// output file.
async fn restart_participant(mesh: &Mesh, label: &str, load: &Load, what: &str) -> (Proc, PathBuf) {
    let (node, out) = mesh.sink_node(label, PARTICIPANT, PARTICIPANT_ROLE);
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let probe = load.first_sent_after(restarted).expect("the load goes on");
    let arrived = wait_record(&out, probe, &node).await;
    eprintln!(
        "{what}: restart to first delivered request {:.1} s",
        arrived.saturating_duration_since(restarted).as_secs_f64()
    );
    (node, out)
}

/// Waits until record `n` is in `out`; returns when it was first seen.
async fn wait_record(out: &Path, n: usize, node: &Proc) -> Instant {
    let wanted = format!("record {n}");
    let deadline = Instant::now() + FORM_TIMEOUT;
    while Instant::now() < deadline {
        if log_bodies(&jsonl(out)).contains(&wanted) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{wanted} never arrived:\n{}", node.stderr_text());
}

/// Waits until the receiver's `/health` status is `status`.
async fn wait_status(port: u16, status: &str, node: &Proc) {
    let deadline = Instant::now() + FORM_TIMEOUT;
    while Instant::now() < deadline {
        if health(port).await.is_some_and(|h| h["status"] == status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "status never became {status}: {:?}\n{}",
        health(port).await,
        node.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_slim_server_down_health_says_the_link_is_down_and_nothing_answered_200_is_lost() {
    let mut mesh = Mesh::start();
    let (participant, out, receiver, port) = spooled_mesh(&mesh, "participant").await;

    let load = Load::start(port);
    let samples = Samples::start(port);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    let (mesh, restarted) = tokio::task::spawn_blocking(move || {
        mesh.crash_server_for(Duration::from_secs(5));
        let restarted = Instant::now();
        (mesh, restarted)
    })
    .await
    .unwrap();
    wait_status(port, "ok", &receiver).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (accepted, sent) = load.finish().await;
    let samples = samples.finish().await;

    let outage = between(&samples, killed + Duration::from_secs(2), restarted);
    eprintln!(
        "/health while the SLIM server was down (killed at +0.0s):\n{}",
        describe(&outage, killed)
    );
    assert!(!outage.is_empty(), "sampled during the outage");
    for (_, h, ready) in &outage {
        assert_eq!(h["link"]["state"], "reconnecting", "the link is down: {h}");
        assert_ne!(h["status"], "ok", "{h}");
        assert_eq!(*ready, 503, "not ready while nothing can be delivered: {h}");
    }
    count_delivery(
        "SLIM server killed for 5 s",
        sent,
        &accepted,
        &[&out],
        &[&participant, &receiver],
    )
    .await;
    let bodies = log_bodies(&jsonl(&out));
    assert_eq!(
        written_twice(&bodies),
        Vec::<&String>::new(),
        "no node was killed, only the server: nothing arrives twice"
    );
    drop(mesh);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_killed_for_3s_shows_offline_and_is_back_within_seconds_of_its_restart() {
    let mesh = Mesh::start();
    let (first, out, receiver, port) = spooled_mesh(&mesh, "p1").await;

    let load = Load::start(port);
    let samples = Samples::start(port);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    first.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = Instant::now();
    let (second, second_out) =
        restart_participant(&mesh, "p2", &load, "participant killed for 3 s").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (accepted, sent) = load.finish().await;
    let samples = samples.finish().await;

    let outage = between(&samples, killed + Duration::from_secs(2), restarted);
    eprintln!(
        "/health while the participant was down (killed at +0.0s):\n{}",
        describe(&outage, killed)
    );
    assert!(!outage.is_empty(), "sampled during the outage");
    for (_, h, ready) in &outage {
        let member = &h["members"][0];
        assert_eq!(member["name"], PARTICIPANT, "{h}");
        assert_ne!(member["state"], "live", "the member is silent: {h}");
        assert_ne!(h["status"], "ok", "{h}");
        assert_eq!(*ready, 503, "its only member is not live: {h}");
    }
    count_delivery(
        "participant killed for 3 s",
        sent,
        &accepted,
        &[&out, &second_out],
        &[&second, &receiver],
    )
    .await;
    assert_only_the_last_ack_window_twice("participant killed for 3 s", &out, &second_out);
}

/// Runs the load through a receiver to a participant, kills the participant with SIGKILL
/// mid-stream, restarts it under the same name (same state directory) and counts.
#[tokio::test(flavor = "multi_thread")]
async fn a_participant_killed_under_load_and_restarted_writes_nothing_twice_beyond_the_ack_window()
{
    let mesh = Mesh::start();
    let (first, out) = mesh.sink_node("p1", PARTICIPANT, PARTICIPANT_ROLE);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;

    let load = Load::start(port);
    tokio::time::sleep(Duration::from_secs(6)).await;
    first.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (second, second_out) =
        restart_participant(&mesh, "p2", &load, "participant killed under load").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (accepted, sent) = load.finish().await;
    count_delivery(
        "participant killed under load",
        sent,
        &accepted,
        &[&out, &second_out],
        &[&second, &receiver],
    )
    .await;
    assert_only_the_last_ack_window_twice("participant killed under load", &out, &second_out);
}

/// The receiver is killed and restarted (with or without its spool), then the participant.
async fn receiver_then_participant_restart(spooled: bool) {
    let what = if spooled {
        "receiver (spool) then participant restarted"
    } else {
        "receiver (no spool) then participant restarted"
    };
    let mesh = Mesh::start();
    let (first, out) = mesh.sink_node("p1", PARTICIPANT, PARTICIPANT_ROLE);
    let spool = mesh.path("spool").display().to_string();
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--otlp-http", &http]);
    if spooled {
        args.extend(["--spool", &spool]);
    }
    let r1 = mesh.node("r1", RECEIVER, &args);
    wait_state(port, "active", &r1).await;

    let load = Load::start(port);
    tokio::time::sleep(Duration::from_secs(3)).await;
    r1.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r2 = mesh.node("r2", RECEIVER, &args);
    wait_state(port, "active", &r2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (second, second_out) = mesh.sink_node("p2", PARTICIPANT, PARTICIPANT_ROLE);
    wait_status(port, "ok", &r2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (accepted, sent) = load.finish().await;
    let outs = [&out, &second_out];
    if spooled {
        // The spool re-sends what the killed receiver held: every record arrives.
        count_delivery(what, sent, &accepted, &outs, &[&second, &r2]).await;
    } else {
        // Without a spool, what the killed receiver held unacknowledged is gone with it;
        // what the restarted one took arrives (and then the quiet period, for late copies).
        let last = (0..sent)
            .rev()
            .find(|i| accepted.contains(&format!("record {i}")))
            .expect("the restarted receiver took records");
        wait_record(&second_out, last, &second).await;
        let got = read_until_quiet(
            FORM_TIMEOUT,
            || -> Vec<String> { outs.iter().flat_map(|o| log_bodies(&jsonl(o))).collect() },
            |_| true,
        )
        .await;
        let unique: BTreeSet<&String> = got.iter().collect();
        eprintln!(
            "{what}: sent {sent}, answered 200 {}, delivered {}, duplicates {}",
            accepted.len(),
            unique.len(),
            got.len() - unique.len()
        );
    }
    // The receiver's restart adds no copy (none within the participant's first life); its
    // own kill only the last it took before it.
    assert_only_the_last_ack_window_twice(what, &out, &second_out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_restarted_with_its_spool_then_the_participant_delivers_all_once_beyond_the_ack_window(
) {
    receiver_then_participant_restart(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_restarted_without_a_spool_then_the_participant_writes_nothing_twice_beyond_the_ack_window(
) {
    receiver_then_participant_restart(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_without_a_receiver_serves_its_probes_on_the_health_port() {
    let mesh = Mesh::start();
    let health_port = free_port();
    let addr = format!("127.0.0.1:{health_port}");
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--health", &addr]);
    let (participant, _out) = mesh.sink_node("participant", PARTICIPANT, &args);
    let get = |path: &'static str| {
        let url = format!("http://{addr}{path}");
        async move { reqwest::get(url).await.ok() }
    };
    let deadline = Instant::now() + FORM_TIMEOUT;
    while get("/health/live").await.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live = get("/health/live").await.expect("the health port answers");
    assert_eq!(live.status(), 200);
    let ready = get("/health/ready").await.expect("the health port answers");
    assert_eq!(
        ready.status(),
        503,
        "not invited yet: nothing would reach anyone"
    );

    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;
    wait_state(health_port, "joined", &participant).await;
    wait_status(health_port, "ok", &participant).await;
    let h = health_of(health_port).await;
    assert_eq!(
        h["members"][0]["name"], RECEIVER,
        "the participant sees its moderator: {h}"
    );
    assert_eq!(h["members"][0]["state"], "live", "{h}");
    assert_eq!(h["link"]["state"], "connected", "{h}");
    let ready = get("/health/ready").await.expect("the health port answers");
    assert_eq!(ready.status(), 200);
}
