//! `slim-node loadgen`: OTLP load against a receiver.

use std::path::PathBuf;

use clap::Args;

use super::*;
use crate::config::defaults;

pub use crate::export::Protocol;

/// `slim-node loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Base URL of the receiver; /v1/traces etc. are appended for HTTP. Default:
    /// http://127.0.0.1:4318 for HTTP, http://127.0.0.1:4317 for gRPC.
    #[arg(long, env = "SLIM_NODE_LOADGEN_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Protocol and encoding.
    #[arg(
        long,
        env = "SLIM_NODE_LOADGEN_PROTOCOL",
        value_enum,
        default_value = defaults::LOADGEN_PROTOCOL
    )]
    pub protocol: Protocol,
    /// Signal to send: traces, metrics or logs.
    #[arg(long, env = "SLIM_NODE_LOADGEN_SIGNAL", default_value = defaults::LOADGEN_SIGNAL, value_parser = parse_signal)]
    pub signal: otlp::Signal,
    /// Spans, data points or log records per request.
    #[arg(long, env = "SLIM_NODE_LOADGEN_ITEMS", default_value_t = defaults::LOADGEN_ITEMS, value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    pub items: u32,
    /// Compress request bodies with gzip.
    #[arg(long, env = "SLIM_NODE_LOADGEN_GZIP")]
    pub gzip: bool,
    /// Concurrent clients, each on its own connection.
    #[arg(long, env = "SLIM_NODE_LOADGEN_CLIENTS", default_value_t = defaults::LOADGEN_CLIENTS, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub clients: u32,
    /// Requests per second in all, spread over the clients; without it each client sends
    /// its next request as soon as the previous one is answered (closed loop).
    #[arg(long, env = "SLIM_NODE_LOADGEN_RATE", value_name = "PER_SEC")]
    pub rate: Option<std::num::NonZeroU32>,
    /// Seconds to run.
    #[arg(
        long,
        env = "SLIM_NODE_LOADGEN_DURATION",
        default_value_t = defaults::LOADGEN_DURATION_SECS,
        value_name = "SECS"
    )]
    pub duration: f64,
    /// Stop after this many requests (or at --duration, whichever comes first).
    #[arg(long, env = "SLIM_NODE_LOADGEN_REQUESTS", value_name = "N")]
    pub requests: Option<u64>,
    /// File holding a bearer token for the receiver (`Authorization: Bearer …`).
    #[arg(long, env = "SLIM_NODE_LOADGEN_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle to trust for an https:// endpoint.
    #[arg(long, env = "SLIM_NODE_LOADGEN_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Print the final report as one JSON object instead of text.
    #[arg(long, env = "SLIM_NODE_LOADGEN_JSON")]
    pub json: bool,
}
