//! The store's tables and how their rows are laid out.

use redb::TableDefinition;
use sha2::{Digest, Sha256};

use otlp::Signal;

use super::Position;

/// Bytes counted per item beyond its own: its context id, its key and its time in the
/// arrivals row.
pub(super) const OVERHEAD: u64 = 48;
/// Bytes counted per context beyond its own: its id and reference count.
pub(super) const CONTEXT_OVERHEAD: u64 = 24;
/// The store's page cache.
pub(super) const CACHE_BYTES: usize = 64 << 20;

pub(super) const TRACES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("traces");
pub(super) const METRICS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("metrics");
pub(super) const LOGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("logs");
/// `seq → (signal, time, received, bytes)`.
/// `first seq → signal (1 byte), received, bytes (8 each), items (4), each item's time (8),
/// the message id`, numbers big-endian.
pub(super) const ARRIVALS: TableDefinition<u64, &[u8]> = TableDefinition::new("arrivals");
/// The bytes of an arrivals row before the items' times.
pub(super) const ROW_HEAD: usize = 21;
/// `message id → first seq` of the messages stored.
pub(super) const MESSAGES: TableDefinition<&str, u64> = TableDefinition::new("messages");
/// `(received, first seq) → message id` of the messages archived to object storage and
/// removed here: their ids stay in `messages` until the store's `max-age`, so that one sent
/// again is still recognised.
pub(super) const ARCHIVED_IDS: TableDefinition<(u64, u64), &str> =
    TableDefinition::new("archived_ids");

/// One row of `arrivals`, read.
pub(super) struct Row<'a> {
    pub(super) signal: Option<Signal>,
    pub(super) received: u64,
    pub(super) bytes: u64,
    pub(super) times: &'a [u8],
    pub(super) message_id: &'a [u8],
}

impl<'a> Row<'a> {
    pub(super) fn read(value: &'a [u8]) -> Row<'a> {
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
    pub(super) fn keys(&self, first: u64) -> impl Iterator<Item = Position> + '_ {
        self.times
            .chunks_exact(8)
            .zip(first..)
            .map(|(t, seq)| (u64::from_be_bytes(t.try_into().unwrap_or_default()), seq))
    }
}
/// `id → refcount (8 bytes, big-endian) ++ context`.
pub(super) const CONTEXTS: TableDefinition<u128, &[u8]> = TableDefinition::new("contexts");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The id of `context` of `signal`.
pub(super) fn context_id(signal: Signal, context: &[u8]) -> u128 {
    let digest = Sha256::new()
        .chain_update([signal_code(signal)])
        .chain_update(context)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(id)
}

pub(super) fn table(signal: Signal) -> TableDefinition<'static, (u64, u64), &'static [u8]> {
    match signal {
        Signal::Traces => TRACES,
        Signal::Metrics => METRICS,
        Signal::Logs => LOGS,
    }
}

pub(super) fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

pub(super) fn signal_of(code: u8) -> Option<Signal> {
    Signal::ALL.get(usize::from(code)).copied()
}

/// The reference count at the head of a context's value.
pub(super) fn refcount(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The context id at the head of an item's value.
pub(super) fn context_of(value: &[u8]) -> Option<u128> {
    value
        .get(..16)
        .and_then(|b| b.try_into().ok())
        .map(u128::from_be_bytes)
}
