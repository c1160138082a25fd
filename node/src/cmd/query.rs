//! `slim-node query`: serves the query API over the segments every node sealed under a
//! bucket prefix, and writes nothing: no store sink runs, so nothing is sealed, uploaded or
//! deleted (the writers apply retention to their own segments).

use anyhow::Context;
use tracing::{info, warn};

use crate::cli::QueryArgs;
use crate::history::store::Stores;

/// Runs until SIGINT/SIGTERM.
pub async fn run(args: QueryArgs, on_command_line: &[String]) -> anyhow::Result<()> {
    let settings = args.settings(on_command_line)?;
    for writing in ["max-age", "max-bytes", "seal-after"] {
        if settings.sink.option(writing).is_some() {
            warn!(
                option = writing,
                "ignored: slim-node query writes and deletes nothing (the writing nodes apply it)"
            );
        }
    }
    let dir = std::path::PathBuf::from(settings.sink.arg.as_deref().unwrap_or_default());
    let stores = Stores::default();
    let api = crate::app::query_api(
        &settings.api,
        std::slice::from_ref(&settings.sink),
        &stores,
        &dir,
    )?;
    let tls = match &settings.tls {
        Some(files) => {
            Some(crate::net::tls::acceptor(files).context("cannot set up TLS for the query API")?)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&settings.api.listen)
        .await
        .with_context(|| format!("cannot listen for the query API on {}", settings.api.listen))?;
    info!(addr = ?listener.local_addr().ok(), keys = api.keys.is_some(), "query API listening (read-only: serving the bucket's segments)");
    let stop = super::shutdown_signal();
    crate::history::api::serve(listener, api, tls, stop).await?;
    info!("query API stopped");
    Ok(())
}
