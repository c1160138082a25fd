//! `slim-node up`: a SLIM server, a receiving moderator and a printing participant in one
//! process.

use anyhow::Context;
use slim_roles::SlimServer;

use crate::app::RunningNode;
use crate::config::UpSettings;

/// Runs until SIGINT/SIGTERM.
pub async fn run(settings: UpSettings) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal();
    let server = SlimServer::start(&settings.endpoint, None, settings.keepalive)
        .await
        .with_context(|| format!("cannot start the SLIM server on {}", settings.endpoint))?;
    let printer = RunningNode::start(&settings.printer).await?;
    let receiver = RunningNode::start(&settings.receiver).await?;
    let receivers = &settings.receiver.receivers;
    eprintln!(
        "slim-node up: send OTLP/HTTP to http://{http}/v1/{{traces,metrics,logs}} or OTLP/gRPC to {grpc}; status at http://{http}/health",
        http = receivers.otlp_http.as_deref().unwrap_or_default(),
        grpc = receivers.otlp_grpc.as_deref().unwrap_or_default(),
    );
    shutdown.cancelled().await;
    receiver.stop().await;
    printer.stop().await;
    server.shutdown().await?;
    Ok(())
}
