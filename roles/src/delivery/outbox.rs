//! The outbox: messages taken for the channel, kept until every member acknowledged them.
//!
//! SLIM's completion is not a delivery receipt: it reports success for messages it dropped,
//! keeps nothing for members that are offline, and can wedge after an outage. So members
//! acknowledge every message by id (a small unicast back to the sender), the sender re-sends
//! what stays unacknowledged, and receivers drop the duplicates that re-sending creates.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{error, warn};

use crate::error::PublishError;
use otlp::wire::MESSAGE_ID_KEY;

use crate::delivery::message::Outgoing;
use crate::delivery::spool::{self, Spool, SpoolError};

/// The longest wait between two sends of an unacknowledged message.
pub const MAX_RESEND_AFTER: Duration = Duration::from_secs(60);

/// What a message costs the outbox besides its payload — its id, payload type and metadata,
/// the entry, the member sets of its acknowledgements: about 1.5 KiB from what those hold —
/// counted against [`OutboxLimits::max_bytes`], so that the bound holds for memory and not
/// only for payloads (thousands of messages would otherwise hold megabytes it does not see).
pub const ENTRY_OVERHEAD: usize = 1536;

/// The bytes a message counts for against [`OutboxLimits::max_bytes`].
fn held(msg: &Outgoing) -> usize {
    msg.payload.len() + ENTRY_OVERHEAD
}

/// How much the outbox may hold before new messages are refused.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Bytes held at most: payloads plus [`ENTRY_OVERHEAD`] per message.
    pub max_bytes: usize,
    /// Messages held at most.
    pub max_messages: usize,
    /// Work held at most, by time: while members take data, a new message waits to be taken
    /// while the messages on their way to the members would take longer than this to reach
    /// them at the rate they have been reaching them ([`Outbox::paced`]). `None`: bounded by
    /// bytes and messages only.
    pub max_delay: Option<Duration>,
}

/// Messages on their way that never count as a backlog (so that a light load, whose rate
/// says little of what the members could take, is not held back).
const PACING_FLOOR: usize = 64;
/// How often the rate at which messages reach the members is measured.
const RATE_EVERY: Duration = Duration::from_millis(100);
/// With nothing reaching any member for this long (or twice the bound, if longer), the
/// members are not slow but gone for now: the time bound gives way to the byte bound, so that
/// a store-and-forward outbox (a spool) takes what arrives meanwhile, as it always did.
const PACING_STALE: Duration = Duration::from_millis(500);
/// How often a waiting message looks again without being woken.
const PACING_RECHECK: Duration = Duration::from_millis(100);

/// The longest a message waits to be taken while the outbox is behind ([`Outbox::paced`]);
/// after it, it is refused as if the outbox were full.
pub const MAX_PACING_WAIT: Duration = Duration::from_secs(2);

struct Entry {
    /// Shared with the frames being sent, so a send copies nothing.
    msg: Arc<Outgoing>,
    /// Its place in the order messages were taken (its key in the spool, when there is one).
    seq: u64,
    /// Whether it is in the spool.
    spooled: bool,
    /// When it was taken (or loaded from the spool).
    taken: Instant,
    /// Members that must acknowledge: fixed at the first send.
    required: Option<BTreeSet<String>>,
    acked: BTreeSet<String>,
    last_sent: Option<Instant>,
    sends: u32,
}

impl Entry {
    /// The members that must acknowledge it and have not yet.
    fn missing(&self) -> impl Iterator<Item = &String> {
        self.required
            .iter()
            .flatten()
            .filter(|m| !self.acked.contains(*m))
    }

    /// Whether it was sent and only members in `away` still lack it.
    fn only_away_lack(&self, away: &BTreeSet<String>) -> bool {
        self.required.is_some() && self.missing().all(|m| away.contains(m))
    }

    fn new(msg: Outgoing, seq: u64, spooled: bool) -> Self {
        Entry {
            msg: Arc::new(msg),
            seq,
            spooled,
            taken: Instant::now(),
            required: None,
            acked: BTreeSet::new(),
            last_sent: None,
            sends: 0,
        }
    }
}

/// Counts for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStats {
    /// Messages waiting for an acknowledgement (or to be sent).
    pub messages: usize,
    /// The bytes they count for: payloads plus [`ENTRY_OVERHEAD`] each.
    pub bytes: usize,
    /// Messages sent more than once so far.
    pub resent: u64,
    /// Messages handed to SLIM so far, counting each send.
    pub sent: u64,
    /// SLIM messages they travelled in (several share one when they fit).
    pub slim_messages: u64,
    /// Payload bytes of those SLIM messages.
    pub slim_bytes: u64,
    /// Messages every member they waited for acknowledged, so far.
    pub acknowledged: u64,
    /// Milliseconds the oldest waiting message has waited; absent when none waits.
    pub oldest_ms: Option<u64>,
    /// Milliseconds the oldest message never sent yet has waited; absent when every message
    /// was sent. More than a moment means publishing is stalled.
    pub oldest_unsent_ms: Option<u64>,
    /// Milliseconds since SLIM last took a message from this node; absent before the first.
    pub last_published_ms: Option<u64>,
    /// Messages given up on for members that were away when the outbox was full, by member.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub given_up: BTreeMap<String, u64>,
    /// The most messages it holds (`--queue-max-messages`).
    pub max_messages: usize,
    /// The most bytes it holds (`--queue-max-bytes`).
    pub max_bytes: usize,
}

impl OutboxStats {
    /// How full it is, 0 to 1: the larger of its message and byte fill.
    pub fn fill(&self) -> f64 {
        fill(self.messages, self.max_messages, self.bytes, self.max_bytes)
    }
}

/// The larger of `messages` of `max_messages` and `bytes` of `max_bytes`, 0 to 1.
pub fn fill(messages: usize, max_messages: usize, bytes: usize, max_bytes: usize) -> f64 {
    let part = |n: usize, max: usize| if max == 0 { 0.0 } else { n as f64 / max as f64 };
    part(messages, max_messages)
        .max(part(bytes, max_bytes))
        .min(1.0)
}

/// How the members are doing, as the outbox needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberView {
    /// Not live (silent, out of the session, unreachable).
    pub away: BTreeSet<String>,
    /// Live, but owing data for a while.
    pub slow: BTreeSet<String>,
    /// Some member is live and acknowledging.
    pub serving: bool,
    /// Some member is live (acknowledging or not): there is someone to publish to.
    pub live: bool,
}

/// What one member still owes the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemberBacklog {
    /// Every message up to this sequence number (in the order they were taken) is
    /// acknowledged by the member or did not need it; `None` before anything was taken.
    pub acked_up_to: Option<u64>,
    /// Messages sent to it and not acknowledged yet.
    pub unacked: usize,
    /// How long the oldest of them has waited.
    pub oldest_unacked: Option<Duration>,
}

pub(crate) struct Outbox {
    limits: OutboxLimits,
    inner: Mutex<Inner>,
    spool: Option<Arc<Spool>>,
    next_key: AtomicU64,
    /// Keys of delivered messages, removed from the spool by its own thread.
    removals: Option<std::sync::mpsc::Sender<Vec<u64>>>,
    /// Wakes the sender when there is something new.
    pub wake: Notify,
    /// Wakes those waiting for the outbox to drain.
    pub drained: Notify,
    /// Wakes messages waiting to be taken ([`Outbox::paced`]): a first acknowledgement came,
    /// or the members changed.
    progress: Notify,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    /// Messages no member acknowledged yet.
    pending: usize,
    /// Messages acknowledged for the first time since `rate_since`.
    reached: u64,
    rate_since: Option<Instant>,
    /// Messages reaching a member per second (smoothed): how fast the backlog drains.
    rate: f64,
    /// When a message last reached a member for the first time.
    last_reached: Option<Instant>,
    /// The gate of the frame each message last travelled in, by message id: opened by the
    /// first acknowledgement of it, from any member (see [`Outbox::gate`]). Hashed with
    /// per-process random keys (members choose what they acknowledge), by ahash rather than
    /// SipHash: every message goes in and out once.
    gates: HashMap<String, Arc<Notify>, ahash::RandomState>,
    /// When an acknowledgement last freed something, or the outbox was last empty.
    last_progress: Option<Instant>,
    bytes: usize,
    /// Messages being written to the spool, counted against the limits already.
    reserved: usize,
    resent: u64,
    sent: u64,
    slim_messages: u64,
    slim_bytes: u64,
    acknowledged: u64,
    /// Sequence number of the last message taken.
    last_taken: Option<u64>,
    /// Members that are away (not answering): nothing is re-sent for them alone, and a drain
    /// does not wait for them.
    away: BTreeSet<String>,
    /// Members that answer but have not acknowledged data for a while (a stuck sink, a full
    /// disk).
    slow: BTreeSet<String>,
    /// Whether some member is live and acknowledging: only then does a full outbox give up
    /// what away and slow members lack (refusing new data would hold that member up; with
    /// nobody taking data, refusing is the backpressure the publishers need).
    serving: bool,
    /// Messages given up on, by the member that lacked them.
    given_up: BTreeMap<String, u64>,
    /// When SLIM last took a message.
    last_published: Option<Instant>,
}

impl Inner {
    /// Counts `n` messages that reached a member for the first time at `now`, and measures
    /// the rate every [`RATE_EVERY`].
    fn count_reached(&mut self, n: u64, now: Instant) {
        if n > 0 {
            self.last_reached = Some(now);
        }
        let since = *self.rate_since.get_or_insert(now);
        self.reached += n;
        let elapsed = now.saturating_duration_since(since);
        if elapsed >= RATE_EVERY {
            let measured = self.reached as f64 / elapsed.as_secs_f64();
            self.rate = if self.rate > 0.0 {
                0.7 * self.rate + 0.3 * measured
            } else {
                measured
            };
            self.reached = 0;
            self.rate_since = Some(now);
        }
    }
}

impl Outbox {
    /// An outbox in memory only.
    pub(crate) fn new(limits: OutboxLimits) -> Self {
        Outbox {
            limits,
            inner: Mutex::new(Inner::default()),
            spool: None,
            next_key: AtomicU64::new(0),
            removals: None,
            wake: Notify::new(),
            drained: Notify::new(),
            progress: Notify::new(),
        }
    }

    /// An outbox backed by `spool`, holding what the spool still had. A thread of its own
    /// removes delivered messages from the spool. What was restored is owed to `owed_to` (a
    /// moderator's invitees: a message kept for a member that was away is for that member,
    /// whoever joins first after the restart); with nobody named, to the members at its first
    /// send.
    pub(crate) fn with_spool(
        limits: OutboxLimits,
        spool: Spool,
        owed_to: BTreeSet<String>,
    ) -> Result<Self, SpoolError> {
        let loaded = spool.load()?;
        let spool = Arc::new(spool);
        let (removals, rx) = std::sync::mpsc::channel::<Vec<u64>>();
        let cleaner = spool.clone();
        std::thread::Builder::new()
            .name("slim-node-spool".into())
            .spawn(move || {
                // Ends when the outbox, holding the sender, is gone.
                while let Ok(mut keys) = rx.recv() {
                    keys.extend(rx.try_iter().flatten());
                    if let Err(err) = cleaner.remove(&keys) {
                        error!(%err, "could not remove delivered messages from the spool");
                    }
                }
            })
            .map_err(|e| spool.error(e))?;
        let mut outbox = Outbox::new(limits);
        outbox.next_key = AtomicU64::new(spool::next_key(&loaded));
        {
            let inner = outbox.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            for (key, msg) in loaded {
                inner.last_taken = Some(key);
                inner.bytes += held(&msg);
                let mut entry = Entry::new(msg, key, true);
                entry.required = (!owed_to.is_empty()).then(|| owed_to.clone());
                inner.entries.push_back(entry);
                inner.pending += 1;
            }
        }
        outbox.spool = Some(spool);
        outbox.removals = Some(removals);
        Ok(outbox)
    }

    /// Whether taking a message writes to disk (and so should not run on an async worker).
    pub(crate) fn is_spooled(&self) -> bool {
        self.spool.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Takes every message or none: a request split in parts is never half taken. With a
    /// spool, the messages are on disk (synced, per policy) before this returns.
    pub(crate) fn push_all(&self, mut msgs: Vec<Outgoing>) -> Result<(), PublishError> {
        let size: usize = msgs.iter().map(held).sum();
        for msg in msgs.iter_mut() {
            msg.metadata
                .insert(MESSAGE_ID_KEY.to_string(), msg.id.clone());
        }
        {
            let mut inner = self.lock();
            let fits = |inner: &Inner| {
                inner.entries.len() + inner.reserved + msgs.len() <= self.limits.max_messages
                    && inner.bytes + size <= self.limits.max_bytes
            };
            if !fits(&inner) {
                self.make_room(&mut inner, msgs.len(), size);
            }
            if !fits(&inner) {
                return Err(PublishError::Full {
                    messages: inner.entries.len(),
                    bytes: inner.bytes,
                });
            }
            // Reserve, so that the disk write happens without holding the lock.
            inner.bytes += size;
            inner.reserved += msgs.len();
        }
        let first = self
            .next_key
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        let written = match &self.spool {
            Some(spool) => spool.append(first, &msgs).map(|()| true),
            None => Ok(false),
        };
        let mut inner = self.lock();
        inner.reserved -= msgs.len();
        match written {
            Err(err) => {
                inner.bytes -= size;
                return Err(PublishError::Spool(err.to_string()));
            }
            Ok(spooled) => {
                for (i, msg) in msgs.into_iter().enumerate() {
                    let seq = first + i as u64;
                    inner.last_taken = inner.last_taken.max(Some(seq));
                    inner.entries.push_back(Entry::new(msg, seq, spooled));
                    inner.pending += 1;
                }
            }
        }
        drop(inner);
        self.wake.notify_one();
        Ok(())
    }

    /// The rule for a full outbox: a member that is away or slow must not make the data of a
    /// member that takes it be refused. While some member is live and acknowledging, the
    /// oldest messages that only away or slow members still lack are given up on (for them)
    /// until `count` more messages of `size` bytes fit, or none is left to give up.
    fn make_room(&self, inner: &mut Inner, count: usize, size: usize) {
        let Inner {
            entries,
            gates,
            away,
            slow,
            serving,
            given_up,
            bytes,
            reserved,
            pending,
            ..
        } = inner;
        if !*serving {
            return;
        }
        let lagging: BTreeSet<String> = away.union(slow).cloned().collect();
        let mut freed_keys = Vec::new();
        let mut freed = 0;
        let mut dropped = 0u64;
        let mut len = entries.len();
        entries.retain(|e| {
            let room = len + *reserved + count <= self.limits.max_messages
                && *bytes - freed + size <= self.limits.max_bytes;
            if room || !e.only_away_lack(&lagging) {
                return true;
            }
            for m in e.missing() {
                *given_up.entry(m.clone()).or_default() += 1;
            }
            if e.acked.is_empty() {
                *pending -= 1;
            }
            gates.remove(&e.msg.id);
            freed += held(&e.msg);
            if e.spooled {
                freed_keys.push(e.seq);
            }
            len -= 1;
            dropped += 1;
            false
        });
        *bytes -= freed;
        if dropped > 0 {
            let total: u64 = given_up.values().sum();
            // When the total passes a power of two: a member away for long would log each request.
            let before = total - dropped;
            if before == 0 || before.ilog2() != total.ilog2() {
                warn!(messages = dropped, total, away = ?lagging, "the outbox is full: gave up the oldest messages only members that are away or slow lack");
            }
        }
        if let (Some(removals), false) = (&self.removals, freed_keys.is_empty()) {
            let _ = removals.send(freed_keys);
        }
    }

    /// How far behind the outbox is, when more than [`OutboxLimits::max_delay`]: members take
    /// data, and the messages on their way would take longer than that to reach them at the
    /// rate messages have been reaching them (beyond a floor of [`PACING_FLOOR`] messages).
    /// `None`: a new message may be taken, also when nothing reached a member for
    /// [`PACING_STALE`] (an outage, not a backlog).
    pub(crate) fn behind(&self) -> Option<Duration> {
        let max = self.limits.max_delay?;
        let inner = self.lock();
        if !inner.serving || inner.rate <= 0.0 || inner.pending < PACING_FLOOR {
            return None;
        }
        let stale = PACING_STALE.max(max * 2);
        if inner.last_reached.is_none_or(|at| at.elapsed() > stale) {
            return None;
        }
        let wait = Duration::from_secs_f64(inner.pending as f64 / inner.rate);
        (wait > max).then_some(wait)
    }

    /// Waits while the outbox is [`Outbox::behind`], so that what it holds stays within
    /// [`OutboxLimits::max_delay`] of work: a sender waits for its answer instead of adding to
    /// a backlog. Refused (as when full) after [`MAX_PACING_WAIT`].
    pub(crate) async fn paced(&self) -> Result<(), PublishError> {
        let until = tokio::time::Instant::now() + MAX_PACING_WAIT;
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            let Some(behind) = self.behind() else {
                return Ok(());
            };
            let now = tokio::time::Instant::now();
            if now >= until {
                let inner = self.lock();
                return Err(PublishError::Behind {
                    delay_ms: behind.as_millis() as u64,
                    pending: inner.pending,
                });
            }
            // Woken by progress, or looks again a little later (what is behind can also end
            // by time: see PACING_STALE).
            let _ = tokio::time::timeout_at(until.min(now + PACING_RECHECK), progressed).await;
        }
    }

    /// Sets how the members are doing now (see [`Inner::away`], [`Inner::slow`],
    /// [`Inner::serving`]); wakes a drain waiting for what only away members lack.
    pub(crate) fn set_members(&self, view: MemberView) {
        self.progress.notify_waiters();
        let mut inner = self.lock();
        inner.slow = view.slow;
        inner.serving = view.serving;
        if inner.away != view.away {
            inner.away = view.away;
            drop(inner);
            self.drained.notify_waiters();
        }
    }

    /// Whether every message was sent and only members that are away still lack any: what
    /// a member that answers could take, it has.
    pub(crate) fn only_away_lack(&self) -> bool {
        let inner = self.lock();
        inner.entries.iter().all(|e| e.only_away_lack(&inner.away))
    }

    /// What is left for each member that lacks something, and how many messages were never
    /// sent: what a node leaving now leaves behind.
    pub(crate) fn left_behind(&self) -> (BTreeMap<String, usize>, usize) {
        let inner = self.lock();
        let mut lacking: BTreeMap<String, usize> = BTreeMap::new();
        let mut unsent = 0;
        for e in &inner.entries {
            if e.required.is_none() {
                unsent += 1;
            }
            for m in e.missing() {
                *lacking.entry(m.clone()).or_default() += 1;
            }
        }
        (lacking, unsent)
    }

    /// Messages to send now: never sent, or unacknowledged for `resend_after`, doubling
    /// with each send up to [`MAX_RESEND_AFTER`], by a member that is not away (what only
    /// away members lack waits for them: re-sending it would load every other member with
    /// copies). The first send fixes who must acknowledge (`members`).
    pub(crate) fn due(
        &self,
        now: Instant,
        members: &BTreeSet<String>,
        resend_after: Duration,
    ) -> Vec<Arc<Outgoing>> {
        let mut inner = self.lock();
        let mut resent = 0;
        let Inner { entries, away, .. } = &mut *inner;
        let due: Vec<Arc<Outgoing>> = entries
            .iter_mut()
            .filter(|e| {
                let Some(at) = e.last_sent else {
                    return true;
                };
                let wait = (resend_after * 2u32.saturating_pow(e.sends.saturating_sub(1)))
                    .min(MAX_RESEND_AFTER.max(resend_after));
                now.saturating_duration_since(at) >= wait && !e.only_away_lack(away)
            })
            .map(|e| {
                if e.last_sent.is_some() {
                    resent += 1;
                }
                e.required.get_or_insert_with(|| members.clone());
                e.last_sent = Some(now);
                e.sends += 1;
                e.msg.clone()
            })
            .collect();
        inner.resent += resent;
        due
    }

    /// Makes every unacknowledged message due now (a member came back).
    pub(crate) fn resend_now(&self) {
        let mut inner = self.lock();
        for e in inner.entries.iter_mut() {
            e.last_sent = None;
            e.sends = 0;
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// `from` acknowledged `ids`; messages every required member acknowledged are done.
    pub(crate) fn ack<'a>(&self, from: &str, ids: impl IntoIterator<Item = &'a str>) {
        // Looked up for every message the outbox holds (SipHash was ~1 % of a receiver).
        let ids: HashSet<&str, ahash::RandomState> = ids.into_iter().collect();
        let mut inner = self.lock();
        for id in &ids {
            if let Some(gate) = inner.gates.remove(*id) {
                gate.notify_one();
            }
        }
        let mut first = 0;
        for e in inner.entries.iter_mut() {
            if ids.contains(e.msg.id.as_str()) {
                if e.acked.is_empty() {
                    first += 1;
                }
                e.acked.insert(from.to_string());
            }
        }
        inner.pending -= first;
        inner.count_reached(first as u64, Instant::now());
        self.settle(inner);
        if first > 0 {
            self.progress.notify_waiters();
        }
    }

    /// `name` is no longer a member (an administrator removed it): nothing waits for it.
    pub(crate) fn forget_member(&self, name: &str) {
        let mut inner = self.lock();
        for e in inner.entries.iter_mut() {
            if let Some(required) = e.required.as_mut() {
                required.remove(name);
            }
        }
        self.settle(inner);
    }

    /// Drops the messages every required member acknowledged.
    fn settle(&self, mut inner: std::sync::MutexGuard<'_, Inner>) {
        let mut freed = 0;
        let mut done_count = 0;
        let mut delivered_keys = Vec::new();
        let Inner {
            entries,
            gates,
            pending,
            ..
        } = &mut *inner;
        entries.retain(|e| {
            let done = e.required.as_ref().is_some_and(|r| r.is_subset(&e.acked));
            if done {
                if e.acked.is_empty() {
                    // Nobody was required (no member at its first send).
                    *pending -= 1;
                }
                done_count += 1;
                freed += held(&e.msg);
                if e.spooled {
                    delivered_keys.push(e.seq);
                }
                gates.remove(&e.msg.id);
            }
            !done
        });
        inner.bytes -= freed;
        inner.acknowledged += done_count;
        if freed > 0 || !delivered_keys.is_empty() {
            inner.last_progress = Some(Instant::now());
        }
        drop(inner);
        // Waiters check what they wait for: an empty outbox, or one holding only what away
        // members lack (an acknowledgement can make it so without freeing anything).
        self.drained.notify_waiters();
        if let (Some(removals), false) = (&self.removals, delivered_keys.is_empty()) {
            let _ = removals.send(delivered_keys);
        }
    }

    /// Whether delivery is stuck at `now`: a message was sent at least `min_sends` times and
    /// nothing was acknowledged for `quiet`. SLIM can wedge a session after an outage, with
    /// everyone still listed online; re-sending into it does not help.
    pub(crate) fn stalled(&self, now: Instant, min_sends: u32, quiet: Duration) -> bool {
        let mut inner = self.lock();
        if inner.entries.is_empty() {
            inner.last_progress = Some(now);
            return false;
        }
        let since = *inner.last_progress.get_or_insert(now);
        let resent = inner.entries.iter().any(|e| e.sends >= min_sends);
        resent && now.saturating_duration_since(since) >= quiet
    }

    /// Forgets past progress (a new session starts with a clean slate).
    pub(crate) fn reset_progress(&self, now: Instant) {
        self.lock().last_progress = Some(now);
    }

    /// `gate` opens with the first acknowledgement, from any member, of any of `ids` (the
    /// messages of one frame): that frame reached a member. The sender paces the frames in
    /// flight by it, so that under load what arrives meanwhile waits here and travels packed;
    /// the fastest member sets the pace, and one that hangs holds nothing up.
    pub(crate) fn gate(&self, ids: &[String], gate: &Arc<Notify>) {
        let mut inner = self.lock();
        for id in ids {
            inner.gates.insert(id.clone(), gate.clone());
        }
    }

    /// SLIM took one message of `bytes` holding `messages` of ours.
    pub(crate) fn count_published(&self, messages: usize, bytes: usize) {
        let mut inner = self.lock();
        inner.sent += messages as u64;
        inner.slim_messages += 1;
        inner.slim_bytes += bytes as u64;
        inner.last_published = Some(Instant::now());
    }

    pub(crate) fn stats(&self) -> OutboxStats {
        let inner = self.lock();
        let age = |e: &Entry| e.taken.elapsed().as_millis() as u64;
        OutboxStats {
            messages: inner.entries.len(),
            bytes: inner.bytes,
            resent: inner.resent,
            sent: inner.sent,
            slim_messages: inner.slim_messages,
            slim_bytes: inner.slim_bytes,
            acknowledged: inner.acknowledged,
            oldest_ms: inner.entries.front().map(age),
            oldest_unsent_ms: inner
                .entries
                .iter()
                .find(|e| e.last_sent.is_none())
                .map(age),
            last_published_ms: inner.last_published.map(|t| t.elapsed().as_millis() as u64),
            given_up: inner.given_up.clone(),
            max_messages: self.limits.max_messages,
            max_bytes: self.limits.max_bytes,
        }
    }

    /// What `member` still owes at `now`.
    pub(crate) fn backlog(&self, member: &str, now: Instant) -> MemberBacklog {
        let inner = self.lock();
        let owes = |e: &&Entry| {
            e.required.as_ref().is_some_and(|r| r.contains(member)) && !e.acked.contains(member)
        };
        let mut owed = inner.entries.iter().filter(owes);
        let first = owed.next();
        MemberBacklog {
            acked_up_to: match first {
                Some(e) => e.seq.checked_sub(1),
                None => inner.last_taken,
            },
            unacked: first.map_or(0, |_| 1 + owed.count()),
            oldest_unacked: first
                .and_then(|e| e.last_sent.map(|_| now.saturating_duration_since(e.taken))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_the_larger_of_the_message_and_byte_fill_at_most_one() {
        assert_eq!(fill(5, 10, 10, 100), 0.5);
        assert_eq!(fill(1, 10, 80, 100), 0.8);
        assert_eq!(fill(20, 10, 0, 100), 1.0);
        assert_eq!(fill(3, 0, 3, 0), 0.0, "no bound, nothing to fill");
    }

    fn msg(id: &str, size: usize) -> Outgoing {
        Outgoing {
            id: id.into(),
            payload: vec![0; size],
            payload_type: "t".into(),
            metadata: HashMap::new(),
            concatenable: true,
        }
    }

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// `names` away, the other members serving.
    fn away(names: &[&str]) -> MemberView {
        MemberView {
            away: members(names),
            serving: true,
            live: true,
            ..MemberView::default()
        }
    }

    /// An outbox with room for `max_payload` payload bytes in `max_messages` messages.
    fn outbox(max_payload: usize, max_messages: usize) -> Outbox {
        Outbox::new(OutboxLimits {
            max_bytes: max_payload + max_messages * ENTRY_OVERHEAD,
            max_messages,
            max_delay: None,
        })
    }

    #[test]
    fn each_message_counts_its_payload_and_its_bookkeeping() {
        let o = Outbox::new(OutboxLimits {
            max_bytes: 2 * (100 + ENTRY_OVERHEAD),
            max_messages: 10,
            max_delay: None,
        });
        o.push_all(vec![msg("a", 100), msg("b", 100)]).unwrap();
        assert_eq!(o.stats().bytes, 2 * (100 + ENTRY_OVERHEAD));
        assert!(
            matches!(
                o.push_all(vec![msg("c", 1)]),
                Err(PublishError::Full { .. })
            ),
            "the bookkeeping of one more message does not fit"
        );
    }

    #[test]
    fn a_message_stays_until_every_member_acknowledged_it() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 10)]).unwrap();
        let sent = o.due(
            Instant::now(),
            &members(&["p1", "p2"]),
            Duration::from_secs(5),
        );
        assert_eq!(sent[0].metadata[MESSAGE_ID_KEY], "a");
        o.ack("p1", ["a"]);
        assert_eq!(o.stats().messages, 1);
        o.ack("p2", ["a"]);
        let stats = o.stats();
        assert_eq!((stats.messages, stats.bytes, stats.resent), (0, 0, 0));
    }

    #[test]
    fn unacknowledged_messages_are_sent_again_with_doubling_delays() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 1)]).unwrap();
        let p = members(&["p"]);
        let d = Duration::from_secs(5);
        let t0 = Instant::now();
        assert_eq!(o.due(t0, &p, d).len(), 1);
        assert!(o.due(t0 + d / 2, &p, d).is_empty(), "not yet");
        assert_eq!(o.due(t0 + d, &p, d).len(), 1, "again after d");
        assert!(o.due(t0 + d * 2, &p, d).is_empty(), "the next one waits 2d");
        assert_eq!(o.due(t0 + d * 3, &p, d).len(), 1);
        assert_eq!(o.stats().resent, 2);
    }

    #[test]
    fn a_returning_member_makes_every_unacknowledged_message_due_at_once() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 1), msg("b", 1)]).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            o.due(t0, &members(&["p"]), Duration::from_secs(60)).len(),
            2
        );
        o.resend_now();
        assert_eq!(
            o.due(t0, &members(&["p"]), Duration::from_secs(60)).len(),
            2
        );
    }

    #[test]
    fn delivery_is_stalled_when_resends_get_no_acknowledgement() {
        let o = outbox(1000, 10);
        let t0 = Instant::now();
        assert!(!o.stalled(t0, 2, Duration::from_secs(30)), "empty");
        o.push_all(vec![msg("a", 1)]).unwrap();
        let p = members(&["p"]);
        o.due(t0, &p, Duration::from_secs(1));
        o.due(t0 + Duration::from_secs(1), &p, Duration::from_secs(1));
        assert!(!o.stalled(t0 + Duration::from_secs(10), 2, Duration::from_secs(30)));
        assert!(o.stalled(t0 + Duration::from_secs(31), 2, Duration::from_secs(30)));
        o.ack("p", ["a"]);
        assert!(!o.stalled(t0 + Duration::from_secs(60), 2, Duration::from_secs(30)));
    }

    #[test]
    fn members_that_join_later_are_not_waited_for() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 1)]).unwrap();
        let t0 = Instant::now();
        o.due(t0, &members(&["p1"]), Duration::from_secs(5));
        o.due(
            t0 + Duration::from_secs(5),
            &members(&["p1", "p2"]),
            Duration::from_secs(5),
        );
        o.ack("p1", ["a"]);
        assert_eq!(o.stats().messages, 0);
    }

    #[test]
    fn a_removed_member_is_no_longer_waited_for() {
        let o = outbox(1 << 20, 100);
        o.push_all(vec![msg("1", 10)]).unwrap();
        o.due(
            Instant::now(),
            &members(&["a/b/c", "a/b/gone"]),
            Duration::from_secs(5),
        );
        o.ack("a/b/c", ["1"]);
        assert_eq!(o.stats().messages, 1);
        o.forget_member("a/b/gone");
        assert_eq!(o.stats().messages, 0);
    }

    #[test]
    fn a_members_backlog_counts_what_it_has_not_acknowledged() {
        let o = outbox(1000, 10);
        let t0 = Instant::now();
        assert_eq!(o.backlog("p", t0), MemberBacklog::default());
        o.push_all(vec![msg("a", 1), msg("b", 1), msg("c", 1)])
            .unwrap();
        o.due(t0, &members(&["p", "q"]), Duration::from_secs(5));
        o.ack("p", ["a"]);
        let p = o.backlog("p", t0 + Duration::from_secs(1));
        assert_eq!((p.acked_up_to, p.unacked), (Some(0), 2));
        assert!(p.oldest_unacked.is_some());
        o.ack("p", ["b", "c"]);
        let p = o.backlog("p", t0);
        assert_eq!(
            (p.acked_up_to, p.unacked, p.oldest_unacked),
            (Some(2), 0, None)
        );
        assert_eq!(o.backlog("q", t0).unacked, 3);
    }

    #[test]
    fn what_only_away_members_lack_is_not_sent_again_until_they_are_back() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 1), msg("b", 1)]).unwrap();
        let p = members(&["live", "away"]);
        let d = Duration::from_secs(5);
        let t0 = Instant::now();
        assert_eq!(o.due(t0, &p, d).len(), 2);
        o.ack("live", ["a", "b"]);
        o.set_members(away(&["away"]));
        let again = o.due(t0 + d, &p, d);
        assert!(again.is_empty(), "only the away member lacks a and b");
        o.set_members(MemberView {
            serving: true,
            live: true,
            ..MemberView::default()
        });
        assert_eq!(o.due(t0 + d, &p, d).len(), 2, "it is back: both are due");
    }

    #[test]
    fn a_message_a_live_member_lacks_is_sent_again_whoever_else_is_away() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 1)]).unwrap();
        let p = members(&["live", "away"]);
        let d = Duration::from_secs(5);
        let t0 = Instant::now();
        o.due(t0, &p, d);
        o.set_members(away(&["away"]));
        assert_eq!(o.due(t0 + d, &p, d).len(), 1);
    }

    #[test]
    fn a_full_outbox_gives_up_the_oldest_messages_only_away_members_lack() {
        let o = outbox(100, 3);
        o.push_all(vec![msg("a", 10), msg("b", 10), msg("c", 10)])
            .unwrap();
        o.due(
            Instant::now(),
            &members(&["live", "away"]),
            Duration::from_secs(5),
        );
        o.ack("live", ["a", "b"]);
        assert!(
            matches!(
                o.push_all(vec![msg("d", 10)]),
                Err(PublishError::Full { .. })
            ),
            "nobody is away yet: full is full"
        );
        o.set_members(away(&["away"]));
        o.push_all(vec![msg("d", 10)]).unwrap();
        let stats = o.stats();
        assert_eq!(stats.messages, 3, "one given up to make room");
        assert_eq!(stats.given_up, BTreeMap::from([("away".to_string(), 1)]));
        assert_eq!(o.backlog("away", Instant::now()).unacked, 2, "b and c");
        o.push_all(vec![msg("e", 10)]).unwrap();
        assert_eq!(o.stats().given_up["away"], 2, "b went too");
        assert!(
            matches!(
                o.push_all(vec![msg("f", 10)]),
                Err(PublishError::Full { .. })
            ),
            "c is owed to the live member and d, e were never sent: kept, and new data refused"
        );
    }

    #[test]
    fn with_no_member_serving_a_full_outbox_refuses_instead_of_giving_up() {
        let o = outbox(100, 2);
        o.push_all(vec![msg("a", 10), msg("b", 10)]).unwrap();
        o.due(Instant::now(), &members(&["only"]), Duration::from_secs(5));
        o.set_members(MemberView {
            away: members(&["only"]),
            ..MemberView::default()
        });
        assert!(
            matches!(
                o.push_all(vec![msg("c", 10)]),
                Err(PublishError::Full { .. })
            ),
            "nobody takes data: 503 is the backpressure, not a silent loss"
        );
        assert!(o.stats().given_up.is_empty());
    }

    #[test]
    fn a_full_outbox_gives_up_what_only_a_slow_member_lacks_while_another_serves() {
        let o = outbox(100, 2);
        o.push_all(vec![msg("a", 10), msg("b", 10)]).unwrap();
        o.due(
            Instant::now(),
            &members(&["fast", "stuck"]),
            Duration::from_secs(5),
        );
        o.ack("fast", ["a", "b"]);
        o.set_members(MemberView {
            slow: members(&["stuck"]),
            serving: true,
            live: true,
            ..MemberView::default()
        });
        o.push_all(vec![msg("c", 10)]).unwrap();
        assert_eq!(o.stats().given_up["stuck"], 1);
        assert!(
            !o.due(
                Instant::now() + Duration::from_secs(5),
                &members(&["fast", "stuck"]),
                Duration::from_secs(5)
            )
            .is_empty(),
            "a slow member still gets what it lacks sent again: it answers"
        );
    }

    #[test]
    fn a_drain_is_done_once_only_away_members_lack_anything() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 1), msg("b", 1)]).unwrap();
        assert!(!o.only_away_lack(), "never sent");
        o.due(
            Instant::now(),
            &members(&["live", "away"]),
            Duration::from_secs(5),
        );
        o.set_members(away(&["away"]));
        assert!(!o.only_away_lack());
        o.ack("live", ["a", "b"]);
        assert!(o.only_away_lack());
        assert_eq!(
            o.left_behind(),
            (BTreeMap::from([("away".to_string(), 2)]), 0)
        );
    }

    #[tokio::test]
    async fn a_frames_gate_opens_with_the_first_acknowledgement_from_any_member() {
        let o = outbox(1000, 10);
        o.push_all(vec![msg("a", 1), msg("b", 1)]).unwrap();
        o.due(
            Instant::now(),
            &members(&["fast", "hung"]),
            Duration::from_secs(5),
        );
        let gate = Arc::new(Notify::new());
        o.gate(&["a".to_string(), "b".to_string()], &gate);
        let wait = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(wait, gate.notified()).await.is_err(),
            "closed before any acknowledgement"
        );
        o.ack("fast", ["b"]);
        assert!(
            tokio::time::timeout(wait, gate.notified()).await.is_ok(),
            "the fast member opened it"
        );
        assert_eq!(o.stats().messages, 2, "the hung member still owes both");
    }

    #[test]
    fn a_full_outbox_refuses_all_of_a_batch() {
        let o = outbox(100, 3);
        o.push_all(vec![msg("a", 60)]).unwrap();
        assert!(matches!(
            o.push_all(vec![msg("b", 30), msg("c", 30)]),
            Err(PublishError::Full { .. })
        ));
        assert!(
            o.push_all(vec![msg("b", 1), msg("c", 1), msg("d", 1)])
                .is_err(),
            "count limit"
        );
        assert_eq!(
            o.stats().messages,
            1,
            "nothing of a refused batch was taken"
        );
    }

    /// An outbox bounded to `max_delay` of work, its members serving.
    fn paced_outbox(max_delay: Duration) -> Arc<Outbox> {
        let o = Outbox::new(OutboxLimits {
            max_bytes: 1 << 20,
            max_messages: 1000,
            max_delay: Some(max_delay),
        });
        o.set_members(away(&[]));
        Arc::new(o)
    }

    /// Takes and sends messages `prefix-0`… (`n` of them) to the member `p`; their ids.
    fn sent(o: &Outbox, prefix: &str, n: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        o.push_all(ids.iter().map(|id| msg(id, 1)).collect())
            .unwrap();
        o.due(Instant::now(), &members(&["p"]), Duration::from_secs(60));
        ids
    }

    /// Lets `p` take 10 messages over 110 ms: a rate of about 90 a second.
    async fn measure_rate(o: &Outbox) {
        let ids = sent(o, "w", 10);
        o.ack("p", ids[..1].iter().map(String::as_str));
        tokio::time::sleep(Duration::from_millis(110)).await;
        o.ack("p", ids[1..].iter().map(String::as_str));
    }

    /// An outbox bounded to 100 ms of work whose member `p` takes about 90 messages a second,
    /// with 70 more on their way to it (some 0.8 s of work); their ids.
    async fn outbox_behind() -> (Arc<Outbox>, Vec<String>) {
        let o = paced_outbox(Duration::from_millis(100));
        measure_rate(&o).await;
        let on_its_way = sent(&o, "b", 70);
        (o, on_its_way)
    }

    #[tokio::test]
    async fn a_new_message_waits_while_what_is_on_its_way_would_take_longer_than_max_delay() {
        let (o, on_its_way) = outbox_behind().await;
        assert!(o.behind().is_some_and(|d| d > Duration::from_millis(500)));
        let waiting = tokio::spawn({
            let o = o.clone();
            async move { o.paced().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "it waits while the outbox is behind"
        );
        o.ack("p", on_its_way[..10].iter().map(String::as_str));
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_message_that_waits_too_long_is_refused_as_behind() {
        let o = paced_outbox(Duration::from_millis(100));
        measure_rate(&o).await;
        let on_its_way = sent(&o, "b", 200);
        // Members keep taking, one message every 100 ms: never enough to catch up.
        let trickle = tokio::spawn({
            let o = o.clone();
            async move {
                for id in on_its_way {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    o.ack("p", [id.as_str()]);
                }
            }
        });
        let refused = o.paced().await;
        trickle.abort();
        assert!(
            matches!(refused, Err(PublishError::Behind { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn when_nothing_reaches_a_member_for_a_while_the_byte_bound_takes_over() {
        let (o, _) = outbox_behind().await;
        assert!(o.behind().is_some());
        // The member is gone (not yet judged away): after PACING_STALE the message is taken.
        o.paced().await.unwrap();
        assert_eq!(o.behind(), None);
    }

    #[tokio::test]
    async fn without_a_member_taking_data_the_time_bound_does_not_hold_messages_back() {
        let (o, _) = outbox_behind().await;
        assert!(o.behind().is_some());
        o.set_members(MemberView {
            away: members(&["p"]),
            ..MemberView::default()
        });
        assert_eq!(o.behind(), None);
        o.paced().await.unwrap();
    }

    #[tokio::test]
    async fn a_light_load_is_never_held_back() {
        let o = paced_outbox(Duration::from_millis(1));
        measure_rate(&o).await;
        sent(&o, "b", PACING_FLOOR - 1);
        assert_eq!(o.behind(), None, "below the floor");
    }
}
