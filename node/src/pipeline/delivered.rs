//! One message as the pipeline and the sinks see it: received from the channel, checked.

use otlp::Signal;
use time::OffsetDateTime;

/// Telemetry items (spans, metric points, log records) per signal, in [`Signal::ALL`]'s order.
pub type PerSignal = [u64; 3];

/// `signal`'s place in a [`PerSignal`].
pub fn slot(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// One message received from the channel.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// When this node received it.
    pub received_at: OffsetDateTime,
    /// The sender's SLIM name, as its messages are routed.
    pub from: String,
    /// The sender's identity as MLS verified it (absent with MLS off).
    pub verified_sender: Option<String>,
    /// The sender's message id, when it gave one.
    pub message_id: Option<String>,
    /// The OTLP request: checked, decoded when a sink first asks for it.
    pub payload: ::otlp::Encoded,
}

impl Delivered {
    /// The sender as sinks name it: the MLS-verified identity when there is one.
    pub fn sender(&self) -> &str {
        self.verified_sender.as_deref().unwrap_or(&self.from)
    }

    /// When the receiver that published it accepted it (its message id's time), for the
    /// end-to-end latency; `None` for senders whose ids carry no time.
    pub fn accepted_at(&self) -> Option<std::time::SystemTime> {
        self.message_id.as_deref().and_then(otlp::wire::accepted_at)
    }

    /// Whether MLS verified the sender.
    pub fn verified(&self) -> bool {
        self.verified_sender.is_some()
    }
}
