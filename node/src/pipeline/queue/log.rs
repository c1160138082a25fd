//! A disk queue's files: each batch appended to a segment file and synced once, every record
//! with its checksum; what the sink is done with kept as ranges of sequence numbers, written on
//! every change over the older of two small files; a segment deleted once everything in it is
//! removed, but one, kept while the node runs and written over as the next segment (a new file
//! each time cost the file system a block allocation, its pages, and their release; with the
//! batch written from where its payloads are, ~7 % of a forwarding participant).
//!
//! Why a log and not a B-tree (redb, before): a queue appends at one end and removes at the
//! other, and redb's copy-on-write pages cost about a third of a forwarding node's CPU for it
//! (BENCHMARKS.md, profile notes 16 and 17).
//!
//! Crash safety: a batch counts as taken only once its bytes and (for a new segment) the
//! directory entry are synced; a batch without its marked last record (torn) is not taken,
//! and a damaged record ends what is read of its segment. The removal files are not synced: a
//! removal lost in a crash only means the sink gets that message again. They are overwritten
//! in place, each write numbered, the newer and the older in turn: a write torn by a power loss
//! leaves the other, one change older (creating a file and renaming it over the last one cost
//! every export a new inode and, on ext4, a flush of its data). A write that fails (a full
//! disk) is cut off again, its numbers count as removed, and the next batch starts a new
//! segment, so nothing after a failed write is ever behind it. A reused segment holds, past what
//! was written to it, records of its earlier use, all numbered below its own: reading stops at
//! the first of them, and the file is cut to its end once full, at a clean stop, and (as the
//! last segment, after a crash) at the next start, so that no segment is ever made the spare
//! with records in it numbered as if they were new.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::QueueError;

/// A segment is closed once it holds this much; it is deleted when all of it is removed.
const SEGMENT_BYTES: u64 = 32 << 20;
/// Before each record: its length (u32 LE), CRC-32 of sequence number and record (u32 LE),
/// sequence number (u64 LE).
const HEAD: usize = 16;
/// Larger lengths are damage (a message is far smaller).
const MAX_RECORD: usize = 1 << 30;
/// Set in the length of a batch's last record: a batch cut short by a crash ends without it,
/// and none of it is taken.
const LAST: u32 = 1 << 31;
/// The two removal files, written in turn; the valid one written last counts.
const REMOVED: [&str; 2] = ["removed", "removed.next"];
/// Held (locked) while a node uses the directory.
const LOCK: &str = "lock";
/// A segment everything in which was removed, kept to be written over as the next one: the
/// file system then neither allocates nor frees its blocks and pages each time.
const SPARE: &str = "spare";

/// Where one record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// The segment: its first sequence number.
    segment: u64,
    /// Where its head starts.
    offset: u64,
    /// The record's length (after the head).
    len: u32,
}

/// A record found when the log was opened: its place and what precedes its payload (the
/// payload stays on disk until the sink asks).
pub(super) struct Found {
    pub(super) seq: u64,
    pub(super) at: Location,
    /// The record up to its payload ([`super::record`]: header length and header).
    pub(super) head: Vec<u8>,
    /// Bytes of the payload.
    pub(super) payload: usize,
}

impl Found {
    pub(super) fn new(seq: u64, at: Location, mut record: Vec<u8>) -> Found {
        // A record whose header does not fit is kept whole, for the reader to report.
        let head = super::record::payload_start(&record).unwrap_or(record.len());
        let payload = record.len() - head;
        record.truncate(head);
        record.shrink_to_fit();
        Found {
            seq,
            at,
            head: record,
            payload,
        }
    }
}

/// A disk queue's directory of segments.
pub(super) struct Log {
    dir: PathBuf,
    /// A segment is closed once it holds this much ([`SEGMENT_BYTES`]).
    segment_bytes: u64,
    /// Only one node writes a directory.
    _lock: File,
    /// Only the pipeline appends; held while a batch is written and synced.
    writer: Mutex<Writer>,
    /// What readers and removals share with the writer (never held across a sync).
    shared: Mutex<Shared>,
    /// Held while a removal file is written: one at a time, newest last.
    persist: Mutex<Removals>,
}

/// The removal files, open for writing.
struct Removals {
    files: [File; 2],
    /// The number of the last write: the next goes to the other file.
    written: u64,
}

struct Writer {
    /// The segment batches go to; `None` until the first batch, and after a failed write.
    active: Option<Active>,
    buf: Vec<u8>,
}

struct Active {
    first: u64,
    file: Arc<File>,
    end: u64,
}

struct Shared {
    segments: BTreeMap<u64, Arc<File>>,
    /// The segment being appended to: never deleted.
    active: Option<u64>,
    removed: Ranges,
    /// Every number below it was given out.
    next: u64,
    /// The file named [`SPARE`], if there is one.
    spare: Option<Arc<File>>,
}

impl Log {
    /// Opens (or creates) the log in `dir` and returns what it holds that is not removed, in
    /// order.
    pub(super) fn open(dir: &Path) -> Result<(Log, Vec<Found>), QueueError> {
        Log::open_with(dir, SEGMENT_BYTES)
    }

    /// [`Log::open`] with segments closed at `segment_bytes`.
    fn open_with(dir: &Path, segment_bytes: u64) -> Result<(Log, Vec<Found>), QueueError> {
        let err = |e: &dyn std::fmt::Display| QueueError {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        // The directory's own name survives a power loss only once its parent is synced.
        if let Some(parent) = dir.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| err(&e))?;
        }
        let lock = slim_roles::hold_lock_file(&dir.join(LOCK)).map_err(|e| err(&e))?;
        // A spare left by the last run is not reused: were the removal files lost, the next
        // number could fall below what it holds, and its old records would read as new.
        match std::fs::remove_file(dir.join(SPARE)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(err(&e)),
            _ => {}
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| err(&e))? {
            let entry = entry.map_err(|e| err(&e))?;
            let name = entry.file_name();
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            names.push(first);
        }
        names.sort_unstable();
        let (mut removed, mut next, written) = read_removed(dir);
        let open_removal = |name: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(name))
                .map_err(|e| err(&e))
        };
        let removals = Removals {
            files: [open_removal(REMOVED[0])?, open_removal(REMOVED[1])?],
            written,
        };
        let mut found = Vec::new();
        let mut segments = BTreeMap::new();
        // Numbers given out but on no segment (a batch cut short): from, up to the next one.
        let mut gaps: Vec<(u64, u64)> = Vec::new();
        let last = names.last().copied();
        for first in names {
            let path = segment_path(dir, first);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| err(&e))?;
            let end = scan(&file, first, &removed, &mut found).map_err(|e| err(&e))?;
            let len = file.metadata().map_err(|e| err(&e))?.len();
            if end.good < len {
                if Some(first) == last {
                    // A batch whose write was cut short (never taken), or what a reused file
                    // held before: cut off, so that a later reuse of the file finds nothing
                    // numbered as if it were new.
                    tracing::info!(path = %path.display(), bytes = len - end.good,
                        "the sink queue's last segment ends in a batch not written whole (a crash), or in what the file held before it was reused: not taken, cut off");
                    cut_at(&file, end.good).map_err(|e| err(&e))?;
                } else {
                    tracing::error!(path = %path.display(), bytes = len - end.good,
                        "the sink queue's segment is damaged from this point: what follows is left out");
                }
            }
            next = next.max(first).max(end.next);
            if let Some(gap) = gaps.last_mut() {
                *gap = (gap.0, first);
            }
            gaps.push((end.next, u64::MAX));
            segments.insert(first, Arc::new(file));
        }
        // What was given out and is on no segment counts as removed: never handed to a sink,
        // and no reason to keep a segment.
        for (a, b) in gaps {
            removed.insert(a, b.min(next));
        }
        let log = Log {
            dir: dir.to_path_buf(),
            segment_bytes,
            _lock: lock,
            writer: Mutex::new(Writer {
                active: None,
                buf: Vec::new(),
            }),
            shared: Mutex::new(Shared {
                segments,
                active: None,
                removed,
                next,
                spare: None,
            }),
            persist: Mutex::new(removals),
        };
        if let Err(e) = log.tidy() {
            // A full disk, say: the queue still opens (delivering frees space); the removals
            // are written with the next one.
            tracing::warn!(dir = %dir.display(), %e, "could not write the sink queue's removal file yet");
        }
        Ok((log, found))
    }

    fn error(&self, e: impl std::fmt::Display) -> QueueError {
        QueueError {
            path: self.dir.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The number the next batch starts at.
    pub(super) fn next(&self) -> u64 {
        crate::lock(&self.shared).next
    }

    /// Appends `n` records numbered from `first` and syncs them: once this returns they survive
    /// a crash. Record `i` is what `fill(i, buf)` appends to `buf` followed by the slice it
    /// returns (a payload, written from where it is rather than copied). When it fails, none
    /// of them is kept.
    pub(super) fn append<'p>(
        &self,
        first: u64,
        n: usize,
        mut fill: impl FnMut(usize, &mut Vec<u8>) -> Result<&'p [u8], String>,
    ) -> Result<Vec<Location>, QueueError> {
        let mut writer = crate::lock(&self.writer);
        let Writer { active, buf } = &mut *writer;
        buf.clear();
        // Each record's head (and what `fill` put before its tail) as a range of `buf`, and
        // its tail.
        let mut parts: Vec<(std::ops::Range<usize>, &'p [u8])> = Vec::with_capacity(n);
        // Numbers given out but not written count as removed (or their segment would stay).
        let unused = |message: String| {
            let mut shared = crate::lock(&self.shared);
            shared.next = shared.next.max(first + n as u64);
            shared.removed.insert(first, first + n as u64);
            self.error(message)
        };
        for i in 0..n {
            let at = buf.len();
            buf.extend_from_slice(&[0; HEAD]);
            let tail = fill(i, buf).map_err(&unused)?;
            let len = buf.len() - at - HEAD + tail.len();
            if len > MAX_RECORD {
                return Err(unused(format!("a message of {len} bytes is too large")));
            }
            let seq = (first + i as u64).to_le_bytes();
            let mut crc = crc32fast::Hasher::new();
            crc.update(&seq);
            crc.update(&buf[at + HEAD..]);
            crc.update(tail);
            let flag = if i + 1 == n { LAST } else { 0 };
            buf[at..at + 4].copy_from_slice(&(len as u32 | flag).to_le_bytes());
            buf[at + 4..at + 8].copy_from_slice(&crc.finalize().to_le_bytes());
            buf[at + 8..at + HEAD].copy_from_slice(&seq);
            parts.push((at..buf.len(), tail));
        }
        let mut slices: Vec<IoSlice> = Vec::with_capacity(2 * n);
        for (head, tail) in &parts {
            slices.push(IoSlice::new(&buf[head.clone()]));
            if !tail.is_empty() {
                slices.push(IoSlice::new(tail));
            }
        }
        match self.write(active, first, &mut slices) {
            Ok((segment, mut offset)) => {
                let mut shared = crate::lock(&self.shared);
                shared.next = shared.next.max(first + n as u64);
                Ok(parts
                    .into_iter()
                    .map(|(head, tail)| {
                        let len = (head.len() - HEAD + tail.len()) as u32;
                        let at = Location {
                            segment,
                            offset,
                            len,
                        };
                        offset += (HEAD + len as usize) as u64;
                        at
                    })
                    .collect())
            }
            // Never written: nothing to hand to the sink under these numbers.
            Err(e) => Err(unused(e.to_string())),
        }
    }

    /// Writes `slices` at the end of the active segment (a new one if there is none or it is
    /// full) and syncs it; returns the segment and where the write starts.
    fn write(
        &self,
        active: &mut Option<Active>,
        first: u64,
        slices: &mut [IoSlice],
    ) -> std::io::Result<(u64, u64)> {
        if active.as_ref().is_none_or(|a| a.end >= self.segment_bytes) {
            if let Some(full) = active.take() {
                // A reused file may hold more than was written to it this time: cut that off,
                // so that nothing but this segment's records is ever read from it.
                if let Err(e) = cut_at(&full.file, full.end) {
                    tracing::warn!(dir = %self.dir.display(), %e, "could not cut a full sink queue segment to its end");
                }
            }
            let path = segment_path(&self.dir, first);
            let file = {
                // Under the lock that `tidy` holds while it makes a segment the spare: the
                // file named `spare` is the one taken.
                let mut shared = crate::lock(&self.shared);
                let file = match shared.spare.take() {
                    // Written over, not emptied: what it held before has lower numbers than
                    // `first`, and reading stops there (see `scan`).
                    Some(spare) => match std::fs::rename(self.dir.join(SPARE), &path) {
                        Ok(()) => spare,
                        Err(e) => {
                            tracing::warn!(dir = %self.dir.display(), %e, "could not reuse the sink queue's spare segment");
                            new_segment(&path)?
                        }
                    },
                    None => new_segment(&path)?,
                };
                shared.segments.insert(first, file.clone());
                shared.active = Some(first);
                file
            };
            // The new name survives a crash only once the directory is synced.
            if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
                crate::lock(&self.shared).active = None;
                return Err(e);
            }
            *active = Some(Active {
                first,
                file,
                end: 0,
            });
        }
        let Some(a) = active.as_mut() else {
            return Err(std::io::Error::other("no segment to write to"));
        };
        let len: usize = slices.iter().map(|s| s.len()).sum();
        let written =
            write_all_vectored_at(&a.file, slices, a.end).and_then(|()| a.file.sync_data());
        match written {
            Ok(()) => {
                let at = a.end;
                a.end += len as u64;
                Ok((a.first, at))
            }
            Err(e) => {
                // Cut off what may have been written, and never append behind it again
                // (after a failed sync the file's state is unknown): the next batch starts
                // a new segment.
                let _ = a.file.set_len(a.end);
                *active = None;
                crate::lock(&self.shared).active = None;
                Err(e)
            }
        }
    }

    /// Reads the record `seq` at `at`: `Ok(None)` if it is damaged (logged).
    pub(super) fn read(&self, seq: u64, at: Location) -> Result<Option<Vec<u8>>, QueueError> {
        let Some(file) = crate::lock(&self.shared).segments.get(&at.segment).cloned() else {
            tracing::error!(dir = %self.dir.display(), seq, "a message's segment of the sink queue is gone");
            return Ok(None);
        };
        let mut bytes = vec![0; HEAD + at.len as usize];
        file.read_exact_at(&mut bytes, at.offset)
            .map_err(|e| self.error(e))?;
        match check(&bytes[..HEAD], &bytes[HEAD..]) {
            Some((s, _, _)) if s == seq => {
                bytes.drain(..HEAD);
                Ok(Some(bytes))
            }
            _ => {
                tracing::error!(dir = %self.dir.display(), seq, "a message in the sink queue is damaged");
                Ok(None)
            }
        }
    }

    /// Removes `a..b` (a batch no sink took, or numbers never used).
    pub(super) fn remove_range(&self, a: u64, b: u64) -> Result<(), QueueError> {
        crate::lock(&self.shared).removed.insert(a, b);
        self.tidy().map_err(|e| self.error(e))
    }

    /// Removes `seqs`: the sink is done with them, or they were never handed to it.
    pub(super) fn remove(&self, seqs: &[u64]) -> Result<(), QueueError> {
        if seqs.is_empty() {
            return Ok(());
        }
        {
            // Ranges merge what touches: a run of numbers becomes one range.
            let mut shared = crate::lock(&self.shared);
            for &seq in seqs {
                shared.removed.insert(seq, seq + 1);
            }
        }
        self.tidy().map_err(|e| self.error(e))
    }

    /// Deletes the segments (but the active one) everything of which is removed, forgets
    /// removals below what is left, and writes the removal file.
    fn tidy(&self) -> std::io::Result<()> {
        let mut persist = crate::lock(&self.persist);
        let mut shared = crate::lock(&self.shared);
        // Any segment, not only the oldest: one message held at the front (a sink retrying it)
        // must not keep every segment behind it on disk.
        let firsts: Vec<u64> = shared.segments.keys().copied().collect();
        for (i, &first) in firsts.iter().enumerate() {
            if shared.active == Some(first) {
                continue;
            }
            let end = firsts.get(i + 1).copied().unwrap_or(shared.next);
            if !shared.removed.covers(first, end) {
                continue;
            }
            let Some(file) = shared.segments.remove(&first) else {
                continue;
            };
            let path = segment_path(&self.dir, first);
            if shared.spare.is_none() {
                match std::fs::rename(&path, self.dir.join(SPARE)) {
                    Ok(()) => {
                        shared.spare = Some(file);
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(path = %path.display(), %e, "could not keep a sink queue segment as the spare; deleting it");
                    }
                }
            }
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %e, "could not delete a sink queue segment nothing in which is needed");
                }
            }
        }
        let floor = shared
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(shared.next);
        shared.removed.forget_below(floor);
        let written = persist.written + 1;
        let mut out = Vec::with_capacity(24 + 16 * shared.removed.0.len());
        out.extend_from_slice(&shared.next.to_le_bytes());
        out.extend_from_slice(&(shared.removed.0.len() as u32).to_le_bytes());
        for (a, b) in &shared.removed.0 {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
        out.extend_from_slice(&written.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        drop(shared);
        // Over the older file: a torn write leaves the newer one. What a shorter write leaves
        // after its end is not read (the length is in the head).
        persist.files[(written % 2) as usize].write_all_at(&out, 0)?;
        persist.written = written;
        Ok(())
    }
}

impl Drop for Log {
    /// A reused file being written may hold more than was written to it: cut that off at a
    /// clean stop, so that the next start finds the segment whole (after a crash, the start
    /// cuts it off).
    fn drop(&mut self) {
        let writer = crate::lock(&self.writer);
        if let Some(a) = &writer.active {
            let _ = cut_at(&a.file, a.end);
        }
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// Cuts `file` to `end` bytes, durably: what lay beyond is never read again.
fn cut_at(file: &File, end: u64) -> std::io::Result<()> {
    file.set_len(end)?;
    file.sync_data()
}

/// Creates the segment file `path`, empty.
fn new_segment(path: &Path) -> std::io::Result<Arc<File>> {
    // A file of this name holds nothing (it would hold `first` or later, and `first` is new):
    // one created just before a crash, or before a write that failed.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    Ok(Arc::new(file))
}

/// Writes all of `slices` into `file` from `offset` on (one `writev` for most batches).
fn write_all_vectored_at(
    file: &File,
    mut slices: &mut [IoSlice],
    offset: u64,
) -> std::io::Result<()> {
    // The position is only the writer's: readers read at offsets.
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the removal files say: removed ranges, the next number and the number of the write;
/// empty if both are missing or damaged (then the sink gets again what it had finished:
/// logged).
fn read_removed(dir: &Path) -> (Ranges, u64, u64) {
    let mut best: Option<(Ranges, u64, u64)> = None;
    let mut damaged = false;
    for name in REMOVED {
        let path = dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(path = %path.display(), %e, "a sink queue's removal file cannot be read");
                damaged = true;
                continue;
            }
        };
        if bytes.is_empty() {
            continue;
        }
        match parse_removed(&bytes) {
            // On a tie (two files of the earlier layout, unnumbered) the first counts: it was
            // the one renamed into place.
            Some(r) if best.as_ref().is_none_or(|b| r.2 > b.2) => best = Some(r),
            Some(_) => {}
            None => damaged = true,
        }
    }
    if damaged {
        tracing::warn!(dir = %dir.display(), found = best.is_some(),
            "a sink queue's removal file is damaged: what the sink finished after the other was written is handed to it again");
    }
    best.unwrap_or_default()
}

/// One removal file: the next number, the count of ranges, the ranges, the number of the write
/// (missing in the earlier layout: 0), then CRC-32 of all that; anything after is left over
/// from a longer write before.
fn parse_removed(bytes: &[u8]) -> Option<(Ranges, u64, u64)> {
    let u64_at = |i: usize| bytes.get(i..i + 8)?.try_into().ok().map(u64::from_le_bytes);
    let next = u64_at(0)?;
    let n = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    let ranges_end = n.checked_mul(16)?.checked_add(12)?;
    let crc_at = |end: usize| {
        bytes
            .get(end..end + 4)
            .map(|c| c == crc32fast::hash(&bytes[..end]).to_le_bytes())
    };
    let written = if crc_at(ranges_end + 8) == Some(true) {
        u64_at(ranges_end)?
    } else if bytes.len() == ranges_end + 4 && crc_at(ranges_end) == Some(true) {
        0
    } else {
        return None;
    };
    let mut ranges = Ranges::default();
    for i in 0..n {
        let at = 12 + 16 * i;
        ranges.insert(u64_at(at)?, u64_at(at + 8)?);
    }
    Some((ranges, next, written))
}

/// Where reading a segment stopped.
struct Scanned {
    /// Bytes up to the end of the last good record.
    good: u64,
    /// One past the last sequence number read.
    next: u64,
}

/// Reads the records of a segment, adding those not removed to `found`; stops at the first
/// one that is torn or damaged.
fn scan(
    file: &File,
    first: u64,
    removed: &Ranges,
    found: &mut Vec<Found>,
) -> std::io::Result<Scanned> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut done = Scanned {
        good: 0,
        next: first,
    };
    let mut head = [0u8; HEAD];
    // Records of the batch being read, taken once its last record is read.
    let mut batch = Vec::new();
    let (mut offset, mut last_seq) = (0u64, None);
    loop {
        if !read_full(&mut reader, &mut head)? {
            return Ok(done);
        }
        let len = (u32::from_le_bytes([head[0], head[1], head[2], head[3]]) & !LAST) as usize;
        if len > MAX_RECORD {
            return Ok(done);
        }
        let mut record = vec![0; len];
        if !read_full(&mut reader, &mut record)? {
            return Ok(done);
        }
        let Some((seq, _, end_of_batch)) = check(&head, &record) else {
            return Ok(done);
        };
        if seq < done.next || last_seq.is_some_and(|l| seq != l + 1) {
            return Ok(done);
        }
        let at = Location {
            segment: first,
            offset,
            len: len as u32,
        };
        offset += (HEAD + len) as u64;
        last_seq = Some(seq);
        if !removed.contains(seq) {
            batch.push(Found::new(seq, at, record));
        }
        if end_of_batch {
            found.append(&mut batch);
            done.good = offset;
            done.next = seq + 1;
            last_seq = None;
        }
    }
}

/// Fills `buf`; false at the end of the file (or a part of `buf` before it).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The sequence number and length of a record whose head matches it, and whether it ends
/// its batch.
fn check(head: &[u8], record: &[u8]) -> Option<(u64, usize, bool)> {
    let raw = u32::from_le_bytes(head.get(0..4)?.try_into().ok()?);
    let len = (raw & !LAST) as usize;
    let crc = u32::from_le_bytes(head.get(4..8)?.try_into().ok()?);
    let seq_bytes: [u8; 8] = head.get(8..16)?.try_into().ok()?;
    if len != record.len() {
        return None;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq_bytes);
    hasher.update(record);
    (hasher.finalize() == crc).then(|| (u64::from_le_bytes(seq_bytes), len, raw & LAST != 0))
}

/// Disjoint, non-adjacent half-open ranges of sequence numbers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    fn insert(&mut self, mut a: u64, mut b: u64) {
        if a >= b {
            return;
        }
        if let Some((&s, &e)) = self.0.range(..=a).next_back() {
            if e >= a {
                a = s;
                b = b.max(e);
                self.0.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.0.range(a..=b).next() {
            b = b.max(e);
            self.0.remove(&s);
        }
        self.0.insert(a, b);
    }

    fn contains(&self, seq: u64) -> bool {
        self.0
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &e)| e > seq)
    }

    /// Whether every number in `a..b` is in.
    fn covers(&self, a: u64, b: u64) -> bool {
        a >= b || self.0.range(..=a).next_back().is_some_and(|(_, &e)| e >= b)
    }

    fn forget_below(&mut self, floor: u64) {
        self.0.retain(|_, e| *e > floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(log: &Log, first: u64, records: &[&[u8]]) -> Vec<Location> {
        log.append(first, records.len(), |i, _| Ok(records[i]))
            .unwrap()
    }

    fn seqs(found: &[Found]) -> Vec<u64> {
        found.iter().map(|f| f.seq).collect()
    }

    fn segments(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    }

    #[test]
    fn ranges_merge_what_touches_and_cover_only_what_is_in() {
        let mut r = Ranges::default();
        r.insert(5, 7);
        r.insert(0, 2);
        r.insert(2, 3);
        r.insert(9, 12);
        assert_eq!(r.0, BTreeMap::from([(0, 3), (5, 7), (9, 12)]));
        r.insert(3, 9);
        assert_eq!(r.0, BTreeMap::from([(0, 12)]));
        assert!(r.covers(0, 12) && !r.covers(0, 13) && r.contains(11) && !r.contains(12));
        r.forget_below(12);
        assert!(r.0.is_empty());
    }

    #[test]
    fn what_is_appended_is_found_again_in_order_without_what_was_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, found) = Log::open(dir.path()).unwrap();
            assert!(found.is_empty());
            let at = append(&log, 0, &[b"a", b"bb", b"ccc"]);
            assert_eq!(log.read(1, at[1]).unwrap().as_deref(), Some(&b"bb"[..]));
            log.remove(&[1]).unwrap();
        }
        let (log, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [0, 2]);
        assert_eq!(
            log.read(2, found[1].at).unwrap().as_deref(),
            Some(&b"ccc"[..])
        );
        assert_eq!(log.next(), 3, "numbering goes on");
    }

    /// The removal file written last (the higher write number).
    fn newest_removal_file(dir: &Path) -> PathBuf {
        REMOVED
            .iter()
            .map(|name| dir.join(name))
            .max_by_key(|path| parse_removed(&std::fs::read(path).unwrap()).map(|r| r.2))
            .unwrap()
    }

    #[test]
    fn a_removal_written_in_part_leaves_the_one_before_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 0, &[b"a", b"b", b"c", b"d"]);
            log.remove(&[0]).unwrap();
            log.remove(&[1]).unwrap();
        }
        // A power loss tore the last write: its checksum no longer matches.
        let newest = newest_removal_file(dir.path());
        let mut bytes = std::fs::read(&newest).unwrap();
        bytes[12] ^= 0xff;
        std::fs::write(&newest, bytes).unwrap();
        let (_, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [1, 2, 3], "only the last removal is undone");
    }

    #[test]
    fn what_a_longer_removal_left_after_a_shorter_one_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 0, &[b"a", b"b", b"c", b"d", b"e", b"f"]);
            // Three ranges, in both files, then one range over them.
            log.remove(&[1]).unwrap();
            log.remove(&[3]).unwrap();
            log.remove(&[5]).unwrap();
            log.remove(&[0, 2, 4]).unwrap();
        }
        let len = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(len(REMOVED[0]) > 12 + 16 + 8 + 4 && len(REMOVED[1]) > 12 + 16 + 8 + 4);
        let (log, found) = Log::open(dir.path()).unwrap();
        assert!(found.is_empty(), "{:?}", seqs(&found));
        assert_eq!(log.next(), 6);
    }

    #[test]
    fn a_removal_file_of_the_earlier_layout_is_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 0, &[b"a", b"b", b"c"]);
        }
        // Before: one file replaced whole, without a write number; seq 0 removed.
        let mut old = Vec::new();
        old.extend_from_slice(&3u64.to_le_bytes());
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&0u64.to_le_bytes());
        old.extend_from_slice(&1u64.to_le_bytes());
        let crc = crc32fast::hash(&old);
        old.extend_from_slice(&crc.to_le_bytes());
        std::fs::remove_file(dir.path().join(REMOVED[1])).unwrap();
        std::fs::write(dir.path().join(REMOVED[0]), old).unwrap();
        {
            let (log, found) = Log::open(dir.path()).unwrap();
            assert_eq!(seqs(&found), [1, 2]);
            log.remove(&[1]).unwrap();
        }
        let (_, found) = Log::open(dir.path()).unwrap();
        assert_eq!(
            seqs(&found),
            [2],
            "written again in the new layout, and read"
        );
    }

    #[test]
    fn a_batch_cut_short_by_a_crash_is_left_out_whole_and_what_comes_after_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 0, &[b"kept"]);
            append(&log, 1, &[b"whole", b"torn"]);
        }
        let seg = segment_path(dir.path(), 0);
        let len = std::fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        {
            let (log, found) = Log::open(dir.path()).unwrap();
            assert_eq!(seqs(&found), [0], "no record of the torn batch is taken");
            let cut = std::fs::metadata(&seg).unwrap().len();
            assert_eq!(cut, (HEAD + 4) as u64, "what is not taken is cut off");
            append(&log, 3, &[b"after"]);
        }
        let (_, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [0, 3], "a new segment follows the torn one");
    }

    #[test]
    fn a_segment_created_but_never_written_before_a_crash_does_not_stop_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 0, &[b"a"]);
            log.remove(&[0]).unwrap();
        }
        File::create(segment_path(dir.path(), 1)).unwrap();
        {
            let (log, found) = Log::open(dir.path()).unwrap();
            assert!(found.is_empty());
            assert_eq!(log.next(), 1);
            append(&log, 1, &[b"b"]);
        }
        let (_, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [1]);
    }

    #[test]
    fn a_damaged_record_is_reported_missing_not_handed_on() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path()).unwrap();
        let at = append(&log, 0, &[b"hello"]);
        let seg = OpenOptions::new()
            .write(true)
            .open(segment_path(dir.path(), 0))
            .unwrap();
        seg.write_all_at(b"J", HEAD as u64).unwrap();
        assert_eq!(log.read(0, at[0]).unwrap(), None);
    }

    #[test]
    fn a_segment_everything_of_which_is_removed_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 0, &[b"a", b"b"]);
        }
        let (log, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [0, 1]);
        append(&log, 2, &[b"c"]);
        assert_eq!(segments(dir.path()), 2, "a new run starts a segment");
        log.remove(&[1, 0]).unwrap();
        assert_eq!(segments(dir.path()), 1, "the old one is gone");
        log.remove(&[2]).unwrap();
        assert_eq!(segments(dir.path()), 1, "the one being written stays");
        drop(log);
        let (log, found) = Log::open(dir.path()).unwrap();
        assert!(found.is_empty());
        assert_eq!(log.next(), 3, "numbers are not given out twice");
    }

    #[test]
    fn a_segment_everything_in_which_was_removed_is_written_over_as_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let spare = dir.path().join(SPARE);
        {
            // Every batch fills a segment of 16 bytes.
            let (log, _) = Log::open_with(dir.path(), 16).unwrap();
            append(&log, 0, &[&[b'o'; 300]]);
            append(&log, 1, &[b"one"]);
            log.remove(&[0]).unwrap();
            assert_eq!(segments(dir.path()), 1);
            assert!(spare.exists(), "kept as the spare");
            append(&log, 2, &[b"two"]);
            assert!(!spare.exists(), "taken as the next segment");
            let reused = std::fs::metadata(segment_path(dir.path(), 2))
                .unwrap()
                .len();
            assert!(reused > 300, "written over, not emptied ({reused} bytes)");
        }
        let (log, found) = Log::open(dir.path()).unwrap();
        assert_eq!(
            seqs(&found),
            [1, 2],
            "what the file held before is not read as new"
        );
        assert_eq!(
            log.read(2, found[1].at).unwrap().as_deref(),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn a_reused_segment_holds_only_its_own_records_once_full_and_after_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open_with(dir.path(), 16).unwrap();
        append(&log, 0, &[&[b'o'; 300]]);
        append(&log, 1, &[&[b'n'; 200]]);
        log.remove(&[0]).unwrap();
        append(&log, 2, &[b"two"]);
        let reused = segment_path(dir.path(), 2);
        assert!(std::fs::metadata(&reused).unwrap().len() > 300);
        append(&log, 3, &[b"three"]);
        assert_eq!(
            std::fs::metadata(&reused).unwrap().len(),
            (HEAD + 3) as u64,
            "cut to its end once full"
        );
        log.remove(&[1]).unwrap();
        append(&log, 4, &[b"four"]);
        let active = segment_path(dir.path(), 4);
        assert!(std::fs::metadata(&active).unwrap().len() > (HEAD + 4) as u64);
        drop(log);
        assert_eq!(
            std::fs::metadata(&active).unwrap().len(),
            (HEAD + 4) as u64,
            "cut to its end at a stop"
        );
        let (_, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [2, 3, 4]);
    }

    #[test]
    fn a_batch_torn_over_a_reused_segment_is_left_out_and_so_is_what_the_file_held_before() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open_with(dir.path(), 16).unwrap();
            append(&log, 0, &[&[b'o'; 300], &[b'p'; 300]]);
            append(&log, 2, &[b"kept"]);
            log.remove(&[0, 1]).unwrap();
            append(&log, 3, &[b"whole", b"torn"]);
        }
        let seg = segment_path(dir.path(), 3);
        // The batch's last record loses its last byte, as a crash mid-write would leave it.
        let whole = (HEAD + 5 + HEAD + 3) as u64;
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .write_all_at(b"X", whole)
            .unwrap();
        let (_, found) = Log::open(dir.path()).unwrap();
        assert_eq!(
            seqs(&found),
            [2],
            "neither the torn batch nor the file's earlier records"
        );
    }

    #[test]
    fn a_spare_left_by_an_earlier_run_is_deleted_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open_with(dir.path(), 16).unwrap();
            append(&log, 0, &[b"zero"]);
            append(&log, 1, &[b"one"]);
            log.remove(&[0]).unwrap();
            assert!(dir.path().join(SPARE).exists());
        }
        let (log, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [1]);
        assert!(!dir.path().join(SPARE).exists());
        append(&log, 2, &[b"two"]);
        drop(log);
        let (_, found) = Log::open(dir.path()).unwrap();
        assert_eq!(seqs(&found), [1, 2]);
    }

    #[test]
    fn a_removed_segment_is_deleted_while_an_older_one_still_holds_a_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 0, &[b"held"]);
        }
        {
            let (log, _) = Log::open(dir.path()).unwrap();
            append(&log, 1, &[b"dropped"]);
        }
        let (log, _) = Log::open(dir.path()).unwrap();
        append(&log, 2, &[b"new"]);
        assert_eq!(segments(dir.path()), 3);
        log.remove(&[1]).unwrap();
        assert_eq!(segments(dir.path()), 2, "the middle one is gone");
    }

    #[test]
    fn removals_from_two_threads_at_once_all_succeed_and_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path()).unwrap();
        let records: Vec<Vec<u8>> = (0..2000).map(|i| format!("{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
        append(&log, 0, &refs);
        std::thread::scope(|s| {
            for half in 0..2u64 {
                let log = &log;
                s.spawn(move || {
                    for seq in (half..2000).step_by(2) {
                        log.remove(&[seq]).unwrap();
                    }
                });
            }
        });
        drop(log);
        let (_, found) = Log::open(dir.path()).unwrap();
        assert!(found.is_empty(), "{} came back", found.len());
    }

    #[test]
    fn a_second_node_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Log::open(dir.path()).unwrap();
        let Err(err) = Log::open(dir.path()) else {
            panic!("opened twice");
        };
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
    }
}
