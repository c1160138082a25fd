//! What the role tasks and the node's handles share: the state machine's status, the
//! connection, the outbox, the members known and when each was last heard.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::NodeConfig;
use crate::delivery::incoming::Incoming;
use crate::delivery::liveness::{LastHeard, Liveness};
use crate::delivery::outbox::{MemberView, Outbox};
use crate::delivery::seen::Seen;
use crate::health::{self, Health, Link, MemberHealth};
use crate::name::SlimName;
use crate::slim::connection::Connection;
use crate::state::{Event, RoleKind, State, Status};
use crate::sync::lock;

/// A node whose supervisor did not run for this long is wedged (`/health/live` fails).
pub const WEDGED_AFTER: Duration = Duration::from_secs(30);

/// State shared by the role task and the handles.
pub(crate) struct Shared {
    pub(crate) role: RoleKind,
    pub(crate) status: watch::Sender<Status>,
    /// The SLIM connection the role runs on; replaced when the supervisor reconnects.
    pub(crate) connection: Mutex<Option<Arc<Connection>>>,
    /// Bounds the publishes awaiting SLIM's completion: unbounded, SLIM deadlocks.
    pub(crate) window: Arc<Semaphore>,
    /// Bounds the frames not yet full awaiting completion: meanwhile what arrives waits in
    /// the outbox and is packed, instead of each request costing a SLIM message.
    pub(crate) partial_window: Arc<Semaphore>,
    /// The largest SLIM message payload (with its metadata) this node sends.
    pub(crate) max_payload: usize,
    /// What was taken and not yet acknowledged by every member.
    pub(crate) outbox: Outbox,
    /// Members that joined at some point: what is published must reach each of them.
    pub(crate) known: Mutex<BTreeSet<String>>,
    /// Moderator: the names it invites; administrators change them at runtime.
    pub(crate) invitees: Mutex<BTreeSet<SlimName>>,
    /// A signal-channel moderator: the signals it has a channel for (others are refused).
    pub(crate) signals: Option<Vec<otlp::Signal>>,
    /// Wakes the moderator when the invitees changed.
    pub(crate) invitees_changed: Notify,
    /// Names an administrator removed: never counted as members again unless re-invited.
    pub(crate) removed: Mutex<BTreeSet<String>>,
    /// Once a member joined, data is taken even while members are away.
    pub(crate) had_members: AtomicBool,
    /// Ids handed on lately, across sessions and (with a state directory) restarts: a
    /// message re-sent into a new session, or replayed by SLIM to a member that joined
    /// again, is still a copy.
    pub(crate) seen: Arc<Seen>,
    /// When each member was last heard from.
    pub(crate) heard: LastHeard,
    /// The link to the SLIM server.
    pub(crate) link: Link,
    /// When the supervisor last showed it is working.
    pub(crate) beat: Mutex<std::time::Instant>,
}

impl Shared {
    /// Feeds an event to the state machine, logging the transition.
    pub(crate) fn apply(&self, event: Event) {
        let role = self.role;
        match &event {
            Event::MemberJoined(name) => {
                self.heard.joined(name, std::time::Instant::now());
                self.note_members([name.clone()]);
                self.outbox.resend_now();
            }
            Event::Invited => {
                self.had_members.store(true, Ordering::Relaxed);
                self.outbox.resend_now();
            }
            _ => {}
        }
        self.status
            .send_if_modified(|status| match status.state.on(role, &event) {
                Ok(next) if next != status.state => {
                    info!(%role, from = %status.state, to = %next, "state change");
                    status.state = next;
                    true
                }
                Ok(_) => false,
                Err(err) => {
                    error!(%role, %err, "ignored an impossible state transition");
                    false
                }
            });
    }

    pub(crate) fn set_channel(&self, channel: Option<String>) {
        self.status.send_modify(|status| status.channel = channel);
    }

    pub(crate) fn set_connection(&self, conn: Option<Arc<Connection>>) {
        *lock(&self.connection) = conn;
    }

    pub(crate) fn connection(&self) -> Option<Arc<Connection>> {
        lock(&self.connection).clone()
    }

    /// Records members (names), who must acknowledge what is published from now on.
    pub(crate) fn note_members(&self, names: impl IntoIterator<Item = String>) {
        let removed = lock(&self.removed);
        let mut known = lock(&self.known);
        let now = std::time::Instant::now();
        for name in names.into_iter().filter(|n| !removed.contains(n)) {
            if !known.contains(&name) {
                self.heard.joined(&name, now);
                known.insert(name);
            }
        }
        if !known.is_empty() {
            self.had_members.store(true, Ordering::Relaxed);
        }
    }

    /// The names the moderator should have in its group now.
    pub(crate) fn invitees(&self) -> BTreeSet<SlimName> {
        lock(&self.invitees).clone()
    }

    pub(crate) fn known_members(&self) -> BTreeSet<String> {
        lock(&self.known).clone()
    }

    pub(crate) fn state(&self) -> State {
        self.status.borrow().state.clone()
    }

    /// What `question` answers of the node's state, without a copy of it.
    pub(crate) fn state_is(&self, question: impl FnOnce(&State) -> bool) -> bool {
        question(&self.status.borrow().state)
    }

    /// The supervisor is working (it calls this at least every second).
    pub(crate) fn beat(&self) {
        *lock(&self.beat) = std::time::Instant::now();
    }

    /// Why the node is not working any more, if it is not: stopped, or its supervisor has
    /// not shown it is working for [`WEDGED_AFTER`].
    pub(crate) fn wedged(&self) -> Option<String> {
        if self.state() == State::Stopped {
            return Some("the node has stopped".into());
        }
        let quiet = lock(&self.beat).elapsed();
        (quiet >= WEDGED_AFTER).then(|| {
            format!(
                "the node's supervisor has not run for {} s (nobody consumes received messages, or it is stuck)",
                quiet.as_secs()
            )
        })
    }

    /// Whether `name` is in the current session, as far as this node knows.
    fn in_session(state: &State, name: &str) -> bool {
        match state {
            State::Inviting { joined, .. } | State::Active { joined } => joined.contains(name),
            State::Joined => true,
            _ => false,
        }
    }

    /// How the members are doing at `now`, as the outbox and the sender need to know: away,
    /// slow (live but owing data for [`health::UNACKED_BOUND`]), whether any is live, and
    /// whether any is live and acknowledging.
    pub(crate) fn member_view(&self, now: std::time::Instant) -> MemberView {
        let away = self.away_members(now);
        let (slow, fine): (BTreeSet<String>, BTreeSet<String>) = self
            .known_members()
            .into_iter()
            .filter(|m| !away.contains(m))
            .partition(|m| {
                self.outbox
                    .backlog(m, now)
                    .oldest_unacked
                    .is_some_and(|d| d >= health::UNACKED_BOUND)
            });
        MemberView {
            away,
            live: !slow.is_empty() || !fine.is_empty(),
            slow,
            serving: !fine.is_empty(),
        }
    }

    /// The members that are not live at `now`: silent for [`crate::delivery::liveness::LAGGING_AFTER`],
    /// out of the session, or unreachable (the link is down).
    pub(crate) fn away_members(&self, now: std::time::Instant) -> BTreeSet<String> {
        let state = self.state();
        let link = self.link.get();
        // A moderator's invitees that have not joined (yet, or again) are away too: what is
        // owed to them waits for them.
        let mut names = self.known_members();
        names.extend(self.invitees().iter().map(ToString::to_string));
        names
            .into_iter()
            .filter(|name| {
                health::member_liveness(
                    &link,
                    Self::in_session(&state, name),
                    self.heard.get(name),
                    now,
                ) != Liveness::Live
            })
            .collect()
    }

    /// The node's health now.
    pub(crate) fn health(&self) -> Health {
        let now = std::time::Instant::now();
        let node = self.status.borrow().clone();
        let link = self.link.get();
        let members: Vec<MemberHealth> = self
            .known_members()
            .into_iter()
            .map(|name| {
                let heard = self.heard.get(&name);
                let backlog = self.outbox.backlog(&name, now);
                MemberHealth {
                    state: health::member_liveness(
                        &link,
                        Self::in_session(&node.state, &name),
                        heard,
                        now,
                    ),
                    last_heard_ms: heard
                        .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    acked_up_to: backlog.acked_up_to,
                    unacked: backlog.unacked,
                    oldest_unacked_ms: backlog.oldest_unacked.map(|d| d.as_millis() as u64),
                    name,
                }
            })
            .collect();
        let outbox = self.outbox.stats();
        let problems = health::problems(&members, &outbox);
        Health {
            status: health::verdict(&node, &members, &problems),
            node,
            link,
            members,
            outbox,
            problems,
            refused: crate::delivery::trust::refusals().snapshot(),
        }
    }
}

/// What a role task works with.
#[derive(Clone)]
pub(crate) struct RoleCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<Connection>,
    pub(crate) cfg: Arc<NodeConfig>,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    pub(crate) cancel: CancellationToken,
}
