//! The sealed segments a store keeps in object storage, read back: listed by name (which
//! holds each segment's time and sequence range, so a query picks segments without reading
//! them), fetched once and cached on local disk within a size bound, and paged like the store
//! itself ([`Window::admits`]): items come in `(time, seq)` order, each once.

use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;

use super::segment::Segment;
use super::store::{Position, Window};
use otlp::Signal;

/// A segment, from its name: `<first time>-<last time>-<first seq>-<last seq>.seg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    /// Its object key.
    pub key: String,
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
        let file = key.rsplit('/').next()?.strip_suffix(".seg")?;
        let n: Vec<u64> = file
            .split('-')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let [start, last, first, through] = n[..] else {
            return None;
        };
        Some(SegmentName {
            key: key.to_string(),
            times: (start, last),
            seqs: (first, through),
            put_at: None,
        })
    }
}

/// Items read back from segments: each with its position, in order.
#[derive(Debug, Default)]
pub struct RemotePage {
    /// `(position, resource entry)`, in `(time, seq)` order.
    pub items: Vec<(Position, Vec<u8>)>,
    /// Whether the window holds more of them after these.
    pub has_more: bool,
}

/// Largest segment fetched (one is a range of at most about 100,000 items, compressed).
const MAX_SEGMENT: u64 = 1 << 30;
/// How long one page may wait for the bucket (object_store retries for up to minutes).
const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Why segments could not be read.
#[derive(Debug, thiserror::Error)]
#[error("object storage: {0}")]
pub struct CatalogError(String);

/// One store's segments in one bucket.
pub struct Catalog {
    client: Arc<dyn ObjectStore>,
    /// `PREFIX/<store id>`.
    base: String,
    cache: PathBuf,
    cache_bytes: u64,
}

impl Catalog {
    /// The segments under `base` (`PREFIX/<store id>`), cached in `cache` up to `cache_bytes`.
    pub fn new(
        client: Arc<dyn ObjectStore>,
        base: String,
        cache: PathBuf,
        cache_bytes: u64,
    ) -> Catalog {
        Catalog {
            client,
            base,
            cache,
            cache_bytes,
        }
    }

    /// The segments of `signal`, by first time.
    pub async fn list(&self, signal: Signal) -> Result<Vec<SegmentName>, CatalogError> {
        let prefix = object_store::path::Path::from(format!("{}/{signal}", self.base));
        let listed: Vec<_> = self
            .client
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| CatalogError(crate::net::redact::urls(&e.to_string())))?;
        let mut names: Vec<SegmentName> = listed
            .iter()
            .filter_map(|meta| {
                let mut name = SegmentName::parse(meta.location.as_ref())?;
                name.put_at = meta
                    .last_modified
                    .timestamp_nanos_opt()
                    .and_then(|n| u64::try_from(n).ok());
                Some(name)
            })
            .collect();
        names.sort_by_key(|n| (n.times.0, n.seqs.0));
        Ok(names)
    }

    /// Deletes the segments of `signal` the bucket took before `before` (Unix nanoseconds:
    /// everything in one arrived before it was sealed, so by then it is older); returns how
    /// many.
    pub async fn delete_older(&self, signal: Signal, before: u64) -> Result<u64, CatalogError> {
        let mut deleted = 0;
        for name in self.list(signal).await? {
            if name.put_at.is_none_or(|at| at >= before) {
                continue;
            }
            self.client
                .delete(&object_store::path::Path::from(name.key.as_str()))
                .await
                .map_err(|e| CatalogError(crate::net::redact::urls(&e.to_string())))?;
            let _ = tokio::fs::remove_file(self.cache.join(name.key.replace('/', "_"))).await;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// A segment's bytes: from the cache (unless `fresh`), else fetched (and cached).
    async fn fetch(&self, name: &SegmentName, fresh: bool) -> Result<Vec<u8>, CatalogError> {
        let file = self.cache.join(name.key.replace('/', "_"));
        if !fresh {
            if let Ok(bytes) = tokio::fs::read(&file).await {
                return Ok(bytes);
            }
        }
        let got = self
            .client
            .get(&object_store::path::Path::from(name.key.as_str()))
            .await
            .map_err(|e| CatalogError(crate::net::redact::urls(&e.to_string())))?;
        if got.meta.size > MAX_SEGMENT {
            return Err(CatalogError(format!(
                "{}: {} bytes, more than a segment holds",
                name.key, got.meta.size
            )));
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| CatalogError(e.to_string()))?
            .to_vec();
        // A cache that cannot be written only costs a fetch next time.
        if tokio::fs::create_dir_all(&self.cache).await.is_ok() {
            let partial = file.with_extension("part");
            if tokio::fs::write(&partial, &bytes).await.is_ok() {
                let _ = tokio::fs::rename(&partial, &file).await;
            }
            self.trim_cache().await;
        }
        Ok(bytes)
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
    pub async fn page_within(
        &self,
        window: &Window,
        after: Option<Position>,
        limit: usize,
    ) -> Result<RemotePage, CatalogError> {
        tokio::time::timeout(PAGE_TIMEOUT, self.page(window, after, limit))
            .await
            .map_err(|_| CatalogError(format!("no answer within {PAGE_TIMEOUT:?}")))?
    }

    /// Up to `limit` items of `window` after `after`, from the segments of `window`'s signal.
    pub async fn page(
        &self,
        window: &Window,
        after: Option<Position>,
        limit: usize,
    ) -> Result<RemotePage, CatalogError> {
        let names = self.list(window.signal).await?;
        let mut found: Vec<(Position, Vec<u8>)> = Vec::new();
        for name in names {
            let (first_time, last_time) = name.times;
            let behind = after.is_some_and(|a| last_time < a.0);
            if last_time < window.start
                || first_time >= window.end
                || name.seqs.0 > window.seq_hi
                || behind
            {
                continue;
            }
            // Sorted by first time: once `limit + 1` items are found before this segment's
            // first, no later segment can hold an earlier one.
            if found.len() > limit {
                found.sort_by_key(|(p, _)| *p);
                found.truncate(limit + 1);
                if found.last().is_some_and(|(p, _)| p.0 < first_time) {
                    break;
                }
            }
            let cached = self.fetch(&name, false).await?;
            let fresh;
            let segment = match Segment::open(&cached) {
                Ok(segment) => segment,
                Err(_) => {
                    // A damaged copy in the cache: the bucket's, again.
                    fresh = self.fetch(&name, true).await?;
                    Segment::open(&fresh).map_err(|e| CatalogError(format!("{}: {e}", name.key)))?
                }
            };
            let from = after.map_or(window.start, |a| a.0.max(window.start));
            let blocks: Vec<usize> = segment.blocks_for(from, window.end).collect();
            for b in blocks {
                let items = segment
                    .block(b)
                    .map_err(|e| CatalogError(format!("{}: {e}", name.key)))?;
                found.extend(items.into_iter().filter(|(position, _)| {
                    window.admits(*position) && after.is_none_or(|a| *position > a)
                }));
            }
        }
        found.sort_by_key(|(p, _)| *p);
        let has_more = found.len() > limit;
        found.truncate(limit);
        Ok(RemotePage {
            items: found,
            has_more,
        })
    }
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
