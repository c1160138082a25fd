//! The command line: the one source of truth for configuration and its defaults.
//! Every flag can also be set through the `SLIM_NODE_*` environment variable shown in `--help`.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use slim_roles::{SlimName, DEFAULT_SLIM_URL};

use crate::sink::SinkSpec;

/// Default OTLP/HTTP body limit: 64 MiB, as the OTLP specification recommends.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// Move OpenTelemetry data across organisations over an end-to-end encrypted SLIM mesh.
#[derive(Debug, Parser)]
#[command(name = "slim-node", version, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax; RUST_LOG also works). Logs go to stderr.
    #[arg(long, global = true, env = "SLIM_NODE_LOG", default_value = "info")]
    pub log: String,

    /// A TOML file with the command's settings, keyed by their long flag names
    /// (`otlp-http = "0.0.0.0:4318"`, `sink = ["otlp:http://collector:4318"]`); flags and
    /// SLIM_NODE_* variables override it.
    #[arg(long, global = true, env = "SLIM_NODE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a SLIM data-plane server.
    Server(ServerArgs),
    /// Run a node: a moderator or participant on a channel, with an optional OTLP receiver.
    Node(Box<NodeArgs>),
    /// Run everything in one process: a SLIM server, a receiver (moderator) and a
    /// printing participant. The quickest way to try slim-node.
    Up(Box<UpArgs>),
    /// Send generated OTLP traces, metrics or logs to a receiver (any OTLP endpoint) and
    /// report throughput, answers and latency.
    Loadgen(LoadgenArgs),
    /// Measure what a SLIM server carries between two apps with no slim-node in the way:
    /// the ceiling for any node on it.
    SlimBench(SlimBenchArgs),
    /// Print what a node's store holds (its query API) as OTLP/JSON, one export request
    /// per line.
    Fetch(FetchArgs),
    /// Send what a node's store holds (its query API) again to an OTLP endpoint: all three
    /// signals, or one.
    Replay(ReplayArgs),
}

/// `slim-node server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub server: SlimServerArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
}

/// TLS of `slim-node server`.
#[derive(Debug, Args)]
pub struct ServerTlsArgs {
    /// Serve TLS 1.3 with this PEM certificate chain (with --tls-key); nodes then connect
    /// with an https:// URL. Reloaded when the file changes.
    #[arg(
        long,
        env = "SLIM_NODE_TLS_CERT",
        requires = "tls_key",
        value_name = "PEM"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SLIM_NODE_TLS_KEY",
        requires = "tls_cert",
        value_name = "PEM"
    )]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA bundle (mTLS).
    #[arg(
        long,
        env = "SLIM_NODE_CLIENT_CA",
        requires = "tls_cert",
        value_name = "PEM"
    )]
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// The server's TLS settings, when TLS was asked for.
    pub fn settings(&self) -> Option<slim_roles::ServerTls> {
        server_tls(&self.tls_cert, &self.tls_key, &self.client_ca)
    }
}

/// A server's certificate, key and client CA (the SLIM server's and the receivers' flags
/// name them differently; they mean the same).
fn server_tls(
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
        slim_roles::ClientTls {
            ca: self.ca.clone(),
            identity: match (&self.client_cert, &self.client_key) {
                (Some(cert), Some(key)) => Some(slim_roles::CertKey {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
        }
    }
}

/// Where an embedded SLIM server listens.
#[derive(Debug, Args)]
pub struct SlimServerArgs {
    /// Address the SLIM data-plane server listens on (SLIM's conventional port is 46357).
    #[arg(
        long,
        env = "SLIM_NODE_ENDPOINT",
        default_value = "127.0.0.1:46357",
        value_name = "HOST:PORT"
    )]
    pub endpoint: String,
    /// A client the server has heard nothing from for this long is pinged (HTTP/2).
    #[arg(long, env = "SLIM_NODE_KEEPALIVE_INTERVAL", default_value = "2s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub keepalive_interval: std::time::Duration,
    /// A client that does not answer the ping within this is disconnected: the server waits
    /// for room in every receiver's queue, so a client that hangs or sits behind a cut link
    /// would hold up what it forwards to all the others.
    #[arg(long, env = "SLIM_NODE_KEEPALIVE_TIMEOUT", default_value = "3s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub keepalive_timeout: std::time::Duration,
}

impl SlimServerArgs {
    /// How the server finds clients that stopped answering.
    pub fn keepalive(&self) -> slim_roles::Keepalive {
        slim_roles::Keepalive {
            interval: self.keepalive_interval,
            timeout: self.keepalive_timeout,
        }
    }
}

/// A node's role on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Create the group session on --channel and invite every --invite name.
    Moderator,
    /// Wait for an invitation and join.
    Participant,
}

/// The shared secret of the channel's members.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SecretArgs {
    /// Shared secret, at least 32 bytes. Prefer SLIM_NODE_SECRET or --secret-file: a flag
    /// is visible to other users in the process list.
    #[arg(
        long,
        env = "SLIM_NODE_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret: Option<String>,
    /// File holding the shared secret (surrounding white space is ignored).
    #[arg(long, env = "SLIM_NODE_SECRET_FILE", value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
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
        default_value_t = 10,
        value_name = "N"
    )]
    pub connect_attempts: u32,
    /// SLIM messages not yet full (under 32 KiB of packed requests) awaiting SLIM's
    /// completion (its session taking them; no member is waited for) at once; full ones are
    /// pipelined up to 256. What arrives meanwhile waits
    /// and is packed: nothing lost at low load, far less MLS work per request at high load.
    #[arg(
        long,
        env = "SLIM_NODE_MAX_IN_FLIGHT",
        default_value_t = 4,
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
    #[arg(long, env = "SLIM_NODE_QUEUE_MAX_BYTES", default_value_t = 128 * 1024 * 1024, value_name = "BYTES")]
    pub queue_max_bytes: usize,
    /// Messages the outbox may hold; beyond it receivers answer 503 + Retry-After.
    #[arg(
        long,
        env = "SLIM_NODE_QUEUE_MAX_MESSAGES",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub queue_max_messages: usize,
    /// Seconds a stopping node waits for its members to acknowledge what it took, for open
    /// requests to finish, and for its sinks to deliver what they hold.
    #[arg(
        long,
        env = "SLIM_NODE_DRAIN_TIMEOUT",
        default_value_t = 10,
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
        default_value = "always",
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
    /// 403 with an unknown token); the file holds one `name=token` per line (`#` comments,
    /// tokens of at least 16 characters). Logs name the key, never the token.
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
    /// larger requests get 413 (gRPC: RESOURCE_EXHAUSTED).
    #[arg(long, env = "SLIM_NODE_MAX_BODY_SIZE", default_value_t = DEFAULT_MAX_BODY, value_name = "BYTES")]
    pub max_body_size: usize,
    /// Open OTLP/HTTP connections at most; more clients wait until one closes.
    #[arg(
        long,
        env = "SLIM_NODE_MAX_CONNECTIONS",
        default_value_t = 4096,
        value_name = "N"
    )]
    pub max_connections: usize,
    /// Seconds a client has to send its request headers before the connection is closed.
    #[arg(
        long,
        env = "SLIM_NODE_HEADER_READ_TIMEOUT",
        default_value_t = 10,
        value_name = "SECS"
    )]
    pub header_read_timeout: u64,
    /// Seconds a client has to send a request body.
    #[arg(
        long,
        env = "SLIM_NODE_BODY_READ_TIMEOUT",
        default_value_t = 30,
        value_name = "SECS"
    )]
    pub body_read_timeout: u64,
    /// Requests handled at once across the receivers; beyond it 503 + Retry-After (gRPC:
    /// UNAVAILABLE + RetryInfo).
    #[arg(
        long,
        env = "SLIM_NODE_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1024,
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
        value_delimiter = ',',
        default_value = "stdout",
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
    /// Keys allowed to use the query API: `name=key` lines, keys of 16 characters or more;
    /// clients send `Authorization: Bearer KEY`. Without it the API is open to anyone who
    /// can reach it.
    #[arg(long, env = "SLIM_NODE_QUERY_API_KEYS", value_name = "PATH")]
    pub query_api_keys: Option<PathBuf>,
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
    pub cursor_key: Option<String>,
}

/// `slim-node node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's role.
    #[arg(long, env = "SLIM_NODE_ROLE", value_enum)]
    pub role: Role,
    /// The node's SLIM name.
    #[arg(long, env = "SLIM_NODE_NAME", value_name = "ORG/NS/APP")]
    pub name: SlimName,
    /// URL of the SLIM server.
    #[arg(long, env = "SLIM_NODE_SLIM", default_value = DEFAULT_SLIM_URL, value_name = "URL")]
    pub slim: String,
    #[command(flatten)]
    pub slim_tls: SlimTlsArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Group channel to create (moderator only).
    #[arg(long, env = "SLIM_NODE_CHANNEL", value_name = "ORG/NS/CHANNEL")]
    pub channel: Option<SlimName>,
    /// Name to invite (moderator only); repeat, or comma-separate in the variable.
    #[arg(
        long,
        env = "SLIM_NODE_INVITE",
        value_delimiter = ',',
        value_name = "ORG/NS/APP"
    )]
    pub invite: Vec<SlimName>,
    #[command(flatten)]
    pub sinks: SinkArgs,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub session: SessionArgs,
}

/// `slim-node up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: SlimServerArgs,
    /// Address of the OTLP/HTTP receiver.
    #[arg(
        long,
        env = "SLIM_NODE_OTLP_HTTP",
        default_value = "127.0.0.1:4318",
        value_name = "HOST:PORT"
    )]
    pub otlp_http: String,
    /// Address of the OTLP/gRPC receiver.
    #[arg(
        long,
        env = "SLIM_NODE_OTLP_GRPC",
        default_value = "127.0.0.1:4317",
        value_name = "HOST:PORT"
    )]
    pub otlp_grpc: String,
    #[command(flatten)]
    pub sinks: SinkArgs,
    /// Shared secret of the channel (at least 32 bytes); a random one when not given, so
    /// that no other process can join.
    #[arg(
        long,
        env = "SLIM_NODE_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub tls: OtlpTlsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub session: SessionArgs,
}

pub use crate::exporter::Protocol;

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
        default_value = "http/protobuf"
    )]
    pub protocol: Protocol,
    /// Signal to send: traces, metrics or logs.
    #[arg(long, env = "SLIM_NODE_LOADGEN_SIGNAL", default_value = "traces", value_parser = parse_signal)]
    pub signal: otlp::Signal,
    /// Spans, data points or log records per request.
    #[arg(long, env = "SLIM_NODE_LOADGEN_ITEMS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000), value_name = "N")]
    pub items: u32,
    /// Compress request bodies with gzip.
    #[arg(long, env = "SLIM_NODE_LOADGEN_GZIP")]
    pub gzip: bool,
    /// Concurrent clients, each on its own connection.
    #[arg(long, env = "SLIM_NODE_LOADGEN_CLIENTS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub clients: u32,
    /// Requests per second in all, spread over the clients; without it each client sends
    /// its next request as soon as the previous one is answered (closed loop).
    #[arg(long, env = "SLIM_NODE_LOADGEN_RATE", value_name = "PER_SEC")]
    pub rate: Option<std::num::NonZeroU32>,
    /// Seconds to run.
    #[arg(
        long,
        env = "SLIM_NODE_LOADGEN_DURATION",
        default_value_t = 10.0,
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

fn parse_signal(s: &str) -> Result<otlp::Signal, String> {
    s.parse().map_err(|e: otlp::CodecError| e.to_string())
}

/// `slim-node slim-bench`.
#[derive(Debug, Args)]
pub struct SlimBenchArgs {
    /// SLIM server URL.
    #[arg(long, env = "SLIM_NODE_SLIM", default_value = DEFAULT_SLIM_URL, value_name = "URL")]
    pub slim: String,
    #[command(flatten)]
    pub slim_tls: SlimTlsArgs,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    pub size: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub messages: u64,
    /// Publishes awaiting SLIM's completion at once (slim-node's own window is 256).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub window: usize,
    /// Turn MLS off (slim-node's default is on).
    #[arg(long)]
    pub no_mls: bool,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn malformed_name_is_a_usage_error() {
        let err = Cli::try_parse_from([
            "slim-node",
            "node",
            "--role",
            "participant",
            "--name",
            "just-one",
            "--secret",
            "x",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("exactly three parts"), "{err}");
    }

    #[test]
    fn a_secret_is_required() {
        let err = Cli::try_parse_from([
            "slim-node",
            "node",
            "--role",
            "participant",
            "--name",
            "a/b/c",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    fn queue(data_dir: Option<&str>) -> QueueArgs {
        let mut args = vec![
            "slim-node",
            "node",
            "--role",
            "participant",
            "--name",
            "a/b/c",
            "--secret",
            "s",
        ];
        if let Some(dir) = data_dir {
            args.extend(["--data-dir", dir]);
        }
        let Command::Node(node) = Cli::try_parse_from(args).unwrap().command else {
            panic!()
        };
        node.queue
    }

    #[test]
    fn a_data_dir_given_is_the_nodes_own() {
        let name: SlimName = "acme/otel/p1".parse().unwrap();
        let dir = queue(Some("/var/lib/x")).state_dir(&name, false).unwrap();
        assert_eq!(dir, PathBuf::from("/var/lib/x"));
    }

    #[test]
    fn a_spool_without_a_directory_lives_in_the_data_dir() {
        let Command::Node(node) = Cli::try_parse_from([
            "slim-node",
            "node",
            "--role",
            "participant",
            "--name",
            "a/b/c",
            "--secret",
            "s",
            "--spool",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        let spool = node.queue.spool_config(Path::new("/var/lib/x")).unwrap();
        assert_eq!(spool.dir, PathBuf::from("/var/lib/x/spool"));
        let given = queue(None);
        assert!(
            given.spool_config(Path::new("/v")).is_none(),
            "no spool unless asked"
        );
    }

    #[test]
    fn nodes_sharing_a_data_dir_get_a_directory_per_name() {
        let name: SlimName = "acme/otel/p1".parse().unwrap();
        let dir = queue(Some("/var/lib/x")).state_dir(&name, true).unwrap();
        assert_eq!(dir, PathBuf::from("/var/lib/x/acme/otel/p1"));
    }

    #[test]
    fn invites_repeat() {
        let cli = Cli::try_parse_from([
            "slim-node",
            "node",
            "--role",
            "moderator",
            "--name",
            "a/b/m",
            "--secret",
            "s",
            "--channel",
            "a/b/ch",
            "--invite",
            "a/b/p1",
            "--invite",
            "a/b/p2",
        ])
        .unwrap();
        let Command::Node(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.invite.len(), 2);
        assert_eq!(args.sinks.sink.len(), 1);
        assert_eq!(args.sinks.sink[0].kind.name, "stdout");
    }
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
    /// Items of the last DURATION (`30s`, `15m`, `2h`, `7d`); the default when --start is not given.
    #[arg(long, env = "SLIM_NODE_SINCE", value_name = "DURATION", default_value = "15m", value_parser = parse_duration, conflicts_with = "start")]
    pub since: std::time::Duration,
    /// Items from this time on (inclusive): RFC 3339 (`2026-11-27T10:00:00Z`) or Unix nanoseconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub start: Option<u64>,
    /// Items before this time (exclusive): RFC 3339 or Unix nanoseconds. Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub end: Option<u64>,
    /// Items per page (1 to 10000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub limit: u32,
    /// Keep polling for what arrives later (every --poll-interval) until interrupted.
    #[arg(long, conflicts_with = "end")]
    pub follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub poll_interval: f64,
}

/// `slim-node fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The signal: traces, metrics or logs.
    #[arg(long, value_parser = parse_signal)]
    pub signal: otlp::Signal,
    #[command(flatten)]
    pub range: RangeArgs,
}

/// `slim-node replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only this signal (traces, metrics or logs); default: all three.
    #[arg(long, value_parser = parse_signal)]
    pub signal: Option<otlp::Signal>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Where to send: an OTLP endpoint as in OTEL_EXPORTER_OTLP_ENDPOINT (`/v1/traces` etc.
    /// appended for HTTP), e.g. http://collector:4318. Default: the OTEL_EXPORTER_OTLP_*
    /// variables (endpoint, protocol, headers, compression, certificates), else
    /// http://localhost:4318.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30s, 15m or 2h: {e}"))
}

fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be longer than zero")),
        d => Ok(d),
    }
}

fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(nanos) = s.parse::<u64>() {
        return Ok(nanos);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("{s:?} is neither RFC 3339 (2026-11-27T10:00:00Z) nor Unix nanoseconds: {e}")
        })?;
    u64::try_from(t.unix_timestamp_nanos()).map_err(|_| format!("{s:?} is before 1970"))
}
