//! OTLP receivers: thin transports in front of [`crate::ingest`].

pub mod admin;
pub mod grpc;
pub mod http;
