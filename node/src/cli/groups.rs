//! Argument groups several commands share, each written once: TLS to SLIM, the session, the
//! outbox and data directory, the receivers with their limits, TLS, auth and CORS, the sinks
//! and the query API, and how `fetch` and `replay` reach that API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use slim_roles::{Identity, NodeConfig, RoleConfig, SlimName};
use tracing::warn;

use super::*;
use crate::config::{defaults, Limits, QueryApiSettings, ReceiverSettings};
use crate::sink::SinkSpec;

/// A server's certificate, key and client CA (the SLIM server's and the receivers' flags
/// name them differently; they mean the same).
pub(super) fn server_tls(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    client_ca: &Option<PathBuf>,
) -> Option<slim_roles::ServerTls> {
    Some(slim_roles::ServerTls {
        identity: slim_roles::CertKey {
            cert: cert.clone()?,
            key: key.clone()?,
        },
        client_ca: client_ca.clone(),
    })
}

/// What a client trusts and presents: a CA, and a certificate with its key (a node's flags
/// towards its SLIM server and a server's towards its peers name them differently).
pub(super) fn client_tls(
    ca: &Option<PathBuf>,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> slim_roles::ClientTls {
    slim_roles::ClientTls {
        ca: ca.clone(),
        identity: match (cert, key) {
            (Some(cert), Some(key)) => Some(slim_roles::CertKey {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    }
}

/// TLS to an https:// SLIM server.
#[derive(Debug, Args)]
pub struct SlimTlsArgs {
    /// PEM CA bundle that signed the SLIM server's certificate (default: the system roots).
    #[arg(long, env = "SLIM_NODE_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Present this PEM client certificate to the SLIM server (mTLS; with --client-key).
    #[arg(
        long,
        env = "SLIM_NODE_CLIENT_CERT",
        requires = "client_key",
        value_name = "PEM"
    )]
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of --client-cert.
    #[arg(
        long,
        env = "SLIM_NODE_CLIENT_KEY",
        requires = "client_cert",
        value_name = "PEM"
    )]
    pub client_key: Option<PathBuf>,
}

impl SlimTlsArgs {
    /// The node's TLS settings towards SLIM.
    pub fn settings(&self) -> slim_roles::ClientTls {
        client_tls(&self.ca, &self.client_cert, &self.client_key)
    }
}

/// SLIM session settings.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Turn MLS end-to-end encryption off (moderator; participants follow the moderator).
    #[arg(long, env = "SLIM_NODE_NO_MLS")]
    pub no_mls: bool,
    /// Connection attempts (exponential backoff from 250 ms, at most 5 s apart) before an
    /// unreachable SLIM server is an error.
    #[arg(
        long,
        env = "SLIM_NODE_CONNECT_ATTEMPTS",
        default_value_t = defaults::CONNECT_ATTEMPTS,
        value_name = "N"
    )]
    pub connect_attempts: u32,
    /// SLIM messages not yet full (under 256 KiB of packed requests) awaiting SLIM's
    /// completion (its session taking them; no member is waited for) at once; full ones are
    /// pipelined up to 256. What arrives meanwhile waits
    /// and is packed: nothing lost at low load, far less MLS work per request at high load.
    #[arg(
        long,
        env = "SLIM_NODE_MAX_IN_FLIGHT",
        default_value_t = defaults::MAX_IN_FLIGHT,
        value_parser = clap::value_parser!(u32).range(1..=4096),
        value_name = "N"
    )]
    pub max_in_flight: u32,
}

/// The outbox: what was taken and waits for the members' acknowledgements.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Bytes the outbox may hold (payloads plus 1.5 KiB per message for its bookkeeping);
    /// beyond it receivers answer 503 + Retry-After.
    #[arg(long, env = "SLIM_NODE_QUEUE_MAX_BYTES", default_value_t = defaults::QUEUE_MAX_BYTES, value_name = "BYTES")]
    pub queue_max_bytes: usize,
    /// Messages the outbox may hold; beyond it receivers answer 503 + Retry-After.
    #[arg(
        long,
        env = "SLIM_NODE_QUEUE_MAX_MESSAGES",
        default_value_t = defaults::QUEUE_MAX_MESSAGES,
        value_name = "N"
    )]
    pub queue_max_messages: usize,
    /// Work the outbox may hold, by time: while members take data and the last message to
    /// reach one had waited longer than this, a request waits for its answer (up to 2 s, then
    /// 503 + Retry-After) instead of adding to a backlog, so that what is taken reaches the
    /// members within about this much more. `0s`: bounded by bytes and messages only.
    #[arg(
        long,
        env = "SLIM_NODE_QUEUE_MAX_DELAY",
        default_value = defaults::QUEUE_MAX_DELAY,
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub queue_max_delay: std::time::Duration,
    /// Seconds a stopping node waits for its members to acknowledge what it took, for open
    /// requests to finish, and for its sinks to deliver what they hold.
    #[arg(
        long,
        env = "SLIM_NODE_DRAIN_TIMEOUT",
        default_value_t = defaults::DRAIN_TIMEOUT_SECS,
        value_name = "SECS"
    )]
    pub drain_timeout: u64,
    /// Keep the outbox on disk in this directory (without DIR: DATA_DIR/spool): what was
    /// answered 200 survives a crash and is sent after a restart. One node per directory.
    #[arg(
        long,
        env = "SLIM_NODE_SPOOL",
        value_name = "DIR",
        num_args = 0..=1,
        default_missing_value = ""
    )]
    pub spool: Option<String>,
    /// Where the node keeps its durable state (the ids of what it received, so that copies
    /// are recognised after a restart). Default: $XDG_STATE_HOME/slim-node/ORG/NS/APP
    /// ($HOME/.local/state when XDG_STATE_HOME is not set), stable for the node's name, so
    /// the same command line after a crash finds its state. One node per directory.
    #[arg(long, env = "SLIM_NODE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// When the spool syncs to disk: `always` (before every 200; safe) or `never` (the OS
    /// decides; a power loss can lose what was answered last).
    #[arg(
        long,
        env = "SLIM_NODE_SPOOL_FSYNC",
        value_enum,
        default_value = defaults::SPOOL_FSYNC,
        value_name = "POLICY"
    )]
    pub spool_fsync: FsyncPolicy,
}

/// `$XDG_STATE_HOME/slim-node`, else `$HOME/.local/state/slim-node` (the XDG base directory
/// convention for state that should survive restarts).
fn default_state_base() -> anyhow::Result<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = from("XDG_STATE_HOME")
        .or_else(|| from("HOME").map(|home| home.join(".local").join("state")))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no place for the node's state: pass --data-dir DIR (or set SLIM_NODE_DATA_DIR, XDG_STATE_HOME or HOME)"
            )
        })?;
    Ok(base.join("slim-node"))
}

/// When the spool syncs to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsyncPolicy {
    /// Before every answer.
    Always,
    /// When the operating system decides.
    Never,
}

impl QueueArgs {
    /// The spool, if one was asked for: its directory, or `spool` in the node's `state_dir`.
    pub fn spool_config(&self, state_dir: &Path) -> Option<slim_roles::SpoolConfig> {
        self.spool.as_ref().map(|dir| slim_roles::SpoolConfig {
            dir: if dir.is_empty() {
                state_dir.join("spool")
            } else {
                PathBuf::from(dir)
            },
            fsync: self.spool_fsync == FsyncPolicy::Always,
        })
    }

    /// The state directory of the node named `name`: --data-dir, or the default for its
    /// name. `up` runs two nodes, each in its own directory under --data-dir.
    pub fn state_dir(&self, name: &SlimName, several: bool) -> anyhow::Result<PathBuf> {
        let per_name = |base: PathBuf| {
            name.to_string()
                .split('/')
                .fold(base, |dir, part| dir.join(part))
        };
        match &self.data_dir {
            Some(dir) if several => Ok(per_name(dir.clone())),
            Some(dir) => Ok(dir.clone()),
            None => default_state_base().map(per_name),
        }
    }

    /// The outbox limits.
    pub fn limits(&self) -> slim_roles::OutboxLimits {
        slim_roles::OutboxLimits {
            max_bytes: self.queue_max_bytes,
            max_messages: self.queue_max_messages,
            max_delay: (!self.queue_max_delay.is_zero()).then_some(self.queue_max_delay),
        }
    }
}

/// OTLP receiver settings.
#[derive(Debug, Args)]
pub struct ReceiverArgs {
    /// Run an OTLP/HTTP receiver on this address (the standard port is 4318) and publish
    /// what it accepts on the channel.
    #[arg(long, env = "SLIM_NODE_OTLP_HTTP", value_name = "HOST:PORT")]
    pub otlp_http: Option<String>,
    /// Run an OTLP/gRPC receiver on this address (the standard port is 4317).
    #[arg(long, env = "SLIM_NODE_OTLP_GRPC", value_name = "HOST:PORT")]
    pub otlp_grpc: Option<String>,
    /// Serve GET /health, /health/live and /health/ready on this address, for nodes without
    /// an OTLP/HTTP receiver (which serves them too) or for probes on a port of their own.
    #[arg(long, env = "SLIM_NODE_HEALTH", value_name = "HOST:PORT")]
    pub health: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub tls: OtlpTlsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Who may send to the receivers.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Require `Authorization: Bearer TOKEN` on every export and admin request (401 without,
    /// 403 with an unknown token or one without the scope); the file holds one `name=token`
    /// (scope `ingest`) or `name:SCOPE,…=token` (scopes `ingest`, `admin`, `query`) per line
    /// (`#` comments, tokens of at least 16 characters). Logs name the key, never the token.
    #[arg(long, env = "SLIM_NODE_AUTH_TOKEN_FILE", value_name = "PATH")]
    pub auth_token_file: Option<PathBuf>,
}

/// TLS of the OTLP receivers.
#[derive(Debug, Clone, Args)]
pub struct OtlpTlsArgs {
    /// Serve the OTLP receivers over TLS (1.2 or 1.3) with this PEM certificate chain (with
    /// --otlp-tls-key). Reloaded when the file changes.
    #[arg(
        long,
        env = "SLIM_NODE_OTLP_TLS_CERT",
        requires = "otlp_tls_key",
        value_name = "PEM"
    )]
    pub otlp_tls_cert: Option<PathBuf>,
    /// The PEM private key of --otlp-tls-cert.
    #[arg(
        long,
        env = "SLIM_NODE_OTLP_TLS_KEY",
        requires = "otlp_tls_cert",
        value_name = "PEM"
    )]
    pub otlp_tls_key: Option<PathBuf>,
    /// Require OTLP clients to present a certificate signed by this PEM CA bundle (mTLS).
    #[arg(
        long,
        env = "SLIM_NODE_OTLP_CLIENT_CA",
        requires = "otlp_tls_cert",
        value_name = "PEM"
    )]
    pub otlp_client_ca: Option<PathBuf>,
}

impl OtlpTlsArgs {
    /// The certificate files, when TLS was asked for.
    pub fn files(&self) -> Option<slim_roles::ServerTls> {
        server_tls(
            &self.otlp_tls_cert,
            &self.otlp_tls_key,
            &self.otlp_client_ca,
        )
    }
}

/// Cross-origin settings of the OTLP/HTTP receiver, for browser senders.
#[derive(Debug, Clone, Args)]
pub struct CorsArgs {
    /// Allow browser pages from this origin (e.g. https://app.example.com, or `*`) to send
    /// OTLP/HTTP: preflight requests are answered. Repeatable. Without it, no CORS headers.
    #[arg(
        long,
        env = "SLIM_NODE_CORS_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origin: Vec<String>,
}

/// Limits the receivers enforce.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest accepted request body in bytes, both as received and after decompression;
    /// larger requests get 413 (gRPC: INVALID_ARGUMENT, which OTLP clients do not retry).
    #[arg(long, env = "SLIM_NODE_MAX_BODY_SIZE", default_value_t = defaults::MAX_BODY_SIZE, value_name = "BYTES")]
    pub max_body_size: usize,
    /// Open OTLP/HTTP connections at most; more clients wait until one closes.
    #[arg(
        long,
        env = "SLIM_NODE_MAX_CONNECTIONS",
        default_value_t = defaults::MAX_CONNECTIONS,
        value_name = "N"
    )]
    pub max_connections: usize,
    /// Seconds a client has to send its request headers before the connection is closed.
    #[arg(
        long,
        env = "SLIM_NODE_HEADER_READ_TIMEOUT",
        default_value_t = defaults::HEADER_READ_TIMEOUT_SECS,
        value_name = "SECS"
    )]
    pub header_read_timeout: u64,
    /// Seconds a client has to send a request body.
    #[arg(
        long,
        env = "SLIM_NODE_BODY_READ_TIMEOUT",
        default_value_t = defaults::BODY_READ_TIMEOUT_SECS,
        value_name = "SECS"
    )]
    pub body_read_timeout: u64,
    /// Requests handled at once across the receivers; beyond it 503 + Retry-After (gRPC:
    /// UNAVAILABLE + RetryInfo).
    #[arg(
        long,
        env = "SLIM_NODE_MAX_CONCURRENT_REQUESTS",
        default_value_t = defaults::MAX_CONCURRENT_REQUESTS,
        value_name = "N"
    )]
    pub max_concurrent_requests: usize,
    /// Requests per second each key (or, without a token file, all clients together) may
    /// send, with bursts of the same size; beyond it 429 + Retry-After (gRPC:
    /// RESOURCE_EXHAUSTED + RetryInfo). Unlimited when not set.
    #[arg(long, env = "SLIM_NODE_RATE_LIMIT", value_name = "PER_SEC")]
    pub rate_limit: Option<std::num::NonZeroU32>,
    #[command(flatten)]
    pub cors: CorsArgs,
}

/// Where a node puts what others publish.
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Where to put what others publish: KIND[:ARG][;OPTION=VALUE]…, e.g. `stdout`,
    /// `jsonl:PATH`, `otlp:http://collector:4318`; repeat for several (comma-separated in
    /// the variable). `--help` lists every sink and option.
    #[arg(
        long,
        env = "SLIM_NODE_SINK",
        // A spec may hold credentials (`header=Authorization=…`): never shown or echoed.
        hide_env_values = true,
        value_parser = crate::sink::registry::SpecParser,
        value_delimiter = ',',
        default_value = defaults::SINK,
        value_name = "SPEC",
        long_help = crate::sink::registry::help()
    )]
    pub sink: Vec<SinkSpec>,
    #[command(flatten)]
    pub query: QueryApiArgs,
}

/// The query API over the `store` sink.
#[derive(Debug, Clone, Default, Args)]
pub struct QueryApiArgs {
    /// Serve the `store` sink's items on HOST:PORT (its own listener): `POST
    /// /api/{traces,metrics,logs}/fetch` and `GET /health`; over TLS with the receivers'
    /// settings (--otlp-tls-cert, and --otlp-client-ca for client certificates).
    #[arg(long, env = "SLIM_NODE_QUERY_API", value_name = "HOST:PORT")]
    pub query_api: Option<String>,
    /// Keys allowed to use the query API: `name:query=KEY` lines (the scope is required),
    /// keys of 16 characters or more; clients send `Authorization: Bearer KEY`. Without it
    /// the API is open to anyone who can reach it.
    #[arg(long, env = "SLIM_NODE_QUERY_API_KEYS", value_name = "PATH")]
    pub query_api_keys: Option<PathBuf>,
    /// Fetches per second each key (each client address, when the API is open) may make,
    /// with a burst of as many; beyond it 429 with Retry-After. 0: no limit.
    #[arg(
        long,
        env = "SLIM_NODE_QUERY_API_RATE",
        value_name = "N",
        default_value_t = crate::config::defaults::QUERY_API_RATE
    )]
    pub query_api_rate: u32,
    /// The key that seals paging cursors: 64 hex characters (`openssl rand -hex 32`).
    /// Default: generated and kept in DATA_DIR/cursor.key, so cursors survive a restart.
    #[arg(long, env = "SLIM_NODE_CURSOR_KEY_FILE", value_name = "PATH")]
    pub cursor_key_file: Option<PathBuf>,
    /// The cursor key itself (64 hex characters), e.g. from a secret store; prefer the
    /// variable to the flag (argv shows in `ps`). Comes before --cursor-key-file.
    #[arg(
        long,
        env = "SLIM_NODE_CURSOR_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub cursor_key: Option<crate::config::Hidden>,
}

/// Where the query API is and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The node's query API, e.g. http://127.0.0.1:4320.
    #[arg(long, env = "SLIM_NODE_API", value_name = "URL")]
    pub api: String,
    /// File holding the API key (sent as `Authorization: Bearer KEY`); or the key itself in
    /// SLIM_NODE_API_KEY.
    #[arg(long, env = "SLIM_NODE_API_KEY_FILE", value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// PEM CA bundle to trust for an https:// API.
    #[arg(long, env = "SLIM_NODE_API_CA", value_name = "PEM")]
    pub api_ca: Option<PathBuf>,
    /// Client certificate (PEM) for an API that requires one (the node's --otlp-client-ca),
    /// with --api-client-key.
    #[arg(long, env = "SLIM_NODE_API_CLIENT_CERT", value_name = "PEM")]
    pub api_client_cert: Option<PathBuf>,
    /// The key of --api-client-cert (PEM).
    #[arg(long, env = "SLIM_NODE_API_CLIENT_KEY", value_name = "PEM")]
    pub api_client_key: Option<PathBuf>,
}

/// Which items, and how to page them.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Items of the last DURATION (`30s`, `15m`, `2h`, `7d`), when --start is not given.
    #[arg(long, env = "SLIM_NODE_SINCE", value_name = "DURATION", default_value = defaults::SINCE, value_parser = parse_duration, conflicts_with = "start")]
    pub since: std::time::Duration,
    /// Items from this time on (inclusive): RFC 3339 (`2026-11-27T10:00:00Z`) or Unix nanoseconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start: Option<u64>,
    /// Items before this time (exclusive): RFC 3339 or Unix nanoseconds. Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end: Option<u64>,
    /// Items per page (1 to 10000).
    #[arg(long, default_value_t = defaults::PAGE_LIMIT, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub limit: u32,
    /// Keep polling for what arrives later (every --poll-interval) until interrupted.
    #[arg(long, conflicts_with = "end")]
    pub follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = defaults::POLL_INTERVAL_SECS, value_name = "SECS")]
    pub poll_interval: f64,
}

impl SessionArgs {
    /// Whether MLS is on, warning when it is not.
    pub fn mls(&self) -> bool {
        if self.no_mls {
            warn!("MLS is off (--no-mls): payloads are readable by every SLIM server on the path");
        }
        !self.no_mls
    }
}

/// What `node` and `up` share of a node's SLIM settings; each node's [`NodeConfig`] is built
/// from it in [`SlimSide::node_config`], the one place that does.
pub struct SlimSide<'a> {
    /// The SLIM servers' URLs, in order of preference.
    pub urls: Vec<String>,
    /// TLS to it.
    pub tls: slim_roles::ClientTls,
    /// The session's settings.
    pub session: &'a SessionArgs,
    /// The outbox, spool and data directory.
    pub queue: &'a QueueArgs,
    /// The nodes share --data-dir, each in a directory for its name (`up`).
    pub shared_data_dir: bool,
}

impl SlimSide<'_> {
    /// The settings of the node `name` playing `role` with `identity`.
    pub fn node_config(
        &self,
        name: SlimName,
        role: RoleConfig,
        identity: Identity,
    ) -> anyhow::Result<NodeConfig> {
        let state_dir = self.queue.state_dir(&name, self.shared_data_dir)?;
        // One spool per directory: only a moderator (the receiving side of `up`) keeps one there.
        let spool = match (&role, self.shared_data_dir) {
            (RoleConfig::Participant, true) => None,
            _ => self.queue.spool_config(&state_dir),
        };
        let config = NodeConfig {
            name,
            identity,
            slim_urls: self.urls.clone(),
            role,
            mls: self.session.mls(),
            connect_attempts: self.session.connect_attempts,
            reliability: None,
            in_flight: self.session.max_in_flight as usize,
            outbox: self.queue.limits(),
            spool,
            tls: self.tls.clone(),
            state_dir: Some(state_dir),
        };
        config.validate()?;
        Ok(config)
    }
}

impl LimitArgs {
    /// The limits as settings.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_size: self.max_body_size,
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            body_read_timeout: Duration::from_secs(self.body_read_timeout),
            max_concurrent_requests: self.max_concurrent_requests,
            rate_limit: self.rate_limit,
        }
    }
}

impl ReceiverArgs {
    /// The receivers' settings.
    pub fn settings(&self) -> ReceiverSettings {
        receiver_settings(
            [&self.otlp_http, &self.otlp_grpc, &self.health],
            &self.limits,
            &self.tls,
            &self.auth,
        )
    }
}

/// The receivers' settings: the OTLP/HTTP, OTLP/gRPC and health addresses, with what guards
/// them (`node` and `up` name the addresses differently).
pub(super) fn receiver_settings(
    [otlp_http, otlp_grpc, health]: [&Option<String>; 3],
    limits: &LimitArgs,
    tls: &OtlpTlsArgs,
    auth: &AuthArgs,
) -> ReceiverSettings {
    ReceiverSettings {
        otlp_http: otlp_http.clone(),
        otlp_grpc: otlp_grpc.clone(),
        health: health.clone(),
        limits: limits.limits(),
        tls: tls.files(),
        auth_token_file: auth.auth_token_file.clone(),
        cors_origins: limits.cors.cors_origin.clone(),
    }
}

impl SinkArgs {
    /// The query API's settings, when one is served; `on_command_line` names the arguments
    /// given as flags (a key there shows in the process list).
    pub fn query_api(&self, on_command_line: &[String]) -> Option<QueryApiSettings> {
        self.query.settings(on_command_line)
    }
}

impl QueryApiArgs {
    /// The query API's settings, when one is served (see [`SinkArgs::query_api`]).
    pub fn settings(&self, on_command_line: &[String]) -> Option<QueryApiSettings> {
        let q = self;
        if q.cursor_key.is_some() && on_command_line.iter().any(|id| id == "cursor_key") {
            warn!("the cursor key was given as a flag: other users can read it in the process list; use SLIM_NODE_CURSOR_KEY");
        }
        match &q.query_api {
            Some(listen) => Some(QueryApiSettings {
                listen: listen.clone(),
                keys: q.query_api_keys.clone(),
                rate_per_key: std::num::NonZeroU32::new(q.query_api_rate),
                cursor_key: q.cursor_key.clone(),
                cursor_key_file: q.cursor_key_file.clone(),
            }),
            None => {
                if q.query_api_keys.is_some()
                    || q.cursor_key_file.is_some()
                    || q.cursor_key.is_some()
                {
                    warn!("query API keys or a cursor key are set, but no --query-api: nothing is served");
                }
                None
            }
        }
    }
}
