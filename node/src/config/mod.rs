//! The plain settings model: what a node runs with, as typed values. The command line, the
//! `SLIM_NODE_*` variables and the config file resolve into it in one place per command
//! (`crate::cli`); the parts of the node take these types, never clap's. Every default is a
//! typed constant in [`defaults`], which `--help` shows and the parser falls back to.

pub mod defaults;
mod hidden;

pub use hidden::Hidden;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use slim_roles::{Keepalive, NodeConfig, ServerTls};

use crate::sink::SinkSpec;

/// One node: its SLIM side, its receivers, its sinks and how long it drains.
#[derive(Debug)]
pub struct NodeSettings {
    /// The SLIM side: name, role, secret, server, session, outbox, data directory.
    pub node: NodeConfig,
    /// The OTLP receivers and the health endpoints.
    pub receivers: ReceiverSettings,
    /// Where what others publish goes.
    pub sinks: Vec<SinkSpec>,
    /// The query API over the `store` sink, when served.
    pub query_api: Option<QueryApiSettings>,
    /// How long a stopping node waits for acknowledgements, requests and sinks.
    pub drain: Duration,
    /// Receivers add `slim.ingest.key`, and the pipeline `slim.sender`, to every resource.
    pub stamp_origin: bool,
    /// The node's own metrics: where they are pushed.
    pub telemetry: crate::telemetry::TelemetrySettings,
}

impl NodeSettings {
    /// The node's data directory (its sinks' queues, its store, its cursor key).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.node.state_dir.as_deref()
    }
}

/// The OTLP receivers, the health endpoints and what guards them.
#[derive(Debug, Clone, Default)]
pub struct ReceiverSettings {
    /// The OTLP/HTTP receiver's address.
    pub otlp_http: Option<String>,
    /// The OTLP/gRPC receiver's address.
    pub otlp_grpc: Option<String>,
    /// The health endpoints' own address.
    pub health: Option<String>,
    /// Limits the receivers enforce.
    pub limits: Limits,
    /// TLS of the receivers (and the query API).
    pub tls: Option<ServerTls>,
    /// The bearer tokens' file.
    pub auth_token_file: Option<PathBuf>,
    /// Origins allowed to send from a browser; empty: no CORS.
    pub cors_origins: Vec<String>,
}

/// Limits the receivers enforce.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, as received and after decompression.
    pub max_body_size: usize,
    /// Open connections at most.
    pub max_connections: usize,
    /// Time a client has to send its request headers.
    pub header_read_timeout: Duration,
    /// Time a client has to send its request body.
    pub body_read_timeout: Duration,
    /// Requests handled at once across the receivers.
    pub max_concurrent_requests: usize,
    /// Requests per second per key; unlimited when `None`.
    pub rate_limit: Option<NonZeroU32>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_size: defaults::MAX_BODY_SIZE,
            max_connections: defaults::MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(defaults::HEADER_READ_TIMEOUT_SECS),
            body_read_timeout: Duration::from_secs(defaults::BODY_READ_TIMEOUT_SECS),
            max_concurrent_requests: defaults::MAX_CONCURRENT_REQUESTS,
            rate_limit: None,
        }
    }
}

/// The query API over the node's one `store` sink.
#[derive(Debug, Clone)]
pub struct QueryApiSettings {
    /// Its address.
    pub listen: String,
    /// The keys' file; `None`: open to whoever can reach it.
    pub keys: Option<PathBuf>,
    /// Fetches per second per key (per client address when open); `None`: no limit.
    pub rate_per_key: Option<std::num::NonZeroU32>,
    /// The cursor key itself (hex).
    pub cursor_key: Option<Hidden>,
    /// The cursor key's file.
    pub cursor_key_file: Option<PathBuf>,
}

/// `slim-node query`: the query API over a bucket, writing nothing.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// The `store:DIR;location=…` spec (its DIR holds the segment cache and cursor key).
    pub sink: crate::sink::SinkSpec,
    /// The query API.
    pub api: QueryApiSettings,
    /// TLS for it.
    pub tls: Option<ServerTls>,
}

/// `slim-node up`: a SLIM server and two nodes in one process.
#[derive(Debug)]
pub struct UpSettings {
    /// The SLIM server's address.
    pub endpoint: String,
    /// The SLIM server's keepalive.
    pub keepalive: Keepalive,
    /// The participant that hands what arrives to the sinks.
    pub printer: NodeSettings,
    /// The moderator with the receivers.
    pub receiver: NodeSettings,
}
