//! Storing what arrives: one transaction per batch, a row per request and time bucket,
//! contexts kept once, copies by message id stored once.

use std::sync::atomic::Ordering;

use otlp::Signal;

use super::context_ids::ContextIds;
use super::schema::*;
use super::*;

/// A request made ready to store away from the writer's lock: its rows built and packed, its
/// contexts hashed. Its items are numbered from 0 until the writer gives it its place.
pub struct Prepared {
    signal: Signal,
    received_unix_nano: u64,
    message_id: Option<String>,
    /// Items kept (those with a context).
    items: u64,
    /// Its rows, buckets ascending; `None` when one would not fit a row.
    rows: Option<Vec<BuiltRow>>,
    /// Each context its items use: id, items, the context's bytes.
    uses: Vec<(u128, u64, Vec<u8>)>,
}

/// One row built, not yet numbered or stored.
struct BuiltRow {
    bucket: u64,
    row: Vec<u8>,
    /// The bytes it counts.
    counted: u64,
}

impl Prepared {
    /// Builds what the writer will store of `arrival`, its contexts' ids from `given`; the
    /// costly part of storing (taking items in order, packing rows, hashing contexts) runs
    /// here, so that the writer, which stores one batch at a time, only numbers and inserts.
    fn new(arrival: Arrival, given: &ContextIds) -> Prepared {
        let Arrival {
            signal,
            received_unix_nano,
            parts,
            message_id,
        } = arrival;
        let ids: Vec<u128> = parts
            .contexts
            .iter()
            .map(|c| given.id_of(context_digest(signal, c)))
            .collect();
        let mut uses = vec![0u64; ids.len()];
        let mut items = Vec::with_capacity(parts.items.len());
        for item in &parts.items {
            let Some(&id) = ids.get(item.context) else {
                continue;
            };
            uses[item.context] += 1;
            items.push(NewItem {
                time: match item.time_unix_nano {
                    0 => received_unix_nano,
                    t => t,
                },
                seq: items.len() as u64,
                context: id,
                bytes: &item.bytes,
            });
        }
        Prepared {
            signal,
            received_unix_nano,
            message_id,
            items: items.len() as u64,
            rows: rows_of(&mut items),
            uses: ids
                .into_iter()
                .zip(uses)
                .zip(parts.contexts)
                .filter(|((_, n), _)| *n > 0)
                .map(|((id, n), context)| (id, n, context))
                .collect(),
        }
    }
}

/// `items` (sorted here by time, then number) in one row per bucket they fall in, buckets
/// ascending; `None` if one would not fit a row's 32-bit offsets.
fn rows_of(items: &mut [NewItem<'_>]) -> Option<Vec<BuiltRow>> {
    items.sort_unstable_by_key(|i| (i.time, i.seq));
    items
        .chunk_by(|a, b| bucket_of(a.time) == bucket_of(b.time))
        .map(|same| {
            let (row, counted) = ItemRow::write(same)?;
            Some(BuiltRow {
                bucket: bucket_of(same[0].time),
                row,
                counted,
            })
        })
        .collect()
}

impl Store {
    /// Makes `arrival` ready for [`Store::append_prepared`] (the costly part of storing, which
    /// may run on any thread, several at once).
    pub fn prepare(&self, arrival: Arrival) -> Prepared {
        Prepared::new(arrival, &self.context_ids)
    }

    /// Stores `arrivals` in one transaction (synced before it returns), then applies the
    /// retention as of `now_unix_nano`.
    /// Nothing of a failed append is kept (one transaction), and the file is opened again
    /// before the next: a message given again is stored once (by its id) whether or not the
    /// failed commit reached the disk.
    pub fn append(&self, arrivals: Vec<Arrival>, now_unix_nano: u64) -> Result<(), StoreError> {
        self.append_prepared(
            arrivals.into_iter().map(|a| self.prepare(a)).collect(),
            now_unix_nano,
        )
    }

    /// [`Store::append`] of requests made ready with [`Store::prepare`].
    pub fn append_prepared(
        &self,
        prepared: Vec<Prepared>,
        now_unix_nano: u64,
    ) -> Result<(), StoreError> {
        let _writing = crate::lock(&self.writer);
        let result = self.append_in(prepared, now_unix_nano, None);
        if result.is_err() {
            self.broken.store(true, Ordering::Release);
        }
        result
    }

    /// [`Store::append`] under the writer lock; with `sealed_through`, also records that
    /// object storage holds everything up to it (in memory only once committed).
    pub(super) fn append_in(
        &self,
        mut prepared: Vec<Prepared>,
        now_unix_nano: u64,
        sealed_through: Option<u64>,
    ) -> Result<(), StoreError> {
        let before = self.totals();
        let mut totals = before.clone();
        if let Some(through) = sealed_through {
            totals.sealed_through = totals.sealed_through.max(through);
        }
        let forgot;
        let started = std::time::Instant::now();
        let txn = self.begin_write()?;
        {
            let mut tables = self.item_tables(&txn)?;
            let mut index = txn.open_table(REQUESTS).map_err(|e| self.error(e))?;
            let mut contexts = txn.open_table(CONTEXTS).map_err(|e| self.error(e))?;
            let mut messages = txn.open_table(MESSAGES).map_err(|e| self.error(e))?;
            let mut archived_ids = txn.open_table(ARCHIVED_IDS).map_err(|e| self.error(e))?;
            // The batch's uses of each context, counted once per context after it: a context
            // the requests share (one service's resource) is one update per commit.
            let mut batch_uses: HashMap<u128, (u64, &[u8])> = HashMap::new();
            for request in prepared.iter_mut() {
                let message_id = request.message_id.as_deref().unwrap_or_default();
                let first_seq = totals.last_seq + 1;
                if !message_id.is_empty() {
                    // A message stored (or archived) before is recognised by its id; the insert
                    // is the lookup, and a copy puts the first one's number back.
                    let before = messages
                        .insert(message_id, first_seq)
                        .map_err(|e| self.error(e))?
                        .map(|seq| seq.value());
                    if let Some(seq) = before {
                        messages
                            .insert(message_id, seq)
                            .map_err(|e| self.error(e))?;
                        totals.duplicates += 1;
                        continue;
                    }
                }
                if request.items == 0 && message_id.is_empty() {
                    // Nothing to keep, nothing to recognise later.
                    continue;
                }
                let rows = request
                    .rows
                    .take()
                    .ok_or_else(|| self.error("a request too large for one row (4 GiB)"))?;
                // A request without items still takes a number: its row needs a key of its own.
                totals.last_seq = (totals.last_seq + request.items).max(first_seq);
                let table = &mut tables[usize::from(signal_code(request.signal))];
                let mut buckets = Vec::with_capacity(rows.len());
                let mut row_bytes = 0;
                for mut built in rows {
                    ItemRow::number(&mut built.row, first_seq);
                    table
                        .insert((built.bucket, first_seq), built.row.as_slice())
                        .map_err(|e| self.error(e))?;
                    buckets.push(built.bucket);
                    row_bytes += built.counted;
                }
                *count_of(&mut totals, request.signal) += request.items;
                // The request's row and the message id (in it and in `messages`) count too.
                row_bytes += (REQUEST_HEAD + 8 + 2 * message_id.len()) as u64;
                totals.bytes += row_bytes;
                let row = Request::write(
                    request.signal,
                    request.received_unix_nano,
                    row_bytes,
                    request.items as u32,
                    &buckets,
                    message_id.as_bytes(),
                );
                index
                    .insert(first_seq, row.as_slice())
                    .map_err(|e| self.error(e))?;
                let request: &Prepared = request;
                for (id, n, context) in &request.uses {
                    batch_uses.entry(*id).or_insert((0, context)).0 += n;
                }
            }
            for (id, (n, context)) in batch_uses {
                self.add_uses(&mut contexts, id, context, n, &mut totals)?;
            }
            forgot = self.expire_in(
                &mut tables,
                &mut index,
                &mut contexts,
                (&mut messages, &mut archived_ids),
                &mut totals,
                now_unix_nano,
            )?;
            let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
            for signal in Signal::ALL {
                let count = *count_of(&mut totals, signal);
                meta.insert(count_key(signal), count)
                    .map_err(|e| self.error(e))?;
            }
            for (key, value) in [
                ("bytes", totals.bytes),
                ("expired", totals.expired),
                ("duplicates", totals.duplicates),
                ("last_seq", totals.last_seq),
                ("archived", totals.archived),
                ("sealed_through", totals.sealed_through),
                ("sealing_through", totals.sealing_through),
            ] {
                meta.insert(key, value).map_err(|e| self.error(e))?;
            }
        }
        if totals == before && !forgot {
            // Nothing stored or removed (an idle retention check): no commit, no sync.
            return txn.abort().map_err(|e| self.error(e));
        }
        let committing = std::time::Instant::now();
        if let Err(err) = txn.commit() {
            // Whether anything reached the disk, what is on it says once it is open again.
            return Err(self.error(err));
        }
        tracing::trace!(
            requests = prepared.len(),
            rows_us = (committing - started).as_micros() as u64,
            commit_us = committing.elapsed().as_micros() as u64,
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

    /// Files a request's `items` (numbered already, from `first_seq`) in one row per bucket
    /// they fall in; returns the buckets.
    pub(super) fn file_items(
        &self,
        table: &mut redb::Table<(u64, u64), &[u8]>,
        first_seq: u64,
        items: &mut [NewItem<'_>],
    ) -> Result<Vec<u64>, StoreError> {
        let rows =
            rows_of(items).ok_or_else(|| self.error("a request too large for one row (4 GiB)"))?;
        let mut buckets = Vec::with_capacity(rows.len());
        for built in rows {
            table
                .insert((built.bucket, first_seq), built.row.as_slice())
                .map_err(|e| self.error(e))?;
            buckets.push(built.bucket);
        }
        Ok(buckets)
    }

    /// `n` items of the context `id` are gone; the context goes with its last item.
    pub(super) fn drop_uses(
        &self,
        contexts: &mut redb::Table<u128, &[u8]>,
        id: u128,
        n: u64,
        totals: &mut Totals,
    ) -> Result<(), StoreError> {
        let Some(mut value) = contexts
            .get(id)
            .map_err(|e| self.error(e))?
            .map(|v| v.value().to_vec())
        else {
            return Ok(());
        };
        let count = refcount(&value).saturating_sub(n);
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
}

pub(super) fn count_of(totals: &mut Totals, signal: Signal) -> &mut u64 {
    match signal {
        Signal::Traces => &mut totals.traces,
        Signal::Metrics => &mut totals.metrics,
        Signal::Logs => &mut totals.logs,
    }
}
