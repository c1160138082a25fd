//! `jsonl:PATH` sink: one JSON object per line, `{"signal":…,"from":…,"verified_sender":…,
//! "id":…,"time":…,"payload":<OTLP/JSON Export*ServiceRequest>}`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use super::registry::SinkKind;
use super::{Delivered, WriteSink};
use crate::pipeline::queue::QueueKind;
use otlp::OtlpRequest;

/// `jsonl:PATH`.
pub static KIND: SinkKind = SinkKind {
    name: "jsonl",
    arg: Some(("PATH", true)),
    summary: "one JSON object per line, appended with one write each: `{\"signal\",\"from\",\"verified_sender\" (MLS, when on),\"id\",\"time\",\"payload\":<OTLP/JSON>}`; taken once written",
    durable: true,
    queue: QueueKind::Memory,
    options: &[],
    open: |spec| {
        let path = spec.arg.as_deref().unwrap_or_default();
        Ok(Box::new(JsonlSink::open(Path::new(path))?))
    },
};

impl super::Sink for JsonlSink {
    fn run(self: Box<Self>, input: super::SinkInput) -> super::SinkFuture {
        super::blocking::run(*self, input)
    }
}

/// Appends one line per message with a single write, so lines never interleave.
pub struct JsonlSink {
    out: File,
    path: PathBuf,
    line: Vec<u8>,
}

#[derive(Serialize)]
struct Line<'a> {
    signal: &'static str,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_sender: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    time: String,
    payload: &'a OtlpRequest,
}

impl JsonlSink {
    /// Opens `path` for appending, creating it (and its directory) if needed.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
        Ok(JsonlSink {
            out: file,
            path: path.to_path_buf(),
            line: Vec::new(),
        })
    }
}

impl WriteSink for JsonlSink {
    fn write(&mut self, d: &Delivered) -> io::Result<()> {
        let record = Line {
            signal: d.payload.signal().as_str(),
            from: &d.from,
            verified_sender: d.verified_sender.as_deref(),
            id: d.message_id.as_deref(),
            time: d.received_at.format(&Rfc3339).unwrap_or_default(),
            payload: d.payload.request(),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &record)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(|e| {
            io::Error::new(e.kind(), format!("writing to {}: {e}", self.path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::{json, Signal};

    #[test]
    fn writes_one_object_per_line_with_otlp_json_payload() {
        let dir = std::env::temp_dir().join(format!("slim-node-jsonl-{}", uuid::Uuid::new_v4()));
        let path = dir.join("out.jsonl");
        let mut sink = JsonlSink::open(&path).unwrap();
        let request = json::from_json(
            Signal::Logs,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"7","body":{"stringValue":"hi"}}]}]}]}"#,
        )
        .unwrap();
        for id in ["a", "b"] {
            sink.write(&Delivered {
                received_at: time::OffsetDateTime::UNIX_EPOCH,
                from: "o/n/a".into(),
                verified_sender: None,
                message_id: Some(id.into()),
                payload: otlp::Encoded::from_request(request.clone()),
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["signal"], "logs");
        assert_eq!(lines[0]["from"], "o/n/a");
        assert_eq!(lines[1]["id"], "b");
        assert_eq!(
            lines[0]["payload"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["timeUnixNano"],
            "7"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
