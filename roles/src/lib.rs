//! Moderator and participant roles of a slim-node over an AGNTCY SLIM group channel.
//!
//! A node connects to a SLIM server under its own name. A *moderator* creates the group
//! session on a channel and keeps inviting its peers until each joined; a *participant*
//! waits for an invitation and joins. Both publish on the channel and receive what the
//! others publish, and every message is kept until each member acknowledged it. The crate
//! knows SLIM, the roles and delivery; what the payloads mean is the caller's (the keys a
//! message carries on the channel are defined once, in `otlp::wire`).
//!
//! # Layout
//! - [`Node`] (`node.rs`): starts a node and hands out its [`Publisher`] and [`Admin`].
//! - `role/`: the `moderator`, the `participant`, and the `supervisor` that reconnects and
//!   restarts the role.
//! - `delivery/`: the `outbox` (what waits for acknowledgements; the `spool` keeps it on disk),
//!   `frame` (packing), the `sender` (pacing, re-sends, pings), `receive` (hand on, drop copies
//!   by the `seen` ids, acknowledge), `incoming` (what the consumer gets, and its [`Ack`]),
//!   `liveness` (when each member was last heard).
//! - `slim/`: the SLIM `connection`, a SLIM `server` of our own and its `peers` links, `tls`,
//!   `sockets`, `runtime`.
//! - `state.rs` (the state machine every node follows, and its status), `ctx.rs` (what the
//!   role tasks share), `health.rs` (what the node reports), `config.rs`,
//!   `error.rs`, `name.rs`, `backoff.rs`, `sync.rs` (`lock`).
//!
//! Layers: `slim` and `delivery` know nothing of the roles; `role` drives both; `node` starts
//! it all. Every module is private: the types below are the crate's API.

mod backoff;
mod config;
mod ctx;
mod delivery;
mod dir_lock;
mod error;
mod health;
mod name;
mod node;
mod role;
mod slim;
mod state;
mod sync;

pub use backoff::Backoff;
pub use config::{
    max_payload_bytes, NodeConfig, Reliability, RoleConfig, SignalChannel, DEFAULT_SLIM_URL,
};
pub use ctx::WEDGED_AFTER;
pub use delivery::incoming::{Ack, Incoming};
pub use delivery::liveness::Liveness;
pub use delivery::message::Outgoing;
pub use delivery::outbox::{fill, OutboxLimits, OutboxStats, ENTRY_OVERHEAD};
pub use delivery::seen::{SeenError, SEEN_FILE};
pub use delivery::spool::SpoolConfig;
pub use delivery::trust::{Refused, RefusedSender, SlimRefusals, SLIM_REFUSAL_TARGET};
pub use dir_lock::{hold_lock_file, DirLockError};
pub use error::{AdminError, ConfigError, PublishError, RoleError};
pub use health::{Health, LinkState, LinkStatus, MemberHealth, Verdict};
pub use name::{Secret, SlimName};
pub use node::{Admin, Node, Publisher, LEAVING};
pub use role::moderator::group_config;
pub use slim::connection::{connect, is_timeout, Connection};
pub use slim::identity::{Identity, MemberKeys};
pub use slim::peers::{Peer, PeerLinks, PeerState};
pub use slim::runtime;
pub use slim::server::{Keepalive, SlimServer};
pub use slim::tls::{CertKey, ClientTls, ServerTls};
pub use state::{RoleKind, State, Status};
