//! The `store` sink's archive (`location=s3://BUCKET/PREFIX`): what arrived longer than
//! `seal-after` ago is sealed into one segment per signal ([`crate::history::segment`]) and
//! put in the bucket under `PREFIX/<store id>/<signal>/<first time>-<last time>-<first
//! seq>-<last seq>.seg` (numbers zero-padded, so names sort by time); once the store confirmed
//! every segment of a range, the store removes that range here. A range is noted in the store
//! before its first put and sealed again the same way until it is done (also after a kill), so
//! a put the node did not see confirmed is put again under the same name: the bucket never
//! holds an item twice. While the bucket cannot be reached,
//! everything stays here (within the store's own bounds) and the puts are tried again with
//! backoff (1 s doubling to 30 s); `/health` says how much waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::{ObjectStore, PutPayload};
use serde::Serialize;
use slim_roles::Backoff;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::history::catalog::Catalog;
use crate::history::now_unix_nano;
use crate::history::store::Store;
use crate::sink::bucket::Bucket;

/// How often the archive looks for what to seal.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Where and when. `Debug` leaves the client out (its credentials).
#[derive(Clone)]
pub struct ArchiveSettings {
    /// The bucket and prefix.
    pub bucket: Bucket,
    /// Its client, made once (the archive and the query API's catalog share it).
    pub client: Arc<dyn ObjectStore>,
    /// What arrived longer ago than this is sealed.
    pub seal_after: Duration,
    /// Segments whose last item is older than this are deleted from the bucket (the store's
    /// `max-age`).
    pub max_age: Option<Duration>,
    /// The store's directory (its segment cache is there).
    pub dir: std::path::PathBuf,
}

/// What `/health` shows of the archive.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveStats {
    /// `s3://BUCKET/PREFIX/<store id>`.
    pub location: String,
    /// Segments put (this run).
    pub segments: u64,
    /// Items in them.
    pub items: u64,
    /// Their bytes (compressed, as the bucket holds them).
    pub bytes: u64,
    /// Items held here, not yet in the bucket.
    pub waiting_items: u64,
    /// Puts the store did not confirm.
    pub failed_attempts: u64,
    /// Segments deleted past `max-age` (this run).
    pub deleted_segments: u64,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl std::fmt::Debug for ArchiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSettings")
            .field("bucket", &self.bucket)
            .field("seal_after", &self.seal_after)
            .field("max_age", &self.max_age)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Where the segments of the store `store_id` go: `PREFIX/<store id>`.
pub fn base(bucket: &Bucket, store_id: u64) -> String {
    crate::history::catalog::store_prefix(&bucket.prefix, store_id)
}

/// Cached segments kept at most, per store (in `DIR/segment-cache`).
pub const CACHE_BYTES: u64 = 256 << 20;

/// The catalog of the segments `settings` says the store keeps (for the query API).
pub fn catalog(settings: &ArchiveSettings, store: &Store) -> Catalog {
    Catalog::new(
        settings.client.clone(),
        settings.bucket.prefix.clone(),
        store.id(),
        settings.dir.join("segment-cache"),
        CACHE_BYTES,
    )
}

/// The running archive.
pub struct Archive {
    stats: Arc<Mutex<ArchiveStats>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Archive {
    /// Starts archiving `store` as `settings` say.
    pub fn start(store: Arc<Store>, settings: ArchiveSettings, sink: &str) -> Archive {
        let base = base(&settings.bucket, store.id());
        let stats = Arc::new(Mutex::new(ArchiveStats {
            location: format!("s3://{}/{base}", settings.bucket.bucket),
            ..Default::default()
        }));
        info!(%sink, location = %crate::lock(&stats).location, seal_after = ?settings.seal_after, "archiving the store to object storage");
        let stop = CancellationToken::new();
        let retention = settings
            .max_age
            .map(|age| (catalog(&settings, &store), age));
        let task = tokio::spawn(archive_loop(
            store,
            settings.client.clone(),
            base,
            settings.seal_after,
            retention,
            stats.clone(),
            stop.clone(),
        ));
        Archive { stats, stop, task }
    }

    /// What `/health` shows.
    pub fn report(&self) -> serde_json::Value {
        serde_json::to_value(&*crate::lock(&self.stats)).unwrap_or_default()
    }

    /// Stops after the put in flight.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// One range sealed: each segment's object key and bytes, and the range's last sequence number.
struct Range {
    through: u64,
    segments: Vec<(String, u64, Vec<u8>)>,
}

#[allow(clippy::too_many_arguments)]
async fn archive_loop(
    store: Arc<Store>,
    client: Arc<dyn ObjectStore>,
    base: String,
    seal_after: Duration,
    retention: Option<(Catalog, Duration)>,
    stats: Arc<Mutex<ArchiveStats>>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut wait = LOOK_EVERY;
    let mut retained_at: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = LOOK_EVERY;
        if let Some((catalog, age)) = &retention {
            if retained_at.is_none_or(|at| at.elapsed() >= RETAIN_EVERY) {
                retained_at = Some(std::time::Instant::now());
                retain(catalog, *age, &stats).await;
            }
        }
        {
            let totals = store.totals();
            crate::lock(&stats).waiting_items = totals.traces + totals.metrics + totals.logs;
        }
        let s = store.clone();
        let base_key = base.clone();
        let cutoff = now_unix_nano()
            .saturating_sub(u64::try_from(seal_after.as_nanos()).unwrap_or(u64::MAX));
        let step = u64::try_from(seal_step(seal_after).as_nanos()).unwrap_or(u64::MAX);
        let sealed =
            tokio::task::spawn_blocking(move || seal_range(&s, &base_key, cutoff, step)).await;
        let range = match sealed {
            Ok(Ok(Some(range))) => range,
            Ok(Ok(None)) => continue,
            Ok(Err(err)) => {
                warn!(%err, "cannot seal what the store holds");
                crate::lock(&stats).last_error = Some(err);
                wait = backoff.next_delay();
                continue;
            }
            Err(err) => {
                warn!(%err, "sealing failed");
                wait = backoff.next_delay();
                continue;
            }
        };
        let mut put_all = true;
        for (key, items, bytes) in &range.segments {
            let path = object_store::path::Path::from(key.as_str());
            let put = tokio::select! {
                _ = stop.cancelled() => return,
                put = client.put(&path, PutPayload::from(bytes.clone())) => put,
            };
            match put {
                Ok(_) => {
                    debug!(%key, items, bytes = bytes.len(), "segment put");
                    let mut s = crate::lock(&stats);
                    s.segments += 1;
                    s.items += items;
                    s.bytes += bytes.len() as u64;
                }
                Err(err) => {
                    let err = crate::net::redact::urls(&err.to_string());
                    warn!(%key, %err, "the object store did not take a segment; trying again");
                    let mut s = crate::lock(&stats);
                    s.failed_attempts += 1;
                    s.last_error = Some(err);
                    put_all = false;
                    break;
                }
            }
        }
        if !put_all {
            wait = backoff.next_delay();
            continue;
        }
        let s = store.clone();
        let through = range.through;
        match tokio::task::spawn_blocking(move || s.archived_through(through, now_unix_nano()))
            .await
        {
            Ok(Ok(_)) => {
                backoff.reset();
                crate::lock(&stats).last_error = None;
                // More may be waiting: look again at once.
                wait = Duration::ZERO;
            }
            Ok(Err(err)) => {
                warn!(%err, "the bucket holds a range the store could not remove yet; it is put again");
                crate::lock(&stats).last_error = Some(err.to_string());
                wait = backoff.next_delay();
            }
            Err(err) => {
                warn!(%err, "removing an archived range failed");
                wait = backoff.next_delay();
            }
        }
    }
}

/// How often segments past the store's `max-age` are looked for in the bucket.
const RETAIN_EVERY: Duration = Duration::from_secs(10);

/// Deletes the store's segments whose last item is older than `age`.
async fn retain(catalog: &Catalog, age: Duration, stats: &Mutex<ArchiveStats>) {
    let before = now_unix_nano().saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
    for signal in otlp::Signal::ALL {
        match catalog.delete_older(signal, before).await {
            Ok(0) => {}
            Ok(n) => {
                info!(%signal, segments = n, ?age, "deleted segments past max-age from the bucket");
                crate::lock(stats).deleted_segments += n;
            }
            Err(err) => {
                warn!(%signal, %err, "cannot apply max-age in the bucket; trying again later");
                crate::lock(stats).last_error = Some(err.to_string());
            }
        }
    }
}

/// Items sealed at most per range, so that a long backlog goes in bounded steps.
const RANGE_ITEMS: u64 = 100_000;

/// How much more than `seal_after` the oldest unsealed arrival may wait, so that a steady
/// stream is sealed into a segment every few minutes, not one every look (2 s): half of
/// `seal_after`, at most 5 min.
fn seal_step(seal_after: Duration) -> Duration {
    (seal_after / 2).min(Duration::from_secs(300))
}

/// Whether a new range is due: something arrived before `cutoff - step`, or what arrived
/// before `cutoff` fills a whole range.
fn range_due(store: &Store, cutoff: u64, step: u64) -> Result<bool, String> {
    let sealed = store.totals().sealed_through;
    let early = store
        .arrived_before(cutoff.saturating_sub(step), sealed.saturating_add(1))
        .map_err(|e| e.to_string())?;
    if early > sealed {
        return Ok(true);
    }
    let full = sealed.saturating_add(RANGE_ITEMS);
    let ready = store
        .arrived_before(cutoff, full)
        .map_err(|e| e.to_string())?;
    Ok(ready >= full)
}

/// The next range to put ([`Store::next_seal`]: the one begun and not finished, else, when
/// [`range_due`], what arrived before `cutoff`), sealed, with each segment's key under `base`.
fn seal_range(store: &Store, base: &str, cutoff: u64, step: u64) -> Result<Option<Range>, String> {
    let totals = store.totals();
    let pending = totals.sealing_through > totals.sealed_through;
    if !pending && !range_due(store, cutoff, step)? {
        return Ok(None);
    }
    let Some((after, through)) = store
        .next_seal(cutoff, RANGE_ITEMS)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let segments = store
        .seal(after, through)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|s| {
            let key = format!(
                "{base}/{}/{:020}-{:020}-{:020}-{:020}.seg",
                s.signal,
                s.times.0,
                s.times.1,
                after + 1,
                through
            );
            (key, s.items, s.bytes)
        })
        .collect();
    Ok(Some(Range { through, segments }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::catalog::Ask;
    use crate::history::cursor::Sealer;
    use crate::history::query;
    use crate::history::store::testing::{spans_at as append, KEEP};
    use object_store::memory::InMemory;
    use otlp::Signal;

    /// Seals what `store` holds into `bucket` (under `PREFIX/<store id>`), as the archive does.
    fn seal_into(rt: &tokio::runtime::Runtime, bucket: &Arc<dyn ObjectStore>, store: &Store) {
        let base = crate::history::catalog::store_prefix("history", store.id());
        let range = seal_range(store, &base, u64::MAX, 0).unwrap().unwrap();
        for (key, _, bytes) in range.segments {
            rt.block_on(bucket.put(&object_store::path::Path::from(key), bytes.into()))
                .unwrap();
        }
        store.archived_through(range.through, 2_000).unwrap();
    }

    /// A bucket in memory holding the segments of a writer that stored spans at `times`:
    /// the runtime, the bucket, the writer (and its directory).
    fn sealed_bucket(
        times: &[u64],
    ) -> (
        tokio::runtime::Runtime,
        Arc<dyn ObjectStore>,
        tempfile::TempDir,
        Arc<Store>,
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let writer = Store::open(dir.path(), KEEP).unwrap();
        append(&writer, times);
        seal_into(&rt, &bucket, &writer);
        (rt, bucket, dir, writer)
    }

    /// A node with an empty store reading `bucket` under `history/`: its directory, its store
    /// and its catalog.
    fn reader_of(bucket: &Arc<dyn ObjectStore>) -> (tempfile::TempDir, Arc<Store>, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), KEEP).unwrap();
        let catalog = Catalog::new(
            bucket.clone(),
            "history".into(),
            store.id(),
            dir.path().join("segment-cache"),
            CACHE_BYTES,
        );
        (dir, store, catalog)
    }

    #[test]
    fn a_store_sealing_while_another_node_pages_gives_each_item_once_in_the_window_after() {
        let (rt, bucket, _writer_dir, writer) = sealed_bucket(&[10, 20, 40]);
        let (_reader_dir, reader, catalog) = reader_of(&bucket);
        let remote = |ask: &Ask<'_>| rt.block_on(catalog.page(ask));
        let sealer = Sealer::new(&[1; 32]);
        let mut cursor = None;
        let mut page = |limit| {
            let reply = query::traces_page(&reader, &sealer, cursor.take(), limit, &remote);
            cursor = Some(reply.next_cursor);
            assert!(!reply.partial);
            let tags: Vec<u8> = reply.entries.iter().map(|e| e[e.len() - 1]).collect();
            (tags, reply.has_more)
        };
        assert_eq!(page(1), (vec![10], true));
        // Sealed while the window is paged: one item behind the position, one ahead.
        append(&writer, &[5, 30]);
        seal_into(&rt, &bucket, &writer);
        assert_eq!(page(10), (vec![20, 40], false));
        // The next window brings both, and nothing again.
        assert_eq!(page(10), (vec![5, 30], false));
        assert_eq!(page(10), (vec![], false));
    }

    #[test]
    fn a_range_is_sealed_once_its_oldest_arrival_waited_a_step_past_seal_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), KEEP).unwrap();
        append(&store, &[10, 20]); // received at 1,000
                                   // Sealable (before the cutoff), but the oldest has not waited the step yet.
        assert!(!range_due(&store, 2_000, 5_000).unwrap());
        assert!(seal_range(&store, "p", 2_000, 5_000).unwrap().is_none());
        // A step later it is.
        assert!(range_due(&store, 7_000, 5_000).unwrap());
        let range = seal_range(&store, "p", 7_000, 5_000).unwrap().unwrap();
        assert_eq!(range.through, 2);
        assert_eq!(
            seal_step(Duration::from_secs(600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            seal_step(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_damaged_segment_in_the_bucket_is_skipped_and_counted_not_waited_for() {
        let (rt, bucket, _writer_dir, _writer) = sealed_bucket(&[10, 20]);
        let garbage = format!(
            "{}/traces/{:020}-{:020}-{:020}-{:020}.seg",
            crate::history::catalog::store_prefix("history", 7),
            1,
            30,
            1,
            5
        );
        rt.block_on(bucket.put(
            &object_store::path::Path::from(garbage),
            b"not a segment".to_vec().into(),
        ))
        .unwrap();
        let (_reader_dir, _reader, catalog) = reader_of(&bucket);
        let window = crate::history::store::Window {
            signal: Signal::Traces,
            start: 0,
            end: 1_000,
            seq_hi: 0,
            prev_end: 0,
            prev_seq: 0,
        };
        let ask = Ask {
            window: &window,
            marks: &[],
            opening: true,
            after: None,
            limit: 10,
        };
        let page = rt.block_on(catalog.page(&ask)).unwrap();
        let times: Vec<u64> = page.items.iter().map(|(p, _)| p.0).collect();
        assert_eq!((times, page.unreadable), (vec![10, 20], None));
        assert_eq!(catalog.damaged(), 1);
    }
}
