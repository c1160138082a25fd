//! The consumer: messages from the channel, decoded once, handed to every sink. Each sink has
//! its own thread and bounded buffer: a slow sink never holds up the channel or the other
//! sinks; what overflows its buffer is counted and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use slim_roles::Incoming;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use crate::sink::{Delivered, Sink};
use otlp::wire;

/// Messages buffered per sink.
pub const SINK_BUFFER: usize = 10_000;

/// One sink on its own thread.
struct Worker {
    tx: SyncSender<Arc<Delivered>>,
    dropped: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

fn worker(index: usize, mut sink: Box<dyn Sink>, capacity: usize) -> std::io::Result<Worker> {
    let (tx, rx) = sync_channel::<Arc<Delivered>>(capacity);
    let thread = std::thread::Builder::new()
        .name(format!("slim-node-sink-{index}"))
        .spawn(move || {
            for delivered in rx {
                if let Err(err) = sink.write(&delivered) {
                    error!(sink = index, %err, "a sink failed to write a message");
                }
            }
        })?;
    Ok(Worker {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
        thread,
    })
}

/// Runs on its own thread: decoding and sink I/O stay off the async workers. Returns when
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
    let workers = sinks
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
                for (i, w) in workers.iter().enumerate() {
                    match w.tx.try_send(delivered.clone()) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            let n = w.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                            // 1, 10, 100, …: loud enough to notice, quiet enough to read.
                            if n.is_power_of_two() || n % 1000 == 0 {
                                warn!(
                                    sink = i,
                                    dropped = n,
                                    "a sink cannot keep up; dropped messages for it"
                                );
                            }
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            error!(sink = i, "a sink stopped; its messages are dropped");
                        }
                    }
                }
            }
            for (i, w) in workers.into_iter().enumerate() {
                drop(w.tx);
                if w.thread.join().is_err() {
                    error!(sink = i, "a sink thread panicked");
                }
                let dropped = w.dropped.load(Ordering::Relaxed);
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
    match wire::decode(&msg.payload_type, &msg.metadata, &msg.payload) {
        Ok(request) => Some(Delivered {
            received_at,
            message_id: msg.metadata.get(wire::MESSAGE_ID_KEY).cloned(),
            from: msg.from,
            request,
        }),
        Err(err) => {
            warn!(from = %msg.from, payload_type = %msg.payload_type, bytes = msg.payload.len(), %err,
                "dropped a message from the channel that is not OTLP");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
}
