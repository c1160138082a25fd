//! Retention: requests removed oldest stored first, by age and by the stored bytes; and
//! requests sealed into segments that object storage holds, removed here.

use super::schema::*;
use super::write::count_of;
use super::*;

impl Store {
    /// Applies the retention as of `now_unix_nano`; returns how many items it removed.
    pub fn expire(&self, now_unix_nano: u64) -> Result<u64, StoreError> {
        let before = self.totals().expired;
        self.append(&[], now_unix_nano)?;
        Ok(self.totals().expired - before)
    }

    /// Everything stored up to `through` is sealed and object storage confirmed it: removes
    /// it here (applying the retention as of `now_unix_nano` too); returns how many items.
    pub fn archived_through(&self, through: u64, now_unix_nano: u64) -> Result<u64, StoreError> {
        let _writing = crate::lock(&self.writer);
        let before = self.totals().archived;
        {
            let mut totals = crate::lock(&self.totals);
            totals.sealed_through = totals.sealed_through.max(through);
        }
        let result = self.append_in(&[], now_unix_nano);
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
            let sealed = first <= totals.sealed_through;
            if !too_old && !sealed && totals.bytes <= self.retention.max_bytes {
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
            if sealed {
                totals.archived += removed;
            } else {
                totals.expired += removed;
            }
        }
    }
}
