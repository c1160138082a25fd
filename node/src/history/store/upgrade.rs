//! Moving a store written by an earlier version (a row per item, keyed by its time and seq)
//! to rows per request and bucket: a few thousand requests per transaction, each one's old
//! rows removed as its new ones are written, so that a node stopped halfway goes on where it
//! stopped. Sequence numbers, contexts, message ids and counted bytes stay as they were.

use redb::{ReadableTableMetadata, TableDefinition, TableHandle};

use super::schema::*;
use super::*;

const OLD_ITEMS: [TableDefinition<(u64, u64), &[u8]>; 3] = [
    TableDefinition::new("traces"),
    TableDefinition::new("metrics"),
    TableDefinition::new("logs"),
];
/// `first seq → signal (1 byte), received, bytes (8 each), items (4), each item's time (8),
/// the message id`.
const OLD_ARRIVALS: TableDefinition<u64, &[u8]> = TableDefinition::new("arrivals");
const OLD_HEAD: usize = 21;
/// Requests moved per transaction.
pub(super) const CHUNK: usize = 2_000;

impl Store {
    /// Moves what an earlier version stored to this layout, if there is any.
    pub(super) fn upgrade(&self) -> Result<(), StoreError> {
        let mut moved = 0u64;
        loop {
            let txn = self.begin_write()?;
            let old = txn
                .list_tables()
                .map_err(|e| self.error(e))?
                .any(|t| t.name() == OLD_ARRIVALS.name());
            if !old {
                return txn.abort().map_err(|e| self.error(e));
            }
            let done = {
                let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
                let mut old_items = OLD_ITEMS
                    .iter()
                    .map(|t| txn.open_table(*t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.error(e))?;
                if meta.get("upgrading").map_err(|e| self.error(e))?.is_none() {
                    tracing::info!(path = %self.path.display(),
                        "moving the store to one row per request and time bucket (once)");
                    // Item counts were the old tables' lengths; now they are kept in `meta`,
                    // counted as the items are moved (an item no request lists is not).
                    for signal in Signal::ALL {
                        meta.insert(count_key(signal), 0)
                            .map_err(|e| self.error(e))?;
                    }
                    meta.insert("upgrading", 1).map_err(|e| self.error(e))?;
                }
                let get = |meta: &redb::Table<&str, u64>, key: &str| {
                    meta.get(key)
                        .map(|v| v.map_or(0, |v| v.value()))
                        .map_err(|e| self.error(e))
                };
                let mut counts = [0u64; 3];
                for (count, signal) in counts.iter_mut().zip(Signal::ALL) {
                    *count = get(&meta, count_key(signal))?;
                }
                let mut bytes = get(&meta, "bytes")?;
                let mut old_index = txn.open_table(OLD_ARRIVALS).map_err(|e| self.error(e))?;
                let mut tables = self.item_tables(&txn)?;
                let mut index = txn.open_table(REQUESTS).map_err(|e| self.error(e))?;
                for _ in 0..CHUNK {
                    let Some((first, value)) = old_index
                        .pop_first()
                        .map_err(|e| self.error(e))?
                        .map(|(k, v)| (k.value(), v.value().to_vec()))
                    else {
                        break;
                    };
                    match self.move_request(
                        first,
                        &value,
                        &mut old_items,
                        &mut tables,
                        &mut index,
                    )? {
                        Moved::Items(signal, n) => counts[usize::from(signal_code(signal))] += n,
                        // Not a request this version can read: what it counted goes with it.
                        Moved::Dropped(counted) => bytes = bytes.saturating_sub(counted),
                    }
                    moved += 1;
                }
                for (count, signal) in counts.iter().zip(Signal::ALL) {
                    meta.insert(count_key(signal), *count)
                        .map_err(|e| self.error(e))?;
                }
                meta.insert("bytes", bytes).map_err(|e| self.error(e))?;
                let done = old_index.is_empty().map_err(|e| self.error(e))?;
                if done {
                    meta.remove("upgrading").map_err(|e| self.error(e))?;
                }
                done
            };
            if done {
                for t in OLD_ITEMS {
                    txn.delete_table(t).map_err(|e| self.error(e))?;
                }
                txn.delete_table(OLD_ARRIVALS).map_err(|e| self.error(e))?;
            }
            txn.commit().map_err(|e| self.error(e))?;
            if done {
                tracing::info!(path = %self.path.display(), requests = moved, "the store was moved");
                return Ok(());
            }
        }
    }

    /// Moves one request (`first`, its old row `value`) with its items.
    fn move_request(
        &self,
        first: u64,
        value: &[u8],
        old_items: &mut [redb::Table<(u64, u64), &[u8]>],
        tables: &mut [redb::Table<(u64, u64), &[u8]>],
        index: &mut redb::Table<u64, &[u8]>,
    ) -> Result<Moved, StoreError> {
        let (received, bytes) = (u64_at(value, 1), u64_at(value, 9));
        let Some(signal) = value.first().and_then(|c| signal_of(*c)) else {
            return Ok(Moved::Dropped(bytes));
        };
        let count = u32_at(value, 17);
        let ids_at = (OLD_HEAD + 8 * count as usize).min(value.len());
        let times = value.get(OLD_HEAD..ids_at).unwrap_or_default();
        let message_id = value.get(ids_at..).unwrap_or_default();
        let code = usize::from(signal_code(signal));
        let mut owned: Vec<(u64, u64, u128, Vec<u8>)> = Vec::with_capacity(times.len() / 8);
        for (time, seq) in times.chunks_exact(8).zip(first..) {
            let time = u64::from_be_bytes(time.try_into().unwrap_or_default());
            let Some(item) = old_items[code]
                .remove((time, seq))
                .map_err(|e| self.error(e))?
            else {
                continue;
            };
            let item = item.value();
            let Some(context) = item.get(..16).and_then(|b| b.try_into().ok()) else {
                continue;
            };
            owned.push((time, seq, u128::from_be_bytes(context), item[16..].to_vec()));
        }
        let mut items: Vec<NewItem<'_>> = owned
            .iter()
            .map(|(time, seq, context, bytes)| NewItem {
                time: *time,
                seq: *seq,
                context: *context,
                bytes,
            })
            .collect();
        let buckets = self.file_items(&mut tables[code], first, &mut items)?;
        let row = Request::write(signal, received, bytes, count, &buckets, message_id);
        index
            .insert(first, row.as_slice())
            .map_err(|e| self.error(e))?;
        Ok(Moved::Items(signal, items.len() as u64))
    }
}

/// What became of one request moved.
enum Moved {
    /// Its items of the signal, now in rows.
    Items(Signal, u64),
    /// Dropped (no signal this version knows), with the bytes it counted.
    Dropped(u64),
}
