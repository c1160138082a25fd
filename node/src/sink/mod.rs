//! Sinks: where a node puts what other members publish on the channel.

pub mod bench;
pub mod jsonl;
pub mod stdout;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use time::OffsetDateTime;

use otlp::Encoded;

/// One message received from the channel.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// When this node received it.
    pub received_at: OffsetDateTime,
    /// The sender's SLIM name.
    pub from: String,
    /// The sender's message id, when it gave one.
    pub message_id: Option<String>,
    /// The OTLP request: checked, decoded when a sink first asks for it.
    pub payload: Encoded,
}

/// A destination for delivered messages.
pub trait Sink: Send {
    /// Writes one message. An error is logged by the caller; the sink stays in use.
    fn write(&mut self, delivered: &Delivered) -> io::Result<()>;

    /// For a file-like sink, where to keep what overflows its buffer until it catches up;
    /// other sinks drop the overflow (counted and logged).
    fn overflow_path(&self) -> Option<PathBuf> {
        None
    }

    /// Called when no message came for a moment (a chance to flush or save state).
    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Called once when the node stops, after the last message.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `--sink` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// `stdout`: one readable line per message.
    Stdout,
    /// `jsonl:PATH`: one JSON object per line, appended to PATH.
    Jsonl(PathBuf),
    /// `bench` or `bench:PATH`: counts and end-to-end latency of loadgen traffic; the
    /// summary is printed at exit and, with PATH, kept there as JSON.
    Bench(Option<PathBuf>),
}

impl SinkSpec {
    /// Opens the sink.
    pub fn open(&self) -> io::Result<Box<dyn Sink>> {
        Ok(match self {
            SinkSpec::Stdout => Box::new(stdout::StdoutSink),
            SinkSpec::Jsonl(path) => Box::new(jsonl::JsonlSink::open(path)?),
            SinkSpec::Bench(path) => Box::new(bench::BenchSink::new(path.as_deref())),
        })
    }
}

impl FromStr for SinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "stdout" => Ok(SinkSpec::Stdout),
            None if s == "bench" => Ok(SinkSpec::Bench(None)),
            Some(("bench", path)) if !path.is_empty() => {
                Ok(SinkSpec::Bench(Some(PathBuf::from(path))))
            }
            Some(("jsonl", path)) if !path.is_empty() => Ok(SinkSpec::Jsonl(PathBuf::from(path))),
            _ => Err(format!(
                "unknown sink {s:?}: expected `stdout`, `jsonl:PATH`, `bench` or `bench:PATH`"
            )),
        }
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkSpec::Stdout => f.write_str("stdout"),
            SinkSpec::Jsonl(p) => write!(f, "jsonl:{}", p.display()),
            SinkSpec::Bench(None) => f.write_str("bench"),
            SinkSpec::Bench(Some(p)) => write!(f, "bench:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_specs() {
        assert_eq!("stdout".parse::<SinkSpec>().unwrap(), SinkSpec::Stdout);
        assert_eq!(
            "jsonl:/tmp/a b.jsonl".parse::<SinkSpec>().unwrap(),
            SinkSpec::Jsonl("/tmp/a b.jsonl".into())
        );
        assert!("jsonl:".parse::<SinkSpec>().is_err());
        assert_eq!("bench".parse::<SinkSpec>().unwrap(), SinkSpec::Bench(None));
        assert_eq!(
            "bench:/tmp/b.json".parse::<SinkSpec>().unwrap(),
            SinkSpec::Bench(Some("/tmp/b.json".into()))
        );
        assert!("kafka:x"
            .parse::<SinkSpec>()
            .unwrap_err()
            .contains("jsonl:PATH"));
    }
}
