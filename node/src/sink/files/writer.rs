//! The files sink's writer: one open file per signal, rolled by lines, bytes and age, synced
//! before a message counts as taken; closed files are handed to retention and the uploader.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::dir::{closed_files, recover, PART};
use super::upload::Upload;
use crate::pipeline::SinkInput;
use crate::pipeline::{FailReason, Item};
use otlp::Signal;

use super::{Retention, Rotation};

/// One signal's open file.
pub(super) struct Open {
    /// The final name (without `.part`).
    name: String,
    file: File,
    lines: u64,
    bytes: u64,
    opened: Instant,
}

/// What `/health` shows per signal.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct SignalStats {
    /// Lines in the open file.
    open_lines: u64,
    /// The open file's name, if one is open.
    open_file: Option<String>,
    /// Files closed so far (this run).
    closed: u64,
}

/// What `/health` shows of the sink.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Detail {
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

pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) rotation: Rotation,
    pub(super) retention: Retention,
    pub(super) sync: bool,
    pub(super) open: [Option<Open>; 3],
    pub(super) detail: Detail,
    /// Told when a file closed (the uploader looks at once).
    pub(super) closed: Option<Arc<tokio::sync::Notify>>,
    /// A file closed since retention was last applied.
    pub(super) closed_since: bool,
    /// Per signal, the time stamp and counter of the last file opened: names are never
    /// reused within a second, even once retention removed the file that had one.
    pub(super) last_opened: [(String, u32); 3],
}

pub(super) fn index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl Writer {
    pub(super) fn work(
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
    pub(super) fn write_or_settle(
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
        input.give_back(&batch[whole..], FailReason::WriteFailed);
        pause(runtime, input)
    }

    /// How long until an open file is due to close.
    pub(super) fn next_deadline(&self) -> Duration {
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
    pub(super) fn write(&mut self, batch: &[Item]) -> Result<(), (usize, io::Error)> {
        let mut whole = 0;
        let result = self.write_lines(batch, &mut whole);
        result.map_err(|e| (whole, e))
    }

    pub(super) fn write_lines(&mut self, batch: &[Item], whole: &mut usize) -> io::Result<()> {
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
    pub(super) fn open_file(&mut self, signal: Signal) -> io::Result<Open> {
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
    pub(super) fn finish(&mut self, i: usize) -> io::Result<()> {
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

    pub(super) fn close(&mut self, i: usize, input: &SinkInput) {
        if let Err(err) = self.finish(i) {
            input.failed(&format!("closing a file in {}: {err}", self.dir.display()));
            // Its `.part` is closed by the recovery (now, or at the next start).
            if let Err(err) = self.abandon_open_files() {
                input.failed(&format!("recovering open files: {err}"));
            }
        }
    }

    /// Closes the files whose time is up, then applies retention if any file closed.
    pub(super) fn rotate_due(&mut self, input: &SinkInput) {
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
    pub(super) fn abandon_open_files(&mut self) -> io::Result<()> {
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
    pub(super) fn apply_retention(&mut self, input: &SinkInput) {
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

    pub(super) fn report(&self, input: &SinkInput, upload: Option<&Upload>) {
        let mut detail = self.detail.clone();
        detail.upload = upload.map(Upload::report);
        input.set_detail(serde_json::to_value(&detail).unwrap_or_default());
    }
}

/// Waits a second before the next attempt; `false` once the node stops (what was not
/// acknowledged comes again after the restart).
pub(super) fn pause(runtime: &tokio::runtime::Handle, input: &SinkInput) -> bool {
    runtime.block_on(async {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => true,
            _ = input.stopping() => false,
        }
    })
}
