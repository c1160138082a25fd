//! The subcommands, wired from the parts of the library.

pub mod fetch;
pub mod loadgen;
pub mod node;
pub mod query;
pub mod replay;
pub mod server;
pub mod slim_bench;
pub mod trust_list;
pub mod up;

use tokio_util::sync::CancellationToken;
use tracing::info;

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => info!("SIGINT received, shutting down"),
                        _ = term.recv() => info!("SIGTERM received, shutting down"),
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        fire.cancel();
    });
    token
}
