//! `store:DIR` sink: keeps every span, data point and log record that arrives in
//! `DIR/store.redb` ([`crate::history::store`]), indexed by signal and item time, for the query
//! API (`--query-api`) to serve and `slim-node replay` to send again. A message is taken (and
//! acknowledged) once its items are committed and synced. Retention by age and by size removes
//! what was stored first.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::info;

use super::registry::{OptionSpec, SinkKind, SinkSpec};
use super::{Sink, SinkFuture, SinkInput};
use crate::history::store::{Arrival, Retention, Store};
use crate::pipeline::queue::{Item, QueueKind};

/// `store:DIR`.
pub static KIND: SinkKind = SinkKind {
    name: "store",
    arg: Some(("DIR", true)),
    summary: "keeps every span, data point and log record in DIR/store.redb, indexed by signal and time, for the query API (`--query-api`), `slim-node fetch` and `slim-node replay`; taken once committed and synced",
    durable: true,
    queue: QueueKind::Memory,
    options: OPTIONS,
    open: |spec| Ok(Box::new(StoreSink::new(spec)?)),
};

static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "max-age",
        value: "DURATION",
        default: "7d",
        help: "remove items received longer ago than this (`90m`, `24h`, `30d`; `unlimited`)",
        repeats: false,
    },
    OptionSpec {
        key: "max-bytes",
        value: "BYTES",
        default: "1073741824",
        help: "stored bytes (items, their resources and scopes, and the index) kept at most; the items stored first are removed first",
        repeats: false,
    },
];

/// Items handed to the store in one transaction at most.
const BATCH_MESSAGES: usize = 512;
/// Payload bytes handed to the store in one transaction at most.
const BATCH_BYTES: usize = 8 << 20;
/// How often retention runs while nothing arrives.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// The store a `store` spec names, opened once per directory in the process (the sink and
/// the query API share it).
pub fn open_store(spec: &SinkSpec) -> anyhow::Result<Arc<Store>> {
    let dir = std::path::PathBuf::from(spec.arg.as_deref().unwrap_or_default());
    let max_age = match spec.option("max-age") {
        None => Some(Duration::from_secs(7 * 24 * 3600)),
        Some("unlimited") => None,
        Some(text) => Some(humantime::parse_duration(text).map_err(|e| {
            anyhow::anyhow!("sink store: max-age={text:?} is not a duration like 24h or 7d: {e}")
        })?),
    };
    let retention = Retention {
        max_age,
        max_bytes: spec.parsed("max-bytes", 1u64 << 30)?,
    };
    Ok(Store::open(&dir, retention)?)
}

/// The sink.
pub struct StoreSink {
    store: Arc<Store>,
}

impl StoreSink {
    /// Opens the store `spec` names.
    pub fn new(spec: &SinkSpec) -> anyhow::Result<StoreSink> {
        let store = open_store(spec)?;
        store.claim_writer()?;
        Ok(StoreSink { store })
    }
}

impl Sink for StoreSink {
    fn run(self: Box<Self>, input: SinkInput) -> SinkFuture {
        Box::pin(run(self.store, input))
    }
}

fn unix_nano(t: time::OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos()).unwrap_or(0)
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn run(store: Arc<Store>, mut input: SinkInput) {
    let totals = store.totals();
    info!(sink = %input.name(), traces = totals.traces, metrics = totals.metrics, logs = totals.logs,
        bytes = totals.bytes, "store open");
    let mut expired_at = Instant::now();
    loop {
        input.set_detail(serde_json::to_value(store.totals()).unwrap_or_default());
        let Some(first) = input.next_within(Duration::from_secs(1)).await else {
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
        };
        let mut batch = vec![first];
        let mut bytes = batch[0].delivered.payload.bytes().len();
        while batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
            match input.next_within(Duration::ZERO).await {
                Some(item) => {
                    bytes += item.delivered.payload.bytes().len();
                    batch.push(item);
                }
                None => break,
            }
        }
        let s = store.clone();
        let (batch, result) = match tokio::task::spawn_blocking(move || {
            let result = s.append(&arrivals(&batch), now_unix_nano());
            (batch, result)
        })
        .await
        {
            Ok(done) => done,
            Err(err) => {
                input.failed(&format!("the store's writer failed: {err}"));
                input.give_back();
                continue;
            }
        };
        match result {
            Ok(()) => input.delivered(&batch),
            Err(err) => {
                // Nothing of the batch was committed: it comes again after a pause.
                input.failed(&err.to_string());
                input.give_back();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = input.stopping() => {}
                }
            }
        }
    }
}

fn arrivals(batch: &[Item]) -> Vec<Arrival> {
    batch
        .iter()
        .map(|item| {
            let d = &item.delivered;
            Arrival {
                signal: d.payload.signal(),
                received_unix_nano: unix_nano(d.received_at),
                parts: otlp::items::split_items(d.payload.request()),
            }
        })
        .collect()
}
