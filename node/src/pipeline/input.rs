//! What a sink plugs into: the [`Sink`] trait (a sink owns its loop), [`SinkInput`] (its
//! queue, the node's stop signal, how it reports back), and the handle and counters the
//! pipeline and `/health` keep of each sink. A blocking sink implements [`WriteSink`] and runs
//! behind [`super::blocking::run`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use super::delivered::Delivered;
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

/// What a sink did, for `/health` and the log.
#[derive(Default)]
pub struct SinkStats {
    taken: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    dropped: Mutex<std::collections::BTreeMap<String, u64>>,
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

    /// Messages dropped for `reason`.
    pub fn dropped(&self, reason: &str, n: u64) {
        if n > 0 {
            *crate::lock(&self.dropped)
                .entry(reason.to_string())
                .or_default() += n;
        }
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
        SinkReport {
            name: name.to_string(),
            kind,
            durable,
            taken: self.taken.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: crate::lock(&self.dropped).clone(),
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
            self.handle
                .stats
                .dropped("unreadable in the disk queue", self.unreadable);
            self.unreadable = 0;
        }
    }

    /// `items` reached their destination: the sink can write again if it could not.
    pub fn delivered(&self, items: &[Item]) {
        if items.is_empty() {
            return;
        }
        self.handle
            .stats
            .delivered
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        *crate::lock(&self.handle.stats.cannot_write) = None;
        self.finish(items);
    }

    /// `items` can never be delivered (`reason`, e.g. the destination refused them): they are
    /// dropped, counted, and acknowledged (sending them again would not help).
    pub fn dropped(&self, items: &[Item], reason: &str) {
        self.handle.stats.dropped(reason, items.len() as u64);
        self.finish(items);
    }

    /// The destination took a message but rejected `n` of its items (an OTLP partial success).
    pub fn rejected_items(&self, n: u64) {
        self.handle
            .stats
            .dropped("items rejected by the destination (partial success)", n);
    }

    fn finish(&self, items: &[Item]) {
        if let Err(err) = self.handle.queue.done(items) {
            self.failed(&err.to_string());
        }
    }

    /// The sink tries again what failed; counted.
    pub fn retried(&self) {
        self.handle.stats.retried.fetch_add(1, Ordering::Relaxed);
    }

    /// The sink gives back every item it has not finished, to be handed to it again in
    /// order; counted as a retry.
    pub fn give_back(&self) {
        self.retried();
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
}
