//! The acknowledgement ticket: a message is acknowledged to its publisher once every durable
//! sink took it. The pipeline decides that here, and only here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What acknowledges one message to its publisher ([`slim_roles::Ack`] on a node; a test
/// gives its own). Dropped without [`Acknowledge::done`], the message counts as not taken.
pub trait Acknowledge: Send + 'static {
    /// The message was taken: acknowledge it.
    fn done(self: Box<Self>);
}

impl Acknowledge for slim_roles::Ack {
    fn done(self: Box<Self>) {
        slim_roles::Ack::done(*self)
    }
}

/// Shared by every queue holding one message for a durable sink: when the last of them took
/// it (written to disk, or delivered), the message is acknowledged to its publisher. Dropped
/// before that, the publisher's copy is taken again.
pub struct Ticket {
    remaining: AtomicUsize,
    ack: Mutex<Option<Box<dyn Acknowledge>>>,
}

impl Ticket {
    /// A ticket that `takers` durable sinks must take.
    pub fn new(takers: usize, ack: Option<Box<dyn Acknowledge>>) -> Arc<Ticket> {
        let ticket = Arc::new(Ticket {
            remaining: AtomicUsize::new(takers),
            ack: Mutex::new(ack),
        });
        if takers == 0 {
            ticket.acknowledge();
        }
        ticket
    }

    /// One durable sink took the message.
    pub fn taken(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.acknowledge();
        }
    }

    fn acknowledge(&self) {
        if let Some(ack) = crate::lock(&self.ack).take() {
            ack.done();
        }
    }
}

/// An acknowledgement tests can watch: whether it was done, or dropped without.
#[cfg(test)]
pub(crate) mod watched {
    use std::sync::{Arc, Mutex};

    /// What became of a [`Watched`] acknowledgement.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Fate {
        /// Neither done nor dropped yet.
        Pending,
        /// Acknowledged to the publisher.
        Done,
        /// Dropped without: the publisher's copy would be taken again.
        Dropped,
    }

    /// An [`super::Acknowledge`] that records its fate.
    pub(crate) struct Watched(pub(crate) Arc<Mutex<Fate>>);

    impl Watched {
        /// A fresh acknowledgement and the place its fate shows.
        pub(crate) fn new() -> (Box<Watched>, Arc<Mutex<Fate>>) {
            let fate = Arc::new(Mutex::new(Fate::Pending));
            (Box::new(Watched(fate.clone())), fate)
        }
    }

    impl super::Acknowledge for Watched {
        fn done(self: Box<Self>) {
            *self.0.lock().expect("fate") = Fate::Done;
        }
    }

    impl Drop for Watched {
        fn drop(&mut self) {
            let mut fate = self.0.lock().expect("fate");
            if *fate == Fate::Pending {
                *fate = Fate::Dropped;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::watched::{Fate, Watched};
    use super::*;

    fn fate(f: &Mutex<Fate>) -> Fate {
        *f.lock().expect("fate")
    }

    #[test]
    fn a_message_is_acknowledged_once_every_durable_sink_took_it() {
        let (ack, seen) = Watched::new();
        let ticket = Ticket::new(3, Some(ack));
        ticket.taken();
        ticket.taken();
        assert_eq!(fate(&seen), Fate::Pending, "two of three sinks took it");
        ticket.taken();
        assert_eq!(fate(&seen), Fate::Done);
    }

    #[test]
    fn a_message_no_durable_sink_waits_for_is_acknowledged_at_once() {
        let (ack, seen) = Watched::new();
        let _ticket = Ticket::new(0, Some(ack));
        assert_eq!(fate(&seen), Fate::Done);
    }

    #[test]
    fn a_ticket_dropped_before_every_sink_took_it_acknowledges_nothing() {
        let (ack, seen) = Watched::new();
        let ticket = Ticket::new(2, Some(ack));
        ticket.taken();
        drop(ticket);
        assert_eq!(
            fate(&seen),
            Fate::Dropped,
            "the publisher's copy is taken again"
        );
    }
}
