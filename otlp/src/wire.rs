//! The message format on the SLIM channel, shared by every sender and consumer.
//!
//! Payload: a protobuf `Export*ServiceRequest` (the client's own bytes when they needed no
//! change, else the canonical encoding), `payload_type` `application/x-protobuf` (consumers
//! also accept `application/json`, OTLP/JSON).
//! Metadata: `otlp-signal` = `traces|metrics|logs`, `otlp-message-id` = a UUID (version 7:
//! its time is when the receiver accepted the request, which members read as the publish stamp).
//! A SLIM message may carry several requests of one signal back to back (their concatenation
//! is one valid request holding all of them); it then lists them under `otlp-message-ids`
//! (UUIDs, comma-separated) and `otlp-message-lengths` (their byte lengths) instead of
//! `otlp-message-id`, so receivers acknowledge and deduplicate each one.
//! Acknowledgements and pings travel on the same channel, under their own payload types.
//! Metadata travels in the clear (MLS encrypts the payload only): nothing secret goes there.

use std::collections::HashMap;

use tracing::debug;

use super::{json, CodecError, Encoded, OtlpRequest, Signal};

/// `payload_type` of protobuf payloads.
pub const PROTOBUF: &str = "application/x-protobuf";
/// `payload_type` of OTLP/JSON payloads.
pub const JSON: &str = "application/json";
/// Metadata key naming the signal.
pub const SIGNAL_KEY: &str = "otlp-signal";
/// Metadata key carrying the message id.
pub const MESSAGE_ID_KEY: &str = "otlp-message-id";
/// Metadata key listing the ids of the requests a packed SLIM message holds (comma-separated).
pub const MESSAGE_IDS_KEY: &str = "otlp-message-ids";
/// Metadata key listing the byte lengths of the requests a packed SLIM message holds.
pub const MESSAGE_LENGTHS_KEY: &str = "otlp-message-lengths";
/// `payload_type` of acknowledgements: the payload is message ids, one per line.
pub const ACK_PAYLOAD_TYPE: &str = "application/vnd.slim-node.ack";
/// `payload_type` of liveness pings (empty payload; members acknowledge them like data).
pub const PING_PAYLOAD_TYPE: &str = "application/vnd.slim-node.ping";
/// Metadata key carrying a ping's id.
pub const PING_ID_KEY: &str = "slim-node-ping";
/// Metadata key SLIM adds on the receiving side with the MLS-verified sender identity.
pub const PEER_SUBJECT_KEY: &str = "slim-peer-subject";

/// A new message id: a UUIDv7, unique and carrying the time the request was accepted (read
/// back by [`accepted_at`]), so members can tell how long a message took end to end with no
/// field more on the wire.
pub fn message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// When the message `id` was accepted, if it is a UUIDv7 (as slim-node's are); `None` for ids
/// of other senders.
pub fn accepted_at(id: &str) -> Option<std::time::SystemTime> {
    let id = uuid::Uuid::try_parse(id).ok()?;
    // Versions 1 and 6 carry a time too, of their own making: only ours count.
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
}

/// Metadata for one outgoing message.
pub fn metadata(signal: Signal, message_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (SIGNAL_KEY.to_string(), signal.as_str().to_string()),
        (MESSAGE_ID_KEY.to_string(), message_id.to_string()),
    ])
}

/// The resource attribute a receiver with `--stamp-origin` sets to the name of the ingest key
/// a request came with.
pub const INGEST_KEY_ATTRIBUTE: &str = "slim.ingest.key";
/// The resource attribute a member with `--stamp-origin` sets to a message's MLS-verified
/// sender.
pub const SENDER_ATTRIBUTE: &str = "slim.sender";

/// Reads a received payload, using the metadata to know its signal. Protobuf with a signal is
/// checked in place and decoded later, if anything asks; other payloads are decoded now.
pub fn decode(
    payload_type: &str,
    metadata: &HashMap<String, String>,
    payload: impl Into<bytes::Bytes>,
) -> Result<Encoded, CodecError> {
    let payload = payload.into();
    let json = payload_type.split(';').next().map(str::trim) == Some(JSON);
    match metadata.get(SIGNAL_KEY) {
        Some(signal) => {
            let signal: Signal = signal.parse()?;
            if json {
                json::from_json(signal, &payload).map(Encoded::from_request)
            } else {
                Encoded::check(signal, payload)
            }
        }
        None => guess(json, &payload).map(Encoded::from_request),
    }
}

/// Without metadata (another OTLP-over-SLIM sender), try each request type. The three share
/// field numbers, so a payload can decode as more than one; prefer the one that decodes
/// without losing bytes (prost drops unknown fields, so a wrong guess re-encodes shorter).
fn guess(json: bool, payload: &[u8]) -> Result<OtlpRequest, CodecError> {
    let candidates: Vec<OtlpRequest> = Signal::ALL
        .iter()
        .filter_map(|&signal| {
            if json {
                json::from_json(signal, payload)
                    .ok()
                    .filter(|r| !r.is_empty())
            } else {
                OtlpRequest::decode_protobuf(signal, payload).ok()
            }
        })
        .collect();
    let lossless = candidates
        .iter()
        .find(|r| json || r.to_protobuf().len() == payload.len());
    match lossless.or(candidates.first()) {
        Some(r) => {
            debug!(signal = %r.signal(), "guessed the signal of a message without metadata");
            Ok(r.clone())
        }
        None => Err(CodecError::Protobuf(
            "{Trace,Metrics,Logs}",
            "the payload fits none of the three request types".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_tells_when_it_was_accepted() {
        let before = std::time::SystemTime::now();
        let id = message_id();
        let at = accepted_at(&id).expect("a UUIDv7 carries its time");
        // Millisecond precision: within a millisecond of the clock around it.
        let slack = std::time::Duration::from_millis(1);
        assert!(at + slack >= before && at <= std::time::SystemTime::now() + slack);
    }

    #[test]
    fn an_id_of_another_kind_tells_no_time() {
        assert_eq!(accepted_at("67e55044-10b1-426f-9247-bb680e5fe0c8"), None);
        // A version 1 id carries a time, not ours.
        assert_eq!(accepted_at("c232ab00-9414-11ec-b3c8-9f6bdeced846"), None);
        assert_eq!(accepted_at("not-a-uuid"), None);
    }

    fn sample(signal: Signal) -> OtlpRequest {
        let body = match signal {
            Signal::Traces => {
                r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"s","startTimeUnixNano":"5"}]}]}]}"#
            }
            Signal::Metrics => {
                r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"dataPoints":[{"asInt":"4","timeUnixNano":"9"}]}}]}]}]}"#
            }
            Signal::Logs => {
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"3","body":{"stringValue":"x"}}]}]}]}"#
            }
        };
        json::from_json(signal, body.as_bytes()).unwrap()
    }

    #[test]
    fn metadata_names_signal_and_id() {
        let md = metadata(Signal::Logs, "id-1");
        assert_eq!(md[SIGNAL_KEY], "logs");
        assert_eq!(md[MESSAGE_ID_KEY], "id-1");
    }

    #[test]
    fn decodes_by_the_signal_in_metadata() {
        for signal in Signal::ALL {
            let req = sample(signal);
            let got = decode(PROTOBUF, &metadata(signal, "x"), req.to_protobuf()).unwrap();
            assert_eq!(got.request(), &req);
        }
    }

    #[test]
    fn accepts_json_payloads() {
        let req = sample(Signal::Metrics);
        let got = decode(JSON, &metadata(Signal::Metrics, "x"), json::to_json(&req)).unwrap();
        assert_eq!(got.request(), &req);
    }

    #[test]
    fn guesses_each_signal_without_metadata() {
        for signal in Signal::ALL {
            let req = sample(signal);
            let got = decode("msg", &HashMap::new(), req.to_protobuf()).unwrap();
            assert_eq!(got.signal(), signal);
            assert_eq!(got.request(), &req);
        }
    }

    #[test]
    fn garbage_without_metadata_is_an_error() {
        assert!(decode("msg", &HashMap::new(), vec![0xff, 0x00, 0x13]).is_err());
    }

    #[test]
    fn unknown_signal_in_metadata_is_an_error() {
        let md = HashMap::from([(SIGNAL_KEY.to_string(), "profiles".to_string())]);
        assert!(decode(PROTOBUF, &md, vec![]).is_err());
    }
}
