//! Every default of the command line, as a typed constant: clap shows it in `--help` and falls
//! back to it, and the settings model starts from it, so each is written once.

/// `--log`.
pub const LOG: &str = "info";
/// `--endpoint` of `server` and `up`: the SLIM server's address.
pub const SLIM_ENDPOINT: &str = "127.0.0.1:46357";
/// `--keepalive-interval`: how often the SLIM server pings each connection.
pub const KEEPALIVE_INTERVAL: &str = "2s";
/// `--keepalive-timeout`: how long a ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: &str = "3s";
/// `--slim`: the SLIM server's URL.
pub const SLIM_URL: &str = slim_roles::DEFAULT_SLIM_URL;
/// How often the node's metrics are pushed to each `--telemetry` destination.
pub const TELEMETRY_INTERVAL: &str = "10s";
/// `--connect-attempts`.
pub const CONNECT_ATTEMPTS: u32 = 10;
/// `--max-in-flight`.
pub const MAX_IN_FLIGHT: u32 = 4;
/// `--queue-max-bytes`: 128 MiB.
pub const QUEUE_MAX_BYTES: usize = 128 * 1024 * 1024;
/// `--queue-max-messages`.
pub const QUEUE_MAX_MESSAGES: usize = 10_000;
/// `--queue-max-delay`.
pub const QUEUE_MAX_DELAY: &str = "80ms";
/// `--drain-timeout`, in seconds.
pub const DRAIN_TIMEOUT_SECS: u64 = 10;
/// `--spool-fsync`.
pub const SPOOL_FSYNC: &str = "always";
/// `--max-body-size`: 64 MiB, as the OTLP specification recommends.
pub const MAX_BODY_SIZE: usize = 64 * 1024 * 1024;
/// `--max-connections`.
pub const MAX_CONNECTIONS: usize = 4096;
/// `--header-read-timeout`, in seconds.
pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// `--body-read-timeout`, in seconds.
pub const BODY_READ_TIMEOUT_SECS: u64 = 30;
/// `--max-concurrent-requests`.
pub const MAX_CONCURRENT_REQUESTS: usize = 1024;
/// `--sink`.
pub const SINK: &str = "stdout";
/// `up --otlp-http`.
pub const UP_OTLP_HTTP: &str = "127.0.0.1:4318";
/// `up --otlp-grpc`.
pub const UP_OTLP_GRPC: &str = "127.0.0.1:4317";
/// `fetch`/`replay --since`.
pub const SINCE: &str = "15m";
/// `fetch`/`replay --limit`: items per page.
pub const PAGE_LIMIT: u32 = 1000;
/// `fetch`/`replay --poll-interval`, in seconds.
pub const POLL_INTERVAL_SECS: f64 = 2.0;
/// `loadgen --protocol`.
pub const LOADGEN_PROTOCOL: &str = "http/protobuf";
/// `loadgen --signal`.
pub const LOADGEN_SIGNAL: &str = "traces";
/// `loadgen --items`.
pub const LOADGEN_ITEMS: u32 = 1;
/// `loadgen --clients`.
pub const LOADGEN_CLIENTS: u32 = 1;
/// `loadgen --duration`, in seconds.
pub const LOADGEN_DURATION_SECS: f64 = 10.0;
/// `slim-bench --size`.
pub const BENCH_SIZE: usize = 1024;
/// `slim-bench --messages`.
pub const BENCH_MESSAGES: u64 = 20_000;
/// `slim-bench --window`.
pub const BENCH_WINDOW: usize = 256;
/// `--query-api-rate`: fetches per second per key.
pub const QUERY_API_RATE: u32 = 50;
