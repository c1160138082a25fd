//! OTLP payloads: signals, decoding and encoding (protobuf and OTLP/JSON), compression,
//! and the format of messages on the SLIM channel. Pure functions, no I/O.

pub mod compression;
pub mod encoded;
pub mod items;
pub mod json;
pub mod request;
pub mod response;
pub mod scan;
pub mod split;
pub mod status;
pub mod validate;
pub mod wire;

pub use encoded::Encoded;
pub use request::{OtlpRequest, Summary};

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The three OTLP signals slim-node carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// All signals, in a fixed order.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// `traces`, `metrics` or `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The middle of its request type's name: `Export{name}ServiceRequest`.
    pub(crate) fn request_name(self) -> &'static str {
        match self {
            Signal::Traces => "Trace",
            Signal::Metrics => "Metrics",
            Signal::Logs => "Logs",
        }
    }

    /// What one item of this signal is called, plural.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "data points",
            Signal::Logs => "log records",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "traces" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            "logs" => Ok(Signal::Logs),
            other => Err(CodecError::UnknownSignal(other.to_string())),
        }
    }
}

/// Why a payload could not be read. Messages are for the sender's developers.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// Not a valid protobuf encoding of the request type.
    #[error("the body is not a valid protobuf Export{0}ServiceRequest: {1}")]
    Protobuf(&'static str, String),
    /// Not valid OTLP/JSON.
    #[error("the body is not valid OTLP/JSON for {0}: {1}")]
    Json(Signal, String),
    /// The compressed body is corrupt or truncated.
    #[error("the {encoding} body cannot be decompressed: {reason}")]
    Decompress {
        /// The encoding that failed.
        encoding: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A content encoding we do not read.
    #[error("Content-Encoding {0:?} is not supported; use gzip, deflate, zstd or identity")]
    UnsupportedEncoding(String),
    /// The body is larger than allowed (after decompression).
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A signal name we do not know.
    #[error("unknown OTLP signal {0:?} (expected traces, metrics or logs)")]
    UnknownSignal(String),
    /// An item kept apart from its request ([`items`]) cannot be put back together.
    #[error("a stored item is damaged: {0}")]
    Damaged(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The sample protobuf files in examples/ hold exactly what their JSON twins say.
    /// `SLIM_NODE_WRITE_EXAMPLES=1 cargo test -p slim-node-otlp examples_` rewrites them.
    #[test]
    fn examples_protobuf_files_match_their_json() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for signal in Signal::ALL {
            let json = std::fs::read(dir.join(format!("{signal}.json"))).unwrap();
            let request = json::from_json(signal, &json).unwrap();
            let pb_path = dir.join(format!("{signal}.pb"));
            if std::env::var_os("SLIM_NODE_WRITE_EXAMPLES").is_some() {
                std::fs::write(&pb_path, request.to_protobuf()).unwrap();
            }
            let pb = std::fs::read(&pb_path).unwrap();
            assert_eq!(
                OtlpRequest::decode_protobuf(signal, &pb).unwrap(),
                request,
                "{signal}"
            );
        }
    }

    #[test]
    fn signal_names_round_trip() {
        for s in Signal::ALL {
            assert_eq!(s.as_str().parse::<Signal>().unwrap(), s);
        }
        assert!("profiles".parse::<Signal>().is_err());
    }
}
