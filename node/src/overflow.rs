//! Overflow file of a file-like sink: what arrives while the sink's buffer is full is appended
//! here and written to the sink later, in order, once it caught up. A file left behind by a
//! node that stopped is written first on the next start.
//!
//! Each frame: `u32` length of the rest, `i64` receive time (Unix ns), signal name, sender
//! and message id (each `u16` length + bytes; an empty id means none), then the OTLP request
//! as protobuf.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use otlp::{Encoded, Signal};
use time::OffsetDateTime;

use crate::sink::Delivered;

/// Beyond this many bytes on disk, overflow is dropped (and counted) rather than kept.
pub const MAX_OVERFLOW_BYTES: u64 = 1 << 30;

/// The overflow file; the consumer appends, the sink's thread reads.
pub struct Overflow {
    path: PathBuf,
    file: Option<File>,
    read_at: u64,
    write_at: u64,
    /// Frames written and not yet read back.
    pending: u64,
}

impl Overflow {
    /// Opens the overflow at `path`, picking up frames a previous run left behind.
    pub fn open(path: PathBuf) -> io::Result<Overflow> {
        let mut overflow = Overflow {
            path,
            file: None,
            read_at: 0,
            write_at: 0,
            pending: 0,
        };
        if overflow.path.exists() {
            let mut file = overflow.open_file()?;
            let mut at = 0;
            let len = file.metadata()?.len();
            while let Some(frame_len) = frame_len_at(&mut file, at, len)? {
                at += 4 + u64::from(frame_len);
                overflow.pending += 1;
            }
            // A torn last frame (a crash mid-append) is cut off.
            file.set_len(at)?;
            overflow.write_at = at;
            overflow.file = Some(file);
            if overflow.pending == 0 {
                overflow.clear()?;
            }
        }
        Ok(overflow)
    }

    /// Whether frames wait to be written to the sink; while they do, new messages must queue
    /// behind them to keep the order.
    pub fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// Frames waiting.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a message. Fails when the file is at its size limit or cannot be written.
    pub fn push(&mut self, d: &Delivered) -> io::Result<()> {
        let frame = encode(d)?;
        if self.write_at + frame.len() as u64 > MAX_OVERFLOW_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "overflow file {} reached {MAX_OVERFLOW_BYTES} bytes",
                    self.path.display()
                ),
            ));
        }
        let at = self.write_at;
        let file = self.file()?;
        file.seek(SeekFrom::Start(at))?;
        file.write_all(&frame)?;
        self.write_at += frame.len() as u64;
        self.pending += 1;
        Ok(())
    }

    /// Takes the oldest message, or `None` when nothing waits. Once everything was read the
    /// file is emptied.
    pub fn pop(&mut self) -> io::Result<Option<Delivered>> {
        if self.pending == 0 {
            return Ok(None);
        }
        let (read_at, write_at) = (self.read_at, self.write_at);
        let file = self.file()?;
        let Some(len) = frame_len_at(file, read_at, write_at)? else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "overflow file ends inside a frame",
            ));
        };
        let mut frame = vec![0; len as usize];
        file.read_exact(&mut frame)?;
        self.read_at += 4 + u64::from(len);
        self.pending -= 1;
        if self.pending == 0 {
            self.clear()?;
        }
        decode(&frame).map(Some)
    }

    fn clear(&mut self) -> io::Result<()> {
        self.file = None;
        self.read_at = 0;
        self.write_at = 0;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(self.open_file()?);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    fn open_file(&self) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

/// The length of the frame at `at`, when a whole frame is there; the file is then positioned
/// at its body.
fn frame_len_at(file: &mut File, at: u64, end: u64) -> io::Result<Option<u32>> {
    if at + 4 > end {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(at))?;
    let mut len = [0; 4];
    file.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    Ok((at + 4 + u64::from(len) <= end).then_some(len))
}

fn encode(d: &Delivered) -> io::Result<Vec<u8>> {
    let too_long = || io::Error::new(io::ErrorKind::InvalidInput, "field too long for a frame");
    let mut body = Vec::new();
    let nanos = i64::try_from(d.received_at.unix_timestamp_nanos()).unwrap_or(i64::MAX);
    body.extend_from_slice(&nanos.to_le_bytes());
    for field in [
        d.payload.signal().as_str(),
        d.from.as_str(),
        d.message_id.as_deref().unwrap_or(""),
    ] {
        let len = u16::try_from(field.len()).map_err(|_| too_long())?;
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    body.extend_from_slice(d.payload.bytes());
    let len = u32::try_from(body.len()).map_err(|_| too_long())?;
    let mut frame = len.to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn decode(frame: &[u8]) -> io::Result<Delivered> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("overflow frame: {what}"),
        )
    };
    let (nanos, mut rest) = frame.split_at_checked(8).ok_or_else(|| bad("short"))?;
    let nanos = i64::from_le_bytes(nanos.try_into().map_err(|_| bad("time"))?);
    let mut field = || -> io::Result<String> {
        let (len, tail) = rest.split_at_checked(2).ok_or_else(|| bad("short"))?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let (text, tail) = tail.split_at_checked(len).ok_or_else(|| bad("short"))?;
        rest = tail;
        String::from_utf8(text.to_vec()).map_err(|_| bad("not UTF-8"))
    };
    let signal = field()?;
    let from = field()?;
    let id = field()?;
    let signal = Signal::ALL
        .into_iter()
        .find(|s| s.as_str() == signal)
        .ok_or_else(|| bad("unknown signal"))?;
    let payload = Encoded::check(signal, rest.to_vec()).map_err(|e| bad(&e.to_string()))?;
    Ok(Delivered {
        received_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .map_err(|_| bad("time"))?,
        from,
        message_id: (!id.is_empty()).then_some(id),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(i: usize) -> Delivered {
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{i}"}}}}]}}]}}]}}"#
        );
        Delivered {
            received_at: OffsetDateTime::from_unix_timestamp(1_700_000_000 + i as i64).unwrap(),
            from: "a/b/c".into(),
            message_id: (i % 2 == 0).then(|| format!("id-{i}")),
            payload: Encoded::from_request(
                otlp::json::from_json(Signal::Logs, body.as_bytes()).unwrap(),
            ),
        }
    }

    fn same(a: &Delivered, b: &Delivered) -> bool {
        a.received_at == b.received_at
            && a.from == b.from
            && a.message_id == b.message_id
            && a.payload.bytes() == b.payload.bytes()
    }

    #[test]
    fn messages_come_back_in_order_and_the_file_goes_once_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl.overflow");
        let mut overflow = Overflow::open(path.clone()).unwrap();
        for i in 0..3 {
            overflow.push(&delivered(i)).unwrap();
        }
        assert!(same(&overflow.pop().unwrap().unwrap(), &delivered(0)));
        overflow.push(&delivered(3)).unwrap();
        for i in 1..4 {
            assert!(same(&overflow.pop().unwrap().unwrap(), &delivered(i)));
        }
        assert!(overflow.pop().unwrap().is_none());
        assert!(!path.exists());
    }

    #[test]
    fn a_file_left_by_a_previous_run_is_picked_up_without_its_torn_last_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl.overflow");
        let mut first = Overflow::open(path.clone()).unwrap();
        first.push(&delivered(0)).unwrap();
        first.push(&delivered(1)).unwrap();
        drop(first);
        // A crash in the middle of appending a third frame.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&100u32.to_le_bytes()).unwrap();
        file.write_all(b"partial").unwrap();
        drop(file);

        let mut again = Overflow::open(path).unwrap();
        assert_eq!(again.pending(), 2);
        assert!(same(&again.pop().unwrap().unwrap(), &delivered(0)));
        again.push(&delivered(2)).unwrap();
        assert!(same(&again.pop().unwrap().unwrap(), &delivered(1)));
        assert!(same(&again.pop().unwrap().unwrap(), &delivered(2)));
        assert!(again.pop().unwrap().is_none());
    }
}
