//! Reading a window page by page, in time order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::schema::*;
use super::*;

/// The key of a row of items: `(bucket, the request's first seq)`.
type RowKey = (u64, u64);

impl Store {
    /// Up to `limit` items of `window` after `after`, in time order, stopping early (with
    /// `has_more`) once they hold `max_bytes` (a first item always goes, however large).
    pub fn page(
        &self,
        window: &Window,
        after: Option<Position>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, usize::MAX - 2);
        let txn = self.begin_read()?;
        let rows = txn
            .open_table(table(window.signal))
            .map_err(|e| self.error(e))?;
        let damaged = || self.error("a row of items is damaged");
        let mut keys: Vec<(Position, RowKey)> = Vec::new();
        // Items that arrived after the previous window with times before its end.
        let in_late_part = after.is_none_or(|p| p.0 < window.prev_end);
        if window.prev_end > window.start && window.seq_hi > window.prev_seq && in_late_part {
            let index = txn.open_table(REQUESTS).map_err(|e| self.error(e))?;
            // The `limit + 1` first, in a max-heap: the largest kept is dropped first.
            let mut first: BinaryHeap<(Position, RowKey)> = BinaryHeap::with_capacity(limit + 2);
            for entry in index
                .range(window.prev_seq + 1..=window.seq_hi)
                .map_err(|e| self.error(e))?
            {
                let (seq, value) = entry.map_err(|e| self.error(e))?;
                let request = Request::read(value.value());
                if request.signal != Some(window.signal) {
                    continue;
                }
                for bucket in request.buckets() {
                    let (from, to) = bucket_times(bucket);
                    if from >= window.prev_end || to <= window.start {
                        continue;
                    }
                    let key = (bucket, seq.value());
                    let Some(value) = rows.get(key).map_err(|e| self.error(e))? else {
                        continue;
                    };
                    let row = ItemRow::read(value.value()).ok_or_else(damaged)?;
                    for i in 0..row.len() {
                        let (time, seq) = row.position(i);
                        if seq <= window.seq_hi
                            && time >= window.start
                            && time < window.prev_end
                            && after.is_none_or(|p| (time, seq) > p)
                        {
                            first.push(((time, seq), key));
                            if first.len() > limit + 1 {
                                first.pop();
                            }
                        }
                    }
                }
            }
            keys = first.into_sorted_vec();
        }
        // Items from the previous window's end on, bucket by bucket: a bucket's rows overlap
        // in time, so its rows are merged (each one's items are in order already).
        let start = window.prev_end.max(window.start);
        if keys.len() <= limit && window.end > start {
            let (from, inclusive) = match after {
                Some(p) if p.0 >= window.prev_end => (p, false),
                _ => ((start, 0), true),
            };
            let wanted = limit + 1 - keys.len();
            let mut found: Vec<(Position, RowKey)> = Vec::new();
            let mut bucket: Vec<(RowKey, redb::AccessGuard<'_, &[u8]>)> = Vec::new();
            let last_bucket = bucket_of(window.end - 1);
            for entry in rows
                .range((bucket_of(from.0), 0)..=(last_bucket, u64::MAX))
                .map_err(|e| self.error(e))?
            {
                let (key, value) = entry.map_err(|e| self.error(e))?;
                let key = key.value();
                if bucket.first().is_some_and(|(k, _)| k.0 != key.0) {
                    merge(&bucket, (from, inclusive), window, wanted, &mut found)
                        .ok_or_else(damaged)?;
                    bucket.clear();
                    if found.len() >= wanted {
                        break;
                    }
                }
                bucket.push((key, value));
            }
            if found.len() < wanted {
                merge(&bucket, (from, inclusive), window, wanted, &mut found)
                    .ok_or_else(damaged)?;
            }
            found.truncate(wanted);
            keys.extend(found);
        }
        let mut has_more = keys.len() > limit;
        keys.truncate(limit);
        let contexts = txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
        let mut known: HashMap<u128, Vec<u8>> = HashMap::new();
        let mut read: HashMap<RowKey, redb::AccessGuard<'_, &[u8]>> = HashMap::new();
        // The data of the packed rows taken from, unpacked once each.
        let mut unpacked: HashMap<RowKey, Vec<u8>> = HashMap::new();
        let (mut entries, mut bytes) = (Vec::with_capacity(keys.len()), 0usize);
        let mut positions = Vec::with_capacity(keys.len());
        for (i, (position, key)) in keys.iter().enumerate() {
            if bytes >= max_bytes {
                keys.truncate(i);
                has_more = true;
                break;
            }
            let value = match read.entry(*key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    // The same snapshot listed the key.
                    let Some(value) = rows.get(*key).map_err(|e| self.error(e))? else {
                        continue;
                    };
                    e.insert(value)
                }
            };
            let row = ItemRow::read(value.value()).ok_or_else(damaged)?;
            let Some(at) = row.find(*position) else {
                continue;
            };
            let id = row
                .context(at)
                .ok_or_else(|| self.error("an item without its context"))?;
            let context = self.context(&contexts, &mut known, id)?;
            let plain;
            let data: &[u8] = if row.is_packed() {
                match unpacked.entry(*key) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut().as_slice(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let data = row.unpack().ok_or_else(damaged)?;
                        e.insert(data.into_owned()).as_slice()
                    }
                }
            } else {
                plain = row.unpack().ok_or_else(damaged)?;
                &plain
            };
            let entry =
                otlp::items::entry(context, row.item(data, at)).map_err(|e| self.error(e))?;
            bytes += entry.len();
            entries.push(entry);
            positions.push(*position);
        }
        Ok(Page {
            entries,
            positions,
            last: keys.last().map(|(position, _)| *position),
            has_more,
        })
    }
}

/// Appends to `found`, in order, the items of one bucket's `rows` from `from` (after it, or at
/// it when inclusive) that `window` takes, until `found` holds `wanted`. `None`: a damaged row.
/// Each row is searched for its first item, then the rows are merged: a page reads as many
/// items of a busy bucket as it returns, not all of them.
fn merge(
    rows: &[(RowKey, redb::AccessGuard<'_, &[u8]>)],
    (from, inclusive): (Position, bool),
    window: &Window,
    wanted: usize,
    found: &mut Vec<(Position, RowKey)>,
) -> Option<()> {
    let parsed = rows
        .iter()
        .map(|(_, value)| ItemRow::read(value.value()))
        .collect::<Option<Vec<_>>>()?;
    let mut next: BinaryHeap<Reverse<(Position, usize, usize)>> = parsed
        .iter()
        .enumerate()
        .filter_map(|(r, row)| {
            let i = row.first_from(from, inclusive);
            (i < row.len()).then(|| Reverse((row.position(i), r, i)))
        })
        .collect();
    while found.len() < wanted {
        let Some(Reverse((position, r, i))) = next.pop() else {
            break;
        };
        if position.0 >= window.end {
            // The first of what is left: nothing after it is in the window either.
            break;
        }
        if position.1 <= window.seq_hi {
            found.push((position, rows[r].0));
        }
        if i + 1 < parsed[r].len() {
            next.push(Reverse((parsed[r].position(i + 1), r, i + 1)));
        }
    }
    Some(())
}
