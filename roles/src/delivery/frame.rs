//! Frames: what goes into one SLIM message. Messages the caller marked concatenable that share
//! payload type and metadata travel together, their payloads back to back (for OTLP protobuf
//! the concatenation is itself a valid request holding all of them, so a consumer that knows
//! nothing of frames still reads it). The metadata lists the ids and payload lengths, so a
//! receiver acknowledges and deduplicates each message on its own: a message sent again may
//! travel with different companions than the first time.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use thiserror::Error;

use otlp::wire::{MESSAGE_IDS_KEY, MESSAGE_ID_KEY, MESSAGE_LENGTHS_KEY};

use crate::delivery::message::Outgoing;

/// Messages per frame at most: the ids travel in the clear metadata, which a receiver keeps
/// in memory while it splits the frame.
pub const MAX_MESSAGES_PER_FRAME: usize = 1024;

/// Bytes of packed messages per SLIM message at most. Each SLIM message costs one MLS signature
/// and its verification at every member: 100-span requests (13.5 KB) in 256 KiB frames took
/// 1.4× the requests per second of 32 KiB frames on the same CPU (BENCHMARKS.md); 1 MiB gained
/// nothing more. SLIM keeps its last 512 messages for retransmission only with its reliability
/// on, which slim-node turns off, and bytes in flight are bounded by [`WINDOW_UNIT`]. A single
/// message larger than this still travels (alone), up to SLIM's cap.
pub const TARGET_BYTES: usize = 256 * 1024;

/// A publish in flight takes one permit of the window per this many bytes (at least one), so
/// the window bounds bytes inside SLIM's queues (256 × 32 KiB = 8 MiB) as well as publishes.
pub const WINDOW_UNIT: usize = 32 * 1024;

/// Window permits a frame of `bytes` takes: one per [`WINDOW_UNIT`] begun, at most `window`.
pub(crate) fn window_permits(bytes: usize, window: usize) -> u32 {
    bytes.div_ceil(WINDOW_UNIT).clamp(1, window.max(1)) as u32
}

/// One SLIM message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The ids of the messages it holds, in order.
    pub ids: Vec<String>,
    pub payload: Vec<u8>,
    pub payload_type: String,
    pub metadata: HashMap<String, String>,
}

/// Messages that will travel in one SLIM message; the bytes are put together only when it is
/// sent, so that what waits is never copied.
#[derive(Debug)]
pub(crate) struct Planned {
    msgs: Vec<Arc<Outgoing>>,
    /// Payload and metadata bytes of the frame.
    size: usize,
    /// Closed because the next message did not fit: waiting would not make it larger.
    full: bool,
}

/// Bytes of metadata as they count against the message cap, without the message id.
fn shared_metadata_size(msg: &Outgoing) -> usize {
    msg.metadata
        .iter()
        .filter(|(k, _)| k.as_str() != MESSAGE_ID_KEY)
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

/// Bytes one message adds to a frame's listing: its id, its length, two separators.
fn listing_size(msg: &Outgoing) -> usize {
    msg.id.len() + 1 + digits(msg.payload.len()) + 1
}

fn digits(n: usize) -> usize {
    n.checked_ilog10().unwrap_or(0) as usize + 1
}

/// Whether `a` and `b` may share a frame: both concatenable, same type, same metadata but
/// for the id.
fn same_kind(a: &Outgoing, b: &Outgoing) -> bool {
    let shared =
        |m: &Outgoing| m.metadata.len() - usize::from(m.metadata.contains_key(MESSAGE_ID_KEY));
    a.concatenable
        && b.concatenable
        && a.payload_type == b.payload_type
        && shared(a) == shared(b)
        && a.metadata
            .iter()
            .filter(|(k, _)| k.as_str() != MESSAGE_ID_KEY)
            .all(|(k, v)| b.metadata.get(k) == Some(v))
}

impl Planned {
    fn new(msg: Arc<Outgoing>) -> Self {
        let size = msg.payload.len()
            + shared_metadata_size(&msg)
            + MESSAGE_IDS_KEY.len()
            + MESSAGE_LENGTHS_KEY.len()
            + listing_size(&msg);
        Planned {
            msgs: vec![msg],
            size,
            full: false,
        }
    }

    /// What the frame would weigh with `msg` added.
    fn size_with(&self, msg: &Outgoing) -> usize {
        self.size + msg.payload.len() + listing_size(msg)
    }

    fn add(&mut self, msg: Arc<Outgoing>) {
        self.size = self.size_with(&msg);
        self.msgs.push(msg);
    }

    /// Whether the frame is as full as it gets (more messages would not have fitted).
    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    /// How many messages it holds.
    pub(crate) fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Puts the frame together.
    pub(crate) fn build(&self) -> Frame {
        let first = &self.msgs[0];
        let mut metadata: HashMap<String, String> = first
            .metadata
            .iter()
            .filter(|(k, _)| k.as_str() != MESSAGE_ID_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let ids: Vec<String> = self.msgs.iter().map(|m| m.id.clone()).collect();
        if let [only] = self.msgs.as_slice() {
            // One message: the plain form every OTLP-over-SLIM consumer knows.
            metadata.insert(MESSAGE_ID_KEY.to_string(), only.id.clone());
            return Frame {
                ids,
                payload: only.payload.clone(),
                payload_type: only.payload_type.clone(),
                metadata,
            };
        }
        let mut payload = Vec::with_capacity(self.msgs.iter().map(|m| m.payload.len()).sum());
        let mut lengths = String::new();
        for (i, m) in self.msgs.iter().enumerate() {
            payload.extend_from_slice(&m.payload);
            if i > 0 {
                lengths.push(',');
            }
            lengths.push_str(&m.payload.len().to_string());
        }
        metadata.insert(MESSAGE_IDS_KEY.to_string(), ids.join(","));
        metadata.insert(MESSAGE_LENGTHS_KEY.to_string(), lengths);
        Frame {
            ids,
            payload,
            payload_type: first.payload_type.clone(),
            metadata,
        }
    }
}

/// Plans `msgs` into as few frames as fit under `cap` bytes (payload plus metadata), keeping
/// the order of the messages within each kind. A message that is not concatenable, or does
/// not fit with any other, travels alone.
pub(crate) fn pack(msgs: Vec<Arc<Outgoing>>, cap: usize) -> Vec<Planned> {
    let mut frames = Vec::new();
    // Open frames, one per kind; few kinds (one per signal), so a list.
    let mut open: Vec<Planned> = Vec::new();
    for msg in msgs {
        if !msg.concatenable {
            let mut alone = Planned::new(msg);
            alone.full = true;
            frames.push(alone);
            continue;
        }
        match open.iter().position(|o| same_kind(&o.msgs[0], &msg)) {
            Some(i) if open[i].len() < MAX_MESSAGES_PER_FRAME && open[i].size_with(&msg) <= cap => {
                open[i].add(msg)
            }
            Some(i) => {
                let mut full = std::mem::replace(&mut open[i], Planned::new(msg));
                full.full = true;
                frames.push(full);
            }
            None => open.push(Planned::new(msg)),
        }
    }
    frames.extend(open);
    frames
}

/// A frame whose listing does not describe its payload.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("a frame's message listing is malformed: {0}")]
pub struct FrameError(String);

/// One message inside a received SLIM message: its id and where its payload lies.
pub type Part = (String, Range<usize>);

/// The messages a received SLIM message holds: `(id, byte range)` each. `None` when the
/// metadata names no id (a sender that does not acknowledge); one entry for a single message.
pub fn parts(
    metadata: &HashMap<String, String>,
    payload_len: usize,
) -> Option<Result<Vec<Part>, FrameError>> {
    if let Some(ids) = metadata.get(MESSAGE_IDS_KEY) {
        return Some(listed_parts(
            ids,
            metadata.get(MESSAGE_LENGTHS_KEY),
            payload_len,
        ));
    }
    let id = metadata.get(MESSAGE_ID_KEY)?;
    Some(Ok(vec![(id.clone(), 0..payload_len)]))
}

fn listed_parts(
    ids: &str,
    lengths: Option<&String>,
    payload_len: usize,
) -> Result<Vec<Part>, FrameError> {
    let lengths = lengths.ok_or_else(|| FrameError(format!("no {MESSAGE_LENGTHS_KEY}")))?;
    let ids: Vec<&str> = ids.split(',').collect();
    let lengths: Vec<usize> = lengths
        .split(',')
        .map(|l| l.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| FrameError(format!("{MESSAGE_LENGTHS_KEY}: {e}")))?;
    if ids.len() != lengths.len() {
        return Err(FrameError(format!(
            "{} ids but {} lengths",
            ids.len(),
            lengths.len()
        )));
    }
    let mut start = 0usize;
    let mut parts = Vec::with_capacity(ids.len());
    for (id, len) in ids.into_iter().zip(lengths) {
        let end = start
            .checked_add(len)
            .filter(|&end| end <= payload_len)
            .ok_or_else(|| {
                FrameError(format!("the lengths exceed the {payload_len}-byte payload"))
            })?;
        parts.push((id.to_string(), start..end));
        start = end;
    }
    if start != payload_len {
        return Err(FrameError(format!(
            "the lengths add up to {start} bytes, the payload has {payload_len}"
        )));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_takes_a_window_permit_per_32_kib_begun_and_never_more_than_the_window() {
        assert_eq!(window_permits(0, 256), 1);
        assert_eq!(window_permits(100, 256), 1);
        assert_eq!(window_permits(WINDOW_UNIT, 256), 1);
        assert_eq!(window_permits(WINDOW_UNIT + 1, 256), 2);
        assert_eq!(window_permits(TARGET_BYTES, 256), 8);
        assert_eq!(window_permits(64 * 1024 * 1024, 256), 256);
    }

    fn msg(id: &str, signal: &str, payload: &[u8]) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            id: id.into(),
            payload: payload.to_vec(),
            payload_type: "application/x-protobuf".into(),
            metadata: HashMap::from([
                ("otlp-signal".to_string(), signal.to_string()),
                (MESSAGE_ID_KEY.to_string(), id.to_string()),
            ]),
            concatenable: true,
        })
    }

    fn frames(msgs: Vec<Arc<Outgoing>>, cap: usize) -> Vec<Frame> {
        pack(msgs, cap).iter().map(Planned::build).collect()
    }

    fn split(frame: &Frame) -> Vec<(String, Vec<u8>)> {
        parts(&frame.metadata, frame.payload.len())
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|(id, r)| (id, frame.payload[r].to_vec()))
            .collect()
    }

    #[test]
    fn messages_of_one_kind_travel_in_one_frame_and_split_back() {
        let frames = frames(
            vec![
                msg("a", "logs", b"1"),
                msg("b", "logs", b"22"),
                msg("c", "logs", b""),
            ],
            1 << 20,
        );
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payload, b"122");
        assert_eq!(frames[0].metadata["otlp-signal"], "logs");
        assert!(!frames[0].metadata.contains_key(MESSAGE_ID_KEY));
        assert_eq!(
            split(&frames[0]),
            [
                ("a".to_string(), b"1".to_vec()),
                ("b".to_string(), b"22".to_vec()),
                ("c".to_string(), b"".to_vec())
            ]
        );
    }

    #[test]
    fn each_signal_gets_its_own_frames_in_order() {
        let frames = frames(
            vec![
                msg("t1", "traces", b"a"),
                msg("l1", "logs", b"b"),
                msg("t2", "traces", b"c"),
            ],
            1 << 20,
        );
        let ids: Vec<&[String]> = frames.iter().map(|f| f.ids.as_slice()).collect();
        assert_eq!(
            ids,
            [
                &["t1".to_string(), "t2".into()][..],
                &["l1".to_string()][..]
            ]
        );
        assert_eq!(
            frames[1].metadata[MESSAGE_ID_KEY], "l1",
            "alone: the plain form"
        );
    }

    #[test]
    fn no_frame_exceeds_the_cap_with_its_metadata() {
        let msgs: Vec<Arc<Outgoing>> = (0..50)
            .map(|i| msg(&format!("id-{i}"), "logs", &[7; 100]))
            .collect();
        let cap = 1000;
        let frames = frames(msgs, cap);
        assert!(frames.len() > 5);
        for f in &frames {
            let metadata: usize = f.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert!(f.payload.len() + metadata <= cap, "{f:?}");
        }
        let ids: Vec<String> = frames.iter().flat_map(|f| f.ids.clone()).collect();
        let expected: Vec<String> = (0..50).map(|i| format!("id-{i}")).collect();
        assert_eq!(ids, expected, "every message once, in order");
    }

    #[test]
    fn only_the_last_frame_of_a_kind_can_be_partial() {
        let msgs: Vec<Arc<Outgoing>> = (0..50)
            .map(|i| msg(&format!("id-{i}"), "logs", &[7; 100]))
            .collect();
        let planned = pack(msgs, 1000);
        let (last, full) = planned.split_last().unwrap();
        assert!(full.iter().all(Planned::is_full));
        assert!(!last.is_full(), "more could still join it");
    }

    #[test]
    fn a_frame_holds_at_most_the_message_limit() {
        let msgs: Vec<Arc<Outgoing>> = (0..MAX_MESSAGES_PER_FRAME + 1)
            .map(|i| msg(&i.to_string(), "logs", b"x"))
            .collect();
        let frames = frames(msgs, usize::MAX);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].ids.len(), MAX_MESSAGES_PER_FRAME);
    }

    #[test]
    fn messages_not_marked_concatenable_travel_alone() {
        let alone = |id: &str| {
            let mut m = Outgoing::clone(&msg(id, "logs", b"{}"));
            m.concatenable = false;
            Arc::new(m)
        };
        let (a, b) = (alone("a"), alone("b"));
        let frames = frames(vec![a, b], 1 << 20);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].metadata[MESSAGE_ID_KEY], "b");
    }

    #[test]
    fn a_listing_that_does_not_match_the_payload_is_an_error() {
        let md = |ids: &str, lengths: &str| {
            HashMap::from([
                (MESSAGE_IDS_KEY.to_string(), ids.to_string()),
                (MESSAGE_LENGTHS_KEY.to_string(), lengths.to_string()),
            ])
        };
        assert!(parts(&md("a,b", "1,2"), 3).unwrap().is_ok());
        assert!(parts(&md("a,b", "1,2"), 4).unwrap().is_err(), "short");
        assert!(parts(&md("a,b", "1,3"), 3).unwrap().is_err(), "long");
        assert!(parts(&md("a,b", "1"), 3).unwrap().is_err(), "count");
        assert!(parts(&md("a", "x"), 3).unwrap().is_err(), "number");
        assert!(
            parts(&md("a,b", &format!("{},1", usize::MAX)), 3)
                .unwrap()
                .is_err(),
            "overflow"
        );
        assert!(parts(&HashMap::new(), 3).is_none(), "no id at all");
    }
}
