//! `bench` sink: counts what arrives and measures end-to-end latency from the send time
//! `slim-node loadgen` stamps on each request. Prints a summary when the node stops; with
//! `bench:PATH` it also keeps the summary in PATH as JSON, rewritten whenever the channel
//! went quiet, so a script can read it while the node runs.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::kind::SinkKind;
use crate::pipeline::QueueKind;
use crate::pipeline::{Delivered, WriteSink};

/// `bench[:PATH]`.
pub static KIND: SinkKind = SinkKind {
    name: "bench",
    arg: Some(("PATH", false)),
    summary: "counts messages and items and measures end-to-end latency from the send time `slim-node loadgen` stamps; prints a summary at exit and keeps it in PATH as JSON",
    durable: false,
    queue: QueueKind::Memory,
    options: &[],
    open: |spec, _| Ok(Box::new(BenchSink::new(spec.arg.as_deref().map(Path::new)))),
};

impl crate::pipeline::Sink for BenchSink {
    fn run(self: Box<Self>, input: crate::pipeline::SinkInput) -> crate::pipeline::SinkFuture {
        crate::pipeline::run_blocking(*self, input)
    }
}
use crate::tools::loadgen::payload::send_time;
use crate::tools::measure::{per_second, Latencies, LatencySummary};

/// Counts messages and items and their latency.
#[derive(Default)]
pub struct BenchSink {
    path: Option<PathBuf>,
    messages: u64,
    items: u64,
    /// Messages without a loadgen send time (not in the latency figures).
    unstamped: u64,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
    latencies: Latencies,
    /// Something arrived since the summary file was last written.
    changed: bool,
}

/// The summary, as printed and written.
#[derive(Debug, Serialize)]
pub struct BenchSummary {
    /// Messages received.
    pub messages: u64,
    /// Spans, data points or log records in them.
    pub items: u64,
    /// Messages without a send time.
    pub unstamped: u64,
    /// From the first arrival to the last.
    pub seconds: f64,
    /// Messages per second over that time.
    pub messages_per_s: f64,
    /// Items per second over that time.
    pub items_per_s: f64,
    /// Send time to arrival at this node.
    pub latency_ms: LatencySummary,
}

impl BenchSink {
    /// A sink that prints its summary at the end and, with `path`, keeps it in that file.
    pub fn new(path: Option<&Path>) -> Self {
        BenchSink {
            path: path.map(Path::to_path_buf),
            ..Default::default()
        }
    }

    /// What arrived so far.
    pub fn summary(&self) -> BenchSummary {
        let span = match (self.first, self.last) {
            (Some(first), Some(last)) => Duration::try_from(last - first).unwrap_or(Duration::ZERO),
            _ => Duration::ZERO,
        };
        BenchSummary {
            messages: self.messages,
            items: self.items,
            unstamped: self.unstamped,
            seconds: span.as_secs_f64(),
            messages_per_s: per_second(self.messages, span),
            items_per_s: per_second(self.items, span),
            latency_ms: self.latencies.summary(),
        }
    }

    fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // Written aside and renamed, so a reader never sees half a file.
        let aside = path.with_extension("tmp");
        let json = serde_json::to_vec(&self.summary())?;
        std::fs::write(&aside, json)?;
        std::fs::rename(&aside, path)?;
        self.changed = false;
        Ok(())
    }
}

impl WriteSink for BenchSink {
    fn write(&mut self, d: &Delivered) -> io::Result<()> {
        self.messages += 1;
        self.items += d.payload.items() as u64;
        self.first.get_or_insert(d.received_at);
        self.last = Some(d.received_at);
        match send_time(d.payload.bytes()) {
            Some(sent) => {
                let nanos = d.received_at.unix_timestamp_nanos() - i128::from(sent);
                self.latencies
                    .record(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)));
            }
            None => self.unstamped += 1,
        }
        self.changed = true;
        Ok(())
    }

    fn idle(&mut self) -> io::Result<()> {
        if self.changed {
            self.save()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.save()?;
        let s = self.summary();
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "bench: {} messages, {} items in {:.2} s ({:.1} msg/s, {:.1} items/s), {} without a send time\nbench: end-to-end latency {}",
            s.messages, s.items, s.seconds, s.messages_per_s, s.items_per_s, s.unstamped, s.latency_ms
        )?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::loadgen::payload;
    use otlp::Signal;

    fn delivered(sent_ms_ago: u64, items: usize) -> Delivered {
        let now = OffsetDateTime::now_utc();
        let sent = u64::try_from(now.unix_timestamp_nanos()).unwrap() - sent_ms_ago * 1_000_000;
        Delivered {
            received_at: now,
            from: "a/b/c".into(),
            verified_sender: None,
            message_id: None,
            payload: otlp::Encoded::from_request(payload::request(
                Signal::Traces,
                items,
                sent,
                [1; 16],
            )),
        }
    }

    #[test]
    fn counts_items_and_measures_latency_from_the_send_time() {
        let mut sink = BenchSink::new(None);
        sink.write(&delivered(5, 10)).unwrap();
        sink.write(&delivered(5, 10)).unwrap();
        let s = sink.summary();
        assert_eq!((s.messages, s.items, s.unstamped), (2, 20, 0));
        assert!((s.latency_ms.p50 - 5.0).abs() < 0.1, "{:?}", s.latency_ms);
    }

    #[test]
    fn the_summary_file_is_rewritten_when_the_channel_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.json");
        let mut sink = BenchSink::new(Some(&path));
        sink.write(&delivered(1, 1)).unwrap();
        sink.idle().unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["messages"], 1);
        assert_eq!(json["items"], 1);
    }

    #[test]
    fn requests_without_a_send_time_are_counted_apart() {
        let mut sink = BenchSink::new(None);
        let mut d = delivered(1, 1);
        d.payload = otlp::Encoded::from_request(
            otlp::json::from_json(Signal::Logs, br#"{"resourceLogs":[{}]}"#).unwrap(),
        );
        sink.write(&d).unwrap();
        assert_eq!(sink.summary().unstamped, 1);
        assert_eq!(sink.summary().latency_ms.p99, 0.0);
    }
}
