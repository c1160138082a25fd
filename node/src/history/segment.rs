//! A sealed segment: the items of one signal from one time window, immutable, as the store
//! keeps them in object storage (issue 25). One file, readable from its end:
//!
//! ```text
//! "SLIMSEG1"                                   magic, 8 bytes
//! block …                                      zstd frames of records, in (time, seq)
//!                                              order: time u64 | seq u64 | context u32 |
//!                                              length u32 | item
//! contexts                                     one zstd frame: (length u32 | context)…
//! index                                        JSON (SegmentIndex)
//! index length u32 | "SLIMSEG1"                the last 12 bytes
//! ```
//!
//! (numbers big-endian). A reader takes the last 12 bytes, then the index — time range,
//! items, services with their item counts, and where each block starts with its own time
//! range — and reads only the blocks a query needs. Contexts (resource and scope) are kept
//! once per segment, as the store keeps them; an item with its context is a resource entry
//! ([`otlp::items::entry`]). Why a format of our own and not Parquet: the items stay the
//! OTLP bytes they arrived as (a page is those bytes put together, never a re-encoding),
//! and it adds no dependency. (Its size per span against real data goes into BENCHMARKS.md
//! once the store seals segments.)

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use serde::{Deserialize, Serialize};

use otlp::Signal;

/// The first and the last eight bytes of every segment.
pub const MAGIC: &[u8; 8] = b"SLIMSEG1";
/// Uncompressed bytes of records per block, about (a block holds at least one).
pub const BLOCK_BYTES: usize = 1 << 20;
/// zstd level: good ratio, fast enough to seal on the store's thread.
const LEVEL: i32 = 3;
/// Bytes of one record before its item.
const RECORD_HEAD: usize = 24;
/// Largest index a reader accepts (a segment's index is a few KiB).
const MAX_INDEX: usize = 16 << 20;
/// Largest block or contexts table a reader decompresses: a segment comes from a bucket other
/// nodes write to, and a damaged one must not fill memory.
const MAX_DECOMPRESSED: u64 = 256 << 20;

/// Why a segment cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Not a segment, cut short, or damaged.
    #[error("not a readable segment: {0}")]
    Damaged(String),
}

fn damaged(why: impl Into<String>) -> SegmentError {
    SegmentError::Damaged(why.into())
}

/// Where one block is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIndex {
    /// Offset of its zstd frame in the segment.
    pub offset: u64,
    /// Length of its zstd frame.
    pub len: u64,
    /// Items in it.
    pub items: u64,
    /// Time of its first item.
    pub start: u64,
    /// Time of its last item.
    pub last: u64,
}

/// What a segment holds, readable without its blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentIndex {
    /// Format version.
    pub version: u32,
    /// `traces`, `metrics` or `logs`.
    pub signal: String,
    /// Time of its first item (Unix nanoseconds).
    pub start: u64,
    /// Time of its last item.
    pub last: u64,
    /// Items in all.
    pub items: u64,
    /// Items per `service.name` (`""`: resources without one).
    pub services: BTreeMap<String, u64>,
    /// Offset and length of the contexts' zstd frame, and how many there are.
    pub contexts: (u64, u64, u32),
    /// The blocks, in time order.
    pub blocks: Vec<BlockIndex>,
}

/// One item going into a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentItem<'a> {
    /// Its time (Unix nanoseconds).
    pub time: u64,
    /// Its number in the store that sealed it: with the store's id, the item's identity.
    pub seq: u64,
    /// Its context (resource and scope), as `otlp::items` encodes it.
    pub context: &'a [u8],
    /// The item's own bytes.
    pub item: &'a [u8],
}

/// Seals `items` of `signal` (in `(time, seq)` order) into a segment.
pub fn seal<'a>(
    signal: Signal,
    items: impl IntoIterator<Item = SegmentItem<'a>>,
) -> Result<Vec<u8>, SegmentError> {
    seal_with(signal, items, BLOCK_BYTES)
}

/// [`seal`] with blocks of about `block_bytes` uncompressed.
pub fn seal_with<'a>(
    signal: Signal,
    items: impl IntoIterator<Item = SegmentItem<'a>>,
    block_bytes: usize,
) -> Result<Vec<u8>, SegmentError> {
    let mut out = MAGIC.to_vec();
    let mut contexts: Vec<&[u8]> = Vec::new();
    let mut known: HashMap<&[u8], u32> = HashMap::new();
    // Items per context; summed per service once all are in.
    let mut per_context: Vec<u64> = Vec::new();
    let mut index = SegmentIndex {
        version: 1,
        signal: signal.as_str().to_string(),
        start: 0,
        last: 0,
        items: 0,
        services: BTreeMap::new(),
        contexts: (0, 0, 0),
        blocks: Vec::new(),
    };
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK_BYTES + 4096);
    let mut block_index: Option<BlockIndex> = None;
    let mut last_key: Option<(u64, u64)> = None;
    for item in items {
        let context = match known.get(item.context) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(contexts.len()).map_err(|_| damaged("too many contexts"))?;
                known.insert(item.context, i);
                contexts.push(item.context);
                per_context.push(0);
                i
            }
        };
        if last_key.is_some_and(|last| (item.time, item.seq) <= last) {
            return Err(damaged("items must come in (time, seq) order, each once"));
        }
        last_key = Some((item.time, item.seq));
        let len = u32::try_from(item.item.len()).map_err(|_| damaged("an item over 4 GiB"))?;
        block.extend_from_slice(&item.time.to_be_bytes());
        block.extend_from_slice(&item.seq.to_be_bytes());
        block.extend_from_slice(&context.to_be_bytes());
        block.extend_from_slice(&len.to_be_bytes());
        block.extend_from_slice(item.item);
        if index.items == 0 {
            index.start = item.time;
        }
        index.last = item.time;
        index.items += 1;
        per_context[context as usize] += 1;
        let b = block_index.get_or_insert(BlockIndex {
            offset: 0,
            len: 0,
            items: 0,
            start: item.time,
            last: item.time,
        });
        b.items += 1;
        b.last = item.time;
        if block.len() >= block_bytes {
            flush(&mut out, &mut block, &mut block_index, &mut index.blocks)?;
        }
    }
    flush(&mut out, &mut block, &mut block_index, &mut index.blocks)?;
    for (context, items) in contexts.iter().zip(&per_context) {
        let service = otlp::items::context_service(context).unwrap_or_default();
        *index.services.entry(service).or_default() += items;
    }
    let mut table = Vec::new();
    for context in &contexts {
        let len = u32::try_from(context.len()).map_err(|_| damaged("a context over 4 GiB"))?;
        table.extend_from_slice(&len.to_be_bytes());
        table.extend_from_slice(context);
    }
    let compressed = compress(&table)?;
    index.contexts = (
        out.len() as u64,
        compressed.len() as u64,
        contexts.len() as u32,
    );
    out.extend_from_slice(&compressed);
    let json = serde_json::to_vec(&index).map_err(|e| damaged(e.to_string()))?;
    let json_len = u32::try_from(json.len()).map_err(|_| damaged("an index over 4 GiB"))?;
    out.extend_from_slice(&json);
    out.extend_from_slice(&json_len.to_be_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// Compresses the records gathered into a block and notes where it went.
fn flush(
    out: &mut Vec<u8>,
    block: &mut Vec<u8>,
    block_index: &mut Option<BlockIndex>,
    blocks: &mut Vec<BlockIndex>,
) -> Result<(), SegmentError> {
    let Some(mut b) = block_index.take() else {
        return Ok(());
    };
    let compressed = compress(block)?;
    b.offset = out.len() as u64;
    b.len = compressed.len() as u64;
    out.extend_from_slice(&compressed);
    blocks.push(b);
    block.clear();
    Ok(())
}

fn compress(bytes: &[u8]) -> Result<Vec<u8>, SegmentError> {
    zstd::bulk::compress(bytes, LEVEL).map_err(|e| damaged(format!("compressing: {e}")))
}

fn decompress(frame: &[u8]) -> Result<Vec<u8>, SegmentError> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(frame)
        .and_then(|d| d.take(MAX_DECOMPRESSED + 1).read_to_end(&mut out))
        .map_err(|e| damaged(format!("a block does not decompress: {e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(damaged("a block decompresses to more than 256 MiB"));
    }
    Ok(out)
}

/// The length of the index, from a segment's last 12 bytes.
pub fn index_len(tail: &[u8; 12]) -> Result<usize, SegmentError> {
    if &tail[4..] != MAGIC {
        return Err(damaged("it does not end with the segment magic"));
    }
    let len = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    if len > MAX_INDEX {
        return Err(damaged(format!("an index of {len} bytes")));
    }
    Ok(len)
}

/// An item read back: its `(time, seq)` and its resource entry.
pub type Record = ((u64, u64), Vec<u8>);

/// A whole segment, opened: its index and contexts read, its blocks read on demand.
pub struct Segment<'a> {
    bytes: &'a [u8],
    /// What it holds.
    pub index: SegmentIndex,
    table: Vec<u8>,
    /// Where each context lies in `table`.
    spans: Vec<(usize, usize)>,
}

impl<'a> Segment<'a> {
    /// Reads a segment's index and contexts.
    pub fn open(bytes: &'a [u8]) -> Result<Segment<'a>, SegmentError> {
        if bytes.len() < 20 || &bytes[..8] != MAGIC {
            return Err(damaged("it does not start with the segment magic"));
        }
        let tail: [u8; 12] = bytes[bytes.len() - 12..]
            .try_into()
            .map_err(|_| damaged("cut short"))?;
        let len = index_len(&tail)?;
        let end = bytes.len() - 12;
        let json = bytes
            .get(end.checked_sub(len).ok_or_else(|| damaged("cut short"))?..end)
            .ok_or_else(|| damaged("cut short"))?;
        let index: SegmentIndex =
            serde_json::from_slice(json).map_err(|e| damaged(format!("its index: {e}")))?;
        let (offset, len, count) = index.contexts;
        let table = decompress(slice(bytes, offset, len)?)?;
        // Capacities from what the bytes can hold, never from the index alone.
        let mut spans = Vec::with_capacity((count as usize).min(table.len() / 4));
        let mut at = 0;
        while at < table.len() {
            let len = read_u32(&table, at)? as usize;
            if table.len() < at + 4 + len {
                return Err(damaged("a context is cut short"));
            }
            spans.push((at + 4, len));
            at += 4 + len;
        }
        if spans.len() != count as usize {
            return Err(damaged("the contexts do not match the index"));
        }
        Ok(Segment {
            bytes,
            index,
            table,
            spans,
        })
    }

    /// Context `i`.
    fn context(&self, i: u32) -> Result<&[u8], SegmentError> {
        let (at, len) = *self
            .spans
            .get(i as usize)
            .ok_or_else(|| damaged("an item names a context it does not hold"))?;
        Ok(&self.table[at..at + len])
    }

    /// The items of block `i`, each as its `(time, seq)` and resource entry, in that order.
    pub fn block(&self, i: usize) -> Result<Vec<Record>, SegmentError> {
        let b = self
            .index
            .blocks
            .get(i)
            .ok_or_else(|| damaged("no such block"))?;
        let records = decompress(slice(self.bytes, b.offset, b.len)?)?;
        let mut out = Vec::with_capacity((b.items as usize).min(records.len() / RECORD_HEAD));
        let mut at = 0;
        let mut produced = 0u64;
        while at < records.len() {
            let head = records
                .get(at..at + RECORD_HEAD)
                .ok_or_else(|| damaged("a record is cut short"))?;
            let time = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
            let seq = u64::from_be_bytes(head[8..16].try_into().unwrap_or_default());
            let context = read_u32(head, 16)?;
            let len = read_u32(head, 20)? as usize;
            let item = records
                .get(at + RECORD_HEAD..at + RECORD_HEAD + len)
                .ok_or_else(|| damaged("an item is cut short"))?;
            let entry = otlp::items::entry(self.context(context)?, item)
                .map_err(|e| damaged(e.to_string()))?;
            // Each entry repeats its context: a block of tiny records naming a large one must
            // not multiply memory.
            produced += entry.len() as u64;
            if produced > 2 * MAX_DECOMPRESSED {
                return Err(damaged("a block's entries come to more than 512 MiB"));
            }
            out.push(((time, seq), entry));
            at += RECORD_HEAD + len;
        }
        if out.len() as u64 != b.items {
            return Err(damaged("a block does not hold what the index says"));
        }
        Ok(out)
    }

    /// The blocks holding items of `[start, end)`, by the index alone.
    pub fn blocks_for(&self, start: u64, end: u64) -> impl Iterator<Item = usize> + '_ {
        self.index
            .blocks
            .iter()
            .enumerate()
            .filter(move |(_, b)| b.last >= start && b.start < end)
            .map(|(i, _)| i)
    }
}

fn slice(bytes: &[u8], offset: u64, len: u64) -> Result<&[u8], SegmentError> {
    let start = usize::try_from(offset).map_err(|_| damaged("an offset out of range"))?;
    let end = start
        .checked_add(usize::try_from(len).map_err(|_| damaged("a length out of range"))?)
        .ok_or_else(|| damaged("a length out of range"))?;
    bytes
        .get(start..end)
        .ok_or_else(|| damaged("a block lies beyond the end"))
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, SegmentError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| damaged("cut short"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::items::{split_items, Parts};

    /// `requests` requests of `per` spans each from the load generator, taken apart, with
    /// their items given increasing times.
    fn spans(requests: usize, per: usize) -> Vec<Parts> {
        (0..requests)
            .map(|r| {
                let request = crate::tools::loadgen::payload::request(
                    Signal::Traces,
                    per,
                    1_000 + r as u64,
                    [r as u8; 16],
                );
                let mut parts = split_items(&request);
                for (i, item) in parts.items.iter_mut().enumerate() {
                    item.time_unix_nano = (r * per + i) as u64;
                }
                parts
            })
            .collect()
    }

    fn items(parts: &[Parts]) -> Vec<SegmentItem<'_>> {
        parts
            .iter()
            .flat_map(|p| {
                p.items.iter().map(|i| SegmentItem {
                    time: i.time_unix_nano,
                    seq: i.time_unix_nano + 1,
                    context: &p.contexts[i.context],
                    item: &i.bytes,
                })
            })
            .collect()
    }

    #[test]
    fn a_sealed_segment_gives_back_every_item_in_order_with_its_context() {
        let parts = spans(20, 100);
        let sealed = seal_with(Signal::Traces, items(&parts), 64 << 10).unwrap();
        let segment = Segment::open(&sealed).unwrap();
        assert_eq!(segment.index.items, 2000);
        assert_eq!((segment.index.start, segment.index.last), (0, 1999));
        assert!(segment.index.blocks.len() > 1, "{:?}", segment.index.blocks);
        let expected: Vec<Record> = parts
            .iter()
            .flat_map(|p| {
                p.items.iter().map(|i| {
                    (
                        (i.time_unix_nano, i.time_unix_nano + 1),
                        otlp::items::entry(&p.contexts[i.context], &i.bytes).unwrap(),
                    )
                })
            })
            .collect();
        let got: Vec<Record> = (0..segment.index.blocks.len())
            .flat_map(|b| segment.block(b).unwrap())
            .collect();
        assert_eq!(got, expected);
        let service = crate::tools::loadgen::payload::SERVICE_NAME;
        assert_eq!(
            segment.index.services,
            BTreeMap::from([(service.to_string(), 2000)])
        );
    }

    #[test]
    fn the_index_alone_picks_the_blocks_of_a_time_range() {
        let parts = spans(20, 100);
        let sealed = seal_with(Signal::Traces, items(&parts), 64 << 10).unwrap();
        let segment = Segment::open(&sealed).unwrap();
        let picked: Vec<usize> = segment.blocks_for(500, 600).collect();
        assert!(!picked.is_empty() && picked.len() < segment.index.blocks.len());
        let times: Vec<u64> = picked
            .iter()
            .flat_map(|&b| segment.block(b).unwrap())
            .map(|((t, _), _)| t)
            .collect();
        assert!((500..600).all(|t| times.contains(&t)));
    }

    #[test]
    fn items_out_of_order_or_twice_are_refused() {
        let parts = spans(1, 3);
        let mut list = items(&parts);
        list.swap(0, 2);
        assert!(seal(Signal::Traces, list).is_err());
        let mut twice = items(&parts);
        twice.push(twice[2].clone());
        assert!(seal(Signal::Traces, twice).is_err());
    }

    #[test]
    fn a_damaged_or_cut_segment_is_an_error_never_a_panic() {
        let parts = spans(2, 50);
        let sealed = seal(Signal::Traces, items(&parts)).unwrap();
        for cut in [0, 7, 20, sealed.len() / 2, sealed.len() - 1] {
            assert!(Segment::open(&sealed[..cut]).is_err(), "cut at {cut}");
        }
        for at in (0..sealed.len()).step_by(97) {
            let mut bad = sealed.clone();
            bad[at] ^= 0x5a;
            if let Ok(segment) = Segment::open(&bad) {
                for b in 0..segment.index.blocks.len() {
                    let _ = segment.block(b);
                }
            }
        }
    }

    #[test]
    fn an_empty_segment_holds_nothing() {
        let sealed = seal(Signal::Logs, Vec::new()).unwrap();
        let segment = Segment::open(&sealed).unwrap();
        assert_eq!((segment.index.items, segment.index.blocks.len()), (0, 0));
    }

    /// Prints the bytes per span of a segment of load-generator spans (see BENCHMARKS.md);
    /// asserts only that contexts and compression keep it below the raw items.
    #[test]
    fn a_segment_is_smaller_than_the_items_it_holds() {
        let parts = spans(100, 100);
        let raw: usize = parts
            .iter()
            .flat_map(|p| p.items.iter().map(|i| i.bytes.len()))
            .sum();
        let sealed = seal(Signal::Traces, items(&parts)).unwrap();
        eprintln!(
            "10,000 load-generator spans: {raw} bytes of items, segment {} bytes ({:.1} per span)",
            sealed.len(),
            sealed.len() as f64 / 10_000.0
        );
        assert!(sealed.len() < raw);
    }
}
