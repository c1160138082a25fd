//! `files:DIR` sink: one open file per signal, `YYYYMMDD-HHMMSS.<signal>.log` (UTC, the time
//! it was opened; `_NNNN` after the time when several open in one second, so that names sort
//! in the order the files were opened), one OTLP/JSON export
//! request per line as the OTLP specification renders it, nothing added. A file is closed and
//! the next one opened when it holds `max-lines`, reaches `max-bytes`, or has been open for
//! `flush-interval`. An open file is written as `NAME.part` and only renamed to its final
//! name once closed (synced first), so a reader never sees half a file. Closed files are kept
//! up to `max-files` / `max-total-bytes` (oldest removed first, counted), and with
//! `upload=s3://BUCKET/PREFIX` shipped to object storage (`upload`).
//!
//! A message is taken (and acknowledged) once its line is written and, with `sync=always`
//! (the default), synced. After a crash, a torn last line of a `.part` file is cut (its
//! message was never acknowledged: it comes again) and the file is closed.

use std::path::PathBuf;
use std::time::Duration;

use crate::sink::kind::{OptionSpec, SinkKind, SinkSpec};

mod dir;
mod upload;
mod writer;
use crate::pipeline::QueueKind;
use crate::pipeline::{Sink, SinkFuture, SinkInput};
use upload::{Upload, UploadSettings};
use writer::{Detail, Writer};

/// `files:DIR`.
pub static KIND: SinkKind = SinkKind {
    name: "files",
    arg: Some(("DIR", true)),
    summary: "rolling per-signal files `YYYYMMDD-HHMMSS.<signal>.log` (`YYYYMMDD-HHMMSS_0002.<signal>.log` when several open in one second) in DIR, one OTLP/JSON export request per line (written as `.part` until closed); optionally uploaded to S3-compatible object storage; taken once written and synced",
    durable: true,
    queue: QueueKind::Memory,
    options: OPTIONS,
    open: |spec, _| Ok(Box::new(FilesSink::new(spec)?)),
};

static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "max-lines",
        value: "N",
        default: "1000",
        help: "close a file once it holds this many lines",
        repeats: false,
    },
    OptionSpec {
        key: "max-bytes",
        value: "BYTES",
        default: "67108864",
        help: "close a file once it reaches this size",
        repeats: false,
    },
    OptionSpec {
        key: "flush-interval",
        value: "SECS",
        default: "60",
        help: "close a file once it has been open this long",
        repeats: false,
    },
    OptionSpec {
        key: "max-files",
        value: "N",
        default: "unlimited",
        help: "closed files kept locally at most; the oldest are removed first (counted, logged)",
        repeats: false,
    },
    OptionSpec {
        key: "max-total-bytes",
        value: "BYTES",
        default: "unlimited",
        help: "bytes of closed files kept locally at most; the oldest are removed first",
        repeats: false,
    },
    OptionSpec {
        key: "sync",
        value: "always|never",
        default: "always",
        help: "`always`: lines are synced to disk before their messages are acknowledged; `never`: the OS decides (a power loss can lose the last lines)",
        repeats: false,
    },
    OptionSpec {
        key: "upload",
        value: "s3://BUCKET/PREFIX",
        default: "none",
        help: "upload closed files to `PREFIX/<signal>/YYYY/MM/DD/<file>`; endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (or the options below)",
        repeats: false,
    },
    crate::sink::bucket::ENDPOINT_OPTION,
    crate::sink::bucket::REGION_OPTION,
    OptionSpec {
        key: "gzip",
        value: "true|false",
        default: "false",
        help: "upload gzip'd, as `.log.gz` with `Content-Encoding: gzip`",
        repeats: false,
    },
    OptionSpec {
        key: "keep-uploaded",
        value: "true|false",
        default: "false",
        help: "keep uploaded files (in DIR/uploaded/) instead of deleting them once the store confirmed them",
        repeats: false,
    },
];

/// When files are closed.
#[derive(Debug, Clone, Copy)]
struct Rotation {
    max_lines: u64,
    max_bytes: u64,
    flush_interval: Duration,
}

/// What is kept locally.
#[derive(Debug, Clone, Copy)]
struct Retention {
    max_files: Option<usize>,
    max_total_bytes: Option<u64>,
}

/// The sink.
pub struct FilesSink {
    dir: PathBuf,
    rotation: Rotation,
    retention: Retention,
    sync: bool,
    upload: Option<UploadSettings>,
}

impl FilesSink {
    /// The sink `spec` describes; the directory is created if needed.
    pub fn new(spec: &SinkSpec) -> anyhow::Result<FilesSink> {
        let dir = PathBuf::from(spec.arg.as_deref().unwrap_or_default());
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("sink files: cannot create {}: {e}", dir.display()))?;
        let limit = |key: &str| -> anyhow::Result<Option<u64>> {
            Ok(match spec.text(key) {
                "unlimited" => None,
                _ => Some(spec.value(key)?),
            })
        };
        let sync = match spec.text("sync") {
            "always" => true,
            "never" => false,
            other => anyhow::bail!("sink files: sync={other:?}: expected always or never"),
        };
        let upload = match spec.option("upload") {
            None => None,
            Some(url) => Some(UploadSettings::new(
                url,
                spec.option("endpoint"),
                spec.option("region"),
                spec.value("gzip")?,
                spec.value("keep-uploaded")?,
            )?),
        };
        Ok(FilesSink {
            dir,
            rotation: Rotation {
                max_lines: spec.value::<u64>("max-lines")?.max(1),
                max_bytes: spec.value::<u64>("max-bytes")?.max(1),
                flush_interval: Duration::from_secs_f64(
                    spec.value::<f64>("flush-interval")?.max(0.1),
                ),
            },
            retention: Retention {
                max_files: limit("max-files")?.map(|n| n as usize),
                max_total_bytes: limit("max-total-bytes")?,
            },
            sync,
            upload,
        })
    }
}

impl Sink for FilesSink {
    fn run(self: Box<Self>, input: SinkInput) -> SinkFuture {
        Box::pin(run(*self, input))
    }
}

async fn run(sink: FilesSink, input: SinkInput) {
    let runtime = tokio::runtime::Handle::current();
    let (upload, closed) = match sink.upload.clone() {
        Some(settings) => match Upload::start(settings, sink.dir.clone(), input.name().to_string())
        {
            Ok(upload) => {
                let closed = upload.notify();
                (Some(upload), Some(closed))
            }
            Err(err) => {
                input.failed(&format!("{err:#}"));
                (None, None)
            }
        },
        None => (None, None),
    };
    let name = input.name().to_string();
    let worker = tokio::task::spawn_blocking(move || {
        let mut writer = Writer {
            dir: sink.dir,
            rotation: sink.rotation,
            retention: sink.retention,
            sync: sink.sync,
            open: [None, None, None],
            detail: Detail::default(),
            closed,
            closed_since: false,
            last_opened: Default::default(),
        };
        writer.work(&runtime, input, upload.as_ref());
        if let Some(upload) = upload {
            runtime.block_on(upload.stop());
        }
    });
    if worker.await.is_err() {
        tracing::error!(sink = %name, "the files sink's thread panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Item;
    use dir::{closed_files, recover, PART};
    use otlp::Signal;
    use std::io;
    use std::path::Path;
    use std::sync::Arc;
    use time::OffsetDateTime;

    #[test]
    fn a_torn_last_line_is_cut_and_the_file_closed() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("20261127-010203.logs.log.part");
        std::fs::write(&part, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        std::fs::write(
            dir.path().join("20261127-010204.traces.log.part"),
            b"{\"tor",
        )
        .unwrap();
        assert_eq!(recover(dir.path()).unwrap(), 1);
        let closed = std::fs::read(dir.path().join("20261127-010203.logs.log")).unwrap();
        assert_eq!(closed, b"{\"a\":1}\n{\"b\":2}\n");
        assert!(!part.exists());
        assert!(
            !dir.path().join("20261127-010204.traces.log").exists(),
            "a file with nothing whole in it is removed"
        );
    }

    #[test]
    fn closed_files_come_oldest_first_and_skip_open_ones() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "20261127-010205.logs.log",
            "20261127-010203.traces.log",
            "20261127-010209.logs.log.part",
        ] {
            std::fs::write(dir.path().join(name), b"x\n").unwrap();
        }
        let names: Vec<String> = closed_files(dir.path())
            .unwrap()
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["20261127-010203.traces.log", "20261127-010205.logs.log"]
        );
    }

    fn writer(dir: &Path, max_lines: u64) -> Writer {
        Writer {
            dir: dir.to_path_buf(),
            rotation: Rotation {
                max_lines,
                max_bytes: 1 << 30,
                flush_interval: Duration::from_secs(600),
            },
            retention: Retention {
                max_files: None,
                max_total_bytes: None,
            },
            sync: true,
            open: [None, None, None],
            detail: Detail::default(),
            closed: None,
            closed_since: false,
            last_opened: Default::default(),
        }
    }

    /// `n` log requests of ~3 KB, the record body `line I …`, as the sink gets them.
    fn items(n: usize) -> Vec<Item> {
        use crate::pipeline::{Queue, QueueSettings, WhenFull};
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(
            QueueSettings {
                kind: QueueKind::Memory,
                max_bytes: 1 << 30,
                max_messages: 1 << 20,
                when_full: WhenFull::Block,
            },
            dir.path(),
        )
        .unwrap();
        let delivered = (0..n).map(|i| {
            let body = format!(
                r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"line {i} {}"}}}}]}}]}}]}}"#,
                "x".repeat(3000)
            );
            let request = otlp::json::from_json(Signal::Logs, body.as_bytes()).unwrap();
            let d = crate::pipeline::Delivered {
                received_at: OffsetDateTime::now_utc(),
                from: "a/b/c".into(),
                verified_sender: None,
                message_id: Some(format!("id-{i}")),
                payload: otlp::Encoded::from_request(request),
            };
            (Arc::new(d), None)
        });
        queue.push(delivered.collect()).unwrap();
        let mut unreadable = 0;
        std::iter::from_fn(|| queue.take(&mut unreadable).unwrap()).collect()
    }

    /// The record numbers of every line in the files of `dir`, in the order written; fails on
    /// a `.part` file or a torn line.
    fn lines_in(dir: &Path) -> Vec<usize> {
        assert!(
            std::fs::read_dir(dir).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(PART)),
            "every file closed"
        );
        let mut out = Vec::new();
        for (path, _) in closed_files(dir).unwrap() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.ends_with('\n'), "{}: a torn line", path.display());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let body = v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]
                    ["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_string();
                out.push(body.split(' ').nth(1).unwrap().parse().unwrap());
            }
        }
        out
    }

    #[test]
    fn a_batch_failing_on_a_full_disk_keeps_its_whole_lines_and_cuts_the_torn_one() {
        let Some(disk) = crate::testdisk::SmallDisk::mount(64) else {
            return;
        };
        let mut w = writer(disk.path(), 5);
        let batch = items(40);
        let (whole, err) = w.write(&batch).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
        assert!(whole > 5 && whole < 40, "{whole} lines fit");
        w.abandon_open_files().unwrap();
        assert_eq!(lines_in(disk.path()), (0..whole).collect::<Vec<_>>());
    }

    #[test]
    fn after_a_full_disk_the_retry_from_the_failed_line_writes_each_line_once() {
        let Some(disk) = crate::testdisk::SmallDisk::mount(64) else {
            return;
        };
        let mut w = writer(disk.path(), 5);
        let batch = items(40);
        let (mut whole, _) = w.write(&batch).unwrap_err();
        w.abandon_open_files().unwrap();
        // Still full: the retry writes nothing more, and nothing twice.
        if let Err((more, _)) = w.write(&batch[whole..]) {
            whole += more;
            w.abandon_open_files().unwrap();
        }
        disk.resize(1024);
        w.write(&batch[whole..]).unwrap();
        for i in 0..3 {
            w.finish(i).unwrap();
        }
        assert_eq!(lines_in(disk.path()), (0..40).collect::<Vec<_>>());
    }
}
