//! `slim-node node`: one node with its role, sinks and optional OTLP receivers.

use crate::app::RunningNode;
use crate::config::NodeSettings;

/// Runs until SIGINT/SIGTERM.
pub async fn run(settings: NodeSettings) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal();
    crate::telemetry::configure(settings.telemetry.clone())?;
    let node = RunningNode::start(&settings).await?;
    shutdown.cancelled().await;
    node.stop().await;
    Ok(())
}
