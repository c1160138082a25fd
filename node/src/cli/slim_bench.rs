//! `slim-node slim-bench`: the raw SLIM ceiling between two apps.

use clap::Args;

use super::*;
use crate::config::defaults;

/// `slim-node slim-bench`.
#[derive(Debug, Args)]
pub struct SlimBenchArgs {
    /// SLIM server URL.
    #[arg(long, env = "SLIM_NODE_SLIM", default_value = defaults::SLIM_URL, value_name = "URL")]
    pub slim: String,
    #[command(flatten)]
    pub slim_tls: SlimTlsArgs,
    /// Payload bytes per message.
    #[arg(long, default_value_t = defaults::BENCH_SIZE, value_name = "BYTES")]
    pub size: usize,
    /// Messages to publish.
    #[arg(long, default_value_t = defaults::BENCH_MESSAGES, value_name = "N")]
    pub messages: u64,
    /// Publishes awaiting SLIM's completion at once (slim-node's own window is 256).
    #[arg(long, default_value_t = defaults::BENCH_WINDOW, value_name = "N")]
    pub window: usize,
    /// Turn MLS off (slim-node's default is on).
    #[arg(long)]
    pub no_mls: bool,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
