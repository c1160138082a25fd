//! OTLP receivers: thin transports in front of [`crate::ingest`].

pub mod grpc;
pub mod http;
pub mod server;
pub mod tls;
