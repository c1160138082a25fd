//! `slim-node node`: one node with its role, sinks and optional OTLP receivers.

use crate::app::RunningNode;
use crate::config::NodeSettings;

/// Runs until SIGINT/SIGTERM.
pub async fn run(settings: NodeSettings) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal();
    crate::telemetry::configure(settings.telemetry.clone())?;
    // Connecting may take long (a server that is down is tried again and again): a signal
    // meanwhile stops it at once. Nothing was accepted yet, so nothing is lost.
    let node = tokio::select! {
        started = RunningNode::start(&settings) => started?,
        _ = shutdown.cancelled() => {
            tracing::info!("stopped before the node was up");
            return Ok(());
        }
    };
    shutdown.cancelled().await;
    node.stop().await;
    Ok(())
}
