//! The sealed segments of every store under one bucket prefix, read back: listed by name
//! (which holds each segment's store, time and sequence range, so a query picks segments
//! without reading them), fetched once and cached on local disk within a size bound, and paged
//! like a store ([`Window::admits`]) in `(time, store, seq)` order ([`Place`]), each item once.
//!
//! Several nodes may seal into one prefix (`PREFIX/<store id>/...`). Each store numbers its
//! items and seals them in that order, so "what store X had sealed when a window opened" is
//! one number, X's highest sealed sequence number then: a window keeps it per store
//! ([`Mark`]), and what X seals later comes in the next window, exactly as items that reach
//! the local store after a window opened do.

use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;

use super::segment::Segment;
use super::store::{Place, Window};
use otlp::Signal;

/// Stores under one prefix a window keeps track of at most (each takes 24 bytes of a cursor).
pub const MAX_STORES: usize = 256;

/// How far another store's segments count for a window: those sealed when it opened
/// (`seq_hi`), and those the previous window of the same query had (`prev_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The store's id.
    pub store: u64,
    /// Its highest sealed sequence number when the window opened (0 before it opens).
    pub seq_hi: u64,
    /// Its `seq_hi` in the previous window (0 for the first).
    pub prev_seq: u64,
}

/// A segment, from its key: `.../<store id>/<signal>/<first time>-<last time>-<first
/// seq>-<last seq>.seg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    /// Its object key.
    pub key: String,
    /// The store that sealed it.
    pub store: u64,
    /// Times of its first and last item.
    pub times: (u64, u64),
    /// The sequence numbers of the range it was sealed from.
    pub seqs: (u64, u64),
    /// When the bucket took it (Unix nanoseconds), when listed.
    pub put_at: Option<u64>,
}

impl SegmentName {
    /// Reads a key's last part; `None` for an object that is not a segment.
    pub fn parse(key: &str) -> Option<SegmentName> {
        let mut parts = key.rsplit('/');
        let file = parts.next()?.strip_suffix(".seg")?;
        let _signal = parts.next()?;
        let store = u64::from_str_radix(parts.next()?, 16).ok()?;
        let n: Vec<u64> = file
            .split('-')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let [start, last, first, through] = n[..] else {
            return None;
        };
        Some(SegmentName {
            key: key.to_string(),
            store,
            times: (start, last),
            seqs: (first, through),
            put_at: None,
        })
    }
}

/// Items read back from segments: each with its place, in order.
#[derive(Debug, Default)]
pub struct RemotePage {
    /// `(place, resource entry)`, in [`Place`] order.
    pub items: Vec<(Place, Vec<u8>)>,
    /// Whether the window holds more of them after these.
    pub has_more: bool,
    /// The other stores' marks of the window (made from the listing when it opened).
    pub marks: Vec<Mark>,
    /// The earliest time from which items may be missing: segments (or blocks) from there on
    /// could not be read now. `None`: nothing is missing.
    pub unreadable: Option<u64>,
}

/// Largest segment fetched (one is a range of at most about 100,000 items, compressed).
const MAX_SEGMENT: u64 = 1 << 30;
/// Stores listed at once.
const LISTINGS_AT_ONCE: usize = 8;
/// How long one page may wait for the bucket (object_store retries for up to minutes).
const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why segments could not be read.
#[derive(Debug, thiserror::Error)]
#[error("object storage: {0}")]
pub struct CatalogError(String);

/// Where the segments of the store `store` go under `prefix`: `PREFIX/<store id, 16 hex>`.
pub fn store_prefix(prefix: &str, store: u64) -> String {
    let id = format!("{store:016x}");
    if prefix.is_empty() {
        id
    } else {
        format!("{prefix}/{id}")
    }
}

fn failed(e: object_store::Error) -> CatalogError {
    CatalogError(crate::net::redact::urls(&e.to_string()))
}

/// The segments of every store under one bucket prefix.
pub struct Catalog {
    client: Arc<dyn ObjectStore>,
    /// `PREFIX` (the stores' segments are under `PREFIX/<store id>`).
    prefix: String,
    /// This node's store: the one whose segments the local store held before.
    own: u64,
    cache: PathBuf,
    cache_bytes: u64,
    /// Segments found damaged in the bucket itself (skipped), since start.
    damaged: std::sync::atomic::AtomicU64,
}

impl Catalog {
    /// The segments under `prefix`, of the local store `own` and of others, cached in `cache`
    /// up to `cache_bytes`.
    pub fn new(
        client: Arc<dyn ObjectStore>,
        prefix: String,
        own: u64,
        cache: PathBuf,
        cache_bytes: u64,
    ) -> Catalog {
        Catalog {
            client,
            prefix,
            own,
            cache,
            cache_bytes,
            damaged: Default::default(),
        }
    }

    /// Segments found damaged in the bucket and skipped, since start.
    pub fn damaged(&self) -> u64 {
        self.damaged.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn base(&self, store: u64) -> String {
        store_prefix(&self.prefix, store)
    }

    /// The segments of `signal` of the store `store`.
    async fn list_store(
        &self,
        store: u64,
        signal: Signal,
    ) -> Result<Vec<SegmentName>, CatalogError> {
        let prefix = object_store::path::Path::from(format!("{}/{signal}", self.base(store)));
        let listed: Vec<_> = self
            .client
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(failed)?;
        Ok(listed
            .iter()
            .filter_map(|meta| {
                let mut name = SegmentName::parse(meta.location.as_ref())?;
                name.put_at = meta
                    .last_modified
                    .timestamp_nanos_opt()
                    .and_then(|n| u64::try_from(n).ok());
                (name.store == store).then_some(name)
            })
            .collect())
    }

    /// The stores with segments under the prefix (and this node's own).
    async fn stores(&self) -> Result<Vec<u64>, CatalogError> {
        let prefix =
            (!self.prefix.is_empty()).then(|| object_store::path::Path::from(self.prefix.as_str()));
        let listed = self
            .client
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(failed)?;
        let mut stores: Vec<u64> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename())
            .filter(|name| name.len() == 16)
            .filter_map(|name| u64::from_str_radix(name, 16).ok())
            .collect();
        stores.push(self.own);
        stores.sort_unstable();
        stores.dedup();
        if stores.len() > MAX_STORES + 1 {
            return Err(CatalogError(format!(
                "{} stores under {:?}: a query follows at most {MAX_STORES} besides its own; give groups of nodes prefixes of their own",
                stores.len() - 1,
                self.prefix
            )));
        }
        Ok(stores)
    }

    /// The segments of `signal` of every store, by first time.
    pub async fn list(&self, signal: Signal) -> Result<Vec<SegmentName>, CatalogError> {
        let stores = self.stores().await?;
        // The stores' listings side by side, a few at a time.
        let listed: Vec<Vec<SegmentName>> = futures::stream::iter(stores)
            .map(|store| self.list_store(store, signal))
            .buffer_unordered(LISTINGS_AT_ONCE)
            .try_collect()
            .await?;
        let mut names: Vec<SegmentName> = listed.into_iter().flatten().collect();
        names.sort_by_key(|n| (n.times.0, n.store, n.seqs.0));
        Ok(names)
    }

    /// Deletes the segments of `signal` this node's store put before `before` (Unix
    /// nanoseconds: everything in one arrived before it was sealed, so by then it is older);
    /// returns how many. Other stores' segments are theirs to delete: only their writer knows
    /// which of its ranges are still being sealed.
    pub async fn delete_older(&self, signal: Signal, before: u64) -> Result<u64, CatalogError> {
        let mut deleted = 0;
        for name in self.list_store(self.own, signal).await? {
            if name.put_at.is_none_or(|at| at >= before) {
                continue;
            }
            self.client
                .delete(&object_store::path::Path::from(name.key.as_str()))
                .await
                .map_err(failed)?;
            let _ = tokio::fs::remove_file(self.cache.join(name.key.replace('/', "_"))).await;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// A segment's bytes: from the cache (unless `fresh`), else fetched (and cached).
    async fn fetch(&self, name: &SegmentName, fresh: bool) -> Result<Fetched, CatalogError> {
        let file = self.cache.join(name.key.replace('/', "_"));
        if !fresh {
            if let Ok(bytes) = tokio::fs::read(&file).await {
                return Ok(Fetched::Bytes(bytes));
            }
        }
        let got = match self
            .client
            .get(&object_store::path::Path::from(name.key.as_str()))
            .await
        {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Gone),
            Err(e) => return Err(failed(e)),
        };
        if got.meta.size > MAX_SEGMENT {
            return Ok(Fetched::Oversized(got.meta.size));
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| CatalogError(e.to_string()))?
            .to_vec();
        // A cache that cannot be written only costs a fetch next time. Written under a name
        // of its own (two fetches of one segment may run at once), then renamed into place: a
        // reader sees a whole copy or none (a damaged one is fetched again).
        if tokio::fs::create_dir_all(&self.cache).await.is_ok() {
            let partial = file.with_extension(format!("{}.part", uuid::Uuid::new_v4().simple()));
            if tokio::fs::write(&partial, &bytes).await.is_ok()
                && tokio::fs::rename(&partial, &file).await.is_err()
            {
                let _ = tokio::fs::remove_file(&partial).await;
            }
            self.trim_cache().await;
        }
        Ok(Fetched::Bytes(bytes))
    }

    /// Removes the least recently written cached segments beyond the size bound.
    async fn trim_cache(&self) {
        let Ok(mut dir) = tokio::fs::read_dir(&self.cache).await else {
            return;
        };
        let mut files = Vec::new();
        while let Ok(Some(entry)) = dir.next_entry().await {
            if let Ok(meta) = entry.metadata().await {
                let when = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                files.push((when, meta.len(), entry.path()));
            }
        }
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.cache_bytes {
                break;
            }
            if tokio::fs::remove_file(&path).await.is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }

    /// [`Catalog::page`], failing after [`PAGE_TIMEOUT`] (a fetch thread is not held longer).
    pub async fn page_within(&self, ask: &Ask<'_>) -> Result<RemotePage, CatalogError> {
        tokio::time::timeout(PAGE_TIMEOUT, self.page(ask))
            .await
            .map_err(|_| CatalogError(format!("no answer within {PAGE_TIMEOUT:?}")))?
    }

    /// The window of `store` in `ask`: this node's own is `ask.window`; another's has its
    /// mark's sequence numbers (none: nothing of it in this window).
    fn window_of(ask: &Ask<'_>, own: u64, marks: &[Mark], store: u64) -> Window {
        if store == own {
            return *ask.window;
        }
        let mark = marks.iter().find(|m| m.store == store);
        Window {
            seq_hi: mark.map_or(0, |m| m.seq_hi),
            prev_seq: mark.map_or(0, |m| m.prev_seq),
            ..*ask.window
        }
    }

    /// Up to `ask.limit` items of the window after `ask.after`, from the segments of every
    /// store. A segment that cannot be read is named in `unreadable`; a listing that fails is
    /// an error.
    pub async fn page(&self, ask: &Ask<'_>) -> Result<RemotePage, CatalogError> {
        let names = self.list(ask.window.signal).await?;
        let marks = if ask.opening {
            let mut marks: Vec<Mark> = Vec::new();
            for name in names.iter().filter(|n| n.store != self.own) {
                match marks.iter_mut().find(|m| m.store == name.store) {
                    Some(mark) => mark.seq_hi = mark.seq_hi.max(name.seqs.1),
                    None => marks.push(Mark {
                        store: name.store,
                        seq_hi: name.seqs.1,
                        prev_seq: ask
                            .marks
                            .iter()
                            .find(|m| m.store == name.store)
                            .map_or(0, |m| m.prev_seq),
                    }),
                }
            }
            marks.sort_by_key(|m| m.store);
            marks
        } else {
            ask.marks.to_vec()
        };
        let limit = ask.limit;
        let after = ask.after;
        let mut found: Vec<(Place, Vec<u8>)> = Vec::new();
        let mut unreadable: Option<u64> = None;
        for name in names {
            let window = Self::window_of(ask, self.own, &marks, name.store);
            let (first_time, last_time) = name.times;
            let behind = after.is_some_and(|a| last_time < a.0);
            // Wholly in the previous window: every item of it was paged then.
            let paged_before = name.seqs.1 <= window.prev_seq && last_time < window.prev_end;
            if last_time < window.start
                || first_time >= window.end
                || name.seqs.0 > window.seq_hi
                || behind
                || paged_before
            {
                continue;
            }
            // Sorted by first time: once `limit + 1` items are found before this segment's
            // first, no later segment can hold an earlier one.
            if enough_before(&mut found, limit, first_time) {
                break;
            }
            let from = after.map_or(window.start, |a| a.0.max(window.start));
            let wanted =
                |place: Place| window.admits((place.0, place.2)) && after.is_none_or(|a| place > a);
            let mut read = self
                .read_segment(&name, false, (from, window.end), limit, &mut found, &wanted)
                .await;
            if matches!(read, Read::Damaged(_)) {
                // A damaged copy in the cache: the bucket's, once more.
                read = self
                    .read_segment(&name, true, (from, window.end), limit, &mut found, &wanted)
                    .await;
            }
            match read {
                Read::Done | Read::Gone => {}
                Read::Damaged(e) => {
                    // The bucket's own copy is damaged: it will not get better. Skipped, so
                    // that queries go past it, and said loudly.
                    tracing::error!(segment = %name.key, error = %e, "a segment in the bucket is damaged; its items are left out");
                    self.damaged
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Read::Unreachable { at, why } => {
                    tracing::warn!(segment = %name.key, error = %why, "a segment cannot be read now; the answer is partial");
                    unreadable = Some(unreadable.map_or(at, |u: u64| u.min(at)));
                }
            }
        }
        found.sort_by_key(|(p, _)| *p);
        let has_more = found.len() > limit;
        found.truncate(limit);
        Ok(RemotePage {
            items: found,
            has_more,
            marks,
            unreadable,
        })
    }
}

/// A segment fetched.
enum Fetched {
    /// Its bytes.
    Bytes(Vec<u8>),
    /// The bucket no longer holds it (its writer's retention deleted it).
    Gone,
    /// Larger than any segment: not one.
    Oversized(u64),
}

/// What reading one segment came to.
enum Read {
    /// Its items are in.
    Done,
    /// The bucket no longer holds it (retention): nothing of it to return.
    Gone,
    /// It is not a well-formed segment.
    Damaged(String),
    /// It cannot be read now: items from `at` on may be missing.
    Unreachable { at: u64, why: String },
}

impl Catalog {
    /// Adds to `found` the items of `name` in `[times.0, times.1)` that `wanted` admits,
    /// block by block while a block can still hold one of the first `limit`; a damaged
    /// segment takes back what it added.
    async fn read_segment(
        &self,
        name: &SegmentName,
        fresh: bool,
        (from, end): (u64, u64),
        limit: usize,
        found: &mut Vec<(Place, Vec<u8>)>,
        wanted: &dyn Fn(Place) -> bool,
    ) -> Read {
        let bytes = match self.fetch(name, fresh).await {
            Ok(Fetched::Bytes(bytes)) => bytes,
            Ok(Fetched::Gone) => return Read::Gone,
            Ok(Fetched::Oversized(size)) => {
                return Read::Damaged(format!("{size} bytes, more than a segment holds"))
            }
            Err(e) => {
                return Read::Unreachable {
                    at: name.times.0,
                    why: e.to_string(),
                }
            }
        };
        let segment = match Segment::open(&bytes) {
            Ok(segment) => segment,
            Err(e) => return Read::Damaged(e.to_string()),
        };
        let blocks: Vec<usize> = segment.blocks_for(from, end).collect();
        for b in blocks {
            // Blocks too are in time order: stop before decompressing one that cannot hold
            // an item of this page.
            if enough_before(found, limit, segment.index.blocks[b].start) {
                break;
            }
            match segment.block(b) {
                Ok(items) => found.extend(items.into_iter().filter_map(|((time, seq), item)| {
                    let place = (time, name.store, seq);
                    wanted(place).then_some((place, item))
                })),
                Err(e) => {
                    // This segment's items are the store's sequence numbers in its range.
                    let (first, last) = name.seqs;
                    found.retain(|(p, _)| p.1 != name.store || p.2 < first || p.2 > last);
                    return Read::Damaged(e.to_string());
                }
            }
        }
        Read::Done
    }
}

/// Whether `found` holds more than `limit` items before `time` (keeping only the first
/// `limit + 1`, in order, once it holds more).
fn enough_before(found: &mut Vec<(Place, Vec<u8>)>, limit: usize, time: u64) -> bool {
    if found.len() <= limit {
        return false;
    }
    found.sort_by_key(|(p, _)| *p);
    found.truncate(limit + 1);
    found.last().is_some_and(|(p, _)| p.0 < time)
}

/// What [`Catalog::page`] is asked for.
pub struct Ask<'a> {
    /// The window (this node's store's sequence numbers).
    pub window: &'a Window,
    /// The other stores' marks: the window's, or (`opening`) the previous window's.
    pub marks: &'a [Mark],
    /// Whether the window opens with this page (its marks are made from the listing).
    pub opening: bool,
    /// The last item returned.
    pub after: Option<Place>,
    /// Items wanted.
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_name_gives_its_times_and_sequence_numbers() {
        let name = SegmentName::parse(
            "history/00ab/traces/00000000000000000010-00000000000000000030-00000000000000000001-00000000000000000009.seg",
        )
        .unwrap();
        assert_eq!((name.times, name.seqs), ((10, 30), (1, 9)));
        assert_eq!(SegmentName::parse("history/00ab/traces/notes.txt"), None);
        assert_eq!(SegmentName::parse("history/00ab/traces/1-2-3.seg"), None);
    }
}
