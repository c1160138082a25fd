//! The receive loop shared by both roles: SLIM session → `Incoming` messages, one per message
//! a frame holds. It also acknowledges every message that carries an id, drops duplicates,
//! and hands the acknowledgements it receives to the outbox.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use slim_bindings::{MessageContext, Session};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::connection::{is_closed, is_timeout};
use crate::frame;
use crate::node::{lock, Incoming, RoleCtx};
use crate::outbox::{ACK_PAYLOAD_TYPE, MESSAGE_ID_KEY};
use crate::sender::COMPLETION_WAIT;

/// Key SLIM adds on the receiving side with the MLS-verified sender identity.
const PEER_SUBJECT_KEY: &str = "slim-peer-subject";
/// Acknowledgements are sent at least this often, or when this many are pending.
const ACK_EVERY: Duration = Duration::from_millis(20);
const ACK_BATCH: usize = 256;
/// Acknowledgements awaiting SLIM's completion at once (their own window, so that data
/// filling the publish window can never hold acknowledgements back).
const ACKS_IN_FLIGHT: usize = 64;
/// Received SLIM messages whose acknowledgements wait for the acknowledging task.
const ACK_QUEUE: usize = 1024;
/// Longest wait for the last acknowledgements when the loop ends.
const ACK_DRAIN: Duration = Duration::from_secs(5);

/// Why the receive loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReceiveEnd {
    /// The session is gone.
    Closed,
    /// The node is stopping, or nobody consumes messages any more.
    Cancelled,
}

/// Acknowledgements waiting to be sent, per sender.
struct Acks {
    pending: HashMap<String, (MessageContext, Vec<String>)>,
    count: usize,
    window: Arc<Semaphore>,
}

/// The ids of one received SLIM message, to acknowledge to its sender.
struct ToAck {
    from: String,
    ctx: MessageContext,
    ids: Vec<String>,
}

impl Acks {
    fn add(&mut self, item: ToAck) {
        self.count += item.ids.len();
        match self.pending.get_mut(&item.from) {
            Some((_, ids)) => ids.extend(item.ids),
            None => {
                self.pending.insert(item.from, (item.ctx, item.ids));
            }
        }
    }

    async fn flush(&mut self, session: &Session) {
        for (from, (ctx, ids)) in self.pending.drain() {
            let Ok(permit) = self.window.clone().acquire_owned().await else {
                return;
            };
            let payload = ids.join("\n").into_bytes();
            match session
                .publish_to_async(ctx, payload, Some(ACK_PAYLOAD_TYPE.to_string()), None)
                .await
            {
                Ok(completion) => {
                    tokio::spawn(async move {
                        let _ = completion.wait_for_async(COMPLETION_WAIT).await;
                        drop(permit);
                    });
                }
                // The sender re-sends what stays unacknowledged; we acknowledge it then.
                Err(err) => debug!(%from, %err, "an acknowledgement could not be sent"),
            }
        }
        self.count = 0;
    }
}

/// Sends acknowledgements on a task of its own: each is an MLS-signed SLIM message, and
/// publishing it inline would hold up the messages arriving meanwhile. Ends, after a last
/// flush, when the receive loop drops its end of `rx`.
async fn acknowledge(session: Arc<Session>, mut rx: mpsc::Receiver<ToAck>) {
    let mut acks = Acks {
        pending: HashMap::new(),
        count: 0,
        window: Arc::new(Semaphore::new(ACKS_IN_FLIGHT)),
    };
    let mut tick = tokio::time::interval(ACK_EVERY);
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => {
                    acks.add(item);
                    if acks.count >= ACK_BATCH {
                        acks.flush(&session).await;
                    }
                }
                None => {
                    acks.flush(&session).await;
                    return;
                }
            },
            _ = tick.tick() => acks.flush(&session).await,
        }
    }
}

pub(crate) async fn receive_until_closed(
    ctx: &RoleCtx,
    session: Arc<Session>,
    cancel: CancellationToken,
) -> ReceiveEnd {
    let (ack_tx, ack_rx) = mpsc::channel(ACK_QUEUE);
    let acker = tokio::spawn(acknowledge(session.clone(), ack_rx));
    let end = receive(ctx, &session, cancel, ack_tx).await;
    // The acknowledging task flushes what is left once the loop dropped its sender.
    let _ = tokio::time::timeout(ACK_DRAIN, acker).await;
    end
}

async fn receive(
    ctx: &RoleCtx,
    session: &Session,
    cancel: CancellationToken,
    acks: mpsc::Sender<ToAck>,
) -> ReceiveEnd {
    let tx: &mpsc::Sender<Incoming> = &ctx.incoming;
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return ReceiveEnd::Cancelled,
            r = session.get_message_async(Some(Duration::from_secs(1))) => r,
        };
        match result {
            Ok(mut msg) => {
                let from = msg.context.source_name.to_string();
                if msg.context.payload_type == ACK_PAYLOAD_TYPE {
                    let text = String::from_utf8_lossy(&msg.payload);
                    ctx.shared.outbox.ack(&from, text.lines());
                    continue;
                }
                let mut metadata = std::mem::take(&mut msg.context.metadata);
                let verified_sender = metadata.remove(PEER_SUBJECT_KEY);
                // (id, bytes) of each message it holds; no id: a sender that does not ask for
                // acknowledgements, taken as it is.
                let parts: Vec<(Option<String>, Range<usize>)> =
                    match frame::parts(&metadata, msg.payload.len()) {
                        Some(Ok(parts)) => parts.into_iter().map(|(id, r)| (Some(id), r)).collect(),
                        Some(Err(err)) => {
                            // Not acknowledged: the sender keeps it, and its logs show why.
                            warn!(%from, %err, "dropped a message whose listing is malformed");
                            continue;
                        }
                        None => vec![(None, 0..msg.payload.len())],
                    };
                let ids: Vec<String> = parts.iter().filter_map(|(id, _)| id.clone()).collect();
                if !ids.is_empty() {
                    let to_ack = ToAck {
                        from: from.clone(),
                        ctx: msg.context.clone(),
                        ids,
                    };
                    if acks.send(to_ack).await.is_err() {
                        return ReceiveEnd::Cancelled;
                    }
                }
                metadata.remove(frame::MESSAGE_IDS_KEY);
                metadata.remove(frame::MESSAGE_LENGTHS_KEY);
                let single = parts.len() == 1;
                let mut payload = msg.payload;
                for (id, range) in parts {
                    if let Some(id) = &id {
                        if !lock(&ctx.shared.seen).first_time(id) {
                            debug!(%from, %id, "dropped a duplicate");
                            continue;
                        }
                    }
                    let mut metadata = metadata.clone();
                    if let Some(id) = id {
                        metadata.insert(MESSAGE_ID_KEY.to_string(), id);
                    }
                    let bytes = if single {
                        std::mem::take(&mut payload)
                    } else {
                        payload[range].to_vec()
                    };
                    let incoming = Incoming {
                        from: from.clone(),
                        verified_sender: verified_sender.clone(),
                        payload_type: msg.context.payload_type.clone(),
                        metadata,
                        payload: bytes,
                    };
                    if tx.send(incoming).await.is_err() {
                        return ReceiveEnd::Cancelled;
                    }
                }
            }
            Err(err) if is_timeout(&err) => continue,
            Err(err) if is_closed(&err) => {
                debug!(%err, "session closed");
                return ReceiveEnd::Closed;
            }
            // e.g. "message lost": SLIM could not recover a gap; the sender re-sends it.
            Err(err) => warn!(%err, "SLIM reported a receive error"),
        }
    }
}
