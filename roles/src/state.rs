//! The role state machine: states, the events that move them, and the status `/health` shows.
//!
//! Transitions are a pure function so the table can be tested without SLIM; the role
//! tasks feed it events and log every change.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

/// Which role a node plays on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleKind {
    /// Creates the group session and invites peers.
    Moderator,
    /// Waits for an invitation and joins.
    Participant,
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoleKind::Moderator => "moderator",
            RoleKind::Participant => "participant",
        })
    }
}

/// Where a node is in its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Connecting to the SLIM server.
    Connecting,
    /// Connected, app created and subscribed; no session yet.
    Ready,
    /// Moderator: the group session exists, no invite sent yet.
    SessionCreated,
    /// Moderator: some invitees have not joined yet.
    Inviting {
        /// Invitees that have not joined.
        pending: BTreeSet<String>,
        /// Invitees that joined.
        joined: BTreeSet<String>,
    },
    /// Moderator: every invitee has joined.
    Active {
        /// The members.
        joined: BTreeSet<String>,
    },
    /// Participant: waiting for an invitation.
    AwaitingInvite,
    /// Participant: member of the group session.
    Joined,
    /// The node has stopped.
    Stopped,
}

impl State {
    /// Every [`State::name`], for a gauge per state.
    pub const NAMES: [&'static str; 8] = [
        "connecting",
        "ready",
        "session_created",
        "inviting",
        "active",
        "awaiting_invite",
        "joined",
        "stopped",
    ];

    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Ready => "ready",
            State::SessionCreated => "session_created",
            State::Inviting { .. } => "inviting",
            State::Active { .. } => "active",
            State::AwaitingInvite => "awaiting_invite",
            State::Joined => "joined",
            State::Stopped => "stopped",
        }
    }

    /// Whether a publish now reaches at least one other member. SLIM silently evicts what is
    /// published into a session nobody has joined, so we only publish when this is true.
    pub fn has_members(&self) -> bool {
        match self {
            State::Inviting { joined, .. } | State::Active { joined } => !joined.is_empty(),
            State::Joined => true,
            _ => false,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Inviting { pending, joined } => write!(
                f,
                "inviting (pending: {}; joined: {})",
                join(pending),
                join(joined)
            ),
            State::Active { joined } => write!(f, "active (joined: {})", join(joined)),
            other => f.write_str(other.name()),
        }
    }
}

fn join(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Something that happened to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected to SLIM and subscribed.
    Connected,
    /// Lost the SLIM connection or session for good; start over.
    Disconnected,
    /// Moderator: the group session was created.
    SessionCreated,
    /// Moderator: inviting these names.
    InvitesStarted(BTreeSet<String>),
    /// Moderator: this invitee joined.
    MemberJoined(String),
    /// Moderator: this member left or went offline; invite it again.
    MemberLost(String),
    /// Moderator: an administrator added this name to the invitees.
    MemberAdded(String),
    /// Moderator: an administrator removed this name from the members and invitees.
    MemberRemoved(String),
    /// Participant: listening for an invitation.
    Listening,
    /// Participant: invited into a group session and joined it.
    Invited,
    /// The session was closed by its owner or by SLIM.
    SessionClosed,
    /// The node is shutting down.
    Stop,
}

/// An event that makes no sense in the current state (a bug, never user input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event:?} is not valid in state {state}")]
pub struct InvalidTransition {
    /// The state the node was in.
    pub state: String,
    /// The event that did not fit.
    pub event: String,
}

impl State {
    /// The state after `event`, for a node of `role`.
    pub fn on(&self, role: RoleKind, event: &Event) -> Result<State, InvalidTransition> {
        use RoleKind::*;
        use State::*;
        let next = match (role, self, event) {
            (_, _, Event::Stop) => Stopped,
            (_, Stopped, _) => return Err(self.invalid(event)),
            (_, _, Event::Disconnected) => Connecting,
            (_, Connecting, Event::Connected) => Ready,

            (Moderator, Ready, Event::SessionCreated) => SessionCreated,
            // Nobody to invite (yet): nothing is pending.
            (Moderator, SessionCreated, Event::InvitesStarted(names)) if names.is_empty() => {
                Active {
                    joined: BTreeSet::new(),
                }
            }
            (Moderator, SessionCreated, Event::InvitesStarted(names)) => Inviting {
                pending: names.clone(),
                joined: BTreeSet::new(),
            },
            (Moderator, Inviting { pending, joined }, Event::MemberJoined(name)) => {
                let mut pending = pending.clone();
                let mut joined = joined.clone();
                pending.remove(name);
                joined.insert(name.clone());
                if pending.is_empty() {
                    Active { joined }
                } else {
                    Inviting { pending, joined }
                }
            }
            (Moderator, Inviting { pending, joined }, Event::MemberLost(name)) => {
                let mut pending = pending.clone();
                let mut joined = joined.clone();
                joined.remove(name);
                pending.insert(name.clone());
                Inviting { pending, joined }
            }
            (Moderator, Active { joined }, Event::MemberLost(name)) => {
                let mut joined = joined.clone();
                joined.remove(name);
                Inviting {
                    pending: BTreeSet::from([name.clone()]),
                    joined,
                }
            }
            (Moderator, Inviting { pending, joined }, Event::MemberAdded(name)) => {
                let mut pending = pending.clone();
                if !joined.contains(name) {
                    pending.insert(name.clone());
                }
                Inviting {
                    pending,
                    joined: joined.clone(),
                }
            }
            (Moderator, Active { joined }, Event::MemberAdded(name)) => {
                if joined.contains(name) {
                    self.clone()
                } else {
                    Inviting {
                        pending: BTreeSet::from([name.clone()]),
                        joined: joined.clone(),
                    }
                }
            }
            (Moderator, Inviting { pending, joined }, Event::MemberRemoved(name)) => {
                let (mut pending, mut joined) = (pending.clone(), joined.clone());
                pending.remove(name);
                joined.remove(name);
                if pending.is_empty() {
                    Active { joined }
                } else {
                    Inviting { pending, joined }
                }
            }
            (Moderator, Active { joined }, Event::MemberRemoved(name)) => {
                let mut joined = joined.clone();
                joined.remove(name);
                Active { joined }
            }
            // Without a session the change shows when the next one invites.
            (
                Moderator,
                Ready | SessionCreated,
                Event::MemberAdded(_) | Event::MemberRemoved(_),
            ) => self.clone(),
            (Moderator, SessionCreated | Inviting { .. } | Active { .. }, Event::SessionClosed) => {
                Ready
            }

            (Participant, Ready, Event::Listening) => AwaitingInvite,
            // Invited again while joined: the moderator restarted or re-created its group.
            (Participant, AwaitingInvite | Joined, Event::Invited) => Joined,
            (Participant, Joined, Event::SessionClosed) => AwaitingInvite,

            _ => return Err(self.invalid(event)),
        };
        Ok(next)
    }

    fn invalid(&self, event: &Event) -> InvalidTransition {
        InvalidTransition {
            state: self.name().to_string(),
            event: format!("{event:?}"),
        }
    }
}

/// What `/health` shows about a node's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The node's role.
    pub role: RoleKind,
    /// The node's own SLIM name.
    pub name: String,
    /// The group channel, once known (a participant learns it when invited).
    pub channel: Option<String>,
    /// The current state.
    #[serde(flatten)]
    pub state: State,
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoleKind::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn moderator_becomes_active_when_every_invitee_joined() {
        let s = State::Connecting
            .on(Moderator, &Event::Connected)
            .and_then(|s| s.on(Moderator, &Event::SessionCreated))
            .and_then(|s| s.on(Moderator, &Event::InvitesStarted(set(&["a/b/c", "a/b/d"]))))
            .unwrap();
        assert!(!s.has_members());
        let s = s
            .on(Moderator, &Event::MemberJoined("a/b/c".into()))
            .unwrap();
        assert_eq!(
            s,
            State::Inviting {
                pending: set(&["a/b/d"]),
                joined: set(&["a/b/c"])
            }
        );
        assert!(s.has_members(), "one member is enough to publish");
        let s = s
            .on(Moderator, &Event::MemberJoined("a/b/d".into()))
            .unwrap();
        assert_eq!(
            s,
            State::Active {
                joined: set(&["a/b/c", "a/b/d"])
            }
        );
    }

    #[test]
    fn moderator_without_members_cannot_publish() {
        let s = State::SessionCreated
            .on(Moderator, &Event::InvitesStarted(BTreeSet::new()))
            .unwrap();
        assert!(!s.has_members());
    }

    #[test]
    fn lost_member_goes_back_to_pending() {
        let s = State::Active {
            joined: set(&["a/b/c"]),
        }
        .on(Moderator, &Event::MemberLost("a/b/c".into()))
        .unwrap();
        assert_eq!(
            s,
            State::Inviting {
                pending: set(&["a/b/c"]),
                joined: set(&[])
            }
        );
    }

    #[test]
    fn an_added_name_is_pending_until_it_joins() {
        let s = State::Active {
            joined: set(&["a/b/c"]),
        }
        .on(Moderator, &Event::MemberAdded("a/b/d".into()))
        .unwrap();
        assert_eq!(
            s,
            State::Inviting {
                pending: set(&["a/b/d"]),
                joined: set(&["a/b/c"])
            }
        );
    }

    #[test]
    fn a_removed_member_is_neither_pending_nor_joined() {
        let s = State::Inviting {
            pending: set(&["a/b/d"]),
            joined: set(&["a/b/c"]),
        };
        assert_eq!(
            s.on(Moderator, &Event::MemberRemoved("a/b/d".into()))
                .unwrap(),
            State::Active {
                joined: set(&["a/b/c"])
            }
        );
        assert_eq!(
            s.on(Moderator, &Event::MemberRemoved("a/b/c".into()))
                .unwrap(),
            State::Inviting {
                pending: set(&["a/b/d"]),
                joined: set(&[])
            }
        );
    }

    #[test]
    fn participants_are_not_administered() {
        assert!(State::Joined
            .on(Participant, &Event::MemberAdded("a/b/c".into()))
            .is_err());
    }

    #[test]
    fn participant_joins_then_waits_again_after_close() {
        let s = State::Ready
            .on(Participant, &Event::Listening)
            .and_then(|s| s.on(Participant, &Event::Invited))
            .unwrap();
        assert!(s.has_members());
        let s = s.on(Participant, &Event::SessionClosed).unwrap();
        assert_eq!(s, State::AwaitingInvite);
    }

    #[test]
    fn a_joined_participant_can_be_invited_into_a_new_session() {
        assert_eq!(
            State::Joined.on(Participant, &Event::Invited).unwrap(),
            State::Joined
        );
    }

    #[test]
    fn participant_cannot_create_sessions() {
        assert!(State::Ready
            .on(Participant, &Event::SessionCreated)
            .is_err());
    }

    #[test]
    fn disconnect_from_any_state_reconnects() {
        let s = State::Joined;
        assert_eq!(
            s.on(Participant, &Event::Disconnected).unwrap(),
            State::Connecting
        );
    }

    #[test]
    fn nothing_leaves_stopped() {
        assert!(State::Stopped.on(Moderator, &Event::Connected).is_err());
    }

    #[test]
    fn status_serializes_state_inline() {
        let st = Status {
            role: Moderator,
            name: "a/b/m".into(),
            channel: Some("a/b/ch".into()),
            state: State::Active {
                joined: set(&["a/b/c"]),
            },
        };
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["state"], "active");
        assert_eq!(v["joined"][0], "a/b/c");
        assert_eq!(v["role"], "moderator");
    }
}
