//! A sink's queue: what the pipeline handed to one sink and the sink has not finished yet.
//! In memory (bounded) or on disk (bounded by bytes, survives kill -9), with what to do when
//! full: `block` (take no more: the node stops acknowledging) or `drop_oldest` (make room by
//! dropping what waited longest, counted).
//!
//! Items are handed to the sink in order and leave the queue when the sink says they are done
//! (delivered, or dropped for good); a disk queue hands everything still on disk to the sink
//! again after a restart.
//!
//! A disk queue that cannot be written (a full disk) takes nothing: [`Queue::stage`] fails,
//! the pipeline takes the batch for no sink and acknowledges none of it, and its publishers
//! send it again. A removal that cannot be written is written with the next one.
//!
//! A disk queue also keeps its most recent messages in memory (up to [`KEEP_BYTES`]), so a
//! sink that keeps up never reads back what was just written.

mod legacy;
mod log;
mod record;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::pipeline::ack::Ticket;
use crate::pipeline::delivered::Delivered;

use log::{Location, Log};

/// Payload bytes of a disk queue's messages also kept in memory.
const KEEP_BYTES: usize = 8 << 20;

/// Where a queue keeps what waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// In memory: lost with the process (nothing in it was acknowledged for a durable sink).
    Memory,
    /// On disk: survives a crash; taking a message means it is written and synced.
    Disk,
}

/// What a full queue does with one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Take no more: the node stops acknowledging, publishers keep the messages.
    Block,
    /// Drop what waited longest (counted), take the new one.
    DropOldest,
}

/// A queue's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Memory or disk.
    pub kind: QueueKind,
    /// Payload bytes held at most.
    pub max_bytes: usize,
    /// Messages held at most.
    pub max_messages: usize,
    /// What to do when full.
    pub when_full: WhenFull,
}

/// A queue that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("sink queue {path}: {message}")]
pub struct QueueError {
    path: String,
    message: String,
}

/// One message in a queue, as the sink gets it.
#[derive(Clone)]
pub struct Item {
    /// Its place in the queue.
    pub seq: u64,
    /// The message.
    pub delivered: Arc<Delivered>,
    /// For a durable sink's memory queue: taken once the sink is done with it.
    ticket: Option<Arc<Ticket>>,
}

/// What waits: the item itself in memory (for a disk queue while it fits in
/// [`KEEP_BYTES`]), and for a disk queue where it is on disk.
struct Entry {
    seq: u64,
    bytes: usize,
    received_at: OffsetDateTime,
    /// Its signal and telemetry items (unknown for a disk record of an older version).
    items: Option<(otlp::Signal, u64)>,
    item: Option<Item>,
    /// Disk queue: where its record is.
    at: Option<Location>,
    /// The sink is done with it (it leaves once everything before it is done too).
    done: bool,
}

/// What a full `drop_oldest` queue dropped to make room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Messages dropped.
    pub messages: u64,
    /// Their telemetry items, per signal.
    pub items: crate::pipeline::delivered::PerSignal,
}

/// Counts for `/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Messages waiting (or being delivered).
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// Milliseconds the oldest has waited since it was received.
    pub oldest_ms: Option<u64>,
}

struct State {
    entries: VecDeque<Entry>,
    /// How many entries at the front were handed to the sink: items are handed in order, so
    /// the next one to hand is at this index (no scan from the front, however long the
    /// queue).
    handed: usize,
    bytes: usize,
    next_seq: u64,
    /// Disk queue: payload bytes of the items it also keeps in memory.
    kept: usize,
}

impl State {
    /// Takes `entry` out of the counts as it leaves.
    fn leave(&mut self, entry: &Entry) {
        self.bytes -= entry.bytes;
        if entry.at.is_some() && entry.item.is_some() {
            self.kept -= entry.bytes;
        }
    }
}

/// A sink's queue.
pub struct Queue {
    settings: QueueSettings,
    state: Mutex<State>,
    disk: Option<Log>,
    /// Wakes the sink when something arrives.
    pub wake: Notify,
    /// Cancelled when the node stops.
    stop: tokio_util::sync::CancellationToken,
}

/// Messages written to a disk queue and not yet handed to its sink: [`Queue::push_staged`]
/// hands them on, [`Queue::unstage`] takes them back.
#[derive(Debug)]
pub struct Staged {
    first: u64,
    n: usize,
    /// Disk queue: where each is.
    at: Vec<Location>,
}

impl Queue {
    /// A queue with `settings`; a disk queue lives in `dir/queue` and starts with what an
    /// earlier run left there (and what an earlier version left in `dir/queue.redb`).
    pub fn open(settings: QueueSettings, dir: &Path) -> Result<Queue, QueueError> {
        let mut state = State {
            entries: VecDeque::new(),
            handed: 0,
            bytes: 0,
            next_seq: 0,
            kept: 0,
        };
        let disk = match settings.kind {
            QueueKind::Memory => None,
            QueueKind::Disk => {
                let (log, mut found) = Log::open(&dir.join("queue"))?;
                legacy::migrate(&dir.join("queue.redb"), &log, &mut found)?;
                let mut unreadable = Vec::new();
                for found in found {
                    let header = match record::split(&found.head) {
                        Ok((header, _)) => header,
                        Err(err) => {
                            // Its checksum matched, so this program wrote it wrongly: say so,
                            // and remove it (nothing else would).
                            tracing::error!(seq = found.seq, %err, "a message in the sink queue cannot be read");
                            unreadable.push(found.seq);
                            continue;
                        }
                    };
                    state.bytes += found.payload;
                    state.entries.push_back(Entry {
                        seq: found.seq,
                        bytes: found.payload,
                        received_at: record::received_at(&header),
                        items: header
                            .signal
                            .parse::<otlp::Signal>()
                            .ok()
                            .zip(header.items.map(|n| n as u64)),
                        item: None,
                        at: Some(found.at),
                        done: false,
                    });
                }
                if let Err(err) = log.remove(&unreadable) {
                    tracing::warn!(%err, "could not remove the unreadable messages of the sink queue yet");
                }
                state.next_seq = log.next();
                Some(log)
            }
        };
        Ok(Queue {
            settings,
            state: Mutex::new(state),
            disk,
            wake: Notify::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// The queue's settings.
    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Whether the queue keeps what it holds on disk.
    pub fn is_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Whether `messages` more messages of `bytes` in all fit without dropping anything.
    pub fn has_room(&self, messages: usize, bytes: usize) -> bool {
        let state = crate::lock(&self.state);
        state.entries.len() + messages <= self.settings.max_messages
            && state.bytes + bytes <= self.settings.max_bytes
    }

    /// Takes `items` (with the ticket of each, for a durable sink's memory queue); returns
    /// what waited and was dropped to make room (`drop_oldest`). A disk queue writes and syncs
    /// them in one transaction before this returns.
    pub fn push(
        &self,
        items: Vec<(Arc<Delivered>, Option<Arc<Ticket>>)>,
    ) -> Result<Evicted, QueueError> {
        let delivered: Vec<&Delivered> = items.iter().map(|(d, _)| d.as_ref()).collect();
        let staged = self.stage(&delivered)?;
        Ok(self.push_staged(staged, items))
    }

    /// Writes `items` to a disk queue (in one transaction, synced) without handing them to
    /// the sink yet; nothing for a memory queue. When this fails, nothing of them is kept.
    pub fn stage(&self, items: &[&Delivered]) -> Result<Staged, QueueError> {
        // Only the pipeline pushes: numbers are reserved here and used by `push_staged`.
        let first = {
            let mut state = crate::lock(&self.state);
            let first = state.next_seq;
            state.next_seq += items.len() as u64;
            first
        };
        let at = match (&self.disk, items.is_empty()) {
            (Some(disk), false) => disk.append(first, items.len(), |i, buf| {
                record::encode_head(items[i], buf).map_err(|e| e.to_string())?;
                Ok(items[i].payload.bytes())
            })?,
            _ => Vec::new(),
        };
        Ok(Staged {
            first,
            n: items.len(),
            at,
        })
    }

    /// Takes back what [`Queue::stage`] wrote (another queue could not take the batch, so no
    /// sink takes it). The sink never saw it.
    pub fn unstage(&self, staged: Staged) -> Result<(), QueueError> {
        match &self.disk {
            Some(disk) => disk.remove_range(staged.first, staged.first + staged.n as u64),
            None => Ok(()),
        }
    }

    /// Hands the `items` of `staged` (with their tickets) to the sink; returns what waited
    /// and was dropped to make room (`drop_oldest`).
    pub fn push_staged(
        &self,
        staged: Staged,
        items: Vec<(Arc<Delivered>, Option<Arc<Ticket>>)>,
    ) -> Evicted {
        let mut evicted = Evicted::default();
        if items.is_empty() {
            return evicted;
        }
        let first = staged.first;
        let mut dropped = Vec::new();
        {
            let mut state = crate::lock(&self.state);
            for (i, (delivered, ticket)) in items.into_iter().enumerate() {
                let seq = first + i as u64;
                let bytes = delivered.payload.bytes().len();
                while self.settings.when_full == WhenFull::DropOldest
                    && (state.entries.len() + 1 > self.settings.max_messages
                        || state.bytes + bytes > self.settings.max_bytes)
                {
                    let at = state.handed;
                    if at >= state.entries.len() {
                        break;
                    }
                    if let Some(old) = state.entries.remove(at) {
                        state.leave(&old);
                        // One the sink finished out of order (before a rewind) was delivered,
                        // not dropped, and its ticket taken then.
                        if !old.done {
                            if let Some(ticket) = old.item.and_then(|i| i.ticket) {
                                ticket.taken();
                            }
                            if let Some((signal, n)) = old.items {
                                evicted.items[crate::pipeline::delivered::slot(signal)] += n;
                            }
                            evicted.messages += 1;
                        }
                        dropped.push(old.seq);
                    }
                }
                state.bytes += bytes;
                let at = staged.at.get(i).copied();
                // A disk queue keeps it in memory too while that fits (it holds no ticket).
                let keep = at.is_none() || state.kept + bytes <= KEEP_BYTES;
                if at.is_some() && keep {
                    state.kept += bytes;
                }
                state.entries.push_back(Entry {
                    seq,
                    bytes,
                    received_at: delivered.received_at,
                    items: Some((delivered.payload.signal(), delivered.payload.items() as u64)),
                    item: keep.then(|| Item {
                        seq,
                        delivered,
                        ticket,
                    }),
                    at,
                    done: false,
                });
            }
        }
        if let Some(disk) = &self.disk {
            // Kept for the next removal if this one fails: dropped all the same.
            if let Err(err) = disk.remove(&dropped) {
                tracing::warn!(%err, "the sink queue could not remove what it dropped yet");
            }
        }
        self.wake.notify_one();
        evicted
    }

    /// The next item not yet handed to the sink, if there is one now. A message of a disk
    /// queue that cannot be read back (damage) is skipped, logged, and counted in `unreadable`.
    pub fn take(&self, unreadable: &mut u64) -> Result<Option<Item>, QueueError> {
        loop {
            let mut state = crate::lock(&self.state);
            let State {
                entries, handed, ..
            } = &mut *state;
            let Some(entry) = entries.get_mut(*handed) else {
                return Ok(None);
            };
            if entry.done {
                // Done out of order before the sink gave the rest back: not again.
                *handed += 1;
                continue;
            }
            let found = match (&entry.item, &self.disk, entry.at) {
                (Some(item), _, _) => Some(item.clone()),
                (None, Some(disk), Some(at)) => disk.read(entry.seq, at)?.and_then(|record| {
                    record::decode(&record)
                        .inspect_err(|err| {
                            tracing::error!(seq = entry.seq, %err, "a message in the sink queue cannot be read");
                        })
                        .ok()
                        .map(|delivered| Item {
                            seq: entry.seq,
                            delivered: Arc::new(delivered),
                            ticket: None,
                        })
                }),
                (None, _, _) => None,
            };
            // Handed only once read: an item the disk could not give now is tried again.
            *handed += 1;
            if let Some(item) = found {
                return Ok(Some(item));
            }
            *unreadable += 1;
            entry.done = true;
            drop(state);
            self.done(&[])?;
        }
    }

    /// The sink is done with `items` (delivered, or dropped for good): they leave the queue.
    pub fn done(&self, items: &[Item]) -> Result<(), QueueError> {
        let mut gone = Vec::new();
        {
            let mut state = crate::lock(&self.state);
            for item in items {
                // Entries are in sequence order.
                if let Ok(at) = state.entries.binary_search_by_key(&item.seq, |e| e.seq) {
                    state.entries[at].done = true;
                }
            }
            while state.entries.front().is_some_and(|e| e.done) {
                if let Some(e) = state.entries.pop_front() {
                    state.leave(&e);
                    state.handed = state.handed.saturating_sub(1);
                    gone.push(e.seq);
                }
            }
        }
        for item in items {
            if let Some(ticket) = &item.ticket {
                ticket.taken();
            }
        }
        match &self.disk {
            Some(disk) => disk.remove(&gone),
            None => Ok(()),
        }
    }

    /// Hands every item the sink has not finished to it again (it gave them back).
    pub fn rewind(&self) {
        // Everything not done is handed again, in order.
        crate::lock(&self.state).handed = 0;
    }

    /// The node stops: the sink finishes what it can.
    pub fn stop(&self) {
        self.stop.cancel();
        self.wake.notify_one();
    }

    /// Whether the node is stopping.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves once the node is stopping.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Counts for `/health`.
    pub fn stats(&self) -> QueueStats {
        let state = crate::lock(&self.state);
        let now = OffsetDateTime::now_utc();
        QueueStats {
            messages: state.entries.len(),
            bytes: state.bytes,
            oldest_ms: state
                .entries
                .front()
                .map(|e| (now - e.received_at).whole_milliseconds().max(0) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ack::watched::{Fate, Watched};

    fn delivered(i: usize) -> Arc<Delivered> {
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{i}"}}}}]}}]}}]}}"#
        );
        let request = otlp::json::from_json(otlp::Signal::Logs, body.as_bytes()).unwrap();
        Arc::new(Delivered {
            received_at: OffsetDateTime::now_utc(),
            from: "a/b/c".into(),
            verified_sender: Some("a/b/c".into()),
            message_id: Some(format!("id-{i}")),
            payload: otlp::Encoded::check(otlp::Signal::Logs, request.to_protobuf()).unwrap(),
        })
    }

    fn settings(kind: QueueKind, max_messages: usize, when_full: WhenFull) -> QueueSettings {
        QueueSettings {
            kind,
            max_bytes: 1 << 20,
            max_messages,
            when_full,
        }
    }

    fn ids(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| i.delivered.message_id.clone().unwrap_or_default())
            .collect()
    }

    fn take_all(q: &Queue) -> Vec<Item> {
        let mut unreadable = 0;
        let items = std::iter::from_fn(|| q.take(&mut unreadable).unwrap()).collect();
        assert_eq!(unreadable, 0);
        items
    }

    #[test]
    fn items_come_out_in_order_and_leave_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(settings(QueueKind::Memory, 10, WhenFull::Block), dir.path()).unwrap();
        q.push((0..3).map(|i| (delivered(i), None)).collect())
            .unwrap();
        let items = take_all(&q);
        assert_eq!(ids(&items), ["id-0", "id-1", "id-2"]);
        assert_eq!(q.stats().messages, 3, "handed out, not done yet");
        q.done(&items[1..]).unwrap();
        assert_eq!(q.stats().messages, 3, "the first still waits");
        q.done(&items[..1]).unwrap();
        assert_eq!(q.stats().messages, 0);
    }

    #[test]
    fn a_full_blocking_queue_says_so_and_drops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(settings(QueueKind::Memory, 2, WhenFull::Block), dir.path()).unwrap();
        q.push(vec![(delivered(0), None), (delivered(1), None)])
            .unwrap();
        assert!(!q.has_room(1, 10));
        assert_eq!(q.stats().messages, 2);
    }

    #[test]
    fn drop_oldest_makes_room_from_what_waited_longest() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(
            settings(QueueKind::Memory, 2, WhenFull::DropOldest),
            dir.path(),
        )
        .unwrap();
        let evicted = q
            .push((0..4).map(|i| (delivered(i), None)).collect())
            .unwrap();
        assert_eq!(
            evicted,
            Evicted {
                messages: 2,
                items: [0, 0, 2]
            },
            "two messages of one log record each"
        );
        assert_eq!(ids(&take_all(&q)), ["id-2", "id-3"]);
    }

    #[test]
    fn a_disk_queue_drops_the_oldest_with_its_items_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let disk = || settings(QueueKind::Disk, 2, WhenFull::DropOldest);
        Queue::open(disk(), dir.path())
            .unwrap()
            .push((0..2).map(|i| (delivered(i), None)).collect())
            .unwrap();
        let q = Queue::open(disk(), dir.path()).unwrap();
        let evicted = q.push(vec![(delivered(2), None)]).unwrap();
        assert_eq!(evicted.items, [0, 0, 1], "known from the record's header");
    }

    #[test]
    fn a_disk_queue_hands_everything_not_done_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q =
                Queue::open(settings(QueueKind::Disk, 10, WhenFull::Block), dir.path()).unwrap();
            q.push((0..3).map(|i| (delivered(i), None)).collect())
                .unwrap();
            let items = take_all(&q);
            q.done(&items[..1]).unwrap();
        }
        let q = Queue::open(settings(QueueKind::Disk, 10, WhenFull::Block), dir.path()).unwrap();
        assert_eq!(q.stats().messages, 2);
        let items = take_all(&q);
        assert_eq!(ids(&items), ["id-1", "id-2"]);
        assert_eq!(items[0].delivered.verified_sender.as_deref(), Some("a/b/c"));
        q.push(vec![(delivered(3), None)]).unwrap();
        assert_eq!(
            ids(&take_all(&q)),
            ["id-3"],
            "numbering goes on after the restart"
        );
    }

    #[test]
    fn a_durable_sinks_ticket_is_taken_when_the_sink_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(settings(QueueKind::Memory, 10, WhenFull::Block), dir.path()).unwrap();
        let (ack, fate) = Watched::new();
        q.push(vec![(delivered(0), Some(Ticket::new(1, Some(ack))))])
            .unwrap();
        let items = take_all(&q);
        assert_eq!(*fate.lock().unwrap(), Fate::Pending, "handed, not done");
        q.done(&items).unwrap();
        assert_eq!(*fate.lock().unwrap(), Fate::Done);
    }

    #[test]
    fn items_given_back_are_handed_again() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(settings(QueueKind::Disk, 10, WhenFull::Block), dir.path()).unwrap();
        q.push((0..2).map(|i| (delivered(i), None)).collect())
            .unwrap();
        assert_eq!(take_all(&q).len(), 2);
        q.rewind();
        assert_eq!(ids(&take_all(&q)), ["id-0", "id-1"]);
    }

    fn big(i: usize) -> Arc<Delivered> {
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{i} {}"}}}}]}}]}}]}}"#,
            "x".repeat(20_000)
        );
        let request = otlp::json::from_json(otlp::Signal::Logs, body.as_bytes()).unwrap();
        Arc::new(Delivered {
            received_at: OffsetDateTime::now_utc(),
            from: "a/b/c".into(),
            verified_sender: None,
            message_id: Some(format!("id-{i}")),
            payload: otlp::Encoded::check(otlp::Signal::Logs, request.to_protobuf()).unwrap(),
        })
    }

    #[test]
    fn a_disk_queue_holding_more_than_it_keeps_in_memory_hands_the_rest_from_disk_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = QueueSettings {
            max_bytes: 1 << 30,
            ..settings(QueueKind::Disk, 1 << 20, WhenFull::Block)
        };
        let q = Queue::open(s, dir.path()).unwrap();
        let n = KEEP_BYTES / 20_000 + 50;
        for i in 0..n {
            q.push(vec![(big(i), None)]).unwrap();
        }
        assert!(crate::lock(&q.state)
            .entries
            .iter()
            .any(|e| e.item.is_none()));
        let expected: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
        let items = take_all(&q);
        assert_eq!(ids(&items), expected);
        q.done(&items).unwrap();
        assert_eq!(crate::lock(&q.state).kept, 0, "nothing kept once done");
    }

    #[test]
    fn a_disk_queue_that_cannot_be_written_keeps_nothing_and_takes_again_once_there_is_room() {
        let Some(disk) = crate::testdisk::SmallDisk::mount(1024) else {
            return;
        };
        let s = QueueSettings {
            max_bytes: 1 << 30,
            ..settings(QueueKind::Disk, 1 << 20, WhenFull::Block)
        };
        let q = Queue::open(s.clone(), disk.path()).unwrap();
        let mut n = 0;
        loop {
            let batch = [big(n), big(n + 1)];
            let refs: Vec<&Delivered> = batch.iter().map(|d| d.as_ref()).collect();
            match q.stage(&refs) {
                Ok(staged) => {
                    q.push_staged(staged, batch.into_iter().map(|d| (d, None)).collect());
                    n += 2;
                }
                Err(_) => break,
            }
            assert!(n < 1000, "the disk never filled");
        }
        assert_eq!(
            q.stats().messages,
            n,
            "the batch that failed is not in the queue"
        );
        disk.resize(8192);
        q.push(vec![(big(n), None), (big(n + 1), None)]).unwrap();
        let expected: Vec<String> = (0..n + 2).map(|i| format!("id-{i}")).collect();
        assert_eq!(ids(&take_all(&q)), expected, "each once, in order");
        drop(q);
        let again = Queue::open(s, disk.path()).unwrap();
        assert_eq!(ids(&take_all(&again)), expected, "and so on disk");
    }
}
