//! What a node reports about itself: its link to SLIM, each member, the outbox; and the one
//! place that decides from them whether the node is `ok`, `degraded` or `waiting`, and
//! whether it is ready (a publish would reach at least one live member).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use crate::delivery::liveness::Liveness;
use crate::delivery::outbox::OutboxStats;
use crate::delivery::trust::Refused;
use crate::state::Status;

/// The node's connection to its SLIM server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Connecting for the first time.
    Connecting,
    /// Connected.
    Connected,
    /// The connection was lost; connecting again.
    Reconnecting,
}

/// The link as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    /// Connected or not.
    pub state: LinkState,
    /// Since when (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub since: SystemTime,
    /// Failed attempts to connect since the link was last up.
    pub attempts: u32,
    /// Times the link came back after it was lost (or moved to another server).
    pub reconnects: u64,
    /// Why the last attempt failed, or why the link was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let text = time::OffsetDateTime::from(*t)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

/// Keeps the link's status; the supervisor and the link watch update it.
pub(crate) struct Link {
    status: Mutex<LinkStatus>,
}

impl Link {
    pub(crate) fn new() -> Link {
        Link {
            status: Mutex::new(LinkStatus {
                state: LinkState::Connecting,
                since: SystemTime::now(),
                attempts: 0,
                reconnects: 0,
                last_error: None,
            }),
        }
    }

    pub(crate) fn get(&self) -> LinkStatus {
        crate::sync::lock(&self.status).clone()
    }

    /// The link is up.
    pub(crate) fn up(&self) {
        let mut status = crate::sync::lock(&self.status);
        if status.state != LinkState::Connected {
            tracing::info!(after_attempts = status.attempts, "SLIM link is up");
            let reconnected = u64::from(status.state == LinkState::Reconnecting);
            *status = LinkStatus {
                state: LinkState::Connected,
                since: SystemTime::now(),
                attempts: 0,
                reconnects: status.reconnects + reconnected,
                last_error: None,
            };
        }
    }

    /// The link is down for `why`; nothing changes when it was already known to be down.
    pub(crate) fn down(&self, why: &str) {
        let mut status = crate::sync::lock(&self.status);
        if status.state == LinkState::Connected {
            tracing::warn!(reason = why, "SLIM link is down; reconnecting");
            *status = LinkStatus {
                state: LinkState::Reconnecting,
                since: SystemTime::now(),
                attempts: 0,
                reconnects: status.reconnects,
                last_error: Some(why.to_string()),
            };
        }
    }

    /// An attempt to connect failed with `err`.
    pub(crate) fn attempt_failed(&self, err: &str) {
        let mut status = crate::sync::lock(&self.status);
        status.attempts += 1;
        status.last_error = Some(err.to_string());
    }
}

/// How one member is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberHealth {
    /// Its SLIM name.
    pub name: String,
    /// Live, lagging or offline.
    pub state: Liveness,
    /// Milliseconds since it was last heard from (any message, acknowledgement or ping);
    /// absent when it never was.
    pub last_heard_ms: Option<u64>,
    /// Every message this node took up to this sequence number is acknowledged by the member
    /// (or did not need it); absent before anything was taken.
    pub acked_up_to: Option<u64>,
    /// Messages sent to it and not acknowledged yet.
    pub unacked: usize,
    /// Milliseconds the oldest of them has waited.
    pub oldest_unacked_ms: Option<u64>,
}

/// The node's verdict on itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every member is live.
    Ok,
    /// Some member is not live; at least one is.
    Degraded,
    /// No member is live (none joined yet, or the link is down): nothing can be delivered now.
    Waiting,
}

/// Everything `/health` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The verdict.
    pub status: Verdict,
    /// Role, name, channel and state.
    pub node: Status,
    /// The link to SLIM.
    pub link: LinkStatus,
    /// Each member, by name.
    pub members: Vec<MemberHealth>,
    /// What waits for acknowledgements.
    pub outbox: OutboxStats,
    /// Why the status is not `ok`, each named (a member, the outbox, a sink); empty when it is.
    pub problems: Vec<String>,
    /// Messages refused because their sender is not who it claims to be (this process).
    pub refused: Refused,
}

impl Health {
    /// Whether a publish now would reach at least one live member.
    pub fn ready(&self) -> bool {
        self.status != Verdict::Waiting
    }

    /// Adds a problem found outside the node's SLIM side (a sink that cannot write, say):
    /// it is named, and an `ok` node becomes `degraded`.
    pub fn add_problem(&mut self, problem: String) {
        if self.status == Verdict::Ok {
            self.status = Verdict::Degraded;
        }
        self.problems.push(problem);
    }
}

/// What a member's state is, given what the node knows of it at `now`.
pub(crate) fn member_liveness(
    link: &LinkStatus,
    joined: bool,
    last_heard: Option<Instant>,
    now: Instant,
) -> Liveness {
    if link.state != LinkState::Connected || !joined {
        return Liveness::Offline;
    }
    match last_heard {
        Some(at) => Liveness::after(now.saturating_duration_since(at)),
        None => Liveness::Offline,
    }
}

/// A member that answers pings but owes data this old is named: its consumer does not take
/// what arrives (a full disk, a stuck sink) or its messages are lost on the way.
pub const UNACKED_BOUND: Duration = Duration::from_secs(5);
/// A message not even sent after this long means publishing is stalled (normally a message is
/// sent within milliseconds of being taken).
pub const UNSENT_BOUND: Duration = Duration::from_secs(2);

/// Why the outbox is not draining, each named: members that are not live, live members that
/// do not acknowledge, publishing that does not go on.
pub(crate) fn problems(members: &[MemberHealth], outbox: &OutboxStats) -> Vec<String> {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let mut problems = Vec::new();
    for m in members {
        match (m.state, m.last_heard_ms) {
            (Liveness::Live, _) => {
                if let Some(ms) = m
                    .oldest_unacked_ms
                    .filter(|ms| *ms >= UNACKED_BOUND.as_millis() as u64)
                {
                    problems.push(format!(
                        "member {} answers but has not acknowledged data for {:.1} s ({} messages waiting)",
                        m.name,
                        secs(ms),
                        m.unacked
                    ));
                }
            }
            (state, heard) => {
                let state = if state == Liveness::Lagging {
                    "lagging"
                } else {
                    "offline"
                };
                let why = match heard {
                    Some(ms) => format!("silent for {:.1} s", secs(ms)),
                    None => "never heard from".to_string(),
                };
                problems.push(format!(
                    "member {} is {state}: {why}, {} messages wait for it",
                    m.name, m.unacked
                ));
            }
        }
    }
    if let Some(ms) = outbox
        .oldest_unsent_ms
        .filter(|ms| *ms >= UNSENT_BOUND.as_millis() as u64)
    {
        problems.push(format!(
            "publishing is stalled: a message taken {:.1} s ago is not sent yet ({} messages in the outbox; last published {})",
            secs(ms),
            outbox.messages,
            outbox
                .last_published_ms
                .map_or("never".to_string(), |ms| format!("{:.1} s ago", secs(ms)))
        ));
    }
    problems
}

/// The verdict from the node's state, its members and the problems found.
pub(crate) fn verdict(status: &Status, members: &[MemberHealth], problems: &[String]) -> Verdict {
    let live = members.iter().filter(|m| m.state == Liveness::Live).count();
    if !status.state.has_members() || live == 0 {
        Verdict::Waiting
    } else if !problems.is_empty() {
        Verdict::Degraded
    } else {
        Verdict::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{RoleKind, State};
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn link(state: LinkState) -> LinkStatus {
        LinkStatus {
            state,
            since: SystemTime::now(),
            attempts: 0,
            reconnects: 0,
            last_error: None,
        }
    }

    fn member(state: Liveness) -> MemberHealth {
        MemberHealth {
            name: "a/b/p".into(),
            state,
            last_heard_ms: None,
            acked_up_to: None,
            unacked: 0,
            oldest_unacked_ms: None,
        }
    }

    fn active() -> Status {
        Status {
            role: RoleKind::Moderator,
            name: "a/b/m".into(),
            channel: Some("a/b/ch".into()),
            state: State::Active {
                joined: BTreeSet::from(["a/b/p".to_string()]),
            },
        }
    }

    #[test]
    fn with_the_link_down_no_member_is_live() {
        let now = Instant::now();
        assert_eq!(
            member_liveness(&link(LinkState::Reconnecting), true, Some(now), now),
            Liveness::Offline
        );
        assert_eq!(
            member_liveness(&link(LinkState::Connected), true, Some(now), now),
            Liveness::Live
        );
    }

    #[test]
    fn a_member_waiting_to_be_invited_again_is_offline() {
        let now = Instant::now();
        assert_eq!(
            member_liveness(&link(LinkState::Connected), false, Some(now), now),
            Liveness::Offline
        );
    }

    #[test]
    fn a_silent_member_lags_before_it_is_offline() {
        let now = Instant::now();
        let heard = now.checked_sub(Duration::from_secs(3));
        assert_eq!(
            member_liveness(&link(LinkState::Connected), true, heard, now),
            Liveness::Lagging
        );
    }

    /// The verdict of a node with `members` and an idle outbox.
    fn judged(status: &Status, members: &[MemberHealth]) -> Verdict {
        verdict(status, members, &problems(members, &OutboxStats::default()))
    }

    #[test]
    fn status_is_ok_only_when_every_member_is_live() {
        let status = active();
        assert_eq!(judged(&status, &[member(Liveness::Live)]), Verdict::Ok);
        assert_eq!(
            judged(
                &status,
                &[member(Liveness::Live), member(Liveness::Lagging)]
            ),
            Verdict::Degraded
        );
        assert_eq!(
            judged(&status, &[member(Liveness::Offline)]),
            Verdict::Waiting
        );
        assert_eq!(judged(&status, &[]), Verdict::Waiting);
    }

    #[test]
    fn a_node_without_a_session_waits() {
        let mut status = active();
        status.state = State::Ready;
        assert_eq!(judged(&status, &[member(Liveness::Live)]), Verdict::Waiting);
    }

    #[test]
    fn a_member_that_is_not_live_is_named_with_what_waits_for_it() {
        let mut m = member(Liveness::Lagging);
        m.last_heard_ms = Some(2300);
        m.unacked = 70;
        let problems = problems(&[member(Liveness::Live), m], &OutboxStats::default());
        assert_eq!(
            problems,
            ["member a/b/p is lagging: silent for 2.3 s, 70 messages wait for it"]
        );
    }

    #[test]
    fn a_live_member_that_does_not_acknowledge_data_is_named() {
        let mut m = member(Liveness::Live);
        m.unacked = 12;
        m.oldest_unacked_ms = Some(UNACKED_BOUND.as_millis() as u64 - 1);
        assert!(problems(&[m.clone()], &OutboxStats::default()).is_empty());
        m.oldest_unacked_ms = Some(UNACKED_BOUND.as_millis() as u64);
        let found = problems(&[m.clone()], &OutboxStats::default());
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("member a/b/p answers but has not acknowledged data for 5.0 s"),
            "{found:?}"
        );
        assert_eq!(verdict(&active(), &[m], &found), Verdict::Degraded);
    }

    #[test]
    fn a_message_left_unsent_means_publishing_is_stalled() {
        let outbox = OutboxStats {
            messages: 40,
            oldest_unsent_ms: Some(UNSENT_BOUND.as_millis() as u64),
            last_published_ms: Some(9000),
            ..OutboxStats::default()
        };
        let found = problems(&[member(Liveness::Live)], &outbox);
        assert_eq!(
            found,
            ["publishing is stalled: a message taken 2.0 s ago is not sent yet (40 messages in the outbox; last published 9.0 s ago)"]
        );
        let moving = OutboxStats {
            oldest_unsent_ms: Some(10),
            ..outbox
        };
        assert!(problems(&[member(Liveness::Live)], &moving).is_empty());
    }

    /// A moderator with one live member and nothing wrong.
    fn healthy() -> Health {
        Health {
            status: Verdict::Ok,
            node: active(),
            link: link(LinkState::Connected),
            members: vec![member(Liveness::Live)],
            outbox: OutboxStats::default(),
            problems: vec![],
            refused: Refused::default(),
        }
    }

    #[test]
    fn health_keeps_the_fields_it_always_had() {
        let health = healthy();
        let v = serde_json::to_value(&health).unwrap();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["node"]["state"], "active");
        assert_eq!(v["node"]["joined"][0], "a/b/p");
        assert_eq!(v["outbox"]["messages"], 0);
        assert_eq!(v["link"]["state"], "connected");
        assert_eq!(v["members"][0]["state"], "live");
        assert_eq!(v["problems"], serde_json::json!([]));
    }

    #[test]
    fn a_problem_from_outside_degrades_an_ok_node_and_is_named() {
        let mut health = healthy();
        health.add_problem("sink files: cannot write".into());
        assert_eq!(health.status, Verdict::Degraded);
        assert_eq!(health.problems, ["sink files: cannot write"]);
        assert!(health.ready(), "a degraded node still reaches its members");
    }
}
