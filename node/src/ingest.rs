//! What happens to an export request, whatever the transport: decompress, check (in place,
//! or decoded when something must change), publish. How a failure is answered is decided in
//! [`crate::net::answer`].

use slim_roles::{Outgoing, PublishError, Publisher};
use thiserror::Error;
use tracing::debug;

use otlp::compression::{decompress_owned, Encoding};
use otlp::scan::scan;
use otlp::validate::{validate, Rejected};
use otlp::{json, wire, CodecError, OtlpRequest, Signal};

use crate::net::auth::KeyName;
use crate::net::http::Format;
use crate::telemetry::Refusal;

/// Why a request was not accepted. Nothing of it was published.
#[derive(Debug, Error)]
pub enum IngestError {
    /// The body cannot be read; retrying will not help.
    #[error(transparent)]
    BadData(CodecError),
    /// The body, or the message it would become, is too large.
    #[error("{0}")]
    TooLarge(String),
    /// The node has no session with members yet.
    #[error("not ready to forward telemetry: {0}")]
    NotReady(String),
    /// SLIM is busy or refused the message for now.
    #[error("temporarily unable to forward telemetry: {0}")]
    Unavailable(String),
    /// The node carries no channel for the request's signal.
    #[error("{0}")]
    NotCarried(String),
}

impl IngestError {
    /// The reason the node's telemetry counts this refusal under.
    pub fn refusal(&self) -> Refusal {
        match self {
            IngestError::BadData(_) => Refusal::BadData,
            IngestError::TooLarge(_) => Refusal::TooLarge,
            IngestError::NotReady(_) => Refusal::NotReady,
            IngestError::Unavailable(_) => Refusal::Unavailable,
            IngestError::NotCarried(_) => Refusal::NotCarried,
        }
    }
}

impl From<CodecError> for IngestError {
    fn from(err: CodecError) -> Self {
        match err {
            CodecError::TooLarge { .. } => IngestError::TooLarge(err.to_string()),
            other => IngestError::BadData(other),
        }
    }
}

impl From<PublishError> for IngestError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::NotReady { .. } => IngestError::NotReady(err.to_string()),
            PublishError::TooLarge { .. } => IngestError::TooLarge(format!(
                "{err}; send smaller batches (e.g. lower the exporter's max batch size)"
            )),
            PublishError::Full { .. }
            | PublishError::Behind { .. }
            | PublishError::Spool(_)
            | PublishError::Slim(_) => IngestError::Unavailable(err.to_string()),
            PublishError::NoChannel(_) => IngestError::NotCarried(err.to_string()),
        }
    }
}

/// What was accepted, and what was dropped (a partial success when anything was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The signal of the request.
    pub signal: Signal,
    /// The ids of the messages published on the channel (none for an empty request).
    pub message_ids: Vec<String>,
    /// Spans, data points or log records accepted.
    pub items: usize,
    /// Items dropped and why; the client must not send them again.
    pub rejected: Rejected,
}

/// Turns export requests into messages on the channel.
#[derive(Clone)]
pub struct Ingest {
    publisher: Publisher,
    max_body: usize,
    stamp_origin: bool,
}

impl Ingest {
    /// `max_body` bounds the body both as received and after decompression.
    pub fn new(publisher: Publisher, max_body: usize) -> Self {
        Ingest {
            publisher,
            max_body,
            stamp_origin: false,
        }
    }

    /// Every resource taken gets `slim.ingest.key`: the name of the key its request came
    /// with (`--stamp-origin`).
    pub fn stamping_origin(mut self, on: bool) -> Self {
        self.stamp_origin = on;
        self
    }

    /// The body limit in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The publisher (for status).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Reads an HTTP-style body (compressed, protobuf or OTLP/JSON) sent with the key named
    /// `key`, and publishes it.
    pub async fn ingest_body(
        &self,
        signal: Signal,
        format: Format,
        encoding: Encoding,
        body: Vec<u8>,
        key: Option<&KeyName>,
    ) -> Result<Accepted, IngestError> {
        let taken = async {
            let raw = decompress_owned(encoding, body, self.max_body)?;
            match format {
                Format::Protobuf => self.take_protobuf(signal, raw, key).await,
                Format::Json => self.ingest(json::from_json(signal, &raw)?, key).await,
            }
        };
        counted(signal, taken.await)
    }

    /// Publishes a protobuf request sent with the key named `key` (what the gRPC receiver
    /// gets).
    pub async fn ingest_protobuf(
        &self,
        signal: Signal,
        raw: Vec<u8>,
        key: Option<&KeyName>,
    ) -> Result<Accepted, IngestError> {
        counted(signal, self.take_protobuf(signal, raw, key).await)
    }

    /// Publishes a protobuf request. When the scan vouches for it, it fits one SLIM message
    /// and nothing is to be stamped, it goes on as it came (nothing to drop, nothing to
    /// split); otherwise it is decoded.
    async fn take_protobuf(
        &self,
        signal: Signal,
        raw: Vec<u8>,
        key: Option<&KeyName>,
    ) -> Result<Accepted, IngestError> {
        if !self.stamp_origin && raw.len() <= self.publisher.max_payload() {
            if let Some(scanned) = scan(signal, &raw) {
                let parts = if scanned.resources == 0 {
                    Vec::new()
                } else {
                    vec![(raw, scanned.items)]
                };
                return self.publish(signal, parts, Rejected::default()).await;
            }
        }
        self.ingest(OtlpRequest::decode_protobuf(signal, &raw)?, key)
            .await
    }

    /// Takes a decoded request for the channel: stamps it, drops invalid items, splits what
    /// exceeds SLIM's message cap, and publishes the parts.
    async fn ingest(
        &self,
        mut request: OtlpRequest,
        key: Option<&KeyName>,
    ) -> Result<Accepted, IngestError> {
        let signal = request.signal();
        if self.stamp_origin {
            // Whatever the client wrote under this key is replaced: it cannot pose as another.
            let name = key.map_or("anonymous", |k| k.0.as_str());
            request.set_resource_attribute(wire::INGEST_KEY_ATTRIBUTE, Some(name));
        }
        let mut rejected = validate(&mut request);
        let split = request.split(self.publisher.max_payload());
        if split.parts.is_empty() && split.rejected.count > 0 {
            // Nothing of it can ever be sent: refuse it whole.
            return Err(IngestError::TooLarge(format!(
                "{} {}: SLIM carries at most {} bytes per message; send smaller batches",
                split.rejected.count,
                signal.item_name(),
                self.publisher.max_payload()
            )));
        }
        rejected.merge(split.rejected);
        let parts = split
            .parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|part| {
                let items = part.summary().items;
                (part.to_protobuf(), items)
            })
            .collect();
        self.publish(signal, parts, rejected).await
    }

    /// Puts the protobuf `parts` (each with its item count) in the node's outbox, which keeps
    /// them until every member acknowledged them.
    async fn publish(
        &self,
        signal: Signal,
        parts: Vec<(Vec<u8>, usize)>,
        rejected: Rejected,
    ) -> Result<Accepted, IngestError> {
        let mut accepted = Accepted {
            signal,
            message_ids: Vec::with_capacity(parts.len()),
            items: 0,
            rejected,
        };
        let messages: Vec<Outgoing> = parts
            .into_iter()
            .map(|(payload, items)| {
                let id = wire::message_id();
                accepted.items += items;
                accepted.message_ids.push(id.clone());
                Outgoing {
                    metadata: wire::metadata(signal, &id),
                    id,
                    payload,
                    payload_type: wire::PROTOBUF.to_string(),
                    concatenable: true,
                }
            })
            .collect();
        if messages.is_empty() {
            return Ok(accepted);
        }
        // All parts or none: a retried request never finds half of itself already taken.
        self.publisher.publish_all(messages).await?;
        debug!(%signal, ids = ?accepted.message_ids, items = accepted.items, "taken");
        Ok(accepted)
    }
}

/// Counts what a request came to in the node's telemetry: the items accepted (and dropped), or
/// the refusal and its reason.
fn counted(signal: Signal, taken: Result<Accepted, IngestError>) -> Result<Accepted, IngestError> {
    let metrics = &crate::telemetry::get().receiver;
    match &taken {
        Ok(accepted) => metrics.accepted(
            signal,
            accepted.items as u64,
            accepted.rejected.count as u64,
        ),
        Err(err) => metrics.refused(signal, err.refusal()),
    }
    taken
}
