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

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::sink::kind::{OptionSpec, SinkKind, SinkSpec};

mod dir;
mod upload;
use crate::pipeline::{Item, QueueKind};
use crate::pipeline::{Sink, SinkFuture, SinkInput};
use dir::{closed_files, recover, PART};
use otlp::Signal;
use upload::{Upload, UploadSettings};

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
    OptionSpec {
        key: "endpoint",
        value: "URL",
        default: "AWS_ENDPOINT_URL, else AWS S3",
        help: "an S3-compatible server (path-style requests; `http://` allowed)",
        repeats: false,
    },
    OptionSpec {
        key: "region",
        value: "REGION",
        default: "AWS_REGION, else us-east-1",
        help: "the bucket's region",
        repeats: false,
    },
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

/// One signal's open file.
struct Open {
    /// The final name (without `.part`).
    name: String,
    file: File,
    lines: u64,
    bytes: u64,
    opened: Instant,
}

/// What `/health` shows per signal.
#[derive(Debug, Clone, Default, Serialize)]
struct SignalStats {
    /// Lines in the open file.
    open_lines: u64,
    /// The open file's name, if one is open.
    open_file: Option<String>,
    /// Files closed so far (this run).
    closed: u64,
}

/// What `/health` shows of the sink.
#[derive(Debug, Clone, Default, Serialize)]
struct Detail {
    traces: SignalStats,
    metrics: SignalStats,
    logs: SignalStats,
    /// Closed files removed by retention.
    removed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<serde_json::Value>,
}

impl Detail {
    fn of(&mut self, signal: Signal) -> &mut SignalStats {
        match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        }
    }
}

struct Writer {
    dir: PathBuf,
    rotation: Rotation,
    retention: Retention,
    sync: bool,
    open: [Option<Open>; 3],
    detail: Detail,
    /// Told when a file closed (the uploader looks at once).
    closed: Option<Arc<tokio::sync::Notify>>,
    /// A file closed since retention was last applied.
    closed_since: bool,
    /// Per signal, the time stamp and counter of the last file opened: names are never
    /// reused within a second, even once retention removed the file that had one.
    last_opened: [(String, u32); 3],
}

fn index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
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

impl Writer {
    fn work(
        &mut self,
        runtime: &tokio::runtime::Handle,
        mut input: SinkInput,
        upload: Option<&Upload>,
    ) {
        match recover(&self.dir) {
            Ok(0) => {}
            Ok(n) => info!(sink = %input.name(), files = n, dir = %self.dir.display(),
                "closed the files an earlier run left open"),
            Err(err) => input.failed(&format!("recovering open files: {err}")),
        }
        self.apply_retention(&input);
        if let Some(closed) = &self.closed {
            closed.notify_one();
        }
        loop {
            self.report(&input, upload);
            let wait = self.next_deadline();
            let Some(first) = runtime.block_on(input.next_within(wait)) else {
                if input.is_stopping() {
                    break;
                }
                self.rotate_due(&input);
                continue;
            };
            let mut batch = vec![first];
            while batch.len() < 512 {
                match runtime.block_on(input.next_within(Duration::ZERO)) {
                    Some(item) => batch.push(item),
                    None => break,
                }
            }
            if !self.write_or_settle(runtime, &input, &batch) {
                break;
            }
            self.rotate_due(&input);
        }
        // Closed on the way out: complete files become visible (and uploadable).
        for i in 0..3 {
            self.close(i, &input);
        }
        self.report(&input, upload);
    }

    /// Writes `batch` and acknowledges it. When a write fails (a full disk), the lines written
    /// whole are kept and acknowledged once synced, the torn one is cut (as after a crash), and
    /// the rest is given back to be written from there after a pause: nothing is written
    /// twice. Returns `false` once the node stops.
    fn write_or_settle(
        &mut self,
        runtime: &tokio::runtime::Handle,
        input: &SinkInput,
        batch: &[Item],
    ) -> bool {
        let (whole, err) = match self.write(batch) {
            Ok(()) => {
                input.delivered(batch);
                return true;
            }
            Err(failed) => failed,
        };
        let error = format!("writing to {}: {err}", self.dir.display());
        // The lines written whole are synced by the recovery; until it works they are neither
        // acknowledged nor written again.
        loop {
            match self.abandon_open_files() {
                Ok(()) => break,
                Err(recovering) => {
                    input.cannot_write(&format!(
                        "{error}; then recovering the open files: {recovering}"
                    ));
                    if !pause(runtime, input) {
                        return false;
                    }
                }
            }
        }
        input.delivered(&batch[..whole]);
        if whole == batch.len() {
            // Only the sync failed, and the recovery synced every line.
            return true;
        }
        input.cannot_write(&error);
        // The rest comes again, in order.
        input.give_back();
        pause(runtime, input)
    }

    /// How long until an open file is due to close.
    fn next_deadline(&self) -> Duration {
        self.open
            .iter()
            .flatten()
            .map(|o| {
                (o.opened + self.rotation.flush_interval).saturating_duration_since(Instant::now())
            })
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1))
    }

    /// Writes every item's line, then syncs the files written to. On failure, says how many
    /// items at the front of `batch` have their line written whole (in an open or a closed
    /// file; synced only if the files are synced after).
    fn write(&mut self, batch: &[Item]) -> Result<(), (usize, io::Error)> {
        let mut whole = 0;
        let result = self.write_lines(batch, &mut whole);
        result.map_err(|e| (whole, e))
    }

    fn write_lines(&mut self, batch: &[Item], whole: &mut usize) -> io::Result<()> {
        let mut touched = [false; 3];
        let mut line = Vec::new();
        for item in batch {
            let signal = item.delivered.payload.signal();
            let i = index(signal);
            line.clear();
            serde_json::to_writer(&mut line, item.delivered.payload.request())?;
            line.push(b'\n');
            if self.open[i].is_none() {
                self.open[i] = Some(self.open_file(signal)?);
            }
            let open = self.open[i].as_mut().expect("opened above");
            open.file.write_all(&line)?;
            *whole += 1;
            open.lines += 1;
            open.bytes += line.len() as u64;
            touched[i] = true;
            if open.lines >= self.rotation.max_lines || open.bytes >= self.rotation.max_bytes {
                self.finish(i)?;
                touched[i] = false;
            }
        }
        if self.sync {
            for (i, open) in self.open.iter().enumerate() {
                if let (true, Some(open)) = (touched[i], open) {
                    open.file.sync_data()?;
                }
            }
        }
        for (i, signal) in Signal::ALL.into_iter().enumerate() {
            let lines = self.open[i].as_ref().map_or(0, |o| o.lines);
            let name = self.open[i].as_ref().map(|o| o.name.clone());
            let stats = self.detail.of(signal);
            stats.open_lines = lines;
            stats.open_file = name;
        }
        Ok(())
    }

    /// A new file for `signal`, named for now (with a counter when the name is taken).
    fn open_file(&mut self, signal: Signal) -> io::Result<Open> {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let taken = |name: &str| {
            self.dir.join(name).exists()
                || self.dir.join(format!("{name}{PART}")).exists()
                || self.dir.join("uploaded").join(name).exists()
        };
        // `_NNNN` sorts after `.`, so names sort in the order the files were opened.
        let name_for = |n: u32| match n {
            1 => format!("{stamp}.{signal}.log"),
            n => format!("{stamp}_{n:04}.{signal}.log"),
        };
        let last = &self.last_opened[index(signal)];
        let mut n = if last.0 == stamp { last.1 + 1 } else { 1 };
        while taken(&name_for(n)) {
            n += 1;
        }
        let name = name_for(n);
        self.last_opened[index(signal)] = (stamp, n);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.dir.join(format!("{name}{PART}")))?;
        Ok(Open {
            name,
            file,
            lines: 0,
            bytes: 0,
            opened: Instant::now(),
        })
    }

    /// Closes file `i`: synced, renamed to its final name, the directory synced.
    fn finish(&mut self, i: usize) -> io::Result<()> {
        let Some(open) = self.open[i].take() else {
            return Ok(());
        };
        open.file.sync_all()?;
        drop(open.file);
        let part = self.dir.join(format!("{}{PART}", open.name));
        std::fs::rename(&part, self.dir.join(&open.name))?;
        File::open(&self.dir)?.sync_all()?;
        self.closed_since = true;
        let stats = self.detail.of(Signal::ALL[i]);
        stats.closed += 1;
        stats.open_lines = 0;
        stats.open_file = None;
        if let Some(closed) = &self.closed {
            closed.notify_one();
        }
        Ok(())
    }

    fn close(&mut self, i: usize, input: &SinkInput) {
        if let Err(err) = self.finish(i) {
            input.failed(&format!("closing a file in {}: {err}", self.dir.display()));
            // Its `.part` is closed by the recovery (now, or at the next start).
            if let Err(err) = self.abandon_open_files() {
                input.failed(&format!("recovering open files: {err}"));
            }
        }
    }

    /// Closes the files whose time is up, then applies retention if any file closed.
    fn rotate_due(&mut self, input: &SinkInput) {
        for i in 0..3 {
            if self.open[i]
                .as_ref()
                .is_some_and(|o| o.opened.elapsed() >= self.rotation.flush_interval)
            {
                self.close(i, input);
            }
        }
        if std::mem::take(&mut self.closed_since) {
            self.apply_retention(input);
        }
    }

    /// After a write failed: drop the open files' handles; their `.part` files are recovered
    /// as after a crash (torn line cut, synced, closed), so the items given back start clean
    /// files. Once this worked, every line written whole is synced in a closed file.
    fn abandon_open_files(&mut self) -> io::Result<()> {
        for open in self.open.iter_mut() {
            *open = None;
        }
        for signal in Signal::ALL {
            let stats = self.detail.of(signal);
            stats.open_lines = 0;
            stats.open_file = None;
        }
        let closed = recover(&self.dir)?;
        if closed > 0 {
            self.closed_since = true;
            if let Some(notify) = &self.closed {
                notify.notify_one();
            }
        }
        Ok(())
    }

    /// Removes the oldest closed files beyond `max-files` / `max-total-bytes`.
    fn apply_retention(&mut self, input: &SinkInput) {
        if self.retention.max_files.is_none() && self.retention.max_total_bytes.is_none() {
            return;
        }
        let mut files = match closed_files(&self.dir) {
            Ok(files) => files,
            Err(err) => return input.failed(&format!("listing {}: {err}", self.dir.display())),
        };
        let mut total: u64 = files.iter().map(|(_, len)| len).sum();
        let mut removed = 0;
        while !files.is_empty()
            && (self
                .retention
                .max_files
                .is_some_and(|max| files.len() > max)
                || self
                    .retention
                    .max_total_bytes
                    .is_some_and(|max| total > max))
        {
            let (path, len) = files.remove(0);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    removed += 1;
                    warn!(sink = %input.name(), file = %path.display(), "retention removed a closed file");
                }
                Err(err) => {
                    input.failed(&format!("removing {}: {err}", path.display()));
                    break;
                }
            }
        }
        self.detail.removed += removed;
    }

    fn report(&self, input: &SinkInput, upload: Option<&Upload>) {
        let mut detail = self.detail.clone();
        detail.upload = upload.map(Upload::report);
        input.set_detail(serde_json::to_value(&detail).unwrap_or_default());
    }
}

/// Waits a second before the next attempt; `false` once the node stops (what was not
/// acknowledged comes again after the restart).
fn pause(runtime: &tokio::runtime::Handle, input: &SinkInput) -> bool {
    runtime.block_on(async {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => true,
            _ = input.stopping() => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
        use crate::pipeline::queue::{Queue, QueueSettings, WhenFull};
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
