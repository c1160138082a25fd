//! `slim-node fetch`: read stored items from a node's query API.

use clap::Args;

use super::*;

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
