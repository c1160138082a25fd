//! Sealing: the items that arrived in a range of sequence numbers, one segment per signal
//! ([`crate::history::segment`]), for object storage; once it confirmed them,
//! [`Store::archived_through`] removes them here.

use super::schema::*;
use super::*;
use crate::history::segment::{self, SegmentItem};

/// One signal's items of a range of arrivals, sealed.
#[derive(Debug)]
pub struct Sealed {
    /// The signal.
    pub signal: Signal,
    /// Items in it.
    pub items: u64,
    /// Time of its first and its last item.
    pub times: (u64, u64),
    /// The segment.
    pub bytes: Vec<u8>,
}

impl Store {
    /// The range to seal next, `(after, through)`: the one begun and not finished, if any (so
    /// that its segments are made again with the same items and names), else what arrived
    /// before `received_unix_nano` (whole requests, up to the one that reaches `max_items`
    /// sequence numbers), noted as begun before it is returned. `None`: nothing to seal.
    pub fn next_seal(
        &self,
        received_unix_nano: u64,
        max_items: u64,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let totals = self.totals();
        let after = totals.sealed_through;
        if totals.sealing_through > after {
            return Ok(Some((after, totals.sealing_through)));
        }
        // Whole requests only: a range ends where a request ends (removal goes by request).
        let through = self.arrived_before(received_unix_nano, after.saturating_add(max_items))?;
        if through <= after {
            return Ok(None);
        }
        let _writing = crate::lock(&self.writer);
        let noted = (|| {
            let txn = self.begin_write()?;
            {
                let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
                meta.insert("sealing_through", through)
                    .map_err(|e| self.error(e))?;
            }
            txn.commit().map_err(|e| self.error(e))
        })();
        if noted.is_err() {
            // As after a failed append: the file is opened again before the next write.
            self.broken
                .store(true, std::sync::atomic::Ordering::Release);
        }
        noted?;
        crate::lock(&self.totals).sealing_through = through;
        Ok(Some((after, through)))
    }

    /// The last sequence number of what arrived before `received_unix_nano`, from the first
    /// arrival not yet sealed on (at least the one sealed last); looks no further than the
    /// row holding `enough`.
    pub fn arrived_before(&self, received_unix_nano: u64, enough: u64) -> Result<u64, StoreError> {
        let sealed = self.totals().sealed_through;
        let txn = self.begin_read()?;
        let index = txn.open_table(REQUESTS).map_err(|e| self.error(e))?;
        let mut through = sealed;
        for entry in index
            .range(sealed.saturating_add(1)..)
            .map_err(|e| self.error(e))?
        {
            let (first, value) = entry.map_err(|e| self.error(e))?;
            let row = Request::read(value.value());
            if row.received >= received_unix_nano {
                break;
            }
            through = first.value() + row.items.saturating_sub(1);
            if through >= enough {
                break;
            }
        }
        Ok(through)
    }

    /// The items that arrived after sequence number `after` up to `through`, one segment per
    /// signal that has any, each in `(time, seq)` order.
    pub fn seal(&self, after: u64, through: u64) -> Result<Vec<Sealed>, StoreError> {
        let txn = self.begin_read()?;
        let index = txn.open_table(REQUESTS).map_err(|e| self.error(e))?;
        let contexts = txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
        let mut known: HashMap<u128, Vec<u8>> = HashMap::new();
        let mut found: [Vec<(Position, u128, Vec<u8>)>; 3] = Default::default();
        let tables = Signal::ALL
            .iter()
            .map(|s| txn.open_table(table(*s)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        for entry in index
            .range(after.saturating_add(1)..=through)
            .map_err(|e| self.error(e))?
        {
            let (first, value) = entry.map_err(|e| self.error(e))?;
            let request = Request::read(value.value());
            let Some(signal) = request.signal else {
                continue;
            };
            let code = usize::from(signal_code(signal));
            for bucket in request.buckets() {
                let Some(value) = tables[code]
                    .get((bucket, first.value()))
                    .map_err(|e| self.error(e))?
                else {
                    continue;
                };
                let row = ItemRow::read(value.value())
                    .ok_or_else(|| self.error("a row of items is damaged"))?;
                let data = row
                    .unpack()
                    .ok_or_else(|| self.error("a row of items is damaged"))?;
                for i in 0..row.len() {
                    let position = row.position(i);
                    if position.1 > through {
                        continue;
                    }
                    let id = row
                        .context(i)
                        .ok_or_else(|| self.error("an item without its context"))?;
                    self.context(&contexts, &mut known, id)?;
                    found[code].push((position, id, row.item(&data, i).to_vec()));
                }
            }
        }
        let mut sealed = Vec::new();
        for signal in Signal::ALL {
            let mut found = std::mem::take(&mut found[usize::from(signal_code(signal))]);
            if found.is_empty() {
                continue;
            }
            found.sort_unstable_by_key(|(position, _, _)| *position);
            let items = found.iter().map(|((time, seq), id, item)| SegmentItem {
                time: *time,
                seq: *seq,
                context: known.get(id).map_or(&[][..], Vec::as_slice),
                item,
            });
            let bytes = segment::seal(signal, items).map_err(|e| self.error(e))?;
            sealed.push(Sealed {
                signal,
                items: found.len() as u64,
                times: (
                    found.first().map_or(0, |(k, _, _)| k.0),
                    found.last().map_or(0, |(k, _, _)| k.0),
                ),
                bytes,
            });
        }
        Ok(sealed)
    }
}
