//! A request kept in its protobuf encoding, known to decode, and decoded only when something
//! asks for it: a consumer whose sinks only count or store messages never builds them.

use std::sync::OnceLock;

use bytes::Bytes;

use tracing::error;

use crate::scan::scan;
use crate::{CodecError, OtlpRequest, Signal};

/// The protobuf encoding of a request of one signal, checked, with its item count.
#[derive(Debug, Clone)]
pub struct Encoded {
    signal: Signal,
    bytes: Bytes,
    items: usize,
    request: OnceLock<OtlpRequest>,
}

impl Encoded {
    /// Checks `bytes` as a request of `signal`: in place when the scan vouches for it,
    /// otherwise by decoding it now (and keeping what was decoded).
    pub fn check(signal: Signal, bytes: impl Into<Bytes>) -> Result<Self, CodecError> {
        let bytes = bytes.into();
        if let Some(scanned) = scan(signal, &bytes) {
            return Ok(Encoded {
                signal,
                bytes,
                items: scanned.items,
                request: OnceLock::new(),
            });
        }
        let request = OtlpRequest::decode_protobuf(signal, &bytes)?;
        Ok(Encoded {
            signal,
            bytes,
            items: request.summary().items,
            request: OnceLock::from(request),
        })
    }

    /// Bytes this program checked before and kept itself (a record of its own queue), with
    /// the item count it found then: not checked again. Should they not decode after all,
    /// [`Encoded::request`] shows an empty request and logs it.
    pub fn from_checked(signal: Signal, bytes: impl Into<Bytes>, items: usize) -> Self {
        Encoded {
            signal,
            bytes: bytes.into(),
            items,
            request: OnceLock::new(),
        }
    }

    /// A decoded request, encoded.
    pub fn from_request(request: OtlpRequest) -> Self {
        Encoded {
            signal: request.signal(),
            bytes: request.to_protobuf().into(),
            items: request.summary().items,
            request: OnceLock::from(request),
        }
    }

    /// The request's signal.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The protobuf encoding.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The protobuf encoding shared, not copied: a batch's requests or a request's items are
    /// slices of it.
    pub fn shared(&self) -> Bytes {
        self.bytes.clone()
    }

    /// Spans, data points or log records.
    pub fn items(&self) -> usize {
        self.items
    }

    /// The decoded request, decoded on the first call.
    pub fn request(&self) -> &OtlpRequest {
        self.request.get_or_init(|| self.decode())
    }

    /// The decoded request without keeping it (for a consumer that needs it once, while the
    /// message waits on): the kept one when something decoded it already.
    pub fn request_once(&self) -> std::borrow::Cow<'_, OtlpRequest> {
        match self.request.get() {
            Some(request) => std::borrow::Cow::Borrowed(request),
            None => std::borrow::Cow::Owned(self.decode()),
        }
    }

    fn decode(&self) -> OtlpRequest {
        OtlpRequest::decode_protobuf(self.signal, &self.bytes).unwrap_or_else(|err| {
            // `check` vouched for these bytes; should the scan and the decoder ever
            // disagree, the message shows as empty rather than taking the consumer down.
            error!(%err, signal = %self.signal, "a checked request failed to decode");
            OtlpRequest::empty(self.signal)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}},{}]}]}]}"#;

    #[test]
    fn checked_bytes_decode_to_the_request_they_encode() {
        let request = crate::json::from_json(Signal::Logs, LOG).unwrap();
        let encoded = Encoded::check(Signal::Logs, request.to_protobuf()).unwrap();
        assert_eq!(encoded.items(), 2);
        assert_eq!(encoded.request(), &request);
        assert_eq!(encoded.bytes(), request.to_protobuf());
    }

    #[test]
    fn bytes_that_do_not_decode_are_refused() {
        assert!(Encoded::check(Signal::Traces, vec![0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn bytes_the_scan_leaves_to_the_decoder_are_decoded_at_once() {
        // A span without ids: valid protobuf, an item the receiver rules would drop.
        let request = crate::json::from_json(
            Signal::Traces,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a"}]}]}]}"#,
        )
        .unwrap();
        let encoded = Encoded::check(Signal::Traces, request.to_protobuf()).unwrap();
        assert_eq!(encoded.items(), 1);
        assert_eq!(encoded.request(), &request);
    }
}
