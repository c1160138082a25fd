//! One message as a disk queue keeps it: header length (u32 LE), JSON header, the OTLP
//! protobuf payload as it arrived.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::pipeline::delivered::Delivered;

/// What a record says besides the payload.
#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) signal: String,
    pub(super) from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) verified_sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<String>,
    pub(super) received_unix_nanos: i128,
    /// The item count found when the message was checked on arrival; with it the payload is
    /// not checked again when read back (the log checksums every record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) items: Option<usize>,
}

/// When the message was received.
pub(super) fn received_at(header: &Header) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(header.received_unix_nanos)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Appends to `out` what the record of `d` holds before its payload (header length and
/// header); the payload is `d.payload.bytes()`.
pub(super) fn encode_head(d: &Delivered, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let header = serde_json::to_vec(&Header {
        signal: d.payload.signal().as_str().to_string(),
        from: d.from.clone(),
        verified_sender: d.verified_sender.clone(),
        id: d.message_id.clone(),
        received_unix_nanos: d.received_at.unix_timestamp_nanos(),
        items: Some(d.payload.items()),
    })?;
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    Ok(())
}

/// Where a record's payload starts (after the header length and the header); `None` when
/// the record is too short for its header.
pub(super) fn payload_start(record: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(record.get(..4)?.try_into().ok()?) as usize;
    let end = 4usize.checked_add(len)?;
    (end <= record.len()).then_some(end)
}

/// The header and payload of a record.
pub(super) fn split(record: &[u8]) -> Result<(Header, &[u8]), String> {
    let end = payload_start(record).ok_or("record too short for its header")?;
    let header: Header = serde_json::from_slice(&record[4..end]).map_err(|e| e.to_string())?;
    Ok((header, &record[end..]))
}

/// The message a record holds.
pub(super) fn decode(record: &[u8]) -> Result<Delivered, String> {
    let (header, payload) = split(record)?;
    let signal: otlp::Signal = header
        .signal
        .parse()
        .map_err(|e: otlp::CodecError| e.to_string())?;
    let payload = match header.items {
        Some(items) => otlp::Encoded::from_checked(signal, payload.to_vec(), items),
        None => otlp::Encoded::check(signal, payload.to_vec()).map_err(|e| e.to_string())?,
    };
    Ok(Delivered {
        received_at: received_at(&header),
        from: header.from,
        verified_sender: header.verified_sender,
        message_id: header.id,
        payload,
    })
}
