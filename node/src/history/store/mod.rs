//! The store: every item that arrived (one span, data point or log record, see
//! [`otlp::items`]) in a redb file, `DIR/store.redb`, indexed by signal and item time, and by
//! arrival. An item's context (resource and scope) is kept once, however many items share it.
//!
//! Tables: per signal, `(bucket, first seq) → row`: a request's items whose times fall in one
//! bucket (100 ms), each with its time, seq and context id, in `(time, seq)` order (one insert
//! per request and bucket, not per item); `contexts`, `id → refcount ++ context` (ids given
//! in the order contexts are first seen, [`context_ids`]); `requests`, one row per request in
//! arrival order, `first seq → signal, received, bytes, items, its buckets, the message id`
//! (the items are `first seq`, `first seq + 1`, …; retention, sealing and late arrivals read
//! it);
//! `messages`, `message id → first seq`, so that a message delivered again (after a crash
//! between the commit and its acknowledgement) is stored once; `meta` for the counters and
//! the store's id, which cursors are bound to. A request is stored in one transaction, so a
//! window's `seq_hi` never falls inside a request.
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
//!
//! A store written by a version that kept a row per item is moved to this layout when it is
//! opened ([`upgrade`]).

mod context_ids;
mod read;
mod retention;
mod schema;
mod seal;
mod upgrade;
mod write;

pub use seal::Sealed;
pub use write::Prepared;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redb::{Database, ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::Serialize;

use otlp::items::Parts;
use otlp::Signal;

use schema::*;

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
    /// Items removed here once sealed into segments that object storage confirmed.
    pub archived: u64,
    /// Every item stored up to this sequence number is sealed and held by object storage.
    pub sealed_through: u64,
    /// The end of the range being sealed (above `sealed_through` while its segments are put):
    /// after a restart the same range is sealed again, so its segments keep their names.
    pub sealing_through: u64,
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

impl Window {
    /// Whether the item at `(time, seq)` belongs to this window, as [`Store::page`] selects:
    /// stored by `seq_hi`, and either late (stored after the previous window, with a time
    /// before its end) or from the previous window's end to this one's.
    pub fn admits(&self, (time, seq): Position) -> bool {
        if seq > self.seq_hi || time < self.start {
            return false;
        }
        if time < self.prev_end {
            seq > self.prev_seq
        } else {
            time < self.end
        }
    }
}

/// Stores for the tests of other modules.
#[cfg(test)]
pub mod testing {
    use super::*;
    use otlp::items::Item;

    /// Keeps everything.
    pub const KEEP: Retention = Retention {
        max_age: None,
        max_bytes: u64::MAX,
    };

    /// Stores one request of spans at `times`, received at 1,000, each tagged with the low
    /// byte of its time (its item's last byte).
    pub fn spans_at(store: &Store, times: &[u64]) {
        let items = times
            .iter()
            .map(|t| Item {
                time_unix_nano: *t,
                context: 0,
                bytes: vec![*t as u8].into(),
            })
            .collect();
        let arrival = Arrival {
            signal: Signal::Traces,
            received_unix_nano: 1_000,
            parts: Parts {
                contexts: vec![vec![0]],
                items,
            },
            message_id: None,
        };
        store.append(vec![arrival], 0).unwrap();
    }
}

/// A position in a window: the `(time, seq)` of the last item returned.
pub type Position = (u64, u64);

/// A place among the items of several stores (this node's and those whose segments share its
/// bucket prefix): `(time, store id, seq)`, the order a query returns them in.
pub type Place = (u64, u64, u64);

/// The position in the store `store` from which its items follow `place` ([`Store::page`]
/// returns those after it): at the same time, a store of a lower id comes first.
pub fn position_after(place: Place, store: u64) -> Position {
    let (time, other, seq) = place;
    match other.cmp(&store) {
        std::cmp::Ordering::Equal => (time, seq),
        // Every item of this store at `time` follows (sequence numbers start at 1).
        std::cmp::Ordering::Less => (time, 0),
        std::cmp::Ordering::Greater => (time, u64::MAX),
    }
}

/// One page.
#[derive(Debug, Default)]
pub struct Page {
    /// The entries, in time order.
    pub entries: Vec<Vec<u8>>,
    /// The `(time, seq)` of each entry.
    pub positions: Vec<Position>,
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
    /// The ids new contexts get, and the contexts seen recently.
    context_ids: context_ids::ContextIds,
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
            context_ids: context_ids::ContextIds::after(None),
            claimed: std::sync::atomic::AtomicBool::new(false),
            id: 0,
        };
        store.id = store.create_tables()?;
        store.upgrade()?;
        store.context_ids = context_ids::ContextIds::after(store.highest_given_context()?);
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
            txn.open_table(REQUESTS).map_err(|e| self.error(e))?;
            txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
            txn.open_table(MESSAGES).map_err(|e| self.error(e))?;
            txn.open_table(ARCHIVED_IDS).map_err(|e| self.error(e))?;
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

    /// The highest context id stored of those [`context_ids`] gives.
    fn highest_given_context(&self) -> Result<Option<u128>, StoreError> {
        let txn = self.begin_read()?;
        let contexts = txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
        let last = contexts
            .range(context_ids::GIVEN..)
            .map_err(|e| self.error(e))?
            .next_back()
            .transpose()
            .map_err(|e| self.error(e))?;
        Ok(last.map(|(id, _)| id.value()))
    }

    /// Every signal's table of items (in [`Signal::ALL`]'s order), open for writing.
    fn item_tables<'t>(&self, txn: &'t WriteTransaction) -> Result<Vec<ItemTable<'t>>, StoreError> {
        Signal::ALL
            .iter()
            .map(|s| txn.open_table(table(*s)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }

    /// The context `id` (without its reference count), read from `contexts` once and kept in
    /// `known` for the rest of a page or a seal. An item's context lives as long as it does.
    fn context<'k>(
        &self,
        contexts: &redb::ReadOnlyTable<u128, &[u8]>,
        known: &'k mut HashMap<u128, Vec<u8>>,
        id: u128,
    ) -> Result<&'k [u8], StoreError> {
        match known.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let context = contexts
                    .get(id)
                    .map_err(|e| self.error(e))?
                    .ok_or_else(|| self.error("an item's context is missing"))?;
                Ok(e.insert(context.value().get(8..).unwrap_or_default().to_vec()))
            }
        }
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
        let count = |signal: Signal| get(count_key(signal));
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
            archived: get("archived")?,
            sealed_through: get("sealed_through")?,
            sealing_through: get("sealing_through")?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::items::Item;
    use redb::TableDefinition;

    const UNLIMITED: Retention = Retention {
        max_age: None,
        max_bytes: u64::MAX,
    };

    /// Items kept an hour after they were received.
    const AN_HOUR: Retention = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_bytes: u64::MAX,
    };

    /// The context of the tests' items: an empty resource and scope.
    const CONTEXT: &[u8] = &[0];
    /// The bytes counted for a request beyond its items: one row of one context, no message id.
    const ROW: u64 = ROW_OVERHEAD + 16 + (REQUEST_HEAD + 8) as u64;

    fn item(time: u64, tag: u8) -> Item {
        Item {
            time_unix_nano: time,
            context: 0,
            bytes: vec![tag].into(),
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
            let page = store.page(window, after, limit, usize::MAX).unwrap();
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
        store
            .append(vec![arrival(Signal::Traces, items)], 0)
            .unwrap();
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
                vec![arrival(
                    Signal::Traces,
                    vec![item(10, 1), item(20, 2), item(30, 3)],
                )],
                0,
            )
            .unwrap();
        let first = window(&store, 0, 100);
        let page = store.page(&first, None, 2, usize::MAX).unwrap();
        assert_eq!(
            page.entries.iter().map(|e| tag(e)).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // Arrives while paging: one late (before the position), one ahead of it.
        store
            .append(
                vec![arrival(Signal::Traces, vec![item(5, 4), item(25, 5)])],
                0,
            )
            .unwrap();
        let rest = store.page(&first, page.last, 10, usize::MAX).unwrap();
        assert_eq!(
            rest.entries.iter().map(|e| tag(e)).collect::<Vec<_>>(),
            vec![3]
        );
        assert!(!rest.has_more);
        store
            .append(
                vec![arrival(
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
                vec![
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
            .append(vec![arrival(Signal::Traces, vec![item(0, 1)])], 0)
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
                    vec![arrival(
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
        store
            .append(vec![at(1_000, 1), at(2_000, 2)], 1_000)
            .unwrap();
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
                vec![arrival(
                    Signal::Logs,
                    vec![item(5, 1), item(6, 2), item(7, 3)],
                )],
                0,
            )
            .unwrap();
        store
            .append(vec![arrival(Signal::Logs, vec![item(1, 4), item(2, 5)])], 0)
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
            .append(vec![message("a", 1), message("a", 2)], 0)
            .unwrap();
        store
            .append(vec![message("a", 3), message("b", 4)], 0)
            .unwrap();
        // A request without items takes a number and a row of its own, with its id.
        store
            .append(
                vec![Arrival {
                    message_id: Some("c".into()),
                    ..arrival(Signal::Traces, Vec::new())
                }],
                0,
            )
            .unwrap();
        store.append(vec![message("c", 5)], 0).unwrap();
        assert_eq!(drain(&store, &window(&store, 0, 100), 10), vec![1, 4]);
        assert_eq!(store.totals().duplicates, 3);
        // Each id still names the request first stored with it.
        let txn = store.begin_read().unwrap();
        let messages = txn.open_table(MESSAGES).unwrap();
        let first_of = |id: &str| messages.get(id).unwrap().map(|seq| seq.value());
        assert_eq!(
            (first_of("a"), first_of("b"), first_of("c")),
            (Some(1), Some(2), Some(3))
        );
    }

    /// The tags of a sealed segment's items, in its order.
    fn sealed_tags(sealed: &Sealed) -> Vec<u8> {
        let segment = crate::history::segment::Segment::open(&sealed.bytes).unwrap();
        (0..segment.index.blocks.len())
            .flat_map(|b| segment.block(b).unwrap())
            .map(|(_, entry)| tag(&entry))
            .collect()
    }

    #[test]
    fn sealing_gives_each_signal_its_items_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        store
            .append(
                vec![
                    arrival(Signal::Traces, vec![item(30, 1), item(10, 2)]),
                    arrival(Signal::Logs, vec![item(5, 3)]),
                    arrival(Signal::Traces, vec![item(20, 4)]),
                ],
                0,
            )
            .unwrap();
        let sealed = store.seal(0, store.last_seq()).unwrap();
        let by_signal: Vec<(Signal, Vec<u8>)> =
            sealed.iter().map(|s| (s.signal, sealed_tags(s))).collect();
        assert_eq!(
            by_signal,
            [(Signal::Traces, vec![2, 4, 1]), (Signal::Logs, vec![3])]
        );
        assert_eq!((sealed[0].items, sealed[0].times), (3, (10, 30)));
    }

    /// A store in `dir` holding items 1 and 2 (times 10, 20), then item 3 (time 15); the
    /// sequence number that ends the first request.
    fn two_requests(dir: &Path) -> (Arc<Store>, u64) {
        let store = Store::open(dir, UNLIMITED).unwrap();
        store
            .append(
                vec![arrival(Signal::Traces, vec![item(10, 1), item(20, 2)])],
                0,
            )
            .unwrap();
        let first = store.last_seq();
        store
            .append(vec![arrival(Signal::Traces, vec![item(15, 3)])], 0)
            .unwrap();
        (store, first)
    }

    #[test]
    fn sealing_a_range_takes_only_what_arrived_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, first) = two_requests(dir.path());
        let later = store.seal(first, store.last_seq()).unwrap();
        assert_eq!(sealed_tags(&later[0]), [3]);
        let earlier = store.seal(0, first).unwrap();
        assert_eq!(sealed_tags(&earlier[0]), [1, 2]);
    }

    #[test]
    fn what_object_storage_holds_is_removed_here_and_counted_as_archived() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, through) = two_requests(dir.path());
            assert_eq!(store.archived_through(through, 0).unwrap(), 2);
            assert_eq!(drain(&store, &window(&store, 0, 100), 10), vec![3]);
            let totals = store.totals();
            assert_eq!((totals.traces, totals.archived, totals.expired), (1, 2, 0));
        }
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        assert_eq!(store.totals().sealed_through, 2, "kept across a restart");
        assert_eq!(store.totals().archived, 2);
    }

    #[test]
    fn a_range_begun_is_sealed_again_the_same_until_done_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, first) = two_requests(dir.path());
            // Everything so far arrived at 1_000, before 2_000; a range ends with the request
            // that reaches its size, never inside one.
            assert_eq!(store.next_seal(2_000, 1).unwrap(), Some((0, first)));
            store
                .append(vec![arrival(Signal::Traces, vec![item(5, 4)])], 0)
                .unwrap();
            assert_eq!(store.next_seal(2_000, 100).unwrap(), Some((0, first)));
        }
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        assert_eq!(
            store.next_seal(2_000, 100).unwrap(),
            Some((0, 2)),
            "kept across a restart"
        );
        store.archived_through(2, 0).unwrap();
        assert_eq!(
            store.next_seal(2_000, 100).unwrap(),
            Some((2, 4)),
            "then the rest"
        );
        assert_eq!(store.next_seal(500, 100).unwrap(), Some((2, 4)));
    }

    #[test]
    fn a_message_sent_again_after_it_was_archived_is_not_stored_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), AN_HOUR).unwrap();
        let message = || Arrival {
            message_id: Some("sender\0m1".into()),
            ..arrival(Signal::Traces, vec![item(10, 1)])
        };
        store.append(vec![message()], 2_000).unwrap();
        store.archived_through(store.last_seq(), 2_000).unwrap();
        store.append(vec![message()], 3_000).unwrap();
        let totals = store.totals();
        assert_eq!(
            (totals.traces, totals.archived, totals.duplicates),
            (0, 1, 1)
        );
        // At max-age the id is forgotten, as a row's would be: no longer a duplicate.
        let hour = 3_600_000_000_000;
        store.expire(1_000 + hour + 1).unwrap();
        store.append(vec![message()], hour * 2).unwrap();
        assert_eq!(store.totals().duplicates, 1);
    }

    #[test]
    fn retention_leaves_a_range_being_sealed_alone_until_the_bucket_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let hour = 3_600_000_000_000u64;
        let store = Store::open(dir.path(), AN_HOUR).unwrap();
        // The tests' arrivals are received at 1_000.
        store
            .append(vec![arrival(Signal::Traces, vec![item(10, 1)])], 0)
            .unwrap();
        assert_eq!(store.next_seal(2_000, 100).unwrap(), Some((0, 1)));
        store
            .append(vec![arrival(Signal::Traces, vec![item(20, 2)])], 0)
            .unwrap();
        // Both are past max-age now, but the first is being sealed: neither goes.
        store.expire(hour * 10).unwrap();
        assert_eq!(drain(&store, &window(&store, 0, 100), 10), vec![1, 2]);
        // Once the bucket holds it, it goes as archived, and the other as expired.
        assert_eq!(store.archived_through(1, hour * 10).unwrap(), 1);
        let totals = store.totals();
        assert_eq!((totals.traces, totals.archived, totals.expired), (0, 1, 1));
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn items_of_requests_spread_over_buckets_page_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        // Three requests whose items interleave across four buckets (100 ms each); an item's
        // tag is its arrival order, which is also its seq's.
        let requests: [&[u64]; 3] = [
            &[350, 10, 120, 10, 399],
            &[99, 100, 301, 10],
            &[200, 5, 399, 120, 250],
        ];
        let mut all = Vec::new();
        for times in requests {
            let items = times
                .iter()
                .map(|t| {
                    all.push((t * MS, all.len() as u8));
                    item(t * MS, all.len() as u8 - 1)
                })
                .collect();
            store
                .append(vec![arrival(Signal::Traces, items)], 0)
                .unwrap();
        }
        all.sort();
        let tags_in = |from: u64, to: u64| -> Vec<u8> {
            all.iter()
                .filter(|(t, _)| (from * MS..to * MS).contains(t))
                .map(|(_, tag)| *tag)
                .collect()
        };
        for limit in 1..=15 {
            assert_eq!(
                drain(&store, &window(&store, 0, 400 * MS), limit),
                tags_in(0, 400),
                "limit {limit}"
            );
            assert_eq!(
                drain(&store, &window(&store, 100 * MS, 350 * MS), limit),
                tags_in(100, 350),
                "limit {limit}"
            );
        }
    }

    #[test]
    fn late_items_in_earlier_buckets_come_first_in_the_next_window_and_only_those_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        store
            .append(
                vec![arrival(
                    Signal::Traces,
                    vec![item(150 * MS, 1), item(250 * MS, 2)],
                )],
                0,
            )
            .unwrap();
        let first = window(&store, 100 * MS, 300 * MS);
        assert_eq!(drain(&store, &first, 10), vec![1, 2]);
        // Late: one before the query's start (another bucket), two inside it, one after.
        store
            .append(
                vec![arrival(
                    Signal::Traces,
                    vec![
                        item(50 * MS, 3),
                        item(280 * MS, 4),
                        item(120 * MS, 5),
                        item(320 * MS, 6),
                    ],
                )],
                0,
            )
            .unwrap();
        let next = Window {
            end: 400 * MS,
            seq_hi: store.last_seq(),
            prev_end: first.end,
            prev_seq: first.seq_hi,
            ..first
        };
        for limit in [1, 2, 10] {
            assert_eq!(drain(&store, &next, limit), vec![5, 4, 6], "limit {limit}");
        }
    }

    #[test]
    fn a_store_of_the_row_per_item_layout_is_moved_over_once_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let context = context_digest(Signal::Traces, CONTEXT);
        {
            // What an earlier version wrote: items keyed by (time, seq), a row per request
            // listing the items' times.
            let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let old_row = |received: u64, times: &[u64], id: &str| {
                    let mut row = vec![0u8];
                    row.extend_from_slice(&received.to_be_bytes());
                    row.extend_from_slice(&100u64.to_be_bytes());
                    row.extend_from_slice(&(times.len() as u32).to_be_bytes());
                    for t in times {
                        row.extend_from_slice(&t.to_be_bytes());
                    }
                    row.extend_from_slice(id.as_bytes());
                    row
                };
                let mut arrivals = txn
                    .open_table(TableDefinition::<u64, &[u8]>::new("arrivals"))
                    .unwrap();
                arrivals
                    .insert(1, old_row(1_000, &[20, 10], "m1").as_slice())
                    .unwrap();
                arrivals
                    .insert(3, old_row(1_000, &[150 * MS], "").as_slice())
                    .unwrap();
                let mut items = txn
                    .open_table(TableDefinition::<(u64, u64), &[u8]>::new("traces"))
                    .unwrap();
                for (key, tag) in [((20, 1), 1u8), ((10, 2), 2), ((150 * MS, 3), 3)] {
                    let value = [&context.to_be_bytes()[..], &[tag]].concat();
                    items.insert(key, value.as_slice()).unwrap();
                }
                let mut contexts = txn.open_table(CONTEXTS).unwrap();
                let value = [&3u64.to_be_bytes()[..], CONTEXT].concat();
                contexts.insert(context, value.as_slice()).unwrap();
                txn.open_table(MESSAGES).unwrap().insert("m1", 1).unwrap();
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("last_seq", 3).unwrap();
                meta.insert("bytes", 200 + CONTEXT.len() as u64 + CONTEXT_OVERHEAD)
                    .unwrap();
                meta.insert("store_id", 7).unwrap();
            }
            txn.commit().unwrap();
        }
        for _ in 0..2 {
            let store = Store::open(dir.path(), UNLIMITED).unwrap();
            assert_eq!(store.id(), 7);
            assert_eq!(
                drain(&store, &window(&store, 0, 200 * MS), 2),
                vec![2, 1, 3]
            );
            let totals = store.totals();
            assert_eq!((totals.traces, totals.last_seq, totals.contexts), (3, 3, 1));
        }
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        store
            .append(
                vec![Arrival {
                    message_id: Some("m1".into()),
                    ..arrival(Signal::Traces, vec![item(30, 4)])
                }],
                0,
            )
            .unwrap();
        assert_eq!(store.totals().duplicates, 1, "its message ids are known");
        // Retention removes the moved requests whole, with what they counted.
        let retention = Retention {
            max_age: None,
            max_bytes: 0,
        };
        drop(store);
        let store = Store::open(dir.path(), retention).unwrap();
        store.expire(0).unwrap();
        let totals = store.totals();
        assert_eq!((totals.traces, totals.contexts, totals.bytes), (0, 0, 0));
        assert_eq!(totals.expired, 3);
    }

    #[test]
    fn an_upgrade_longer_than_one_transaction_moves_every_request_and_drops_an_unreadable_one() {
        let dir = tempfile::tempdir().unwrap();
        let context = context_digest(Signal::Logs, CONTEXT);
        let requests = 2 * upgrade::CHUNK as u64 + 1;
        {
            let db = redb::Database::create(dir.path().join("store.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut arrivals = txn
                    .open_table(TableDefinition::<u64, &[u8]>::new("arrivals"))
                    .unwrap();
                let mut items = txn
                    .open_table(TableDefinition::<(u64, u64), &[u8]>::new("logs"))
                    .unwrap();
                // Request `seq` (one log record at time `seq`, counted 10 bytes); the last one
                // of an unknown signal.
                for seq in 1..=requests + 1 {
                    let code = if seq > requests { 9u8 } else { 2 };
                    let mut row = vec![code];
                    row.extend_from_slice(&1_000u64.to_be_bytes());
                    row.extend_from_slice(&10u64.to_be_bytes());
                    row.extend_from_slice(&1u32.to_be_bytes());
                    row.extend_from_slice(&seq.to_be_bytes());
                    arrivals.insert(seq, row.as_slice()).unwrap();
                    let value = [&context.to_be_bytes()[..], &[seq as u8]].concat();
                    items.insert((seq, seq), value.as_slice()).unwrap();
                }
                let mut contexts = txn.open_table(CONTEXTS).unwrap();
                let value = [&(requests + 1).to_be_bytes()[..], CONTEXT].concat();
                contexts.insert(context, value.as_slice()).unwrap();
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("last_seq", requests + 1).unwrap();
                meta.insert("bytes", 10 * (requests + 1)).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        let totals = store.totals();
        assert_eq!((totals.logs, totals.bytes), (requests, 10 * requests));
        let all = Window {
            signal: Signal::Logs,
            ..window(&store, 0, u64::MAX)
        };
        assert_eq!(drain(&store, &all, 1_000).len() as u64, requests);
    }

    #[test]
    fn retention_and_sealing_take_a_request_spread_over_buckets_and_contexts_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        let items = [(250, 0, 1), (10, 1, 2), (150, 0, 3), (20, 1, 4)]
            .into_iter()
            .map(|(t, context, tag)| Item {
                time_unix_nano: t * MS,
                context,
                bytes: vec![tag].into(),
            })
            .collect();
        store
            .append(
                vec![Arrival {
                    parts: Parts {
                        contexts: vec![vec![0], vec![0, 1]],
                        items,
                    },
                    ..arrival(Signal::Traces, Vec::new())
                }],
                0,
            )
            .unwrap();
        let sealed = store.seal(0, store.last_seq()).unwrap();
        assert_eq!(sealed_tags(&sealed[0]), [2, 4, 3, 1]);
        assert_eq!(store.totals().contexts, 2);
        drop(store);
        let retention = Retention {
            max_age: None,
            max_bytes: 0,
        };
        let store = Store::open(dir.path(), retention).unwrap();
        assert_eq!(store.expire(0).unwrap(), 4);
        let totals = store.totals();
        assert_eq!(
            (totals.traces, totals.contexts, totals.bytes),
            (0, 0, 0),
            "every row, context and byte of it gone"
        );
    }

    #[test]
    fn each_item_of_a_request_with_many_contexts_comes_back_with_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        // 40 contexts (more than a row looks up in a list), items of each in turn.
        let contexts: Vec<Vec<u8>> = (0..40u8).map(|k| vec![0, k]).collect();
        let items: Vec<Item> = (0..120u8)
            .map(|i| Item {
                time_unix_nano: 10 + u64::from(i),
                context: usize::from(i % 40),
                bytes: vec![i].into(),
            })
            .collect();
        let expected: Vec<Vec<u8>> = items
            .iter()
            .map(|i| otlp::items::entry(&contexts[i.context], &i.bytes).unwrap())
            .collect();
        store
            .append(
                vec![Arrival {
                    parts: Parts { contexts, items },
                    ..arrival(Signal::Traces, Vec::new())
                }],
                0,
            )
            .unwrap();
        let page = store
            .page(&window(&store, 0, 1_000), None, 1_000, usize::MAX)
            .unwrap();
        assert_eq!(page.entries, expected);
        assert_eq!(store.totals().contexts, 40);
    }

    #[test]
    fn contexts_stored_before_the_store_was_opened_again_keep_their_items_and_new_ones_get_their_own(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let with = |context: &[u8], tag: u8| Arrival {
            parts: Parts {
                contexts: vec![context.to_vec()],
                items: vec![item(10 + u64::from(tag), tag)],
            },
            ..arrival(Signal::Traces, Vec::new())
        };
        let entry = |context: &[u8], tag: u8| otlp::items::entry(context, &[tag]).unwrap();
        {
            let store = Store::open(dir.path(), UNLIMITED).unwrap();
            store.append(vec![with(&[0, 1], 1)], 0).unwrap();
        }
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        // A new context, and the one from before seen again.
        store
            .append(vec![with(&[0, 2], 2), with(&[0, 1], 3)], 0)
            .unwrap();

        let page = store
            .page(&window(&store, 0, 1_000), None, 1_000, usize::MAX)
            .unwrap();
        assert_eq!(
            page.entries,
            [entry(&[0, 1], 1), entry(&[0, 2], 2), entry(&[0, 1], 3)]
        );
    }

    #[test]
    fn a_context_shared_by_the_requests_of_a_batch_and_the_next_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), UNLIMITED).unwrap();

        store
            .append(
                vec![
                    arrival(Signal::Traces, vec![item(10, 1)]),
                    arrival(Signal::Traces, vec![item(11, 2)]),
                ],
                0,
            )
            .unwrap();
        store
            .append(vec![arrival(Signal::Traces, vec![item(12, 3)])], 0)
            .unwrap();

        assert_eq!(store.totals().contexts, 1);
        assert_eq!(drain(&store, &window(&store, 0, 1_000), 10), [1, 2, 3]);
    }

    #[test]
    fn packed_rows_page_seal_and_leave_with_retention_like_plain_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), AN_HOUR).unwrap();
        // Two requests whose items interleave in time, each item 40 bytes that compress well.
        let long = |time: u64, tag: u8| Item {
            time_unix_nano: time,
            context: 0,
            bytes: [vec![b'x'; 39], vec![tag]].concat().into(),
        };
        let first: Vec<Item> = (0..30u8)
            .map(|i| long(10 + 2 * u64::from(i), i + 1))
            .collect();
        let second: Vec<Item> = (0..30u8)
            .map(|i| long(11 + 2 * u64::from(i), i + 31))
            .collect();
        store
            .append(
                vec![
                    arrival(Signal::Traces, first),
                    arrival(Signal::Traces, second),
                ],
                0,
            )
            .unwrap();
        // Counted as kept: far less than the items' own 2,400 bytes.
        let totals = store.totals();
        assert_eq!(totals.traces, 60);
        assert!(
            totals.bytes < 60 * OVERHEAD + 2 * ROW + 1_000,
            "{}",
            totals.bytes
        );
        let in_time_order: Vec<u8> = (0..30u8).flat_map(|i| [i + 1, i + 31]).collect();
        for limit in [1, 7, 100] {
            let window = window(&store, 0, 100);
            assert_eq!(
                drain(&store, &window, limit),
                in_time_order,
                "limit {limit}"
            );
        }
        let sealed = store.seal(0, store.last_seq()).unwrap();
        assert_eq!(sealed_tags(&sealed[0]), in_time_order);
        store.expire(1_000 + 2 * 3_600 * 1_000_000_000).unwrap();
        let totals = store.totals();
        assert_eq!((totals.traces, totals.expired, totals.bytes), (0, 60, 0));
    }

    #[test]
    fn the_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), UNLIMITED).unwrap();
            store
                .append(
                    vec![arrival(Signal::Traces, vec![item(10, 1), item(20, 2)])],
                    0,
                )
                .unwrap();
        }
        let store = Store::open(dir.path(), UNLIMITED).unwrap();
        assert_eq!(store.totals().last_seq, 2);
        assert_eq!(store.totals().traces, 2);
        store
            .append(vec![arrival(Signal::Traces, vec![item(15, 3)])], 0)
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
                        bytes: [vec![b'x'; 2000], vec![i as u8]].concat().into(),
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
            match store.append(batch(stored), 0) {
                Ok(()) => stored += 20,
                Err(err) => break err,
            }
            assert!(stored < 2000, "the disk never filled");
        };
        assert_eq!(store.totals().traces, stored as u64, "{failed}");
        assert!(
            store.append(batch(stored), 0).is_err(),
            "still full, opened again"
        );
        disk.resize(8192);
        // The failed batch again, then the next: each message once.
        store.append(batch(stored), 0).unwrap();
        store.append(batch(stored + 20), 0).unwrap();
        let all = stored + 40;
        assert_eq!(store.totals().traces, all as u64);
        assert_eq!(store.totals().duplicates, 0);
        let tags = drain(&store, &window(&store, 0, u64::MAX), 100);
        assert_eq!(tags, (0..all).map(|i| i as u8).collect::<Vec<_>>());
    }
}
