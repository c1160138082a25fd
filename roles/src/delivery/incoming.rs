//! What a node hands its consumer: each message another member published, with the ticket
//! that acknowledges it to its publisher once the consumer took it.

use std::collections::HashMap;
use std::sync::Arc;

use slim_bindings::MessageContext;
use tokio::sync::mpsc;

use crate::delivery::seen::{Seen, SeenKey};

/// A message another member published on the channel.
#[derive(Debug)]
pub struct Incoming {
    /// The sender's SLIM name (`org/ns/app`).
    pub from: String,
    /// The sender's identity as verified by MLS, when MLS is on.
    pub verified_sender: Option<String>,
    /// The payload type the sender gave.
    pub payload_type: String,
    /// The sender's metadata (travels in the clear).
    pub metadata: HashMap<String, String>,
    /// The payload bytes (a slice of the SLIM message that carried it: not copied).
    pub payload: bytes::Bytes,
    /// Acknowledges it to its publisher once taken; `None` for a message without an id
    /// (its sender asks for no acknowledgement).
    pub ack: Option<Ack>,
}

/// Acknowledges one received message to its publisher once the consumer took it:
/// [`Ack::done`]. Dropped without it (the consumer could not take the message), the message
/// counts as never received: the copy its publisher sends again is taken.
pub struct Ack {
    pub(crate) id: String,
    /// What the record of ids handed on knows it by.
    pub(crate) key: SeenKey,
    pub(crate) from: String,
    /// The context of the SLIM message that carried it, shared by all it carried.
    pub(crate) ctx: Arc<MessageContext>,
    pub(crate) acks: mpsc::UnboundedSender<ToAck>,
    pub(crate) seen: Arc<Seen>,
    pub(crate) done: bool,
}

impl Ack {
    /// The message's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The consumer took the message: acknowledge it (with whatever else it took meanwhile),
    /// and remember it as taken.
    pub fn done(mut self) {
        self.done = true;
        let sent = self.acks.send(ToAck {
            from: std::mem::take(&mut self.from),
            ctx: self.ctx.clone(),
            ids: vec![std::mem::take(&mut self.id)],
            keys: vec![self.key],
        });
        if sent.is_err() {
            // The session ended meanwhile: not acknowledged, so not remembered as taken.
            // Forgetting the mark lets in the copy the publisher sends again (a duplicate for
            // the sinks, inside the documented at-least-once window).
            self.seen.forget(self.key);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("id", &self.id)
            .field("from", &self.from)
            .finish()
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.done {
            self.seen.forget(self.key);
        }
    }
}

/// The ids of one received SLIM message, to acknowledge to its sender.
pub(crate) struct ToAck {
    pub(crate) from: String,
    pub(crate) ctx: Arc<MessageContext>,
    pub(crate) ids: Vec<String>,
    /// The keys of the ids that are messages taken now (not a ping's, nor a copy's of one
    /// taken before): recorded as handed on once acknowledged.
    pub(crate) keys: Vec<SeenKey>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::seen::Sighting;

    /// The context of a message from `org/ns/sender`.
    fn context() -> MessageContext {
        MessageContext::new(
            slim_bindings::Name::new("org".into(), "ns".into(), "sender".into()),
            None,
            "test".into(),
            HashMap::new(),
            0,
            String::new(),
        )
    }

    /// An Ack for `id`, handed on (so marked in `seen`), sending to `acks`.
    fn ack(id: &str, seen: &Arc<Seen>, acks: mpsc::UnboundedSender<ToAck>) -> Ack {
        let key = SeenKey::of("org/ns/sender", id);
        assert_eq!(seen.sight(key), Sighting::New);
        Ack {
            id: id.into(),
            key,
            from: "org/ns/sender".into(),
            ctx: Arc::new(context()),
            acks,
            seen: seen.clone(),
            done: false,
        }
    }

    #[test]
    fn done_sends_the_acknowledgement_to_its_publisher_and_keeps_the_message_marked() {
        let seen = Arc::new(Seen::in_memory(16));
        let (tx, mut rx) = mpsc::unbounded_channel();

        ack("m-1", &seen, tx).done();

        let sent = rx.try_recv().expect("one acknowledgement to send");
        assert_eq!(sent.from, "org/ns/sender");
        assert_eq!(sent.ids, vec!["m-1".to_string()]);
        assert_eq!(
            sent.keys,
            [SeenKey::of("org/ns/sender", "m-1")],
            "a message's id, to record as taken"
        );
        assert!(rx.try_recv().is_err(), "more than one acknowledgement");
        // A copy arriving before the acknowledgement leaves is dropped.
        assert_eq!(
            seen.sight(SeenKey::of("org/ns/sender", "m-1")),
            Sighting::Pending
        );
    }

    #[test]
    fn an_ack_dropped_without_done_sends_nothing_and_lets_the_next_copy_in() {
        let seen = Arc::new(Seen::in_memory(16));
        let (tx, mut rx) = mpsc::unbounded_channel();

        drop(ack("m-1", &seen, tx));

        assert!(rx.try_recv().is_err(), "an acknowledgement was sent");
        assert_eq!(
            seen.sight(SeenKey::of("org/ns/sender", "m-1")),
            Sighting::New
        );
    }

    #[test]
    fn done_after_the_session_ended_lets_the_next_copy_in() {
        let seen = Arc::new(Seen::in_memory(16));
        let (tx, rx) = mpsc::unbounded_channel();
        let ack = ack("m-1", &seen, tx);
        drop(rx);

        ack.done();

        assert_eq!(
            seen.sight(SeenKey::of("org/ns/sender", "m-1")),
            Sighting::New
        );
    }
}
