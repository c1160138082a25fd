//! Sinks: where a node puts what other members publish on the channel.
//!
//! A sink owns its loop: it is started with its [`crate::pipeline::SinkInput`] (its queue, the
//! node's stop signal, its counters) and runs until the input ends; it depends on the
//! pipeline's input API only. A blocking sink (stdout, jsonl, bench) implements
//! [`crate::pipeline::WriteSink`] and runs behind [`crate::pipeline::run_blocking`]. Every sink
//! kind declares itself once ([`kind::SinkKind`]: name, argument, options with defaults and
//! help) and is listed in [`registry::KINDS`]; the `--sink` parser, `--help` and the sinks
//! table all come from there. Adding a sink is one module and one line there.

pub mod archive;
pub mod bench;
pub mod bucket;
pub mod files;
pub mod jsonl;
pub mod kind;
pub mod otlp;
pub mod registry;
pub mod stdout;
pub mod store;
pub mod ws;

pub use kind::SinkSpec;
pub use registry::open_all;
