//! The consumer: messages from the channel, decoded once, handed to every sink.

use slim_roles::Incoming;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use crate::sink::{Delivered, Sink};
use otlp::wire;

/// Runs on its own thread: decoding and sink I/O stay off the async workers. Returns when
/// the node stops (the channel closes), after every received message was written.
pub fn spawn(
    mut incoming: mpsc::Receiver<Incoming>,
    mut sinks: Vec<Box<dyn Sink>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("slim-node-consumer".into())
        .spawn(move || {
            while let Some(msg) = incoming.blocking_recv() {
                let Some(delivered) = decode(msg) else {
                    continue;
                };
                for sink in sinks.iter_mut() {
                    if let Err(err) = sink.write(&delivered) {
                        error!(%err, "a sink failed to write a message");
                    }
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
