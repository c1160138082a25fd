//! OTLP payloads: signals, decoding and encoding (protobuf and OTLP/JSON), compression,
//! and the format of messages on the SLIM channel. Pure functions, no I/O.

pub mod compression;
pub mod encoded;
pub mod items;
pub mod json;
mod proto;
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

    /// The examples/ directory.
    fn examples_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
    }

    /// The request a JSON sample in examples/ holds.
    fn example_request(signal: Signal) -> OtlpRequest {
        let json = std::fs::read(examples_dir().join(format!("{signal}.json"))).unwrap();
        json::from_json(signal, &json).unwrap()
    }

    /// The sample protobuf files in examples/ hold exactly what their JSON twins say. After
    /// changing a JSON sample, rewrite them with
    /// `cargo test -p slim-node-otlp -- --ignored write_examples_protobuf_files`.
    #[test]
    fn examples_protobuf_files_match_their_json() {
        for signal in Signal::ALL {
            let pb_path = examples_dir().join(format!("{signal}.pb"));
            let pb = std::fs::read(&pb_path).unwrap();
            assert_eq!(
                OtlpRequest::decode_protobuf(signal, &pb).unwrap(),
                example_request(signal),
                "{} is out of date with {signal}.json: rewrite it with \
                 `cargo test -p slim-node-otlp -- --ignored write_examples_protobuf_files`",
                pb_path.display()
            );
        }
    }

    /// Not a check: writes examples/*.pb from their JSON twins, when run explicitly.
    #[test]
    #[ignore = "writes examples/*.pb; run it explicitly after changing a JSON sample"]
    fn write_examples_protobuf_files() {
        for signal in Signal::ALL {
            let pb_path = examples_dir().join(format!("{signal}.pb"));
            std::fs::write(&pb_path, example_request(signal).to_protobuf()).unwrap();
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
