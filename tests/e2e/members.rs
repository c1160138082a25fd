//! One member's trouble must not stop the channel: a member that hangs (SIGSTOP), dies, or
//! sits behind a cut link costs the other members nothing, `/health` names it, it catches up
//! once back, and a moderator stopped meanwhile loses nothing a live member could take.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::harness::*;
use crate::netns::Netns;
use crate::outages::{
    assert_only_the_last_ack_window_twice, between, count_delivery, describe, Load, Samples,
};

const CHANNEL: &str = "e2e/members/telemetry";
const RECEIVER: &str = "e2e/members/receiver";
const MEMBERS: [&str; 3] = ["e2e/members/p1", "e2e/members/p2", "e2e/members/p3"];
/// Requests a second, one record each (the steady load).
const RATE: u64 = 30;
/// The longest a live member may go without a new record while the load runs.
const MAX_GAP: Duration = Duration::from_secs(2);

/// Sends `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A moderator with an OTLP/HTTP receiver inviting three participants that write jsonl.
struct Group {
    mesh: Mesh,
    receiver: Proc,
    port: u16,
    members: Vec<(Proc, PathBuf)>,
}

impl Group {
    /// Starts the group on `mesh` (its participants started by `start`) and waits until every
    /// member is live.
    async fn start(mesh: Mesh, receiver_extra: &[&str]) -> Group {
        let members = MEMBERS
            .iter()
            .enumerate()
            .map(|(i, name)| mesh.sink_node(&format!("p{}", i + 1), name, PARTICIPANT_ROLE))
            .collect();
        Group::with_members(mesh, members, receiver_extra).await
    }

    /// [`Group::start`] with participants already started.
    async fn with_members(
        mesh: Mesh,
        members: Vec<(Proc, PathBuf)>,
        receiver_extra: &[&str],
    ) -> Group {
        let mut args = moderator(CHANNEL, &MEMBERS);
        args.extend_from_slice(receiver_extra);
        let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
        wait_state(port, "active", &receiver).await;
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let h = health(port).await;
            if h.as_ref().is_some_and(|h| h["status"] == "ok") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the group never became ok: {h:?}\n{}",
                receiver.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Group {
            mesh,
            receiver,
            port,
            members,
        }
    }

    fn outs(&self) -> Vec<&PathBuf> {
        self.members.iter().map(|(_, out)| out).collect()
    }

    fn procs(&self) -> Vec<&Proc> {
        self.members
            .iter()
            .map(|(p, _)| p)
            .chain([&self.receiver])
            .collect()
    }
}

/// When each record first arrived at a member (the jsonl sink's receive time), by body.
fn first_arrivals(out: &Path) -> BTreeMap<String, OffsetDateTime> {
    let mut first = BTreeMap::new();
    for line in jsonl(out) {
        let body = log_bodies(std::slice::from_ref(&line)).remove(0);
        let at = line["time"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .unwrap_or_else(|| panic!("a jsonl line without a receive time: {line}"));
        first.entry(body).or_insert(at);
    }
    first
}

/// The longest wait between two records arriving at a member, and when it began (seconds after
/// the first arrival).
fn longest_gap(out: &Path) -> (Duration, f64) {
    let mut times: Vec<OffsetDateTime> = first_arrivals(out).into_values().collect();
    times.sort();
    let start = times.first().copied();
    times
        .windows(2)
        .map(|w| {
            let gap: Duration = (w[1] - w[0]).try_into().unwrap_or_default();
            let from = start.map_or(0.0, |s| (w[0] - s).as_seconds_f64());
            (gap, from)
        })
        .max_by_key(|(gap, _)| *gap)
        .unwrap_or_default()
}

/// Prints the longest wait between two records at the member writing `out`, and fails when it
/// is over [`MAX_GAP`].
fn assert_no_gap(out: &Path, member: &str) {
    let (gap, at) = longest_gap(out);
    eprintln!(
        "{member}: longest gap between arrivals {:.2} s (at +{at:.1} s)",
        gap.as_secs_f64()
    );
    assert!(
        gap <= MAX_GAP,
        "{member} went {gap:?} without data at +{at:.1} s"
    );
}

/// Each record's copies at a member beyond the first.
fn copies(out: &Path) -> usize {
    let bodies = log_bodies(&jsonl(out));
    bodies.len() - bodies.iter().collect::<BTreeSet<_>>().len()
}

/// Whether a `/health` sample names `member` among its problems.
fn names(sample: &Value, member: &str) -> bool {
    sample["problems"].as_array().is_some_and(|p| {
        p.iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains(member)))
    })
}

/// Runs the load through `group` while its third member is away for 20 s (`away`, then
/// `back`), and checks what a user expects: the other members get every request with no gap
/// over [`MAX_GAP`], the one that was away ends with every request once, the outbox drains
/// within 10 s of its return, and `/health` named it within 2 s and says `ok` again after.
async fn away_for_20s_and_back(group: Group, what: &str, away: impl FnOnce(), back: impl FnOnce()) {
    let load = Load::at_rate(group.port, RATE);
    let samples = Samples::start(group.port);
    tokio::time::sleep(Duration::from_secs(3)).await;

    away();
    let went = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    back();
    let returned = Instant::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (accepted, sent) = load.finish().await;
    let samples = samples.finish().await;

    for (i, out) in group.outs().into_iter().enumerate() {
        let member = format!("{what}: member p{}", i + 1);
        let (_, duplicates) =
            count_delivery(&member, sent, &accepted, &[out], &group.procs()).await;
        assert_eq!(duplicates, 0, "{member}: every request once");
        if i < 2 {
            assert_no_gap(out, &member);
        }
    }
    let p3 = MEMBERS[2];
    let away_samples = between(&samples, went + Duration::from_millis(2200), returned);
    assert!(
        !away_samples.is_empty(),
        "no health sample while p3 was away"
    );
    eprintln!(
        "{what}: while away, first and last samples:\n{}",
        describe(
            &[away_samples[0], away_samples[away_samples.len() - 1]],
            went
        )
    );
    for (at, h, _) in &away_samples {
        assert!(
            h["status"] != "ok" && names(h, p3),
            "{what}: +{:.1} s after p3 went away /health does not name it: {h}",
            at.saturating_duration_since(went).as_secs_f64()
        );
    }
    let after = between(&samples, returned, Instant::now());
    eprintln!(
        "{what}: after the return:\n{}",
        describe(&after[..after.len().min(4)], returned)
    );
    let drained = after
        .iter()
        .find(|(_, h, _)| h["outbox"]["oldest_ms"].as_u64().is_none_or(|ms| ms < 1000))
        .map(|(at, _, _)| at.saturating_duration_since(returned));
    eprintln!("{what}: outbox drained {drained:?} after the return");
    assert!(
        drained.is_some_and(|d| d <= Duration::from_secs(10)),
        "{what}: the outbox did not drain within 10 s of the return"
    );
    assert!(
        after.iter().any(|(_, h, _)| h["status"] == "ok"),
        "{what}: /health never said ok again after the return"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_frozen_for_20s_costs_the_others_nothing_and_catches_up_once_resumed() {
    let group = Group::start(Mesh::start(), &[]).await;
    let frozen = group.members[2].0.pid();
    away_for_20s_and_back(
        group,
        "frozen",
        || signal(frozen, "STOP"),
        || signal(frozen, "CONT"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_behind_a_link_cut_for_20s_costs_the_others_nothing_and_catches_up_once_restored()
{
    let Some(site) = crate::netns::or_skip(Netns::create(1)) else {
        return;
    };
    // The SLIM server listens on the host's end of the link; p3 runs behind it.
    let mesh = Mesh::start_on(&site.host_ip);
    let mut members: Vec<(Proc, PathBuf)> = MEMBERS[..2]
        .iter()
        .enumerate()
        .map(|(i, name)| mesh.sink_node(&format!("p{}", i + 1), name, PARTICIPANT_ROLE))
        .collect();
    members.push(mesh.sink_node_wrapped(&site.wrapper(), "p3", MEMBERS[2], PARTICIPANT_ROLE));
    let group = Group::with_members(mesh, members, &[]).await;
    away_for_20s_and_back(group, "cut link", || site.cut(), || site.restore()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_frozen_then_killed_costs_the_others_nothing_and_a_stop_loses_nothing_they_could_take(
) {
    let Group {
        mesh,
        receiver,
        port,
        mut members,
    } = Group::start(Mesh::start(), &[]).await;
    let load = Load::at_rate(port, RATE);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (frozen, _) = members.remove(2);
    signal(frozen.pid(), "STOP");
    tokio::time::sleep(Duration::from_secs(30)).await;
    frozen.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (accepted, sent) = load.finish().await;
    // Stopped right away: the drain goes to the live members.
    let log = receiver.stderr.clone();
    assert_eq!(receiver.terminate(), Some(0), "the moderator exits cleanly");
    let log = std::fs::read_to_string(log).expect("the moderator's log");

    let live: Vec<&Proc> = members.iter().map(|(p, _)| p).collect();
    for (i, (_, out)) in members.iter().enumerate() {
        let what = format!("live member p{}", i + 1);
        let (_, duplicates) = count_delivery(&what, sent, &accepted, &[out], &live).await;
        assert_no_gap(out, &what);
        assert_eq!(duplicates, 0, "{what}: nothing twice");
        assert_eq!(copies(out), 0);
    }
    let lost_line = log
        .lines()
        .find(|l| l.contains("only members that are away lack"))
        .unwrap_or_else(|| panic!("the moderator did not say what only p3 lacks:\n{log}"));
    eprintln!("moderator at exit: {lost_line}");
    assert!(lost_line.contains(MEMBERS[2]), "{lost_line}");
    drop(mesh);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_only_a_dead_member_lacks_stays_in_the_spool_and_reaches_it_after_both_restart() {
    let mesh = Mesh::start();
    let members: Vec<(Proc, PathBuf)> = MEMBERS
        .iter()
        .enumerate()
        .map(|(i, name)| mesh.sink_node(&format!("p{}", i + 1), name, PARTICIPANT_ROLE))
        .collect();
    let spool = mesh.path("spool").display().to_string();
    let Group {
        mesh,
        receiver,
        port,
        mut members,
    } = Group::with_members(mesh, members, &["--spool", &spool]).await;
    let load = Load::at_rate(port, RATE);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (frozen, first_out) = members.remove(2);
    signal(frozen.pid(), "STOP");
    tokio::time::sleep(Duration::from_secs(8)).await;
    frozen.kill9();
    let (accepted, sent) = load.finish().await;
    let log = receiver.stderr.clone();
    assert_eq!(receiver.terminate(), Some(0), "the moderator exits cleanly");
    let log = std::fs::read_to_string(log).expect("the moderator's log");
    let kept = log
        .lines()
        .find(|l| l.contains("only members that are away lack") && l.contains("in the spool"))
        .unwrap_or_else(|| panic!("the moderator did not say what it keeps for p3:\n{log}"));
    eprintln!("moderator at exit: {kept}");
    assert!(kept.contains(MEMBERS[2]), "{kept}");

    // Both back: the moderator from its spool, p3 under its name (and its data directory).
    let (p3, second_out) = mesh.sink_node("p3-again", MEMBERS[2], PARTICIPANT_ROLE);
    let mut args = moderator(CHANNEL, &MEMBERS);
    args.extend(["--spool", &spool]);
    let (receiver, _) = mesh.receiver("receiver-again", RECEIVER, &args);
    let mut procs: Vec<&Proc> = members.iter().map(|(p, _)| p).collect();
    procs.extend([&p3, &receiver]);
    count_delivery(
        "the member that was dead, across its two lives",
        sent,
        &accepted,
        &[&first_out, &second_out],
        &procs,
    )
    .await;
    // Only what it wrote last before it froze may come twice: it was killed before that
    // acknowledgement left (acknowledgements leave at most 2 ms after what they cover).
    assert_only_the_last_ack_window_twice("p3", &first_out, &second_out);
    for (i, (_, out)) in members.iter().enumerate() {
        let what = format!("live member p{}", i + 1);
        let (_, duplicates) = count_delivery(&what, sent, &accepted, &[out], &procs).await;
        assert_eq!(
            duplicates, 0,
            "{what}: the spooled messages sent again are not handed on twice"
        );
    }
    drop(mesh);
}
