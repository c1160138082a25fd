//! Measuring tools: OTLP load against a receiver (`loadgen`, with the payloads it sends), the
//! latency and rate figures they report (`measure`), and the raw SLIM ceiling between two apps
//! (`slim_ceiling`). The `bench` sink and the `loadgen`/`slim-bench` commands use them.

pub mod loadgen;
pub mod measure;
pub mod slim_ceiling;
