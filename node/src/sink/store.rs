//! `store:DIR` sink: keeps every span, data point and log record that arrives in
//! `DIR/store.redb` ([`crate::history::store`]), indexed by signal and item time, for the query
//! API (`--query-api`) to serve and `slim-node replay` to send again. A message is taken (and
//! acknowledged) once its items are committed and synced. Retention by age and by size removes
//! what was stored first. A batch that cannot be committed (a full disk) is given back and
//! tried again each second; meanwhile the sink takes nothing more and `/health` says so.
//! With `location=s3://BUCKET/PREFIX`, what arrived longer than `seal-after` ago is sealed
//! into segments and kept in object storage instead ([`crate::sink::archive`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::kind::{OptionSpec, SinkKind, SinkSpec};
use crate::history::now_unix_nano;
use crate::history::store::{Arrival, Prepared, Retention, Store, Stores};
use crate::pipeline::{FailReason, Item, QueueKind};
use crate::pipeline::{Sink, SinkFuture, SinkInput};
use crate::sink::archive::{Archive, ArchiveSettings};
use crate::sink::bucket::Bucket;

/// `store:DIR`.
pub static KIND: SinkKind = SinkKind {
    name: "store",
    arg: Some(("DIR", true)),
    summary: "keeps every span, data point and log record in DIR/store.redb, indexed by signal and time, for the query API (`--query-api`), `slim-node fetch` and `slim-node replay`; taken once committed and synced",
    durable: true,
    queue: QueueKind::Memory,
    options: OPTIONS,
    open: |spec, ctx| {
        Ok(Box::new(StoreSink::new(
            open_store(spec, ctx.stores)?,
            archive_settings(spec)?,
        )?))
    },
};

static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "max-age",
        value: "DURATION",
        default: "7d",
        help: "remove items received longer ago than this (`90m`, `24h`, `30d`; `unlimited`); with location=, segments whose last item is older are deleted from the bucket too",
        repeats: false,
    },
    OptionSpec {
        key: "max-bytes",
        value: "BYTES",
        default: "1073741824",
        help: "stored bytes (items, their resources and scopes, and the index) kept at most; the items stored first are removed first",
        repeats: false,
    },
    OptionSpec {
        key: "location",
        value: "s3://BUCKET/PREFIX",
        default: "none",
        help: "keep what arrived longer than seal-after ago in object storage, as immutable segments under PREFIX/<store id>/<signal>/, removed here once the store confirmed them; endpoint and credentials as for the files sink's upload (AWS_* variables, or endpoint=/region=)",
        repeats: false,
    },
    crate::sink::bucket::ENDPOINT_OPTION,
    crate::sink::bucket::REGION_OPTION,
    OptionSpec {
        key: "seal-after",
        value: "DURATION",
        default: "10m",
        help: "how long what arrived stays only here before it is sealed into object storage (`30s`, `10m`, `1h`); a range is sealed once its oldest item waited this plus half of it (at most 5 min more), or once 100,000 items are ready",
        repeats: false,
    },
];

/// The catalog of the segments the store of `spec` keeps in object storage (`location=`),
/// for the query API.
pub fn catalog_of(
    spec: &SinkSpec,
    store: &Store,
) -> anyhow::Result<Option<crate::history::catalog::Catalog>> {
    let Some(settings) = archive_settings(spec)? else {
        return Ok(None);
    };
    Ok(Some(crate::sink::archive::catalog(&settings, store)))
}

/// `max-age=`: `None` for `unlimited`.
fn max_age(spec: &SinkSpec) -> anyhow::Result<Option<Duration>> {
    match spec.text("max-age") {
        "unlimited" => Ok(None),
        text => Ok(Some(humantime::parse_duration(text).map_err(|e| {
            anyhow::anyhow!("sink store: max-age={text:?} is not a duration like 24h or 7d: {e}")
        })?)),
    }
}

/// The archive `spec` asks for (`location=`), checked now.
fn archive_settings(spec: &SinkSpec) -> anyhow::Result<Option<ArchiveSettings>> {
    let Some(url) = spec.option("location") else {
        return Ok(None);
    };
    let bucket = Bucket::parse(
        "sink store: location",
        url,
        spec.option("endpoint"),
        spec.option("region"),
    )?;
    // A location that cannot make a client is an error at start-up, not in the loop.
    let client = Arc::new(bucket.client()?);
    let text = spec.text("seal-after");
    let seal_after = humantime::parse_duration(text).map_err(|e| {
        anyhow::anyhow!("sink store: seal-after={text:?} is not a duration like 30s or 10m: {e}")
    })?;
    Ok(Some(ArchiveSettings {
        bucket,
        client,
        seal_after,
        max_age: max_age(spec)?,
        dir: std::path::PathBuf::from(spec.arg.as_deref().unwrap_or_default()),
    }))
}

/// Items handed to the store in one transaction at most.
const BATCH_MESSAGES: usize = 512;
/// Payload bytes handed to the store in one transaction at most.
const BATCH_BYTES: usize = 8 << 20;
/// How often retention runs while nothing arrives.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// The store a `store` spec names, from the node's `stores` (the sink and the query API share
/// it).
pub fn open_store(spec: &SinkSpec, stores: &Stores) -> anyhow::Result<Arc<Store>> {
    let dir = std::path::PathBuf::from(spec.arg.as_deref().unwrap_or_default());
    let retention = Retention {
        max_age: max_age(spec)?,
        max_bytes: spec.value("max-bytes")?,
    };
    Ok(stores.open(&dir, retention)?)
}

/// The sink.
pub struct StoreSink {
    store: Arc<Store>,
    archive: Option<ArchiveSettings>,
}

impl StoreSink {
    /// The sink writing to `store` (one sink may), archiving as `archive` says.
    pub fn new(store: Arc<Store>, archive: Option<ArchiveSettings>) -> anyhow::Result<StoreSink> {
        store.claim_writer()?;
        Ok(StoreSink { store, archive })
    }
}

impl Sink for StoreSink {
    fn run(self: Box<Self>, input: SinkInput) -> SinkFuture {
        Box::pin(async move {
            let archive = self
                .archive
                .map(|settings| Archive::start(self.store.clone(), settings, input.name()));
            run(self.store, input, archive.as_ref()).await;
            if let Some(archive) = archive {
                archive.stop().await;
            }
        })
    }
}

/// The sink's `/health` detail: what the store holds, and its archive.
fn detail(store: &Store, archive: Option<&Archive>) -> serde_json::Value {
    let mut detail = serde_json::to_value(store.totals()).unwrap_or_default();
    if let (Some(archive), serde_json::Value::Object(map)) = (archive, &mut detail) {
        map.insert("archive".into(), archive.report());
    }
    detail
}

fn unix_nano(t: time::OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos()).unwrap_or(0)
}

/// A batch being written, and how it went.
type Writing = tokio::task::JoinHandle<(Vec<Item>, Result<(), crate::history::store::StoreError>)>;

/// Batches are taken apart while the previous one is written: one batch in the store's
/// writer, the next being split.
async fn run(store: Arc<Store>, mut input: SinkInput, archive: Option<&Archive>) {
    let totals = store.totals();
    info!(sink = %input.name(), traces = totals.traces, metrics = totals.metrics, logs = totals.logs,
        bytes = totals.bytes, "store open");
    let mut expired_at = Instant::now();
    let mut writing: Option<Writing> = None;
    loop {
        input.set_detail(detail(&store, archive));
        let wait = if writing.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        };
        let batch = next_batch(&mut input, wait).await;
        if batch.is_empty() {
            if let Some(w) = writing.take() {
                if !finish(&input, w).await && !pause(&input).await {
                    return;
                }
                continue;
            }
            if input.is_stopping() {
                return;
            }
            if expired_at.elapsed() >= EXPIRE_EVERY {
                expired_at = Instant::now();
                let s = store.clone();
                match tokio::task::spawn_blocking(move || s.expire(now_unix_nano())).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => input.failed(&err.to_string()),
                    Err(err) => input.failed(&err.to_string()),
                }
            }
            continue;
        }
        let s = store.clone();
        let split = tokio::task::spawn_blocking(move || {
            let prepared = prepare(&s, &batch);
            (batch, prepared)
        });
        let (batch, prepared) = match split.await {
            Ok(done) => done,
            Err(err) => {
                // Settle the batch being written before giving the rest back.
                if let Some(w) = writing.take() {
                    finish(&input, w).await;
                }
                input.failed(&format!("taking a batch apart failed: {err}"));
                // The batch went with the task: its items are not counted as failed.
                input.give_back(&[], FailReason::WriteFailed);
                if !pause(&input).await {
                    return;
                }
                continue;
            }
        };
        if let Some(w) = writing.take() {
            if !finish(&input, w).await {
                // Given back with the one before: this batch comes again too.
                if !pause(&input).await {
                    return;
                }
                continue;
            }
        }
        let s = store.clone();
        writing = Some(tokio::task::spawn_blocking(move || {
            let result = s.append_prepared(prepared, now_unix_nano());
            (batch, result)
        }));
    }
}

/// Up to a batch of what waits, waiting `wait` for the first.
async fn next_batch(input: &mut SinkInput, wait: Duration) -> Vec<Item> {
    let Some(first) = input.next_within(wait).await else {
        return Vec::new();
    };
    let mut bytes = first.delivered.payload.bytes().len();
    let mut batch = vec![first];
    while batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
        match input.next_within(Duration::ZERO).await {
            Some(item) => {
                bytes += item.delivered.payload.bytes().len();
                batch.push(item);
            }
            None => break,
        }
    }
    batch
}

/// Acknowledges a written batch; a batch that failed is given back (with whatever was taken
/// after it) to come again. Returns whether it was written.
async fn finish(input: &SinkInput, writing: Writing) -> bool {
    match writing.await {
        Ok((batch, Ok(()))) => {
            input.delivered(&batch);
            true
        }
        Ok((batch, Err(err))) => {
            // Nothing of the batch is counted as stored; a commit that reached the disk all
            // the same is recognised by its message ids when the batch comes again.
            input.cannot_write(&err.to_string());
            input.give_back(&batch, FailReason::WriteFailed);
            false
        }
        Err(err) => {
            input.failed(&format!("the store's writer failed: {err}"));
            input.give_back(&[], FailReason::WriteFailed);
            false
        }
    }
}

/// A second before trying again; `false` when the node stops (what was not acknowledged
/// is sent again after the restart, and recognised by its message id if it was stored).
async fn pause(input: &SinkInput) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => true,
        _ = input.stopping() => false,
    }
}

/// The batch's requests taken apart and made ready for the store's writer.
fn prepare(store: &Store, batch: &[Item]) -> Vec<Prepared> {
    batch
        .iter()
        .map(|item| {
            let d = &item.delivered;
            store.prepare(Arrival {
                signal: d.payload.signal(),
                received_unix_nano: unix_nano(d.received_at),
                // Spans and log records are cut from the bytes; data points are rebuilt.
                parts: otlp::items::split_encoded(d.payload.signal(), &d.payload.shared())
                    .unwrap_or_else(|| otlp::items::split_items(&d.payload.request_once())),
                // Per sender: a member cannot pass another member's id to have its data dropped.
                message_id: d
                    .message_id
                    .as_ref()
                    .map(|id| format!("{}\0{id}", d.sender())),
            })
        })
        .collect()
}
