//! Moderator and participant roles of a slim-node over an AGNTCY SLIM group channel.
//!
//! A node connects to a SLIM server under its own name. A *moderator* creates the group
//! session on a channel and keeps inviting its peers until each joined; a *participant*
//! waits for an invitation and joins. Both publish on the channel and receive what the
//! others publish. The library knows SLIM and the roles, nothing about what the bytes mean.

pub mod backoff;
pub mod ceiling;
pub mod config;
mod connection;
pub mod error;
pub mod frame;
pub mod health;
pub mod liveness;
mod moderator;
pub mod name;
mod node;
pub mod outbox;
mod participant;
mod receive;
pub mod runtime;
mod seen;
mod sender;
pub mod server;
pub mod sockets;
pub mod spool;
pub mod state;
mod supervisor;
pub mod tls;

pub use config::{NodeConfig, Reliability, RoleConfig, DEFAULT_SLIM_URL};
pub use error::{AdminError, ConfigError, PublishError, RoleError};
pub use health::{Health, LinkState, LinkStatus, MemberHealth, Verdict};
pub use name::{Secret, SlimName};
pub use node::{Admin, Incoming, Node, Publisher, WEDGED_AFTER};
pub use outbox::{OutboxLimits, OutboxStats, Outgoing, ENTRY_OVERHEAD, MESSAGE_ID_KEY};
pub use receive::Ack;
pub use seen::{SeenError, SEEN_FILE};
pub use spool::SpoolConfig;
pub use state::{RoleKind, State, Status};
pub use tls::{CertKey, ClientTls, ServerTls};
