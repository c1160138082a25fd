//! Reading a window page by page, in time order.

use std::collections::{BinaryHeap, HashMap};
use std::ops::Bound;

use super::schema::*;
use super::*;

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
        let mut positions = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if bytes >= max_bytes {
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
            positions.push(*key);
        }
        Ok(Page {
            entries,
            positions,
            last: keys.last().copied(),
            has_more,
        })
    }
}
