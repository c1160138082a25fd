//! The receive loop shared by both roles: SLIM session → `Incoming` messages, one per message
//! a frame holds. It also acknowledges every message that carries an id (and every ping),
//! drops copies of what was handed on before, notes when each member was last heard from,
//! and hands the acknowledgements it receives to the outbox.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otlp::wire::{
    ACK_PAYLOAD_TYPE, MESSAGE_ID_KEY, PEER_SUBJECT_KEY, PING_ID_KEY, PING_PAYLOAD_TYPE,
};
use slim_bindings::{MessageContext, Session};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::ctx::{RoleCtx, Shared};
use crate::delivery::frame;
use crate::delivery::incoming::{Ack, Incoming, ToAck};
use crate::delivery::seen::{SeenKey, Sighting};
use crate::delivery::sender::COMPLETION_WAIT;
use crate::delivery::trust;
use crate::slim::completion::completed;
use crate::slim::connection::is_closed;

/// Acknowledgements are sent as soon as the consumer has caught up with what arrived (under
/// load, what it took meanwhile makes the batch), at most once per [`ACK_GAP`], or when this
/// many are pending. Publishers pace the frames in flight by them: a long timer here would be
/// Nagle against delayed acks, and none at all one MLS-signed message per request.
const ACK_BATCH: usize = 256;
const ACK_GAP: Duration = Duration::from_millis(2);
/// Acknowledgements awaiting SLIM's completion at once (their own window, so that data
/// filling the publish window can never hold acknowledgements back).
const ACKS_IN_FLIGHT: usize = 64;
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
    /// By sender (looked up for every message taken; ahash, keyed per process).
    pending: HashMap<String, (Arc<MessageContext>, Vec<String>), ahash::RandomState>,
    /// The keys of the messages among them, recorded as done before the acknowledgements
    /// leave.
    done: Vec<SeenKey>,
    count: usize,
    window: Arc<Semaphore>,
}

impl Acks {
    fn add(&mut self, item: ToAck) {
        self.count += item.ids.len();
        self.done.extend(item.keys);
        match self.pending.get_mut(&item.from) {
            Some((_, ids)) => ids.extend(item.ids),
            None => {
                self.pending.insert(item.from, (item.ctx, item.ids));
            }
        }
    }

    async fn flush(&mut self, shared: &Arc<Shared>, session: &Session) {
        if !self.done.is_empty() {
            // What a publisher is told arrived is remembered first, so that a copy arriving
            // after a restart is recognised. Off the async workers: it writes a file.
            let done = std::mem::take(&mut self.done);
            let shared = shared.clone();
            let recorded = tokio::task::spawn_blocking(move || shared.seen.done(done)).await;
            match recorded {
                Ok(Ok(())) => {}
                // Acknowledged all the same: holding acks back would stall every publisher;
                // only a copy arriving after a restart could then be handed on twice.
                Ok(Err(err)) => error!(%err, "could not record received messages"),
                Err(err) => error!(%err, "recording received messages failed"),
            }
        }
        for (from, (ctx, ids)) in self.pending.drain() {
            let Ok(permit) = self.window.clone().acquire_owned().await else {
                return;
            };
            let payload = ids.join("\n").into_bytes();
            match session
                .publish_to_async(
                    Arc::unwrap_or_clone(ctx),
                    payload,
                    Some(ACK_PAYLOAD_TYPE.to_string()),
                    None,
                )
                .await
            {
                Ok(completion) => {
                    tokio::spawn(async move {
                        let _ = completed(completion, COMPLETION_WAIT).await;
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
/// publishing it inline would hold up the messages arriving meanwhile. Ends when the receive
/// loop drops its end of `rx` (what came before has been sent by then).
async fn acknowledge(
    shared: Arc<Shared>,
    session: Arc<Session>,
    mut rx: mpsc::UnboundedReceiver<ToAck>,
) {
    let mut acks = Acks {
        pending: HashMap::default(),
        done: Vec::new(),
        count: 0,
        window: Arc::new(Semaphore::new(ACKS_IN_FLIGHT)),
    };
    let mut last: Option<tokio::time::Instant> = None;
    while let Some(item) = rx.recv().await {
        acks.add(item);
        if let Some(next) = last.map(|at| at + ACK_GAP) {
            tokio::time::sleep_until(next).await;
        }
        // Whatever else is waiting goes in the same batch.
        while let Ok(more) = rx.try_recv() {
            acks.add(more);
            if acks.count >= ACK_BATCH {
                acks.flush(&shared, &session).await;
            }
        }
        acks.flush(&shared, &session).await;
        last = Some(tokio::time::Instant::now());
    }
}

/// Receives from `session` until it closes or `cancel` fires. `spoke` turns true once a
/// slim-node member speaks in it (a ping, or a message that asks for acknowledgement): a
/// channel of slim-otel's carries neither.
pub(crate) async fn receive_until_closed(
    ctx: &RoleCtx,
    session: Arc<Session>,
    cancel: CancellationToken,
    spoke: watch::Sender<bool>,
) -> ReceiveEnd {
    // Unbounded: what waits in it is bounded by the messages the consumer holds.
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let acker = tokio::spawn(acknowledge(ctx.shared.clone(), session.clone(), ack_rx));
    let end = receive(ctx, &session, cancel, ack_tx, &spoke).await;
    // The acknowledging task flushes what is left once the loop dropped its sender.
    let _ = tokio::time::timeout(ACK_DRAIN, acker).await;
    end
}

async fn receive(
    ctx: &RoleCtx,
    session: &Session,
    cancel: CancellationToken,
    acks: mpsc::UnboundedSender<ToAck>,
    spoke: &watch::Sender<bool>,
) -> ReceiveEnd {
    let speaks = || {
        spoke.send_if_modified(|s| !std::mem::replace(s, true));
    };
    let tx: &mpsc::Sender<Incoming> = &ctx.incoming;
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return ReceiveEnd::Cancelled,
            r = session.get_message_async(None) => r,
        };
        match result {
            Ok(mut msg) => {
                let from = msg.context.source_name.to_string();
                let verified_sender = msg.context.metadata.remove(PEER_SUBJECT_KEY);
                let what = match msg.context.payload_type.as_str() {
                    ACK_PAYLOAD_TYPE => "an acknowledgement",
                    PING_PAYLOAD_TYPE => "a ping",
                    _ => "a message",
                };
                // Credited to its sender only when that is who sent it (see trust).
                if trust::sender(&from, verified_sender.as_deref(), what).is_err() {
                    continue;
                }
                ctx.shared.heard.heard(&from, Instant::now());
                if msg.context.payload_type == ACK_PAYLOAD_TYPE {
                    let text = String::from_utf8_lossy(&msg.payload);
                    ctx.shared.outbox.ack(&from, text.lines());
                    continue;
                }
                if msg.context.payload_type == PING_PAYLOAD_TYPE {
                    speaks();
                    let id = msg
                        .context
                        .metadata
                        .get(PING_ID_KEY)
                        .cloned()
                        .unwrap_or_default();
                    let _ = acks.send(ToAck {
                        from,
                        ctx: Arc::new(msg.context),
                        ids: vec![id],
                        keys: Vec::new(),
                    });
                    continue;
                }
                let mut metadata = std::mem::take(&mut msg.context.metadata);
                // (id, bytes) of each message it holds; no id: a sender that does not ask for
                // acknowledgements, taken as it is.
                let parts: Vec<(Option<String>, Range<usize>)> =
                    match frame::parts(&metadata, msg.payload.len()) {
                        Some(Ok(parts)) => {
                            speaks();
                            parts.into_iter().map(|(id, r)| (Some(id), r)).collect()
                        }
                        Some(Err(err)) => {
                            // Not acknowledged: the sender keeps it, and its logs show why.
                            warn!(%from, %err, "dropped a message whose listing is malformed");
                            continue;
                        }
                        None => vec![(None, 0..msg.payload.len())],
                    };
                metadata.remove(otlp::wire::MESSAGE_IDS_KEY);
                metadata.remove(otlp::wire::MESSAGE_LENGTHS_KEY);
                // Each message is a slice of the frame, not a copy of its part.
                let payload = bytes::Bytes::from(msg.payload);
                // One context for all it carried: their acknowledgements go back with it.
                let context = Arc::new(msg.context);
                let mut again = Vec::new();
                for (id, range) in parts {
                    let ack = match id {
                        None => None,
                        Some(id) => {
                            let key = SeenKey::of(&from, &id);
                            match ctx.shared.seen.sight(key) {
                                Sighting::New => Some(Ack {
                                    id,
                                    key,
                                    from: from.clone(),
                                    ctx: context.clone(),
                                    acks: acks.clone(),
                                    seen: ctx.shared.seen.clone(),
                                    done: false,
                                }),
                                // Taken before: its acknowledgement was lost or late; send it again.
                                Sighting::Done => {
                                    again.push(id);
                                    continue;
                                }
                                // Being taken: acknowledged once taken.
                                Sighting::Pending => {
                                    debug!(%from, %id, "dropped a copy of a message being taken");
                                    continue;
                                }
                            }
                        }
                    };
                    let mut metadata = metadata.clone();
                    if let Some(ack) = &ack {
                        metadata.insert(MESSAGE_ID_KEY.to_string(), ack.id.clone());
                    }
                    let bytes = payload.slice(range);
                    let incoming = Incoming {
                        from: from.clone(),
                        verified_sender: verified_sender.clone(),
                        payload_type: context.payload_type.clone(),
                        metadata,
                        payload: bytes,
                        ack,
                    };
                    if tx.send(incoming).await.is_err() {
                        return ReceiveEnd::Cancelled;
                    }
                }
                if !again.is_empty() {
                    debug!(%from, copies = again.len(), "acknowledged copies of messages taken before");
                    let _ = acks.send(ToAck {
                        from,
                        ctx: context,
                        ids: again,
                        keys: Vec::new(),
                    });
                }
            }
            Err(err) if is_closed(&err) => {
                debug!(%err, "session closed");
                return ReceiveEnd::Closed;
            }
            // e.g. "message lost": SLIM could not recover a gap; the sender re-sends it.
            Err(err) => warn!(%err, "SLIM reported a receive error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(from: &str) -> MessageContext {
        MessageContext::new(
            slim_bindings::Name::new("org".into(), "ns".into(), from.into()),
            None,
            "test".into(),
            HashMap::new(),
            0,
            String::new(),
        )
    }

    fn to_ack(from: &str, ids: &[&str], messages: bool) -> ToAck {
        let ctx = Arc::new(context(from));
        let from = format!("org/ns/{from}");
        let keys = match messages {
            true => ids.iter().map(|id| SeenKey::of(&from, id)).collect(),
            false => Vec::new(),
        };
        ToAck {
            ctx,
            from,
            ids: ids.iter().map(ToString::to_string).collect(),
            keys,
        }
    }

    fn acks() -> Acks {
        Acks {
            pending: HashMap::default(),
            done: Vec::new(),
            count: 0,
            window: Arc::new(Semaphore::new(ACKS_IN_FLIGHT)),
        }
    }

    #[test]
    fn acknowledgements_to_one_publisher_travel_together_in_the_order_taken() {
        let mut acks = acks();

        acks.add(to_ack("a", &["a-1"], true));
        acks.add(to_ack("b", &["b-1"], true));
        acks.add(to_ack("a", &["a-2", "a-3"], true));

        assert_eq!(acks.count, 4);
        assert_eq!(acks.pending.len(), 2, "one batch per publisher");
        assert_eq!(acks.pending["org/ns/a"].1, ["a-1", "a-2", "a-3"]);
        assert_eq!(acks.pending["org/ns/b"].1, ["b-1"]);
    }

    #[test]
    fn only_the_ids_of_messages_taken_are_recorded_not_pings_or_copies() {
        let mut acks = acks();

        acks.add(to_ack("a", &["a-1"], true));
        // A ping, and a copy of something taken before: acknowledged, nothing to record.
        acks.add(to_ack("a", &["7"], false));
        acks.add(to_ack("a", &["a-0"], false));

        assert_eq!(acks.done, [SeenKey::of("org/ns/a", "a-1")]);
        assert_eq!(acks.pending["org/ns/a"].1, ["a-1", "7", "a-0"]);
    }
}
