//! Retention: requests removed oldest stored first, by age and by the stored bytes; and
//! requests sealed into segments that object storage holds, removed here.

use super::schema::*;
use super::write::count_of;
use super::*;

/// The `messages` and `archived_ids` tables, open for writing.
pub(super) type Ids<'a, 't> = (
    &'a mut redb::Table<'t, &'static str, u64>,
    &'a mut redb::Table<'t, (u64, u64), &'static str>,
);

impl Store {
    /// Applies the retention as of `now_unix_nano`; returns how many items it removed.
    pub fn expire(&self, now_unix_nano: u64) -> Result<u64, StoreError> {
        let before = self.totals().expired;
        self.append(Vec::new(), now_unix_nano)?;
        Ok(self.totals().expired - before)
    }

    /// Everything stored up to `through` is sealed and object storage confirmed it: removes
    /// it here (applying the retention as of `now_unix_nano` too); returns how many items.
    pub fn archived_through(&self, through: u64, now_unix_nano: u64) -> Result<u64, StoreError> {
        let _writing = crate::lock(&self.writer);
        let before = self.totals().archived;
        let result = self.append_in(Vec::new(), now_unix_nano, Some(through));
        if result.is_err() {
            self.broken
                .store(true, std::sync::atomic::Ordering::Release);
        }
        result?;
        Ok(self.totals().archived - before)
    }

    pub(super) fn expire_in(
        &self,
        tables: &mut [redb::Table<(u64, u64), &[u8]>],
        index: &mut redb::Table<u64, &[u8]>,
        contexts: &mut redb::Table<u128, &[u8]>,
        (messages, archived_ids): Ids<'_, '_>,
        totals: &mut Totals,
        now_unix_nano: u64,
    ) -> Result<bool, StoreError> {
        // Whether it changed what `totals` does not show (ids of archived messages forgotten).
        let mut forgot = false;
        let cutoff = self.retention.max_age.map(|age| {
            now_unix_nano.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX))
        });
        // The ids of archived messages are forgotten at the store's max-age, as a row's are.
        if let Some(cutoff) = cutoff {
            loop {
                let Some((key, id)) = archived_ids
                    .first()
                    .map_err(|e| self.error(e))?
                    .map(|(k, v)| (k.value(), v.value().to_string()))
                else {
                    break;
                };
                if key.0 >= cutoff {
                    break;
                }
                archived_ids.remove(key).map_err(|e| self.error(e))?;
                messages.remove(id.as_str()).map_err(|e| self.error(e))?;
                forgot = true;
            }
        }
        loop {
            let Some((first, value)) = index
                .first()
                .map_err(|e| self.error(e))?
                .map(|(k, v)| (k.value(), v.value().to_vec()))
            else {
                return Ok(forgot);
            };
            let row = Request::read(&value);
            let too_old = cutoff.is_some_and(|c| row.received < c);
            let last = first + row.items.saturating_sub(1);
            let sealed = last <= totals.sealed_through;
            if !sealed && first <= totals.sealing_through {
                // Being sealed: removing it now would change a segment between its puts (and
                // its name). It goes once the bucket holds it.
                return Ok(forgot);
            }
            if !too_old && !sealed && totals.bytes <= self.retention.max_bytes {
                return Ok(forgot);
            }
            index.remove(first).map_err(|e| self.error(e))?;
            if let Ok(id) = std::str::from_utf8(row.message_id) {
                if !id.is_empty() && sealed && !too_old {
                    // Archived: its id stays known until max-age, for a copy sent again.
                    archived_ids
                        .insert((row.received, first), id)
                        .map_err(|e| self.error(e))?;
                } else if !id.is_empty() {
                    messages.remove(id).map_err(|e| self.error(e))?;
                }
            }
            let mut removed = 0u64;
            if let Some(signal) = row.signal {
                let table = &mut tables[usize::from(signal_code(signal))];
                for bucket in row.buckets() {
                    let uses = match table.remove((bucket, first)).map_err(|e| self.error(e))? {
                        Some(gone) => ItemRow::read(gone.value())
                            .map(|r| r.uses())
                            .unwrap_or_default(),
                        None => Vec::new(),
                    };
                    for (id, n) in uses {
                        self.drop_uses(contexts, id, n, totals)?;
                        removed += n;
                    }
                }
                let count = count_of(totals, signal);
                *count = count.saturating_sub(removed);
            }
            totals.bytes = totals.bytes.saturating_sub(row.bytes);
            if sealed {
                totals.archived += removed;
            } else {
                totals.expired += removed;
            }
        }
    }
}
