//! The store: every item that arrived (one span, data point or log record, see
//! [`otlp::items`]) in a redb file, `DIR/store.redb`, indexed by signal and item time, and by
//! arrival. An item's context (resource and scope) is kept once, however many items share it.
//!
//! Tables: per signal, `(time, seq) → context id ++ item`; `contexts`, `id → refcount ++
//! context` (the id is a digest of the signal and the context); `arrivals`, one row per
//! request in arrival order, `first seq → signal, received, bytes, the items' times, the
//! message id` (the items are `first seq`, `first seq + 1`, …; retention and late arrivals
//! read it); `messages`, `message id → first seq`, so that a message delivered again (after a
//! crash between the commit and its acknowledgement) is stored once; `meta` for the counters
//! and the store's id, which cursors are bound to. A request is stored in one transaction, so
//! a window's `seq_hi` never falls inside a row.
//! `seq` grows with every item stored and is never reused, so `(time, seq)` orders items
//! totally and a page position is exact.
//!
//! Retention removes requests' items in arrival order (oldest stored first): those received
//! more than `max-age` ago, and as many as needed to keep the stored bytes under `max-bytes`.
//!
//! Paging reads a [`Window`]: the items of `[start, end)` that had arrived (`seq ≤ seq_hi`)
//! when the window was opened, less those an earlier window of the same query already
//! returned (`time < prev_end` and `seq ≤ prev_seq`). Windows chained this way (each one
//! opened where the last ended) return every item exactly once, however late it arrives.

use std::collections::{BinaryHeap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use otlp::items::Parts;
use otlp::Signal;

/// Bytes counted per item beyond its own: its context id, its key and its time in the
/// arrivals row.
const OVERHEAD: u64 = 48;
/// Bytes counted per context beyond its own: its id and reference count.
const CONTEXT_OVERHEAD: u64 = 24;
/// The store's page cache.
const CACHE_BYTES: usize = 64 << 20;
/// Entry bytes a page holds at most (a page with more items stops early, `has_more` set).
const PAGE_BYTES: usize = 32 << 20;

const TRACES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("traces");
const METRICS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("metrics");
const LOGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("logs");
/// `seq → (signal, time, received, bytes)`.
/// `first seq → signal (1 byte), received, bytes (8 each), items (4), each item's time (8),
/// the message id`, numbers big-endian.
const ARRIVALS: TableDefinition<u64, &[u8]> = TableDefinition::new("arrivals");
/// The bytes of an arrivals row before the items' times.
const ROW_HEAD: usize = 21;
/// `message id → first seq` of the messages stored.
const MESSAGES: TableDefinition<&str, u64> = TableDefinition::new("messages");

/// One row of `arrivals`, read.
struct Row<'a> {
    signal: Option<Signal>,
    received: u64,
    bytes: u64,
    times: &'a [u8],
    message_id: &'a [u8],
}

impl<'a> Row<'a> {
    fn read(value: &'a [u8]) -> Row<'a> {
        let n = |at: usize| {
            value
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_be_bytes)
        };
        let items = value
            .get(17..ROW_HEAD)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes) as usize;
        let ids_at = (ROW_HEAD + 8 * items).min(value.len());
        Row {
            signal: value.first().and_then(|c| signal_of(*c)),
            received: n(1),
            bytes: n(9),
            times: value.get(ROW_HEAD..ids_at).unwrap_or_default(),
            message_id: value.get(ids_at..).unwrap_or_default(),
        }
    }

    /// `(time, seq)` of each item of the row that starts at `first`.
    fn keys(&self, first: u64) -> impl Iterator<Item = Position> + '_ {
        self.times
            .chunks_exact(8)
            .zip(first..)
            .map(|(t, seq)| (u64::from_be_bytes(t.try_into().unwrap_or_default()), seq))
    }
}
/// `id → refcount (8 bytes, big-endian) ++ context`.
const CONTEXTS: TableDefinition<u128, &[u8]> = TableDefinition::new("contexts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The id of `context` of `signal`.
fn context_id(signal: Signal, context: &[u8]) -> u128 {
    let digest = Sha256::new()
        .chain_update([signal_code(signal)])
        .chain_update(context)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(id)
}

fn table(signal: Signal) -> TableDefinition<'static, (u64, u64), &'static [u8]> {
    match signal {
        Signal::Traces => TRACES,
        Signal::Metrics => METRICS,
        Signal::Logs => LOGS,
    }
}

fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

fn signal_of(code: u8) -> Option<Signal> {
    Signal::ALL.get(usize::from(code)).copied()
}

/// The store cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

/// What is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Items received longer ago than this are removed.
    pub max_age: Option<Duration>,
    /// Stored bytes (entries and their index) kept at most.
    pub max_bytes: u64,
}

/// One request's items, as the sink hands them over.
pub struct Arrival {
    /// Its signal.
    pub signal: Signal,
    /// When this node received it, in Unix nanoseconds (the time of items without one).
    pub received_unix_nano: u64,
    /// Its items and their contexts.
    pub parts: Parts,
    /// The sender's message id: a message stored already is not stored again.
    pub message_id: Option<String>,
}

/// What the store holds, for `/health`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Items held, per signal.
    pub traces: u64,
    /// Data points held.
    pub metrics: u64,
    /// Log records held.
    pub logs: u64,
    /// Stored bytes (items, contexts and their index).
    pub bytes: u64,
    /// Distinct contexts (resource and scope) held.
    pub contexts: u64,
    /// Items removed by retention since the store was created.
    pub expired: u64,
    /// Messages delivered again and not stored twice.
    pub duplicates: u64,
    /// The sequence number of the last item stored.
    pub last_seq: u64,
}

/// The items a query pages through, see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The signal.
    pub signal: Signal,
    /// Item times from (inclusive).
    pub start: u64,
    /// Item times up to (exclusive).
    pub end: u64,
    /// Only items stored up to this sequence number.
    pub seq_hi: u64,
    /// The end of the previous window of the same query (`start` for the first).
    pub prev_end: u64,
    /// The `seq_hi` of the previous window (0 for the first).
    pub prev_seq: u64,
}

/// A position in a window: the `(time, seq)` of the last item returned.
pub type Position = (u64, u64);

/// One page.
#[derive(Debug, Default)]
pub struct Page {
    /// The entries, in time order.
    pub entries: Vec<Vec<u8>>,
    /// Where the next page starts (the last entry's position).
    pub last: Option<Position>,
    /// Whether the window holds more after this page.
    pub has_more: bool,
}

/// The store of one directory. A node opens it once ([`Stores`]) for the sink and the query API.
pub struct Store {
    /// `None` only while it is opened again.
    db: RwLock<Option<Database>>,
    /// A write failed (a full disk, say): redb answers everything after an I/O error with
    /// `PreviousIo` until the file is opened again, which the next write does first (and
    /// reads the counters back from what was committed).
    broken: AtomicBool,
    path: PathBuf,
    retention: Retention,
    totals: Mutex<Totals>,
    /// Held for a whole write, so that sequence numbers and counters never interleave.
    writer: Mutex<()>,
    /// Whether a sink writes here (one may).
    claimed: std::sync::atomic::AtomicBool,
    /// A random id made when the store was created: cursors of another store do not open.
    id: u64,
}

/// The stores a node opened, by directory: the store sink and the query API of one directory
/// share one [`Store`]. Owned by the code that starts the node.
#[derive(Default)]
pub struct Stores(Mutex<HashMap<PathBuf, Arc<Store>>>);

impl Stores {
    /// The store in `dir`, opened now (with `retention`) or earlier (its first retention stays).
    pub fn open(&self, dir: &Path, retention: Retention) -> Result<Arc<Store>, StoreError> {
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut open = crate::lock(&self.0);
        if let Some(store) = open.get(&key) {
            return Ok(store.clone());
        }
        let store = Store::open(dir, retention)?;
        // Canonical once it exists, so that two spellings of one directory are one store.
        let key = std::fs::canonicalize(dir).unwrap_or(key);
        open.insert(key, store.clone());
        Ok(store)
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, retention: Retention) -> Result<Arc<Store>, StoreError> {
        let path = dir.join("store.redb");
        let err = |message: String| StoreError {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create the directory: {e}")))?;
        let db = open_db(&path).map_err(err)?;
        let mut store = Store {
            db: RwLock::new(Some(db)),
            broken: AtomicBool::new(false),
            path,
            retention,
            totals: Mutex::new(Totals::default()),
            writer: Mutex::new(()),
            claimed: std::sync::atomic::AtomicBool::new(false),
            id: 0,
        };
        store.id = store.create_tables()?;
        *crate::lock(&store.totals) = store.read_totals()?;
        Ok(Arc::new(store))
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// A read transaction; an error marks the file for opening again. Reads open it again
    /// too when no write is under way, so the query API serves while the disk is full.
    fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        if self.broken.load(Ordering::Acquire) {
            if let Ok(_writing) = self.writer.try_lock() {
                if self.broken.load(Ordering::Acquire) {
                    // Failing here leaves it broken: the read below says why.
                    let _ = self.reopen();
                }
            }
        }
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        let txn = match db.as_ref() {
            Some(db) => db.begin_read().map_err(|e| self.error(e)),
            None => Err(self.error("not open (opening it again failed)")),
        };
        if txn.is_err() {
            self.broken.store(true, Ordering::Release);
        }
        txn
    }

    /// A write transaction, the file opened again first if a write failed. The caller holds
    /// `writer`.
    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        if self.broken.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        match db.as_ref() {
            Some(db) => db.begin_write().map_err(|e| self.error(e)),
            None => Err(self.error("not open (opening it again failed)")),
        }
    }

    /// Opens the file again after an error, and reads the counters from what it holds: a
    /// commit that failed may or may not have reached the disk.
    fn reopen(&self) -> Result<(), StoreError> {
        {
            let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
            // The old handle first: it holds the file's lock.
            *db = None;
            *db = Some(open_db(&self.path).map_err(|e| self.error(e))?);
        }
        *crate::lock(&self.totals) = self.read_totals()?;
        self.broken.store(false, Ordering::Release);
        tracing::info!(path = %self.path.display(), "the store is open again after an error");
        Ok(())
    }

    /// Creates what is missing; returns the store's id (made on first open).
    fn create_tables(&self) -> Result<u64, StoreError> {
        let txn = self.begin_write()?;
        let id = {
            for signal in Signal::ALL {
                txn.open_table(table(signal)).map_err(|e| self.error(e))?;
            }
            txn.open_table(ARRIVALS).map_err(|e| self.error(e))?;
            txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
            txn.open_table(MESSAGES).map_err(|e| self.error(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
            let id = meta
                .get("store_id")
                .map_err(|e| self.error(e))?
                .map(|v| v.value());
            match id {
                Some(id) => id,
                None => {
                    let mut bytes = [0u8; 8];
                    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| self.error("no randomness"))?;
                    let id = u64::from_be_bytes(bytes);
                    meta.insert("store_id", id).map_err(|e| self.error(e))?;
                    id
                }
            }
        };
        txn.commit().map_err(|e| self.error(e))?;
        Ok(id)
    }

    /// The store's id (random, made when it was created).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes the caller the store's one writer; a second claim is an error.
    pub fn claim_writer(&self) -> Result<(), StoreError> {
        if self.claimed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(self.error("already kept by another store sink of this node"));
        }
        Ok(())
    }

    fn read_totals(&self) -> Result<Totals, StoreError> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(|e| self.error(e))?;
        let get = |key: &str| -> Result<u64, StoreError> {
            Ok(meta
                .get(key)
                .map_err(|e| self.error(e))?
                .map_or(0, |v| v.value()))
        };
        let count = |signal: Signal| -> Result<u64, StoreError> {
            let t = txn.open_table(table(signal)).map_err(|e| self.error(e))?;
            t.len().map_err(|e| self.error(e))
        };
        let contexts = txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
        Ok(Totals {
            traces: count(Signal::Traces)?,
            metrics: count(Signal::Metrics)?,
            logs: count(Signal::Logs)?,
            bytes: get("bytes")?,
            duplicates: get("duplicates")?,
            contexts: contexts.len().map_err(|e| self.error(e))?,
            expired: get("expired")?,
            last_seq: get("last_seq")?,
        })
    }

    /// What the store holds now.
    pub fn totals(&self) -> Totals {
        crate::lock(&self.totals).clone()
    }

    /// The sequence number of the last item stored.
    pub fn last_seq(&self) -> u64 {
        crate::lock(&self.totals).last_seq
    }

    /// Stores `arrivals` in one transaction (synced before it returns), then applies the
    /// retention as of `now_unix_nano`.
    /// Nothing of a failed append is kept (one transaction), and the file is opened again
    /// before the next: a message given again is stored once (by its id) whether or not the
    /// failed commit reached the disk.
    pub fn append(&self, arrivals: &[Arrival], now_unix_nano: u64) -> Result<(), StoreError> {
        let _writing = crate::lock(&self.writer);
        let result = self.append_in(arrivals, now_unix_nano);
        if result.is_err() {
            self.broken.store(true, Ordering::Release);
        }
        result
    }

    fn append_in(&self, arrivals: &[Arrival], now_unix_nano: u64) -> Result<(), StoreError> {
        let before = self.totals();
        let mut totals = before.clone();
        let txn = self.begin_write()?;
        {
            let mut tables = Signal::ALL
                .iter()
                .map(|s| txn.open_table(table(*s)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.error(e))?;
            let mut index = txn.open_table(ARRIVALS).map_err(|e| self.error(e))?;
            let mut contexts = txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
            let mut messages = txn.open_table(MESSAGES).map_err(|e| self.error(e))?;
            for arrival in arrivals {
                let message_id = arrival.message_id.as_deref().unwrap_or_default();
                if !message_id.is_empty()
                    && messages
                        .get(message_id)
                        .map_err(|e| self.error(e))?
                        .is_some()
                {
                    totals.duplicates += 1;
                    continue;
                }
                let code = signal_code(arrival.signal);
                let first_seq = totals.last_seq + 1;
                let mut row = Vec::with_capacity(ROW_HEAD + 8 * arrival.parts.items.len());
                row.push(code);
                row.extend_from_slice(&arrival.received_unix_nano.to_be_bytes());
                row.extend_from_slice(&[0; 12]);
                let mut row_bytes = 0u64;
                let ids: Vec<u128> = arrival
                    .parts
                    .contexts
                    .iter()
                    .map(|c| context_id(arrival.signal, c))
                    .collect();
                let mut uses = vec![0u64; ids.len()];
                for item in &arrival.parts.items {
                    let Some(&id) = ids.get(item.context) else {
                        continue;
                    };
                    uses[item.context] += 1;
                    totals.last_seq += 1;
                    let seq = totals.last_seq;
                    let time = match item.time_unix_nano {
                        0 => arrival.received_unix_nano,
                        t => t,
                    };
                    let mut value = Vec::with_capacity(16 + item.bytes.len());
                    value.extend_from_slice(&id.to_be_bytes());
                    value.extend_from_slice(&item.bytes);
                    let bytes = item.bytes.len() as u64 + OVERHEAD;
                    tables[usize::from(code)]
                        .insert((time, seq), value.as_slice())
                        .map_err(|e| self.error(e))?;
                    row.extend_from_slice(&time.to_be_bytes());
                    row_bytes += bytes;
                    totals.bytes += bytes;
                    *count_of(&mut totals, arrival.signal) += 1;
                }
                let stored = totals.last_seq + 1 - first_seq;
                if stored == 0 && message_id.is_empty() {
                    // Nothing to keep, nothing to recognise later.
                    continue;
                }
                // A request without items still takes a number: its row needs a key of its own.
                totals.last_seq = totals.last_seq.max(first_seq);
                // The row and the message id (in the row and in `messages`) count too.
                let row_overhead = (ROW_HEAD + 8 + 2 * message_id.len()) as u64;
                row_bytes += row_overhead;
                totals.bytes += row_overhead;
                row[9..17].copy_from_slice(&row_bytes.to_be_bytes());
                row[17..ROW_HEAD].copy_from_slice(&(stored as u32).to_be_bytes());
                row.extend_from_slice(message_id.as_bytes());
                index
                    .insert(first_seq, row.as_slice())
                    .map_err(|e| self.error(e))?;
                if !message_id.is_empty() {
                    messages
                        .insert(message_id, first_seq)
                        .map_err(|e| self.error(e))?;
                }
                for ((id, context), n) in ids.iter().zip(&arrival.parts.contexts).zip(uses) {
                    if n > 0 {
                        self.add_uses(&mut contexts, *id, context, n, &mut totals)?;
                    }
                }
            }
            self.expire_in(
                &mut tables,
                &mut index,
                &mut contexts,
                &mut messages,
                &mut totals,
                now_unix_nano,
            )?;
            let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
            for (key, value) in [
                ("bytes", totals.bytes),
                ("expired", totals.expired),
                ("duplicates", totals.duplicates),
                ("last_seq", totals.last_seq),
            ] {
                meta.insert(key, value).map_err(|e| self.error(e))?;
            }
        }
        if totals == before {
            // Nothing stored or removed (an idle retention check): no commit, no sync.
            return txn.abort().map_err(|e| self.error(e));
        }
        let committing = std::time::Instant::now();
        if let Err(err) = txn.commit() {
            // Whether anything reached the disk, what is on it says once it is open again.
            return Err(self.error(err));
        }
        tracing::trace!(
            commit_ms = committing.elapsed().as_millis() as u64,
            "store commit"
        );
        *crate::lock(&self.totals) = totals;
        Ok(())
    }

    /// Counts `n` more items of the context `id`, storing it if it is new.
    fn add_uses(
        &self,
        contexts: &mut redb::Table<u128, &[u8]>,
        id: u128,
        context: &[u8],
        n: u64,
        totals: &mut Totals,
    ) -> Result<(), StoreError> {
        let existing = contexts
            .get(id)
            .map_err(|e| self.error(e))?
            .map(|v| v.value().to_vec());
        let value = match existing {
            Some(mut value) if value.len() >= 8 => {
                let count = refcount(&value).saturating_add(n);
                value[..8].copy_from_slice(&count.to_be_bytes());
                value
            }
            _ => {
                totals.bytes += context.len() as u64 + CONTEXT_OVERHEAD;
                totals.contexts += 1;
                let mut value = n.to_be_bytes().to_vec();
                value.extend_from_slice(context);
                value
            }
        };
        contexts
            .insert(id, value.as_slice())
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// One item of the context `id` is gone; the context goes with its last item.
    fn drop_use(
        &self,
        contexts: &mut redb::Table<u128, &[u8]>,
        id: u128,
        totals: &mut Totals,
    ) -> Result<(), StoreError> {
        let Some(mut value) = contexts
            .get(id)
            .map_err(|e| self.error(e))?
            .map(|v| v.value().to_vec())
        else {
            return Ok(());
        };
        let count = refcount(&value).saturating_sub(1);
        if count == 0 || value.len() < 8 {
            contexts.remove(id).map_err(|e| self.error(e))?;
            let bytes = value.len().saturating_sub(8) as u64 + CONTEXT_OVERHEAD;
            totals.bytes = totals.bytes.saturating_sub(bytes);
            totals.contexts = totals.contexts.saturating_sub(1);
        } else {
            value[..8].copy_from_slice(&count.to_be_bytes());
            contexts
                .insert(id, value.as_slice())
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Applies the retention as of `now_unix_nano`; returns how many items it removed.
    pub fn expire(&self, now_unix_nano: u64) -> Result<u64, StoreError> {
        let before = self.totals().expired;
        self.append(&[], now_unix_nano)?;
        Ok(self.totals().expired - before)
    }

    fn expire_in(
        &self,
        tables: &mut [redb::Table<(u64, u64), &[u8]>],
        index: &mut redb::Table<u64, &[u8]>,
        contexts: &mut redb::Table<u128, &[u8]>,
        messages: &mut redb::Table<&str, u64>,
        totals: &mut Totals,
        now_unix_nano: u64,
    ) -> Result<(), StoreError> {
        let cutoff = self.retention.max_age.map(|age| {
            now_unix_nano.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX))
        });
        loop {
            let Some((first, value)) = index
                .first()
                .map_err(|e| self.error(e))?
                .map(|(k, v)| (k.value(), v.value().to_vec()))
            else {
                return Ok(());
            };
            let row = Row::read(&value);
            let too_old = cutoff.is_some_and(|c| row.received < c);
            if !too_old && totals.bytes <= self.retention.max_bytes {
                return Ok(());
            }
            index.remove(first).map_err(|e| self.error(e))?;
            if let Ok(id) = std::str::from_utf8(row.message_id) {
                if !id.is_empty() {
                    messages.remove(id).map_err(|e| self.error(e))?;
                }
            }
            let mut removed = 0u64;
            if let Some(signal) = row.signal {
                let table = &mut tables[usize::from(signal_code(signal))];
                for key in row.keys(first) {
                    let context = table
                        .remove(key)
                        .map_err(|e| self.error(e))?
                        .and_then(|v| context_of(v.value()));
                    if let Some(id) = context {
                        self.drop_use(contexts, id, totals)?;
                    }
                    removed += 1;
                }
                let count = count_of(totals, signal);
                *count = count.saturating_sub(removed);
            }
            totals.bytes = totals.bytes.saturating_sub(row.bytes);
            totals.expired += removed;
        }
    }

    /// Up to `limit` items of `window` after `after`, in time order.
    pub fn page(
        &self,
        window: &Window,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, usize::MAX - 2);
        let txn = self.begin_read()?;
        let items = txn
            .open_table(table(window.signal))
            .map_err(|e| self.error(e))?;
        let mut keys: Vec<Position> = Vec::new();
        // Items that arrived after the previous window with times before its end.
        let in_late_part = after.is_none_or(|p| p.0 < window.prev_end);
        if window.prev_end > window.start && window.seq_hi > window.prev_seq && in_late_part {
            let index = txn.open_table(ARRIVALS).map_err(|e| self.error(e))?;
            let code = signal_code(window.signal);
            // The `limit + 1` first, in a max-heap: the largest kept is dropped first.
            let mut first: BinaryHeap<Position> = BinaryHeap::with_capacity(limit + 2);
            for entry in index
                .range(window.prev_seq + 1..=window.seq_hi)
                .map_err(|e| self.error(e))?
            {
                let (seq, value) = entry.map_err(|e| self.error(e))?;
                let value = value.value();
                if value.first() != Some(&code) {
                    continue;
                }
                for (time, seq) in Row::read(value).keys(seq.value()) {
                    if seq <= window.seq_hi
                        && time >= window.start
                        && time < window.prev_end
                        && after.is_none_or(|p| (time, seq) > p)
                    {
                        first.push((time, seq));
                        if first.len() > limit + 1 {
                            first.pop();
                        }
                    }
                }
            }
            keys = first.into_sorted_vec();
        }
        // Items from the previous window's end on.
        if keys.len() <= limit && window.end > window.prev_end.max(window.start) {
            let from = match after {
                Some(p) if p.0 >= window.prev_end => Bound::Excluded(p),
                _ => Bound::Included((window.prev_end.max(window.start), 0)),
            };
            for row in items
                .range::<Position>((from, Bound::Excluded((window.end, 0))))
                .map_err(|e| self.error(e))?
            {
                let (key, _) = row.map_err(|e| self.error(e))?;
                let key = key.value();
                if key.1 <= window.seq_hi {
                    keys.push(key);
                    if keys.len() > limit {
                        break;
                    }
                }
            }
        }
        let mut has_more = keys.len() > limit;
        keys.truncate(limit);
        let contexts = txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
        let mut known: HashMap<u128, Vec<u8>> = HashMap::new();
        let (mut entries, mut bytes) = (Vec::with_capacity(keys.len()), 0usize);
        for (i, key) in keys.iter().enumerate() {
            if bytes >= PAGE_BYTES {
                keys.truncate(i);
                has_more = true;
                break;
            }
            // The same snapshot listed the key, and its context lives as long as it does.
            let Some(value) = items.get(key).map_err(|e| self.error(e))? else {
                continue;
            };
            let value = value.value();
            let id = context_of(value).ok_or_else(|| self.error("an item without its context"))?;
            let context = match known.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let context = contexts
                        .get(id)
                        .map_err(|e| self.error(e))?
                        .ok_or_else(|| self.error("an item's context is missing"))?;
                    e.insert(context.value().get(8..).unwrap_or_default().to_vec())
                }
            };
            let entry = otlp::items::entry(context, &value[16..]).map_err(|e| self.error(e))?;
            bytes += entry.len();
            entries.push(entry);
        }
        Ok(Page {
            entries,
            last: keys.last().copied(),
            has_more,
        })
    }
}

/// Opens (or creates) the store's redb file.
fn open_db(path: &Path) -> Result<Database, String> {
    // redb caches up to 1 GiB by default; a sink beside a node should not.
    redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                "in use by another process: give each node its own store directory".into()
            }
            other => other.to_string(),
        })
}

/// The reference count at the head of a context's value.
fn refcount(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The context id at the head of an item's value.
fn context_of(value: &[u8]) -> Option<u128> {
    value
        .get(..16)
        .and_then(|b| b.try_into().ok())
        .map(u128::from_be_bytes)
}

fn count_of(totals: &mut Totals, signal: Signal) -> &mut u64 {
    match signal {
        Signal::Traces => &mut totals.traces,
        Signal::Metrics => &mut totals.metrics,
        Signal::Logs => &mut totals.logs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::items::Item;

    const UNLIMITED: Retention = Retention {
        max_age: None,
        max_bytes: u64::MAX,
    };

    /// The context of the tests' items: an empty resource and scope.
    const CONTEXT: &[u8] = &[0];
    /// The bytes counted for a row without a message id.
    const ROW: u64 = (ROW_HEAD + 8) as u64;

    fn item(time: u64, tag: u8) -> Item {
        Item {
            time_unix_nano: time,
            context: 0,
            bytes: vec![tag],
        }
    }

    fn parts(items: Vec<Item>) -> Parts {
        Parts {
            contexts: vec![CONTEXT.to_vec()],
            items,
        }
    }

    fn arrival(signal: Signal, items: Vec<Item>) -> Arrival {
        Arrival {
            signal,
            received_unix_nano: 1_000,
            parts: parts(items),
            message_id: None,
        }
    }

    /// The item's tag: the last byte of its entry.
    fn tag(entry: &[u8]) -> u8 {
        entry[entry.len() - 1]
    }

    fn window(store: &Store, start: u64, end: u64) -> Window {
        Window {
            signal: Signal::Traces,
            start,
            end,
            seq_hi: store.last_seq(),
            prev_end: start,
            prev_seq: 0,
        }
    }

    /// Every entry of `window`, paging `limit` at a time.
    fn drain(store: &Store, window: &Window, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = store.page(window, after, limit).unwrap();
            out.extend(page.entries.iter().map(|e| tag(e)));
            after = page.last.or(after);
            if !page.has_more {
                return out;
            }
        }
    }

    #[test]
    fn pages_return_every_item_once_in_time_order_with_start_inclusive_and_end_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        let times = [50u64, 10, 30, 30, 20, 40, 60];
        let items = times.iter().zip(0u8..).map(|(t, i)| item(*t, i)).collect();
        store.append(&[arrival(Signal::Traces, items)], 0).unwrap();
        for limit in 1..=8 {
            // Tags in time order (ties by arrival): 10→1, 20→4, 30→2, 30→3, 40→5; 50 and 60 are out.
            assert_eq!(
                drain(&store, &window(&store, 10, 50), limit),
                vec![1, 4, 2, 3, 5],
                "limit {limit}"
            );
        }
    }

    #[test]
    fn a_window_leaves_out_what_arrived_after_it_opened_and_the_next_window_brings_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        store
            .append(
                &[arrival(
                    Signal::Traces,
                    vec![item(10, 1), item(20, 2), item(30, 3)],
                )],
                0,
            )
            .unwrap();
        let first = window(&store, 0, 100);
        let page = store.page(&first, None, 2).unwrap();
        assert_eq!(
            page.entries.iter().map(|e| tag(e)).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // Arrives while paging: one late (before the position), one ahead of it.
        store
            .append(&[arrival(Signal::Traces, vec![item(5, 4), item(25, 5)])], 0)
            .unwrap();
        let rest = store.page(&first, page.last, 10).unwrap();
        assert_eq!(
            rest.entries.iter().map(|e| tag(e)).collect::<Vec<_>>(),
            vec![3]
        );
        assert!(!rest.has_more);
        store
            .append(
                &[arrival(
                    Signal::Traces,
                    vec![item(150, 6), item(90, 7), item(100, 8)],
                )],
                0,
            )
            .unwrap();
        let next = Window {
            end: 200,
            seq_hi: store.last_seq(),
            prev_end: first.end,
            prev_seq: first.seq_hi,
            ..first
        };
        // Late ones first (time order), then the new range, which starts at the old end.
        for limit in [1, 2, 10] {
            assert_eq!(
                drain(&store, &next, limit),
                vec![4, 5, 7, 8, 6],
                "limit {limit}"
            );
        }
    }

    #[test]
    fn signals_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        store
            .append(
                &[
                    arrival(Signal::Logs, vec![item(10, 1)]),
                    arrival(Signal::Traces, vec![item(10, 2)]),
                ],
                0,
            )
            .unwrap();
        assert_eq!(drain(&store, &window(&store, 0, 100), 10), vec![2]);
        let totals = store.totals();
        assert_eq!((totals.traces, totals.metrics, totals.logs), (1, 0, 1));
    }

    #[test]
    fn an_item_without_a_time_is_filed_under_its_arrival() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        store
            .append(&[arrival(Signal::Traces, vec![item(0, 1)])], 0)
            .unwrap();
        assert_eq!(drain(&store, &window(&store, 1_000, 1_001), 10), vec![1]);
    }

    #[test]
    fn retention_by_size_removes_the_oldest_stored_first() {
        let dir = tempfile::tempdir().unwrap();
        let one_context = CONTEXT.len() as u64 + CONTEXT_OVERHEAD;
        let request = 1 + OVERHEAD + ROW;
        let retention = Retention {
            max_age: None,
            max_bytes: 3 * request + one_context,
        };
        let store = Store::open(dir.path(), retention).unwrap();
        for tag in 1..=5u8 {
            // Stored newest-time first, so arrival order and time order differ.
            store
                .append(
                    &[arrival(
                        Signal::Traces,
                        vec![item(100 - u64::from(tag), tag)],
                    )],
                    0,
                )
                .unwrap();
        }
        assert_eq!(drain(&store, &window(&store, 0, 1000), 10), vec![5, 4, 3]);
        assert_eq!(store.totals().expired, 2);
        assert_eq!(store.totals().bytes, 3 * request + one_context);
        assert_eq!(store.totals().contexts, 1, "the items share one context");
    }

    #[test]
    fn retention_by_age_removes_what_was_received_too_long_ago() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            max_age: Some(Duration::from_nanos(500)),
            max_bytes: u64::MAX,
        };
        let store = Store::open(dir.path(), retention).unwrap();
        let at = |received: u64, tag: u8| Arrival {
            signal: Signal::Traces,
            received_unix_nano: received,
            parts: parts(vec![item(7, tag)]),
            message_id: None,
        };
        store.append(&[at(1_000, 1), at(2_000, 2)], 1_000).unwrap();
        assert_eq!(store.expire(2_400).unwrap(), 1);
        assert_eq!(drain(&store, &window(&store, 0, 10), 10), vec![2]);
        // With its last item, the context goes too: nothing is left counted.
        assert_eq!(store.expire(3_000).unwrap(), 1);
        let totals = store.totals();
        assert_eq!((totals.traces, totals.contexts, totals.bytes), (0, 0, 0));
    }

    #[test]
    fn retention_removes_a_request_with_all_its_items() {
        let dir = tempfile::tempdir().unwrap();
        let one_context = CONTEXT.len() as u64 + CONTEXT_OVERHEAD;
        let retention = Retention {
            max_age: None,
            max_bytes: 4 * (1 + OVERHEAD) + 2 * ROW + one_context,
        };
        let store = Store::open(dir.path(), retention).unwrap();
        store
            .append(
                &[arrival(
                    Signal::Logs,
                    vec![item(5, 1), item(6, 2), item(7, 3)],
                )],
                0,
            )
            .unwrap();
        store
            .append(&[arrival(Signal::Logs, vec![item(1, 4), item(2, 5)])], 0)
            .unwrap();
        let totals = store.totals();
        assert_eq!((totals.logs, totals.expired), (2, 3));
        assert_eq!(totals.bytes, 2 * (1 + OVERHEAD) + ROW + one_context);
    }

    #[test]
    fn a_message_delivered_again_is_stored_once_until_retention_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        let message = |id: &str, tag: u8| Arrival {
            message_id: Some(id.into()),
            ..arrival(Signal::Traces, vec![item(10, tag)])
        };
        store
            .append(&[message("a", 1), message("a", 2)], 0)
            .unwrap();
        store
            .append(&[message("a", 3), message("b", 4)], 0)
            .unwrap();
        // A request without items takes a number and a row of its own, with its id.
        store
            .append(
                &[Arrival {
                    message_id: Some("c".into()),
                    ..arrival(Signal::Traces, Vec::new())
                }],
                0,
            )
            .unwrap();
        store.append(&[message("c", 5)], 0).unwrap();
        assert_eq!(drain(&store, &window(&store, 0, 100), 10), vec![1, 4]);
        assert_eq!(store.totals().duplicates, 3);
    }

    #[test]
    fn the_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), UNLIMITED).unwrap();
            store
                .append(
                    &[arrival(Signal::Traces, vec![item(10, 1), item(20, 2)])],
                    0,
                )
                .unwrap();
        }
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        assert_eq!(store.totals().last_seq, 2);
        assert_eq!(store.totals().traces, 2);
        store
            .append(&[arrival(Signal::Traces, vec![item(15, 3)])], 0)
            .unwrap();
        assert_eq!(drain(&store, &window(&store, 0, 100), 10), vec![1, 3, 2]);
    }

    /// Batches of 20 messages (ids `m0`, `m1`…), each one item of ~2 KB tagged with its number.
    fn batch(first: usize) -> Vec<Arrival> {
        (first..first + 20)
            .map(|i| Arrival {
                message_id: Some(format!("m{i}")),
                parts: Parts {
                    contexts: vec![CONTEXT.to_vec()],
                    items: vec![Item {
                        time_unix_nano: 10 + i as u64,
                        context: 0,
                        bytes: [vec![b'x'; 2000], vec![i as u8]].concat(),
                    }],
                },
                ..arrival(Signal::Traces, Vec::new())
            })
            .collect()
    }

    #[test]
    fn a_commit_failing_on_a_full_disk_keeps_nothing_and_the_store_takes_it_again_once_there_is_room(
    ) {
        let Some(disk) = crate::testdisk::SmallDisk::mount(1024) else {
            return;
        };
        let store = Store::open(disk.path(), UNLIMITED).unwrap();
        let mut stored = 0;
        let failed = loop {
            match store.append(&batch(stored), 0) {
                Ok(()) => stored += 20,
                Err(err) => break err,
            }
            assert!(stored < 2000, "the disk never filled");
        };
        assert_eq!(store.totals().traces, stored as u64, "{failed}");
        assert!(
            store.append(&batch(stored), 0).is_err(),
            "still full, opened again"
        );
        disk.resize(8192);
        // The failed batch again, then the next: each message once.
        store.append(&batch(stored), 0).unwrap();
        store.append(&batch(stored + 20), 0).unwrap();
        let all = stored + 40;
        assert_eq!(store.totals().traces, all as u64);
        assert_eq!(store.totals().duplicates, 0);
        let tags = drain(&store, &window(&store, 0, u64::MAX), 100);
        assert_eq!(tags, (0..all).map(|i| i as u8).collect::<Vec<_>>());
    }
}
