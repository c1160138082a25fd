//! slim-node: OpenTelemetry (OTLP) over an AGNTCY SLIM group channel.
//!
//! Receivers accept OTLP, [`ingest`] publishes it on the channel through the node's role
//! (the `slim-roles` crate), and the [`pipeline`] hands what other members publish to the
//! [`sink`]s, acknowledging it once every durable sink took it.

pub mod app;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod exporter;
pub mod grpc_raw;
pub mod history;
pub mod ingest;
pub mod loadgen;
pub mod measure;
pub mod net;
pub mod pipeline;
pub mod receiver;
pub mod sink;
pub mod slim_ceiling;
#[cfg(test)]
pub(crate) mod testdisk;

/// Locks `m`; a panic elsewhere while holding it leaves data that is still usable here.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
