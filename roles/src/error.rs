//! Error types of the roles library.

use thiserror::Error;

/// A node configuration that cannot work; found before anything touches the network.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A SLIM name is not `ORG/NS/APP`.
    #[error("invalid SLIM name {input:?}: {reason} (expected ORG/NAMESPACE/APP, e.g. agntcy/otel/receiver)")]
    InvalidName {
        /// What the user gave.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// SLIM refuses shared secrets under 32 bytes ("hmac key is too short").
    #[error("the shared secret is {len} bytes long; SLIM needs at least {min} bytes (it signs with HMAC-SHA256)")]
    SecretTooShort {
        /// Length of the given secret in bytes.
        len: usize,
        /// The minimum SLIM accepts.
        min: usize,
    },
    /// The SLIM URL has no usable scheme.
    #[error("invalid SLIM URL {0:?}: expected http://HOST:PORT or https://HOST:PORT")]
    InvalidUrl(String),
    /// A TLS certificate, key or CA file is missing or its path is not UTF-8.
    #[error("TLS file {path} does not exist or is not a readable file")]
    TlsFile {
        /// The path given.
        path: String,
    },
    /// TLS settings were given for a plain-text `http://` SLIM URL.
    #[error("TLS settings (--ca, --client-cert) need an https:// SLIM URL, not {0}")]
    TlsWithoutHttps(String),
    /// The node's key or trust list cannot be used.
    #[error("identity file {path}: {why}")]
    Identity {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// No SLIM server URL was given.
    #[error("no SLIM server URL: give at least one --slim URL")]
    NoServer,
}

/// Why a node could not start or keep its role.
#[derive(Debug, Error)]
pub enum RoleError {
    /// The SLIM server did not answer within the connect retries.
    #[error("cannot connect to the SLIM server at {url} (gave up after {attempts} attempt(s) each): {message}")]
    Connect {
        /// The server URL (several, comma-separated, when none of them answered).
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// SLIM's own error text.
        message: String,
    },
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] crate::delivery::spool::SpoolError),
    /// The record of received messages cannot be opened.
    #[error(transparent)]
    Seen(#[from] crate::delivery::seen::SeenError),
    /// Any other SLIM operation failed.
    #[error("SLIM {operation} failed: {message}")]
    Slim {
        /// What was being done.
        operation: &'static str,
        /// SLIM's own error text.
        message: String,
    },
}

impl RoleError {
    /// A SLIM operation that failed, with what SLIM said.
    pub fn slim(operation: &'static str, err: impl std::fmt::Display) -> Self {
        RoleError::Slim {
            operation,
            message: err.to_string(),
        }
    }
}

/// Why a message was not handed to SLIM. Nothing was sent when this is returned.
#[derive(Debug, Error)]
pub enum PublishError {
    /// No session to publish into yet (no member joined, or not invited yet).
    #[error("no SLIM session with members yet (node state: {state})")]
    NotReady {
        /// The node's state at the time.
        state: String,
    },
    /// The outbox is full: members are slow or away.
    #[error("the outbox is full ({messages} messages, {bytes} bytes waiting for members to acknowledge); try again later")]
    Full {
        /// Messages held.
        messages: usize,
        /// Bytes held.
        bytes: usize,
    },
    /// The outbox is behind: what it holds would take longer than its time bound to reach the
    /// members (`--queue-max-delay`), and did not catch up while the message waited.
    #[error("the channel is behind: what is on its way ({pending} messages) takes {delay_ms} ms to reach the members, more than --queue-max-delay; try again later")]
    Behind {
        /// How long what is on its way takes to reach the members, at their rate.
        delay_ms: u64,
        /// Messages no member has yet.
        pending: usize,
    },
    /// The payload would exceed SLIM's message size limit.
    #[error("payload of {size} bytes exceeds SLIM's message limit of {limit} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit that applies.
        limit: usize,
    },
    /// The spool could not write the message.
    #[error("the spool could not store the message: {0}")]
    Spool(String),
    /// SLIM refused the message.
    #[error("SLIM refused the message: {0}")]
    Slim(String),
    /// This node carries no channel for the message's signal (a signal-channel moderator
    /// without `--signal-channel` for it).
    #[error("this node has no channel for {0}: give it --signal-channel {0}=ORG/NS/CHANNEL")]
    NoChannel(String),
}

/// A runtime change of members that cannot be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AdminError {
    /// Only a moderator has a group to change.
    #[error(
        "this node is a participant; members are invited and removed by the channel's moderator"
    )]
    NotModerator,
}
