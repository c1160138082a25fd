//! `slim-node replay`: send stored items to an OTLP endpoint.

use clap::Args;

use super::*;

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
