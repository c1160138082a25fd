//! slim-node: OpenTelemetry (OTLP) over an AGNTCY SLIM group channel.
//!
//! Receivers accept OTLP, `ingest` publishes it on the channel through the node's role
//! (the `slim-roles` crate), and the `pipeline` hands what other members publish to the
//! `sink`s, acknowledging it once every durable sink took it.
//!
//! # Layout
//! In the order data flows: `receiver` → `ingest` → (SLIM, `slim-roles`) → `pipeline`
//! → `sink`; beside them `history` (store, query, cursor, API, client), `net` (what every
//! server shares: HTTP server, TLS, auth, guard, answers, health) and `export` (the one
//! OTLP client), `telemetry` (the node's own metrics). `cli` (clap only) builds the plain
//! settings of `config`; `app` starts a node's parts from them; `cmd` runs each command.
//! docs/architecture.md has the picture.

pub(crate) mod app;
pub mod cli;
pub mod cmd;
pub(crate) mod config;
pub(crate) mod export;
pub mod history;
pub(crate) mod ingest;
pub mod log;
pub(crate) mod net;
pub(crate) mod pipeline;
pub(crate) mod receiver;
pub(crate) mod sink;
pub(crate) mod telemetry;
#[cfg(test)]
pub(crate) mod testdisk;
pub(crate) mod tools;

/// Locks `m`; a panic elsewhere while holding it leaves data that is still usable here.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
