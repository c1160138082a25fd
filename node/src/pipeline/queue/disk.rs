//! A disk queue's redb file: records appended, read ahead in order, removed once done; the
//! file is opened again after an I/O error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::pipeline::delivered::Delivered;

use super::*;

/// key: sequence number; value: header length (u32 LE), JSON header, protobuf payload.
pub(super) const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
/// Items read from disk at once when the sink asks for more.
pub(super) const READ_AHEAD: usize = 256;

/// A disk queue's file, opened again after an I/O error.
pub(super) struct Disk {
    /// `None` only while it is opened again.
    pub(super) db: RwLock<Option<Database>>,
    pub(super) path: PathBuf,
    /// An operation failed: redb answers every later one with `PreviousIo` until the file is
    /// opened again, which the next operation does first.
    pub(super) broken: AtomicBool,
    /// Rows the sink is done with whose removal failed: removed with the next removal.
    pub(super) unremoved: Mutex<Vec<u64>>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    signal: String,
    from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verified_sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    received_unix_nanos: i128,
    /// The item count found when the message was checked on arrival; with it the payload is
    /// not checked again when read back (redb checksums what it stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    items: Option<usize>,
}

/// Opens (or creates) the queue's redb file.
pub(super) fn open_db(path: &Path) -> Result<Database, String> {
    Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            "in use by another process: give each node its own --data-dir".into()
        }
        other => other.to_string(),
    })
}

impl Disk {
    pub(super) fn error(&self, e: impl std::fmt::Display) -> QueueError {
        QueueError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Runs `f` on the database, opening the file again first if an earlier operation failed;
    /// an error of `f` marks it for opening again.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        if self.broken.load(Ordering::Acquire) {
            let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
            if self.broken.load(Ordering::Acquire) {
                // The old handle first: it holds the file's lock.
                *db = None;
                *db = Some(open_db(&self.path).map_err(|e| self.error(e))?);
                self.broken.store(false, Ordering::Release);
                tracing::info!(path = %self.path.display(), "the sink queue's file is open again after an error");
            }
        }
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        let Some(db) = db.as_ref() else {
            return Err(self.error("not open (opening it again failed)"));
        };
        let result = f(db);
        if result.is_err() {
            self.broken.store(true, Ordering::Release);
        }
        result
    }

    /// Reads what an earlier run left: sizes and times into `state` (the payloads stay on
    /// disk until the sink asks).
    pub(super) fn load(&self, state: &mut State) -> Result<(), QueueError> {
        self.with(|db| self.load_from(db, state))
    }

    pub(super) fn load_from(&self, db: &Database, state: &mut State) -> Result<(), QueueError> {
        let read = db.begin_read().map_err(|e| self.error(e))?;
        let table = match read.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.error(e)),
        };
        for row in table.iter().map_err(|e| self.error(e))? {
            let (seq, record) = row.map_err(|e| self.error(e))?;
            let (header, payload) = split(record.value()).map_err(|e| self.error(e))?;
            let seq = seq.value();
            state.bytes += payload.len();
            state.entries.push_back(Entry {
                seq,
                bytes: payload.len(),
                received_at: received_at(&header),
                items: header
                    .signal
                    .parse::<otlp::Signal>()
                    .ok()
                    .zip(header.items.map(|n| n as u64)),
                item: None,
                done: false,
            });
            state.next_seq = seq + 1;
        }
        Ok(())
    }

    pub(super) fn append<'a>(
        &self,
        first: u64,
        items: impl Iterator<Item = &'a Delivered>,
    ) -> Result<(), QueueError> {
        self.with(|db| self.append_to(db, first, items))
    }

    /// One transaction: nothing of it is kept when it fails.
    pub(super) fn append_to<'a>(
        &self,
        db: &Database,
        first: u64,
        items: impl Iterator<Item = &'a Delivered>,
    ) -> Result<(), QueueError> {
        let mut write = db.begin_write().map_err(|e| self.error(e))?;
        write.set_durability(Durability::Immediate);
        {
            let mut table = write.open_table(TABLE).map_err(|e| self.error(e))?;
            let mut record = Vec::new();
            for (i, d) in items.enumerate() {
                encode(d, &mut record).map_err(|e| self.error(e))?;
                table
                    .insert(first + i as u64, record.as_slice())
                    .map_err(|e| self.error(e))?;
            }
        }
        write.commit().map_err(|e| self.error(e))
    }

    pub(super) fn read_from(
        &self,
        seq: u64,
        max: usize,
        into: &mut HashMap<u64, Item>,
    ) -> Result<(), QueueError> {
        self.with(|db| self.read_in(db, seq, max, into))
    }

    pub(super) fn read_in(
        &self,
        db: &Database,
        seq: u64,
        max: usize,
        into: &mut HashMap<u64, Item>,
    ) -> Result<(), QueueError> {
        let read = db.begin_read().map_err(|e| self.error(e))?;
        let table = read.open_table(TABLE).map_err(|e| self.error(e))?;
        let unremoved = crate::lock(&self.unremoved).clone();
        for row in table.range(seq..).map_err(|e| self.error(e))?.take(max) {
            let (key, record) = row.map_err(|e| self.error(e))?;
            let seq = key.value();
            if unremoved.contains(&seq) {
                // Done with, or never taken (its batch went to no sink): still to remove.
                continue;
            }
            match decode(record.value()) {
                Ok(delivered) => {
                    into.insert(
                        seq,
                        Item {
                            seq,
                            delivered: Arc::new(delivered),
                            ticket: None,
                        },
                    );
                }
                // Written by this program, so this is damage: say so, and let the item be
                // reported missing rather than hand on something else.
                Err(err) => tracing::error!(path = %self.path.display(), seq, %err,
                    "a message in the sink queue cannot be read"),
            }
        }
        Ok(())
    }

    /// Removes `seqs`, and what earlier removals could not; what fails now is kept for the
    /// next one (until then it stays on disk: after a restart the sink would get it again).
    pub(super) fn remove(&self, seqs: &[u64]) -> Result<(), QueueError> {
        let mut all = std::mem::take(&mut *crate::lock(&self.unremoved));
        all.extend_from_slice(seqs);
        if all.is_empty() {
            return Ok(());
        }
        let result = self.with(|db| self.remove_from(db, &all));
        if result.is_err() {
            crate::lock(&self.unremoved).extend(all);
        }
        result
    }

    pub(super) fn remove_from(&self, db: &Database, seqs: &[u64]) -> Result<(), QueueError> {
        let mut write = db.begin_write().map_err(|e| self.error(e))?;
        // A removal lost in a crash only means the sink gets that message again.
        write.set_durability(Durability::Eventual);
        {
            let mut table = write.open_table(TABLE).map_err(|e| self.error(e))?;
            for seq in seqs {
                table.remove(seq).map_err(|e| self.error(e))?;
            }
        }
        write.commit().map_err(|e| self.error(e))
    }
}

pub(super) fn received_at(header: &Header) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(header.received_unix_nanos)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn encode(d: &Delivered, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let header = serde_json::to_vec(&Header {
        signal: d.payload.signal().as_str().to_string(),
        from: d.from.clone(),
        verified_sender: d.verified_sender.clone(),
        id: d.message_id.clone(),
        received_unix_nanos: d.received_at.unix_timestamp_nanos(),
        items: Some(d.payload.items()),
    })?;
    out.clear();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(d.payload.bytes());
    Ok(())
}

fn split(record: &[u8]) -> Result<(Header, &[u8]), String> {
    let len = record
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or("record too short")? as usize;
    let header = record
        .get(4..4 + len)
        .ok_or("header past the record's end")?;
    let header: Header = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    Ok((header, &record[4 + len..]))
}

pub(super) fn decode(record: &[u8]) -> Result<Delivered, String> {
    let (header, payload) = split(record)?;
    let signal: otlp::Signal = header
        .signal
        .parse()
        .map_err(|e: otlp::CodecError| e.to_string())?;
    let payload = match header.items {
        Some(items) => otlp::Encoded::from_checked(signal, payload.to_vec(), items),
        None => otlp::Encoded::check(signal, payload.to_vec()).map_err(|e| e.to_string())?,
    };
    Ok(Delivered {
        received_at: received_at(&header),
        from: header.from,
        verified_sender: header.verified_sender,
        message_id: header.id,
        payload,
    })
}
