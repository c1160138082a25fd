//! What a sink plugs into: the [`Sink`] trait (a sink owns its loop), [`SinkInput`] (its
//! queue, the node's stop signal, how it reports back), and the handle and counters the
//! pipeline and `/health` keep of each sink. A blocking sink implements [`WriteSink`] and runs
//! behind [`super::blocking::run`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::metrics::Histogram;
use opentelemetry::KeyValue;
use otlp::Signal;

use serde::Serialize;
use time::OffsetDateTime;

use super::delivered::{slot, Delivered, PerSignal};
use super::queue::{Item, Queue, QueueKind, WhenFull};

/// A running sink.
pub type SinkFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A destination for delivered messages that owns its loop.
pub trait Sink: Send {
    /// Runs until `input` ends (the node stops), taking items from it and saying for each
    /// whether it was delivered or dropped.
    fn run(self: Box<Self>, input: SinkInput) -> SinkFuture;
}

/// A sink that writes one message at a time and blocks while it does.
pub trait WriteSink: Send + 'static {
    /// Writes one message. A write that fails leaves nothing of the message behind (the
    /// runner of a durable sink writes it again).
    fn write(&mut self, delivered: &Delivered) -> io::Result<()>;

    /// Called when no message came for a moment (a chance to flush or save state).
    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Called once when the node stops, after the last message.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why messages were dropped for good: a short code for the metrics' `reason`, words for
/// `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// A full `drop_oldest` queue made room.
    QueueFull,
    /// The destination refused them for good (e.g. a 400).
    Refused,
    /// The destination took the request but rejected some items (an OTLP partial success).
    Rejected,
    /// A sink that does not hold acknowledgements back could not write them.
    WriteFailed,
    /// A disk queue could not read them back (damage).
    Unreadable,
}

impl DropReason {
    /// Every reason, so that each counter shows from the start (at 0).
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::Refused,
        DropReason::Rejected,
        DropReason::WriteFailed,
        DropReason::Unreadable,
    ];

    /// The metrics' `reason`.
    pub fn code(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Refused => "refused",
            DropReason::Rejected => "rejected",
            DropReason::WriteFailed => "write_failed",
            DropReason::Unreadable => "unreadable",
        }
    }

    /// What `/health` says.
    pub fn describe(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue full (drop_oldest)",
            DropReason::Refused => "refused by the backend",
            DropReason::Rejected => "items rejected by the destination (partial success)",
            DropReason::WriteFailed => "write failed",
            DropReason::Unreadable => "unreadable in the disk queue",
        }
    }
}

/// Why an attempt to deliver failed (it is tried again): the metrics' `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailReason {
    /// The destination answered "later" or could not be reached.
    Unavailable,
    /// Writing to the local destination (a file, the store) failed.
    WriteFailed,
}

impl FailReason {
    /// Every reason, so that each counter shows from the start (at 0).
    pub const ALL: [FailReason; 2] = [FailReason::Unavailable, FailReason::WriteFailed];

    /// The metrics' `reason`.
    pub fn code(self) -> &'static str {
        match self {
            FailReason::Unavailable => "unavailable",
            FailReason::WriteFailed => "write_failed",
        }
    }
}

/// Items per signal of `items`.
fn items_of(items: &[Item]) -> PerSignal {
    let mut counts = [0; 3];
    for item in items {
        let payload = &item.delivered.payload;
        counts[slot(payload.signal())] += payload.items() as u64;
    }
    counts
}

/// Where a sink records how long each message it delivered took from the receiver that
/// accepted it (the time in its message id); set by the telemetry.
pub struct LatencyRecorder {
    /// The histogram, in seconds.
    pub histogram: Histogram<f64>,
    /// The attributes of each signal's records, in [`Signal::ALL`]'s order.
    pub attributes: [Vec<KeyValue>; 3],
}

/// What a sink did with telemetry items, per signal, for the metrics.
#[derive(Debug, Clone, Default)]
pub struct ItemReport {
    /// Items delivered.
    pub delivered: PerSignal,
    /// Items of attempts that failed (tried again), by reason.
    pub failed: Vec<(FailReason, PerSignal)>,
    /// Items dropped for good, by reason.
    pub dropped: Vec<(DropReason, PerSignal)>,
    /// Messages dropped for good, by reason.
    pub dropped_messages: Vec<(DropReason, u64)>,
}

#[derive(Default)]
struct ItemCounts {
    delivered: [AtomicU64; 3],
    failed: Mutex<std::collections::BTreeMap<FailReason, PerSignal>>,
    dropped: Mutex<std::collections::BTreeMap<DropReason, PerSignal>>,
}

/// Adds `add` to `reason`'s counts in `map`.
fn add_items<R: Ord>(
    map: &Mutex<std::collections::BTreeMap<R, PerSignal>>,
    reason: R,
    add: PerSignal,
) {
    if add.iter().any(|n| *n > 0) {
        let mut map = crate::lock(map);
        let counts = map.entry(reason).or_default();
        for (count, n) in counts.iter_mut().zip(add) {
            *count += n;
        }
    }
}

/// The counts of every one of `reasons` in `map` (0 where none).
fn every<R: Ord + Copy, const N: usize>(
    reasons: [R; N],
    map: &Mutex<std::collections::BTreeMap<R, PerSignal>>,
) -> Vec<(R, PerSignal)> {
    let map = crate::lock(map);
    reasons
        .iter()
        .map(|r| (*r, map.get(r).copied().unwrap_or_default()))
        .collect()
}

/// What a sink did, for `/health` and the log.
#[derive(Default)]
pub struct SinkStats {
    taken: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    dropped: Mutex<std::collections::BTreeMap<DropReason, u64>>,
    items: ItemCounts,
    latency: OnceLock<LatencyRecorder>,
    last_error: Mutex<Option<(OffsetDateTime, String)>>,
    /// What the sink itself reports (e.g. the files sink, per signal).
    detail: Mutex<Option<serde_json::Value>>,
    /// Set while the sink cannot write to its destination on disk (a failed write), cleared
    /// by the next write that works: unlike `last_error`, it says how things are now.
    cannot_write: Mutex<Option<Stuck>>,
    /// Set while the sink's disk queue cannot be written, cleared once it can.
    cannot_queue: Mutex<Option<Stuck>>,
    /// Messages not taken because of this sink (its queue full or not writable, or the sink
    /// unable to write): not acknowledged, so their publishers send them again.
    refused: AtomicU64,
}

/// Since when, and why, something cannot be written.
#[derive(Debug, Clone)]
struct Stuck {
    since: Instant,
    error: String,
}

impl Stuck {
    /// Sets `slot` (keeping the time it first failed) with the latest `error`.
    fn set(slot: &Mutex<Option<Stuck>>, error: &str) {
        let mut slot = crate::lock(slot);
        let since = slot.as_ref().map_or_else(Instant::now, |s| s.since);
        *slot = Some(Stuck {
            since,
            error: error.to_string(),
        });
    }

    /// `since N s: ERROR`.
    fn describe(slot: &Mutex<Option<Stuck>>) -> Option<String> {
        crate::lock(slot)
            .as_ref()
            .map(|s| format!("since {} s: {}", s.since.elapsed().as_secs(), s.error))
    }
}

/// [`SinkStats`] as `/health` shows them, with the queue.
#[derive(Debug, Clone, Serialize)]
pub struct SinkReport {
    /// The sink's name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Whether it holds acknowledgements back until it took a message.
    pub durable: bool,
    /// Messages handed to it.
    pub taken: u64,
    /// Messages it delivered.
    pub delivered: u64,
    /// Attempts it made again.
    pub retried: u64,
    /// Messages dropped, by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Telemetry items, per signal (for the metrics, not `/health`).
    #[serde(skip)]
    pub items: ItemReport,
    /// Messages not taken because of this sink (not acknowledged: their publishers send them
    /// again).
    pub refused: u64,
    /// Since when and why the sink cannot write, while it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot_write: Option<String>,
    /// Since when and why its disk queue cannot be written, while it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot_queue: Option<String>,
    /// Its queue.
    pub queue: QueueReport,
    /// The last error, with its time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the sink itself reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// A sink's queue as `/health` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    /// `memory` or `disk`.
    pub kind: QueueKind,
    /// `block` or `drop_oldest`.
    pub when_full: WhenFull,
    /// Messages waiting or being delivered.
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Milliseconds the oldest waited since it was received.
    pub oldest_ms: Option<u64>,
    /// The most messages it holds.
    pub max_messages: usize,
    /// The most bytes it holds.
    pub max_bytes: usize,
}

impl QueueReport {
    /// How full it is, 0 to 1.
    pub fn fill(&self) -> f64 {
        slim_roles::fill(self.messages, self.max_messages, self.bytes, self.max_bytes)
    }
}

impl SinkStats {
    /// Messages the pipeline handed to the sink.
    pub fn taken(&self, n: u64) {
        self.taken.fetch_add(n, Ordering::Relaxed);
    }

    /// `messages` dropped for `reason`, holding `items`.
    pub fn dropped(&self, reason: DropReason, messages: u64, items: PerSignal) {
        if messages > 0 {
            *crate::lock(&self.dropped).entry(reason).or_default() += messages;
        }
        add_items(&self.items.dropped, reason, items);
    }

    /// Records each delivered message's latency with `recorder` from now on (the first call
    /// wins).
    pub fn record_latency(&self, recorder: LatencyRecorder) {
        let _ = self.latency.set(recorder);
    }

    /// Messages not taken because of this sink; their publishers send them again.
    pub fn refused(&self, n: u64) {
        self.refused.fetch_add(n, Ordering::Relaxed);
    }

    /// The sink's writes fail (`error`): it says so in `/health` until one works.
    pub fn cannot_write(&self, error: &str) {
        Stuck::set(&self.cannot_write, error);
    }

    /// Whether the sink's last write failed.
    pub fn is_unable_to_write(&self) -> bool {
        crate::lock(&self.cannot_write).is_some()
    }

    /// The sink's disk queue cannot be written (`error`).
    pub fn cannot_queue(&self, error: &str) {
        Stuck::set(&self.cannot_queue, error);
    }

    /// The sink's disk queue took a write again.
    pub fn can_queue(&self) {
        *crate::lock(&self.cannot_queue) = None;
    }

    /// Whether the sink's disk queue could not be written the last time it was tried.
    pub fn is_unable_to_queue(&self) -> bool {
        crate::lock(&self.cannot_queue).is_some()
    }

    fn report(&self, name: &str, kind: &'static str, durable: bool, queue: &Queue) -> SinkReport {
        let q = queue.stats();
        // One look at the drops: a guard kept in the literal below would lock them twice.
        let dropped_messages: Vec<(DropReason, u64)> = crate::lock(&self.dropped)
            .iter()
            .map(|(r, n)| (*r, *n))
            .collect();
        SinkReport {
            name: name.to_string(),
            kind,
            durable,
            taken: self.taken.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: dropped_messages
                .iter()
                .map(|(reason, n)| (reason.describe().to_string(), *n))
                .collect(),
            items: ItemReport {
                delivered: std::array::from_fn(|i| self.items.delivered[i].load(Ordering::Relaxed)),
                failed: every(FailReason::ALL, &self.items.failed),
                dropped: every(DropReason::ALL, &self.items.dropped),
                dropped_messages,
            },
            refused: self.refused.load(Ordering::Relaxed),
            cannot_write: Stuck::describe(&self.cannot_write),
            cannot_queue: Stuck::describe(&self.cannot_queue),
            queue: QueueReport {
                kind: queue.settings().kind,
                when_full: queue.settings().when_full,
                messages: q.messages,
                bytes: q.bytes,
                oldest_ms: q.oldest_ms,
                max_messages: queue.settings().max_messages,
                max_bytes: queue.settings().max_bytes,
            },
            last_error: crate::lock(&self.last_error).as_ref().map(|(at, e)| {
                format!(
                    "{} {e}",
                    at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                )
            }),
            detail: crate::lock(&self.detail).clone(),
        }
    }
}

/// One sink as the pipeline and `/health` know it.
#[derive(Clone)]
pub struct SinkHandle {
    /// Its name (unique on the node).
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// Whether the node acknowledges a message only once this sink took it.
    pub durable: bool,
    /// Its queue.
    pub queue: Arc<Queue>,
    /// Its counters.
    pub stats: Arc<SinkStats>,
}

impl SinkHandle {
    /// Whether what the sink takes is acknowledged to its publisher only once the sink is done
    /// with it (a durable sink with a memory queue).
    pub fn holds_acknowledgements(&self) -> bool {
        self.durable && !self.queue.is_disk()
    }

    /// What `/health` shows of it.
    pub fn report(&self) -> SinkReport {
        self.stats
            .report(&self.name, self.kind, self.durable, &self.queue)
    }

    /// What keeps the sink from taking messages now, named for `/health`: it cannot write, or
    /// its disk queue cannot be written.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(why) = Stuck::describe(&self.stats.cannot_write) {
            problems.push(format!("sink {} cannot write {why}", self.name));
        }
        if let Some(why) = Stuck::describe(&self.stats.cannot_queue) {
            problems.push(format!(
                "sink {}: its disk queue cannot be written {why}",
                self.name
            ));
        }
        problems
    }
}

/// What a sink reads from: its queue, and how it reports back.
pub struct SinkInput {
    handle: SinkHandle,
    /// Messages of a disk queue that could not be read back, not yet counted.
    unreadable: u64,
}

impl SinkInput {
    /// The input of the sink `handle`.
    pub fn new(handle: SinkHandle) -> SinkInput {
        SinkInput {
            handle,
            unreadable: 0,
        }
    }

    /// The sink's name, for its log lines.
    pub fn name(&self) -> &str {
        &self.handle.name
    }

    /// Whether the node is stopping.
    pub fn is_stopping(&self) -> bool {
        self.handle.queue.is_stopped()
    }

    /// Resolves once the node is stopping.
    pub async fn stopping(&self) {
        self.handle.queue.stopped().await
    }

    /// The next item, waiting for one; `None` once the node stops. A memory queue is drained
    /// first (what it holds was not acknowledged for durable sinks, but a live sink shows it);
    /// a disk queue keeps what it holds for the next start.
    pub async fn next(&mut self) -> Option<Item> {
        let queue = self.handle.queue.clone();
        loop {
            let woken = queue.wake.notified();
            let stopping = self.is_stopping();
            if stopping && self.handle.queue.is_disk() {
                return None;
            }
            match self.handle.queue.take(&mut self.unreadable) {
                Ok(Some(item)) => {
                    self.count_unreadable();
                    return Some(item);
                }
                Ok(None) if stopping => return None,
                Ok(None) => {}
                Err(err) => {
                    self.failed(&err.to_string());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            self.count_unreadable();
            tokio::select! {
                _ = woken => {}
                _ = queue.stopped() => {}
            }
        }
    }

    /// The next item, or `None` after `wait` without one (or once the node stops).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Item> {
        tokio::time::timeout(wait, self.next()).await.ok().flatten()
    }

    fn count_unreadable(&mut self) {
        if self.unreadable > 0 {
            // What could not be read cannot say its signal: messages only.
            self.handle
                .stats
                .dropped(DropReason::Unreadable, self.unreadable, [0; 3]);
            self.unreadable = 0;
        }
    }

    /// `items` reached their destination: the sink can write again if it could not.
    pub fn delivered(&self, items: &[Item]) {
        if items.is_empty() {
            return;
        }
        let stats = &self.handle.stats;
        // The latency first: whoever sees the counts sees the latencies of what they count.
        if let Some(latency) = stats.latency.get() {
            let now = SystemTime::now();
            for item in items {
                // With a clock behind the sender's, no figure is better than a wrong one.
                if let Some(took) = item
                    .delivered
                    .accepted_at()
                    .and_then(|accepted| now.duration_since(accepted).ok())
                {
                    let attributes = &latency.attributes[slot(item.delivered.payload.signal())];
                    latency.histogram.record(took.as_secs_f64(), attributes);
                }
            }
        }
        stats
            .delivered
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        for (count, n) in stats.items.delivered.iter().zip(items_of(items)) {
            count.fetch_add(n, Ordering::Relaxed);
        }
        *crate::lock(&stats.cannot_write) = None;
        self.finish(items);
    }

    /// `items` can never be delivered (`reason`, e.g. the destination refused them): they are
    /// dropped, counted, and acknowledged (sending them again would not help).
    pub fn dropped(&self, items: &[Item], reason: DropReason) {
        self.handle
            .stats
            .dropped(reason, items.len() as u64, items_of(items));
        self.finish(items);
    }

    /// The destination took a request of `signal`, counted as delivered, but rejected `n` of
    /// its items (an OTLP partial success): those are dropped, not delivered.
    pub fn rejected_items(&self, signal: Signal, n: u64) {
        let mut items = [0; 3];
        items[slot(signal)] = n;
        let stats = &self.handle.stats;
        let _ = stats.items.delivered[slot(signal)].fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |d| Some(d.saturating_sub(n)),
        );
        stats.dropped(DropReason::Rejected, 0, items);
    }

    fn finish(&self, items: &[Item]) {
        if let Err(err) = self.handle.queue.done(items) {
            self.failed(&err.to_string());
        }
    }

    /// An attempt to deliver `items` failed (`reason`) and the sink tries again; counted.
    pub fn retried(&self, items: &[Item], reason: FailReason) {
        let stats = &self.handle.stats;
        stats.retried.fetch_add(1, Ordering::Relaxed);
        add_items(&stats.items.failed, reason, items_of(items));
    }

    /// An attempt to deliver `failed` did not work (`reason`): the sink gives back every item
    /// it has not finished, to be handed to it again in order; counted as a retry.
    pub fn give_back(&self, failed: &[Item], reason: FailReason) {
        self.retried(failed, reason);
        self.handle.queue.rewind();
    }

    /// An attempt failed with `error` (logged and kept as the last error).
    pub fn failed(&self, error: &str) {
        tracing::warn!(sink = %self.handle.name, %error, "sink error");
        *crate::lock(&self.handle.stats.last_error) =
            Some((OffsetDateTime::now_utc(), error.to_string()));
    }

    /// A write to the sink's destination failed with `error`: logged, kept as the last error,
    /// and shown in `/health` as a problem until a write works again. A durable sink with a
    /// memory queue takes nothing more meanwhile (the pipeline refuses what arrives).
    pub fn cannot_write(&self, error: &str) {
        self.failed(error);
        self.handle.stats.cannot_write(error);
    }

    /// What the sink reports of itself in `/health` (`detail`).
    pub fn set_detail(&self, detail: serde_json::Value) {
        *crate::lock(&self.handle.stats.detail) = Some(detail);
    }

    /// Whether the node waits for this sink before acknowledging.
    pub fn durable(&self) -> bool {
        self.handle.durable
    }

    /// [`SinkHandle::holds_acknowledgements`]: items it holds back then hold back the
    /// acknowledgements that let its publisher send more, so waiting for more to arrive
    /// before working on them would wait for what cannot come.
    pub fn holds_acknowledgements(&self) -> bool {
        self.handle.holds_acknowledgements()
    }
}
