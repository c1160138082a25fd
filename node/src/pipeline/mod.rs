//! The receiving pipeline: messages from the channel are checked once, handed to every sink's
//! queue, and acknowledged to their publisher once every durable sink took them (written to
//! its disk queue, or delivered). A message a blocking durable sink has no room for is taken
//! by no sink and not acknowledged: its publisher keeps it, sends it again later, and its
//! outbox filling up makes its receivers answer 503 — backpressure end to end, never a
//! silent drop. Live sinks never hold acknowledgements back. The same holds while a durable
//! sink cannot write (a full disk) and while a disk queue cannot be written: nothing is taken
//! until they can again, and a batch is taken by every sink or by none (never handed twice).
//!
//! Runs on a thread of its own: checking and disk writes stay off the async workers.

pub mod ack;
pub mod blocking;
pub mod delivered;
pub mod input;
pub mod queue;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub use ack::Acknowledge;
pub use blocking::run as run_blocking;
pub use delivered::Delivered;
pub use delivered::PerSignal;
pub use input::{
    DropReason, FailReason, ItemReport, LatencyRecorder, Sink, SinkFuture, SinkHandle, SinkInput,
    SinkReport, SinkStats, WriteSink,
};
pub use queue::{Item, Queue, QueueKind, QueueSettings, WhenFull};

use ack::Ticket;
use otlp::wire;
use queue::Staged;

/// One message as it arrives from the channel, before it is checked.
pub struct Arrival {
    /// The sender's SLIM name.
    pub from: String,
    /// The sender's identity as MLS verified it.
    pub verified_sender: Option<String>,
    /// The payload type the sender gave.
    pub payload_type: String,
    /// The sender's metadata.
    pub metadata: HashMap<String, String>,
    /// The payload bytes.
    pub payload: bytes::Bytes,
    /// Acknowledges it to its publisher once every durable sink took it.
    pub ack: Option<Box<dyn Acknowledge>>,
}

impl From<slim_roles::Incoming> for Arrival {
    fn from(msg: slim_roles::Incoming) -> Arrival {
        Arrival {
            from: msg.from,
            verified_sender: msg.verified_sender,
            payload_type: msg.payload_type,
            metadata: msg.metadata,
            payload: msg.payload,
            ack: msg.ack.map(|ack| Box::new(ack) as Box<dyn Acknowledge>),
        }
    }
}

/// Messages taken from the channel at once (one disk write per queue for all of them).
const BATCH: usize = 256;

/// With a disk queue, batches are written (and synced) at most this often: what arrives
/// meanwhile joins the next batch. Under load, one sync per SLIM frame cost 6 % of a
/// forwarding participant; this adds at most this much to when a message is acknowledged,
/// and nothing when messages come further apart.
const DISK_WRITE_GAP: Duration = Duration::from_millis(5);

/// How long the pipeline waits before taking its next batch: the rest of [`DISK_WRITE_GAP`]
/// since the last write to a disk queue (`written`), unless that batch was full. A full batch
/// left more waiting, which is a batch already: waiting would only cap the queue at a batch
/// per gap (256 small requests per 5 ms: 1-span forwarding ran at ~38k req/s against 47k
/// with a memory queue).
fn disk_write_wait(written: Option<Instant>, was_full: bool, now: Instant) -> Option<Duration> {
    if was_full {
        return None;
    }
    DISK_WRITE_GAP
        .checked_sub(now.saturating_duration_since(written?))
        .filter(|wait| !wait.is_zero())
}

/// The running pipeline and its sinks.
pub struct Pipeline {
    thread: JoinHandle<()>,
    sinks: Vec<SinkHandle>,
    tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
}

impl Pipeline {
    /// Starts `sinks` and the thread feeding them from `incoming`; with `stamp_sender`, every
    /// resource gets `slim.sender` = its message's MLS-verified sender (`--stamp-origin`).
    pub fn start<M: Into<Arrival> + Send + 'static>(
        incoming: mpsc::Receiver<M>,
        sinks: Vec<(SinkHandle, Box<dyn Sink>)>,
        stamp_sender: bool,
    ) -> std::io::Result<Pipeline> {
        let handles: Vec<SinkHandle> = sinks.iter().map(|(h, _)| h.clone()).collect();
        for h in &handles {
            let q = h.queue.stats();
            if q.messages > 0 {
                info!(sink = %h.name, messages = q.messages, bytes = q.bytes,
                    "delivering what an earlier run left in the sink's queue");
            }
        }
        let tasks = sinks
            .into_iter()
            .map(|(handle, sink)| {
                let name = handle.name.clone();
                (name, tokio::spawn(sink.run(SinkInput::new(handle))))
            })
            .collect();
        let feeding = handles.clone();
        let thread = std::thread::Builder::new()
            .name("slim-node-pipeline".into())
            .spawn(move || feed(incoming, &feeding, stamp_sender))?;
        Ok(Pipeline {
            thread,
            sinks: handles,
            tasks,
        })
    }

    /// The sinks, for `/health`.
    pub fn sinks(&self) -> Vec<SinkHandle> {
        self.sinks.clone()
    }

    /// Waits until the channel closed (the node left) and every message reached the queues,
    /// then stops the sinks and waits up to `drain` for them to finish.
    pub async fn stop(self, drain: Duration) {
        if tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .map_or(true, |joined| joined.is_err())
        {
            warn!("the pipeline thread panicked");
        }
        for sink in &self.sinks {
            sink.queue.stop();
        }
        let deadline = tokio::time::Instant::now() + drain;
        for (name, task) in self.tasks {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => warn!(sink = %name, %err, "the sink ended abnormally"),
                Err(_) => {
                    warn!(sink = %name, "the sink did not finish in time; what it holds stays in its queue (disk) or was not acknowledged (memory)")
                }
            }
        }
        for sink in &self.sinks {
            let r = sink.report();
            let dropped: u64 = r.dropped.values().sum();
            info!(sink = %r.name, taken = r.taken, delivered = r.delivered, retried = r.retried, dropped,
                queued = r.queue.messages, "sink stopped");
        }
    }
}

/// How long a disk queue that could not be written is left alone before it is tried again
/// (meanwhile what arrives is refused: not acknowledged, so its publishers keep it).
const DISK_RETRY: Duration = Duration::from_secs(1);

/// The pipeline thread: until the channel closes, takes what arrived (up to [`BATCH`] at a
/// time), checks it, and hands it to the sinks.
fn feed<M: Into<Arrival>>(
    mut incoming: mpsc::Receiver<M>,
    sinks: &[SinkHandle],
    stamp_sender: bool,
) {
    let durable = sinks.iter().filter(|s| s.durable).count();
    let mut refused: u64 = 0;
    // Per sink: until when its disk queue, which could not be written, is left alone.
    let mut retry_at: Vec<Option<Instant>> = vec![None; sinks.len()];
    // Disk queues are written first: a batch one of them cannot take is taken by no sink.
    let mut order: Vec<usize> = (0..sinks.len()).collect();
    order.sort_by_key(|&i| !sinks[i].queue.is_disk());
    let disk = sinks.iter().any(|s| s.queue.is_disk());
    let mut written: Option<Instant> = None;
    let mut was_full = false;
    while let Some(first) = incoming.blocking_recv() {
        if let Some(wait) = disk_write_wait(written.filter(|_| disk), was_full, Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match incoming.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        was_full = batch.len() == BATCH;
        let now = Instant::now();
        // A durable sink that cannot write takes nothing (as if its queue were full), nor
        // does a disk queue that failed a moment ago: they resume by themselves.
        let stuck = sinks.iter().zip(&retry_at).position(|(s, at)| {
            (s.holds_acknowledgements()
                && s.queue.settings().when_full == WhenFull::Block
                && s.stats.is_unable_to_write())
                || at.is_some_and(|at| now < at)
        });
        let mut accepted: Vec<(Arc<Delivered>, Arc<Ticket>)> = Vec::with_capacity(batch.len());
        // What this batch already adds to each queue, to check room for the next message.
        let mut adding = vec![(0usize, 0usize); sinks.len()];
        let mut blocked = stuck;
        for msg in batch {
            let Some((mut delivered, ack)) = check(msg.into()) else {
                continue;
            };
            if stamp_sender {
                stamp(&mut delivered);
            }
            let bytes = delivered.payload.bytes().len();
            // Once one message found no room, the rest of the batch waits too: what is taken
            // stays in order behind it.
            blocked = blocked.or_else(|| {
                sinks.iter().zip(&adding).position(|(s, (n, b))| {
                    s.queue.settings().when_full == WhenFull::Block
                        && !s.queue.has_room(n + 1, b + bytes)
                })
            });
            if let Some(by) = blocked {
                // Not taken, not acknowledged: its publisher sends it again.
                sinks[by].stats.refused(1);
                refused += 1;
                if refused.is_power_of_two() || refused.is_multiple_of(1000) {
                    let why = if stuck.is_some() {
                        "cannot write"
                    } else {
                        "queue is full"
                    };
                    warn!(refused, sink = %sinks[by].name, "a sink {why}: not acknowledging what arrives, so its publishers keep it");
                }
                drop(ack);
                continue;
            }
            for (n, b) in adding.iter_mut() {
                *n += 1;
                *b += bytes;
            }
            accepted.push((Arc::new(delivered), Ticket::new(durable, ack)));
        }
        if accepted.is_empty() {
            continue;
        }
        let staged = stage(sinks, &order, &accepted, &mut retry_at);
        written = Some(Instant::now());
        let Some(staged) = staged else {
            // Taken by no sink: dropping the tickets leaves the messages unacknowledged, and
            // their publishers send them again.
            continue;
        };
        for (sink, staged) in sinks.iter().zip(staged) {
            let items = accepted
                .iter()
                .map(|(d, t)| {
                    // A durable sink's memory queue takes the message once the sink is done.
                    (d.clone(), sink.holds_acknowledgements().then(|| t.clone()))
                })
                .collect();
            sink.stats.taken(accepted.len() as u64);
            let evicted = sink.queue.push_staged(staged, items);
            sink.stats
                .dropped(DropReason::QueueFull, evicted.messages, evicted.items);
            if sink.durable && sink.queue.is_disk() {
                for (_, ticket) in &accepted {
                    ticket.taken();
                }
            }
        }
    }
    debug!("pipeline stopped: the channel closed");
}

/// Writes `accepted` to every disk queue (in `order`: disk queues first); `None`, with
/// whatever was written taken back, when one cannot take it. The staged batches come back in
/// the order of `sinks`.
fn stage(
    sinks: &[SinkHandle],
    order: &[usize],
    accepted: &[(Arc<Delivered>, Arc<Ticket>)],
    retry_at: &mut [Option<Instant>],
) -> Option<Vec<Staged>> {
    let delivered: Vec<&Delivered> = accepted.iter().map(|(d, _)| d.as_ref()).collect();
    let mut staged: Vec<Option<Staged>> = (0..sinks.len()).map(|_| None).collect();
    for &i in order {
        let sink = &sinks[i];
        match sink.queue.stage(&delivered) {
            Ok(s) => {
                staged[i] = Some(s);
                if retry_at[i].take().is_some() {
                    sink.stats.can_queue();
                    info!(sink = %sink.name, "the sink's disk queue can be written again: taking messages again");
                }
            }
            Err(err) => {
                for (j, s) in staged.iter_mut().enumerate() {
                    if let Some(s) = s.take() {
                        if let Err(err) = sinks[j].queue.unstage(s) {
                            warn!(sink = %sinks[j].name, %err, "could not take back a batch no sink takes; it is removed with the next removal");
                        }
                    }
                }
                warn!(sink = %sink.name, %err, messages = accepted.len(),
                    "the sink's disk queue cannot be written: taking nothing (nor acknowledging it), so its publishers keep it; trying again in a second");
                sink.stats.cannot_queue(&err.to_string());
                sink.stats.refused(accepted.len() as u64);
                retry_at[i] = Some(Instant::now() + DISK_RETRY);
                return None;
            }
        }
    }
    staged.into_iter().collect()
}

/// Sets `slim.sender` on every resource to the MLS-verified sender, replacing whatever came
/// in; without a verified sender (MLS off) an incoming value is removed, never trusted.
fn stamp(delivered: &mut Delivered) {
    let mut request = delivered.payload.request_once().into_owned();
    request.set_resource_attribute(wire::SENDER_ATTRIBUTE, delivered.verified_sender.as_deref());
    delivered.payload = otlp::Encoded::from_request(request);
}

/// Checks a message from the channel: an OTLP request, with its acknowledgement. What is not
/// OTLP is acknowledged and dropped (sending it again would not help).
fn check(msg: Arrival) -> Option<(Delivered, Option<Box<dyn Acknowledge>>)> {
    let received_at = time::OffsetDateTime::now_utc();
    let bytes = msg.payload.len();
    match wire::decode(&msg.payload_type, &msg.metadata, msg.payload) {
        Ok(payload) => Some((
            Delivered {
                received_at,
                message_id: msg.metadata.get(wire::MESSAGE_ID_KEY).cloned(),
                from: msg.from,
                verified_sender: msg.verified_sender,
                payload,
            },
            msg.ack,
        )),
        Err(err) => {
            warn!(from = %msg.from, payload_type = %msg.payload_type, bytes, %err,
                "dropped a message from the channel that is not OTLP");
            if let Some(ack) = msg.ack {
                ack.done();
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use input::{SinkStats, WriteSink};
    use queue::{Queue, QueueKind, QueueSettings};
    use std::sync::Mutex;

    #[test]
    fn after_a_partial_batch_the_next_disk_write_waits_out_the_rest_of_the_gap() {
        let now = Instant::now();
        let written = now.checked_sub(Duration::from_millis(2));
        assert_eq!(
            disk_write_wait(written, false, now),
            Some(DISK_WRITE_GAP - Duration::from_millis(2))
        );
        let long_ago = now.checked_sub(DISK_WRITE_GAP * 2);
        assert_eq!(
            disk_write_wait(long_ago, false, now),
            None,
            "the gap is over"
        );
        assert_eq!(
            disk_write_wait(None, false, now),
            None,
            "nothing written yet"
        );
    }

    #[test]
    fn after_a_full_batch_what_waits_is_taken_and_written_at_once() {
        let now = Instant::now();
        let written = now.checked_sub(Duration::from_millis(1));
        assert_eq!(disk_write_wait(written, true, now), None);
    }

    /// Records the ids it writes; blocks on each while its gate is closed.
    #[derive(Clone)]
    struct Recording {
        closed: Arc<std::sync::atomic::AtomicBool>,
        written: Arc<Mutex<Vec<String>>>,
    }

    impl Recording {
        fn close(&self) {
            self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        }

        fn open(&self) {
            self.closed
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl WriteSink for Recording {
        fn write(&mut self, d: &Delivered) -> std::io::Result<()> {
            while self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.written
                .lock()
                .unwrap()
                .push(d.message_id.clone().unwrap_or_default());
            Ok(())
        }
    }

    impl Sink for Recording {
        fn run(self: Box<Self>, input: SinkInput) -> SinkFuture {
            run_blocking(*self, input)
        }
    }

    fn recording() -> Recording {
        Recording {
            closed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            written: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn handle(name: &str, durable: bool, max_messages: usize, when_full: WhenFull) -> SinkHandle {
        let dir = std::env::temp_dir();
        SinkHandle {
            name: name.into(),
            kind: "test",
            durable,
            queue: Arc::new(
                Queue::open(
                    QueueSettings {
                        kind: QueueKind::Memory,
                        max_bytes: 1 << 30,
                        max_messages,
                        when_full,
                    },
                    &dir,
                )
                .unwrap(),
            ),
            stats: Arc::new(SinkStats::default()),
        }
    }

    fn incoming(i: usize) -> Arrival {
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{i}"}}}}]}}]}}]}}"#
        );
        let request = otlp::json::from_json(otlp::Signal::Logs, body.as_bytes()).unwrap();
        Arrival {
            from: "a/b/c".into(),
            verified_sender: None,
            payload_type: wire::PROTOBUF.into(),
            metadata: wire::metadata(otlp::Signal::Logs, &format!("id-{i}")),
            payload: request.to_protobuf().into(),
            ack: None,
        }
    }

    async fn wait_for(what: impl Fn() -> bool) {
        for _ in 0..3000 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_message_reaches_a_sink_that_keeps_up_in_order() {
        let sink = recording();
        let (tx, rx) = mpsc::channel(100);
        let pipeline = Pipeline::start(
            rx,
            vec![(
                handle("a", true, 1000, WhenFull::Block),
                Box::new(sink.clone()),
            )],
            false,
        )
        .unwrap();
        for i in 0..200 {
            tx.send(incoming(i)).await.unwrap();
        }
        drop(tx);
        pipeline.stop(Duration::from_secs(30)).await;
        let expected: Vec<String> = (0..200).map(|i| format!("id-{i}")).collect();
        assert_eq!(*sink.written.lock().unwrap(), expected);
    }

    /// A pipeline of a stuck sink (`stuck`'s queue) and a durable one that keeps up, fed
    /// `n` messages.
    async fn beside_a_stuck_sink(
        stuck: SinkHandle,
        n: usize,
    ) -> (Pipeline, mpsc::Sender<Arrival>, Recording, Recording) {
        let (stuck_sink, other) = (recording(), recording());
        stuck_sink.close();
        let (tx, rx) = mpsc::channel(100);
        let pipeline = Pipeline::start(
            rx,
            vec![
                (stuck, Box::new(stuck_sink.clone())),
                (
                    handle("other", true, 1000, WhenFull::Block),
                    Box::new(other.clone()),
                ),
            ],
            false,
        )
        .unwrap();
        for i in 0..n {
            tx.send(incoming(i)).await.unwrap();
        }
        (pipeline, tx, stuck_sink, other)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stuck_live_sink_does_not_hold_up_the_others() {
        let (pipeline, tx, stuck, other) =
            beside_a_stuck_sink(handle("stuck", false, 5, WhenFull::DropOldest), 55).await;
        let written = other.written.clone();
        wait_for(move || written.lock().unwrap().len() == 55).await;
        let stuck_report = pipeline.sinks()[0].report();
        assert!(
            stuck_report.dropped.values().sum::<u64>() > 0,
            "the live sink's queue dropped its oldest: {stuck_report:?}"
        );
        stuck.open();
        drop(tx);
        pipeline.stop(Duration::from_secs(30)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_blocking_queue_takes_nothing_for_any_sink() {
        let (pipeline, tx, stuck, other) =
            beside_a_stuck_sink(handle("stuck", true, 3, WhenFull::Block), 20).await;
        let written = other.written.clone();
        wait_for(move || written.lock().unwrap().len() == 3).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sinks = pipeline.sinks();
        assert_eq!(sinks[0].report().taken, 3, "the full queue took 3");
        assert_eq!(
            sinks[1].report().taken,
            3,
            "the other sink took only what every blocking sink could take"
        );
        stuck.open();
        drop(tx);
        pipeline.stop(Duration::from_secs(30)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_message_is_acknowledged_once_every_durable_sink_took_it_and_not_before() {
        use ack::watched::{Fate, Watched};
        let (fast, slow, live) = (recording(), recording(), recording());
        slow.close();
        live.close();
        let (tx, rx) = mpsc::channel(10);
        let pipeline = Pipeline::start(
            rx,
            vec![
                (
                    handle("fast", true, 10, WhenFull::Block),
                    Box::new(fast.clone()) as Box<dyn Sink>,
                ),
                (
                    handle("slow", true, 10, WhenFull::Block),
                    Box::new(slow.clone()),
                ),
                (
                    handle("live", false, 10, WhenFull::DropOldest),
                    Box::new(live.clone()),
                ),
            ],
            false,
        )
        .unwrap();
        let (ack, fate) = Watched::new();
        let mut arrival = incoming(0);
        arrival.ack = Some(ack);
        tx.send(arrival).await.unwrap();
        let written = fast.written.clone();
        wait_for(move || written.lock().unwrap().len() == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            *fate.lock().unwrap(),
            Fate::Pending,
            "one durable sink of two took it"
        );
        slow.open();
        let seen = fate.clone();
        wait_for(move || *seen.lock().unwrap() == Fate::Done).await;
        assert!(
            live.written.lock().unwrap().is_empty(),
            "the live sink held nothing back"
        );
        live.open();
        drop(tx);
        pipeline.stop(Duration::from_secs(30)).await;
    }
}
