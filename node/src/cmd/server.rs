//! `slim-node server`: a SLIM data-plane server.

use anyhow::Context;
use slim_roles::SlimServer;

use crate::cli::ServerArgs;

/// Serves until SIGINT/SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal();
    let mut server = SlimServer::start(
        &args.server.endpoint,
        args.tls.settings().as_ref(),
        args.server.keepalive(),
    )
    .await
    .with_context(|| format!("cannot start the SLIM server on {}", args.server.endpoint))?;
    server.link_peers(args.peers.peers());
    shutdown.cancelled().await;
    // The server drops its clients' connections: nothing SLIM says about that is news.
    crate::log::stopping();
    server.shutdown().await?;
    Ok(())
}
