//! The consumer: messages from the channel, checked once, handed to every sink (and decoded
//! once, when a sink first asks). Each sink has its own thread and bounded buffer: a slow sink
//! never holds up the channel or the other sinks. What overflows the buffer of a file-like sink
//! waits in an overflow file and is written later; for other sinks it is counted and logged.

use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use slim_roles::Incoming;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::overflow::Overflow;
use crate::sink::{Delivered, Sink};
use otlp::wire;

/// Messages buffered per sink.
pub const SINK_BUFFER: usize = 10_000;

/// One sink on its own thread.
struct Worker {
    tx: SyncSender<Arc<Delivered>>,
    /// File-like sinks keep what overflows their buffer on disk and write it later.
    overflow: Option<Arc<Mutex<Overflow>>>,
    dropped: u64,
    overflowed: u64,
    thread: JoinHandle<()>,
}

/// How long the sink's thread waits for new messages before it looks at its overflow (and
/// tells the sink it is idle).
const OVERFLOW_POLL: Duration = Duration::from_millis(200);

fn worker(index: usize, mut sink: Box<dyn Sink>, capacity: usize) -> std::io::Result<Worker> {
    let (tx, rx) = sync_channel::<Arc<Delivered>>(capacity);
    let overflow = match sink.overflow_path() {
        Some(path) => {
            let overflow = Overflow::open(path)?;
            if overflow.has_pending() {
                info!(sink = index, messages = overflow.pending(), file = %overflow.path().display(),
                    "writing what a previous run left in the overflow file first");
            }
            Some(Arc::new(Mutex::new(overflow)))
        }
        None => None,
    };
    let from_disk = overflow.clone();
    let thread = std::thread::Builder::new()
        .name(format!("slim-node-sink-{index}"))
        .spawn(move || {
            let write = |sink: &mut Box<dyn Sink>, d: &Delivered| {
                if let Err(err) = sink.write(d) {
                    error!(sink = index, %err, "a sink failed to write a message");
                }
            };
            loop {
                // The buffer holds what came before anything in the overflow: it goes first.
                let stopped = match rx.try_recv() {
                    Ok(d) => {
                        write(&mut sink, &d);
                        continue;
                    }
                    Err(TryRecvError::Empty) => false,
                    Err(TryRecvError::Disconnected) => true,
                };
                if let Some(d) = from_disk.as_ref().and_then(|o| pop(index, o)) {
                    write(&mut sink, &d);
                    continue;
                }
                if stopped {
                    if let Err(err) = sink.finish() {
                        error!(sink = index, %err, "a sink failed to finish");
                    }
                    return;
                }
                match rx.recv_timeout(OVERFLOW_POLL) {
                    Ok(d) => write(&mut sink, &d),
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(err) = sink.idle() {
                            error!(sink = index, %err, "a sink failed while idle");
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => {}
                }
            }
        })?;
    Ok(Worker {
        tx,
        overflow,
        dropped: 0,
        overflowed: 0,
        thread,
    })
}

fn pop(index: usize, overflow: &Mutex<Overflow>) -> Option<Delivered> {
    let mut overflow = crate::lock(overflow);
    match overflow.pop() {
        Ok(d) => d,
        Err(err) => {
            // A frame that cannot be read would block everything behind it.
            error!(sink = index, %err, file = %overflow.path().display(),
                "the overflow file is unreadable; setting it aside");
            let aside = overflow.path().with_extension("overflow.bad");
            let _ = std::fs::rename(overflow.path(), &aside);
            if let Ok(fresh) = Overflow::open(overflow.path().to_path_buf()) {
                *overflow = fresh;
            }
            None
        }
    }
}

impl Worker {
    /// Hands a message to the sink's thread without waiting: into its buffer, or behind
    /// what waits in its overflow file, or, when neither can take it, dropped and counted.
    fn offer(&mut self, index: usize, delivered: Arc<Delivered>) {
        let Some(overflow) = &self.overflow else {
            match self.tx.try_send(delivered) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    Self::drop_one(&mut self.dropped, index, "a sink cannot keep up")
                }
                Err(TrySendError::Disconnected(_)) => {
                    Self::drop_one(&mut self.dropped, index, "a sink stopped")
                }
            }
            return;
        };
        // Held while deciding, so the sink's thread cannot empty the overflow in between.
        let mut overflow = crate::lock(overflow);
        let delivered = if overflow.has_pending() {
            delivered
        } else {
            match self.tx.try_send(delivered) {
                Ok(()) => return,
                Err(TrySendError::Full(d)) => d,
                Err(TrySendError::Disconnected(_)) => {
                    return Self::drop_one(&mut self.dropped, index, "a sink stopped");
                }
            }
        };
        match overflow.push(&delivered) {
            Ok(()) => {
                self.overflowed += 1;
                if self.overflowed.is_power_of_two() || self.overflowed % 1000 == 0 {
                    warn!(sink = index, overflowed = self.overflowed, file = %overflow.path().display(),
                        "a sink cannot keep up; keeping its messages in its overflow file to write later");
                }
            }
            Err(err) => {
                Self::drop_one(
                    &mut self.dropped,
                    index,
                    &format!("its overflow file failed: {err}"),
                );
            }
        }
    }

    /// Counts a message dropped for sink `index` in `dropped` and logs it now and then.
    fn drop_one(dropped: &mut u64, index: usize, why: &str) {
        *dropped += 1;
        let n = *dropped;
        // 1, 2, 4, …, then every 1000th: loud enough to notice, quiet enough to read.
        if n.is_power_of_two() || n % 1000 == 0 {
            warn!(sink = index, dropped = n, "{why}; dropped messages for it");
        }
    }
}

/// Runs on its own thread: checking, decoding and sink I/O stay off the async workers. Returns when
/// the node stops (the channel closes), after every sink wrote what it buffered.
pub fn spawn(
    incoming: mpsc::Receiver<Incoming>,
    sinks: Vec<Box<dyn Sink>>,
) -> std::io::Result<JoinHandle<()>> {
    spawn_with_capacity(incoming, sinks, SINK_BUFFER)
}

/// [`spawn`] with `capacity` messages buffered per sink.
pub fn spawn_with_capacity(
    mut incoming: mpsc::Receiver<Incoming>,
    sinks: Vec<Box<dyn Sink>>,
    capacity: usize,
) -> std::io::Result<JoinHandle<()>> {
    let mut workers = sinks
        .into_iter()
        .enumerate()
        .map(|(i, sink)| worker(i, sink, capacity))
        .collect::<std::io::Result<Vec<_>>>()?;
    std::thread::Builder::new()
        .name("slim-node-consumer".into())
        .spawn(move || {
            while let Some(msg) = incoming.blocking_recv() {
                let Some(delivered) = decode(msg) else {
                    continue;
                };
                let delivered = Arc::new(delivered);
                for (i, w) in workers.iter_mut().enumerate() {
                    w.offer(i, delivered.clone());
                }
            }
            for (i, w) in workers.into_iter().enumerate() {
                drop(w.tx);
                if w.thread.join().is_err() {
                    error!(sink = i, "a sink thread panicked");
                }
                let dropped = w.dropped;
                if dropped > 0 {
                    warn!(
                        sink = i,
                        dropped, "messages this sink could not keep up with"
                    );
                }
            }
            debug!("consumer stopped");
        })
}

fn decode(msg: Incoming) -> Option<Delivered> {
    let received_at = time::OffsetDateTime::now_utc();
    let bytes = msg.payload.len();
    match wire::decode(&msg.payload_type, &msg.metadata, msg.payload) {
        Ok(payload) => Some(Delivered {
            received_at,
            message_id: msg.metadata.get(wire::MESSAGE_ID_KEY).cloned(),
            from: msg.from,
            payload,
        }),
        Err(err) => {
            warn!(from = %msg.from, payload_type = %msg.payload_type, bytes, %err,
                "dropped a message from the channel that is not OTLP");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what it is given.
    struct Counting(Arc<Mutex<usize>>);
    impl Sink for Counting {
        fn write(&mut self, _: &Delivered) -> std::io::Result<()> {
            *self.0.lock().unwrap() += 1;
            Ok(())
        }
    }

    /// Blocks on its first message until released.
    struct Stuck(Arc<Mutex<()>>);
    impl Sink for Stuck {
        fn write(&mut self, _: &Delivered) -> std::io::Result<()> {
            let _held = self.0.lock().unwrap_or_else(|p| p.into_inner());
            Ok(())
        }
    }

    /// Records the ids it writes, blocking on each until released; keeps its overflow in a file.
    struct SlowFile {
        gate: Arc<Mutex<()>>,
        written: Arc<Mutex<Vec<String>>>,
        overflow: std::path::PathBuf,
    }
    impl Sink for SlowFile {
        fn write(&mut self, d: &Delivered) -> std::io::Result<()> {
            let _held = self.gate.lock().unwrap_or_else(|p| p.into_inner());
            self.written
                .lock()
                .unwrap()
                .push(d.message_id.clone().unwrap_or_default());
            Ok(())
        }
        fn overflow_path(&self) -> Option<std::path::PathBuf> {
            Some(self.overflow.clone())
        }
    }

    fn incoming(i: usize) -> Incoming {
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{i}"}}}}]}}]}}]}}"#
        );
        let request = otlp::json::from_json(otlp::Signal::Logs, body.as_bytes()).unwrap();
        Incoming {
            from: "a/b/c".into(),
            verified_sender: None,
            payload_type: wire::PROTOBUF.into(),
            metadata: wire::metadata(otlp::Signal::Logs, &format!("id-{i}")),
            payload: request.to_protobuf(),
        }
    }

    #[test]
    fn a_stuck_sink_does_not_hold_up_the_others() {
        let count = Arc::new(Mutex::new(0));
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (tx, rx) = mpsc::channel(100);
        let sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(Stuck(gate.clone())),
            Box::new(Counting(count.clone())),
        ];
        // Buffers large enough for every message: nothing overflows, so the only thing that
        // could keep the counting sink from getting all of them is the stuck one.
        let consumer = spawn_with_capacity(rx, sinks, 60).unwrap();
        for i in 0..55 {
            tx.blocking_send(incoming(i)).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while *count.lock().unwrap() < 55 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            *count.lock().unwrap(),
            55,
            "while the other sink is still stuck"
        );
        drop(held);
        drop(tx);
        consumer.join().unwrap();
    }

    #[test]
    fn every_message_reaches_a_sink_that_keeps_up() {
        let count = Arc::new(Mutex::new(0));
        let (tx, rx) = mpsc::channel(100);
        let consumer =
            spawn_with_capacity(rx, vec![Box::new(Counting(count.clone()))], 1000).unwrap();
        for i in 0..200 {
            tx.blocking_send(incoming(i)).unwrap();
        }
        drop(tx);
        consumer.join().unwrap();
        assert_eq!(
            *count.lock().unwrap(),
            200,
            "shutdown waits for the sink to write its buffer"
        );
    }

    #[test]
    fn what_overflows_a_file_sink_is_written_later_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let overflow = dir.path().join("out.jsonl.overflow");
        let gate = Arc::new(Mutex::new(()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let held = gate.lock().unwrap();
        let (tx, rx) = mpsc::channel(100);
        let sink = SlowFile {
            gate: gate.clone(),
            written: written.clone(),
            overflow: overflow.clone(),
        };
        let consumer = spawn_with_capacity(rx, vec![Box::new(sink)], 5).unwrap();
        for i in 0..50 {
            tx.blocking_send(incoming(i)).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !overflow.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            overflow.exists(),
            "the stuck sink's overflow went to its file"
        );
        drop(held);
        drop(tx);
        consumer.join().unwrap();
        let expected: Vec<String> = (0..50).map(|i| format!("id-{i}")).collect();
        assert_eq!(*written.lock().unwrap(), expected);
        assert!(!overflow.exists(), "the emptied overflow file is removed");
    }
}
