//! `jsonl:PATH` sink: one JSON object per line, `{"signal":…,"from":…,"verified_sender":…,
//! "id":…,"time":…,"payload":<OTLP/JSON Export*ServiceRequest>}`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use super::kind::SinkKind;
use crate::pipeline::QueueKind;
use crate::pipeline::{Delivered, WriteSink};
use otlp::OtlpRequest;

/// `jsonl:PATH`.
pub static KIND: SinkKind = SinkKind {
    name: "jsonl",
    arg: Some(("PATH", true)),
    summary: "one JSON object per line, appended with one write each: `{\"signal\",\"from\",\"verified_sender\" (MLS, when on),\"id\",\"time\",\"payload\":<OTLP/JSON>}`; taken once written",
    durable: true,
    queue: QueueKind::Memory,
    options: &[],
    open: |spec, _| {
        let path = spec.arg.as_deref().unwrap_or_default();
        Ok(Box::new(JsonlSink::open(Path::new(path))?))
    },
};

impl crate::pipeline::Sink for JsonlSink {
    fn run(self: Box<Self>, input: crate::pipeline::SinkInput) -> crate::pipeline::SinkFuture {
        crate::pipeline::run_blocking(*self, input)
    }
}

/// Appends one line per message with a single write, so lines never interleave.
pub struct JsonlSink {
    out: File,
    path: PathBuf,
    line: Vec<u8>,
    /// The file's length after its last whole line: a write that fails (a full disk) is cut
    /// back to it, so its retry does not leave a torn line before the whole one.
    whole: u64,
    /// A failed write could not be cut back yet: it is, before the next write.
    torn: bool,
    /// Whether `path` is a regular file (not a pipe or a device, which cannot be cut).
    regular: bool,
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
        let meta = file.metadata()?;
        let mut sink = JsonlSink {
            whole: meta.len(),
            out: file,
            path: path.to_path_buf(),
            line: Vec::new(),
            torn: false,
            regular: meta.is_file(),
        };
        // A torn last line left by a crash is cut, as after a failed write.
        if let Some(whole) = sink
            .regular
            .then(|| last_line_end(path))
            .transpose()?
            .flatten()
        {
            if whole < sink.whole {
                sink.whole = whole;
                sink.torn = true;
                sink.cut()?;
            }
        }
        Ok(sink)
    }

    /// Cuts the file back to its last whole line.
    fn cut(&mut self) -> io::Result<()> {
        if self.torn {
            self.out.set_len(self.whole).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cutting a torn line off {} (at {} bytes): {e}",
                        self.path.display(),
                        self.whole
                    ),
                )
            })?;
            self.torn = false;
        }
        Ok(())
    }
}

/// Where the last whole line of `path` ends (`None` when it is empty or ends with one).
fn last_line_end(path: &Path) -> io::Result<Option<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    // Looks back in blocks for the last newline: only the tail is read, however big the file.
    let mut end = len;
    let mut block = vec![0u8; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let buf = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if end == len && buf.last() == Some(&b'\n') {
            return Ok(None);
        }
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(start + i as u64 + 1));
        }
        end = start;
    }
    Ok((len > 0).then_some(0))
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
        self.cut()?;
        match self.out.write_all(&self.line) {
            Ok(()) => {
                self.whole += self.line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Part of the line may be in the file: cut it now if the disk lets us (it
                // usually does: shrinking needs no space), else before the next write.
                self.torn = self.regular;
                let cut = self
                    .cut()
                    .err()
                    .map(|c| format!("; {c}"))
                    .unwrap_or_default();
                Err(io::Error::new(
                    e.kind(),
                    format!("writing to {}: {e}{cut}", self.path.display()),
                ))
            }
        }
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

    fn big(id: usize) -> Delivered {
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{id} {}"}}}}]}}]}}]}}"#,
            "x".repeat(3000)
        );
        Delivered {
            received_at: time::OffsetDateTime::UNIX_EPOCH,
            from: "o/n/a".into(),
            verified_sender: None,
            message_id: Some(format!("m{id}")),
            payload: otlp::Encoded::from_request(
                json::from_json(Signal::Logs, body.as_bytes()).unwrap(),
            ),
        }
    }

    fn ids(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "no torn line");
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
            .collect()
    }

    #[test]
    fn a_write_failing_on_a_full_disk_leaves_no_torn_line_and_its_retry_writes_it_once() {
        let Some(disk) = crate::testdisk::SmallDisk::mount(32) else {
            return;
        };
        let path = disk.path().join("out.jsonl");
        let mut sink = JsonlSink::open(&path).unwrap();
        let mut n = 0;
        let failed = loop {
            match sink.write(&big(n)) {
                Ok(()) => n += 1,
                Err(err) => break err,
            }
            assert!(n < 100, "the disk never filled");
        };
        assert_eq!(failed.kind(), io::ErrorKind::StorageFull, "{failed}");
        assert_eq!(
            ids(&path).len(),
            n,
            "the lines written whole, and nothing of the failed one"
        );
        assert!(sink.write(&big(n)).is_err(), "still full");
        disk.resize(1024);
        sink.write(&big(n)).unwrap();
        sink.write(&big(n + 1)).unwrap();
        let expected: Vec<String> = (0..n + 2).map(|i| format!("\"m{i}\"")).collect();
        assert_eq!(ids(&path), expected, "every message once, in order");
    }

    #[test]
    fn a_torn_last_line_left_by_a_crash_is_cut_when_the_file_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, b"{\"id\":\"a\"}\n{\"id\":\"b").unwrap();
        let mut sink = JsonlSink::open(&path).unwrap();
        sink.write(&big(1)).unwrap();
        assert_eq!(ids(&path), ["\"a\"", "\"m1\""]);
    }
}
