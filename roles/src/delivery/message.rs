//! One message to publish, as the outbox holds it and the spool keeps it.

use std::collections::HashMap;

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Unique id; receivers acknowledge and deduplicate by it.
    pub id: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// SLIM payload type.
    pub payload_type: String,
    /// Metadata (travels in the clear); the id is added under [`otlp::wire::MESSAGE_ID_KEY`].
    pub metadata: HashMap<String, String>,
    /// Whether this payload, followed by another of the same type and metadata, is a valid
    /// payload holding both (true of protobuf messages): such messages share SLIM messages.
    pub concatenable: bool,
}
