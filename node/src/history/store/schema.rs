//! The store's tables and how their rows are laid out.
//!
//! Items are filed by time bucket: one row per request and bucket of [`BUCKET_NANOS`] that its
//! items fall in, the items inside in `(time, seq)` order. A request whose items share a
//! bucket (most: a batch is sent once its items are done) is one B-tree insert, not one per
//! item.

use std::borrow::Cow;
use std::cell::RefCell;

use redb::TableDefinition;
use sha2::{Digest, Sha256};

use otlp::Signal;

use super::Position;

/// The width of a bucket. Wider buckets mean fewer rows per request whose items spread over
/// time, and more of a bucket read to find a page's start in it.
pub(super) const BUCKET_NANOS: u64 = 100_000_000;
/// Bytes counted per item beyond its own: its head in its row.
pub(super) const OVERHEAD: u64 = ITEM_HEAD as u64;
/// Bytes counted per row beyond its items: its key, its head and its bucket in the request's
/// row (each context id it names counts 16 more).
pub(super) const ROW_OVERHEAD: u64 = 16 + ROW_HEAD as u64 + 8;
/// Bytes counted per context beyond its own: its id and reference count.
pub(super) const CONTEXT_OVERHEAD: u64 = 24;
/// The store's page cache.
pub(super) const CACHE_BYTES: usize = 64 << 20;

/// Per signal, `(bucket, the request's first seq) → row` ([`ItemRow`]).
pub(super) const TRACES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("trace_rows");
pub(super) const METRICS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("metric_rows");
pub(super) const LOGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("log_rows");
/// One row per request in arrival order: `first seq → signal (1 byte), received, bytes (8
/// each), items, buckets (4 each), each bucket (8), the message id`, numbers big-endian.
pub(super) const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("requests");
/// The bytes of a request's row before its buckets.
pub(super) const REQUEST_HEAD: usize = 25;
/// `message id → first seq` of the messages stored.
pub(super) const MESSAGES: TableDefinition<&str, u64> = TableDefinition::new("messages");
/// `(received, first seq) → message id` of the messages archived to object storage and
/// removed here: their ids stay in `messages` until the store's `max-age`, so that one sent
/// again is still recognised.
pub(super) const ARCHIVED_IDS: TableDefinition<(u64, u64), &str> =
    TableDefinition::new("archived_ids");
/// `id → refcount (8 bytes, big-endian) ++ context`; the count is of items.
pub(super) const CONTEXTS: TableDefinition<u128, &[u8]> = TableDefinition::new("contexts");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The bucket of an item at `time`.
pub(super) fn bucket_of(time: u64) -> u64 {
    time / BUCKET_NANOS
}

/// The item times bucket `bucket` holds, `[start, end)`.
pub(super) fn bucket_times(bucket: u64) -> (u64, u64) {
    let start = bucket.saturating_mul(BUCKET_NANOS);
    (start, start.saturating_add(BUCKET_NANOS))
}

/// The big-endian number at `at` in a row (0 where the row is too short).
pub(super) fn u64_at(value: &[u8], at: usize) -> u64 {
    value
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The big-endian number at `at` in a row (0 where the row is too short).
pub(super) fn u32_at(value: &[u8], at: usize) -> u32 {
    value
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// A signal's table of items, open for writing.
pub(super) type ItemTable<'t> = redb::Table<'t, (u64, u64), &'static [u8]>;

/// One row of `requests`, read.
pub(super) struct Request<'a> {
    pub(super) signal: Option<Signal>,
    pub(super) received: u64,
    pub(super) bytes: u64,
    /// Items stored (their numbers are the row's key on).
    pub(super) items: u64,
    buckets: &'a [u8],
    pub(super) message_id: &'a [u8],
}

impl<'a> Request<'a> {
    pub(super) fn read(value: &'a [u8]) -> Request<'a> {
        let buckets = u32_at(value, 21) as usize;
        let ids_at = (REQUEST_HEAD + 8 * buckets).min(value.len());
        Request {
            signal: value.first().and_then(|c| signal_of(*c)),
            received: u64_at(value, 1),
            bytes: u64_at(value, 9),
            items: u64::from(u32_at(value, 17)),
            buckets: value.get(REQUEST_HEAD..ids_at).unwrap_or_default(),
            message_id: value.get(ids_at..).unwrap_or_default(),
        }
    }

    /// The buckets its items fall in, each a row of its signal's table.
    pub(super) fn buckets(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets
            .chunks_exact(8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()))
    }

    /// The row of a request.
    pub(super) fn write(
        signal: Signal,
        received: u64,
        bytes: u64,
        items: u32,
        buckets: &[u64],
        message_id: &[u8],
    ) -> Vec<u8> {
        let mut row = Vec::with_capacity(REQUEST_HEAD + 8 * buckets.len() + message_id.len());
        row.push(signal_code(signal));
        row.extend_from_slice(&received.to_be_bytes());
        row.extend_from_slice(&bytes.to_be_bytes());
        row.extend_from_slice(&items.to_be_bytes());
        row.extend_from_slice(&(buckets.len() as u32).to_be_bytes());
        for b in buckets {
            row.extend_from_slice(&b.to_be_bytes());
        }
        row.extend_from_slice(message_id);
        row
    }
}

/// A row's head: items (4 bytes), context ids (4).
const ROW_HEAD: usize = 8;
/// An item's head in its row: time, seq (8 bytes each), its context among the row's (4), the
/// end of its bytes in the row's data (4).
const ITEM_HEAD: usize = 24;
/// Set in a row's count of context ids when its data is one zstd frame. Rows written before
/// compression (or whose data would not shrink) have it clear and read as they are.
const PACKED: u32 = 1 << 31;
/// zstd's level for a row's data: the store is bound by the bytes it syncs, and level 1
/// shrinks OTLP items several times over at a few hundred MB/s on one core.
const PACK_LEVEL: i32 = 1;
/// Rows with less data than this stay plain: a frame's own bytes would eat the gain.
const PACK_FROM: usize = 128;
/// Rows with more data than this stay plain (a request is far smaller: 64 MiB by default), so
/// that a packed row never unpacks to more: a damaged one cannot make a reader allocate GiBs.
const PACK_UP_TO: usize = 256 << 20;

/// A row's head: its items, its context ids, whether its data is packed.
fn row_head(value: &[u8]) -> (usize, usize, bool) {
    let k = u32_at(value, 4);
    (
        u32_at(value, 0) as usize,
        (k & !PACKED) as usize,
        k & PACKED != 0,
    )
}

/// One row of a signal's table: a request's items in one bucket, in `(time, seq)` order.
/// Layout: items `n` and context ids `k` (4 bytes each; `k` with [`PACKED`] when the data is
/// compressed), `k` ids (16 each), `n` item heads, then the data: the items' bytes one after
/// the other, or one zstd frame of them. The heads stay uncompressed, so that finding and
/// ordering items (pages, retention) never unpacks a row; only taking an item's bytes does.
pub(super) struct ItemRow<'a> {
    ids: &'a [u8],
    heads: &'a [u8],
    data: &'a [u8],
    packed: bool,
}

/// One item to file in a row.
pub(super) struct NewItem<'a> {
    pub(super) time: u64,
    pub(super) seq: u64,
    pub(super) context: u128,
    pub(super) bytes: &'a [u8],
}

impl<'a> ItemRow<'a> {
    /// `None` if it is not a whole row.
    pub(super) fn read(value: &'a [u8]) -> Option<ItemRow<'a>> {
        let (n, k, packed) = row_head(value);
        let heads_at = ROW_HEAD.checked_add(k.checked_mul(16)?)?;
        let data_at = heads_at.checked_add(n.checked_mul(ITEM_HEAD)?)?;
        let row = ItemRow {
            ids: value.get(ROW_HEAD..heads_at)?,
            heads: value.get(heads_at..data_at)?,
            data: value.get(data_at..)?,
            packed,
        };
        // Each item ends where or after the one before it does, and (plain) inside the data;
        // a packed row's frame is checked when it is unpacked, so that retention, which needs
        // only the heads, still counts the items of a row whose frame is damaged.
        let mut end = 0;
        for i in 0..row.len() {
            let next = row.end(i);
            if next < end {
                return None;
            }
            end = next;
        }
        let whole = if row.packed {
            end <= PACK_UP_TO
        } else {
            end <= row.data.len()
        };
        whole.then_some(row)
    }

    /// The length of its data unpacked: where its last item ends.
    fn data_len(&self) -> usize {
        match self.len() {
            0 => 0,
            n => self.end(n - 1),
        }
    }

    /// Whether its data must be unpacked ([`ItemRow::unpack`]) before items are taken.
    pub(super) fn is_packed(&self) -> bool {
        self.packed
    }

    /// Its data, unpacked if need be, for [`ItemRow::item`]; `None` if it does not unpack.
    pub(super) fn unpack(&self) -> Option<Cow<'a, [u8]>> {
        if !self.packed {
            return Some(Cow::Borrowed(self.data));
        }
        // The frame says how much it unpacks to: the end of the last item, exactly.
        let size = zstd::zstd_safe::get_frame_content_size(self.data).ok()??;
        if size != self.data_len() as u64 {
            return None;
        }
        let data = UNPACKER.with_borrow_mut(|unpacker| {
            let unpacker = match unpacker {
                Some(u) => u,
                None => unpacker.insert(zstd::bulk::Decompressor::new().ok()?),
            };
            unpacker.decompress(self.data, self.data_len()).ok()
        })?;
        (data.len() == self.data_len()).then_some(Cow::Owned(data))
    }

    /// Items in it.
    pub(super) fn len(&self) -> usize {
        self.heads.len() / ITEM_HEAD
    }

    fn head(&self, i: usize) -> &'a [u8] {
        self.heads
            .get(i * ITEM_HEAD..(i + 1) * ITEM_HEAD)
            .unwrap_or_default()
    }

    fn end(&self, i: usize) -> usize {
        u32_at(self.head(i), 20) as usize
    }

    /// The `(time, seq)` of item `i`.
    pub(super) fn position(&self, i: usize) -> Position {
        let head = self.head(i);
        (u64_at(head, 0), u64_at(head, 8))
    }

    /// The context id of item `i`.
    pub(super) fn context(&self, i: usize) -> Option<u128> {
        let k = u32_at(self.head(i), 16) as usize;
        self.ids
            .get(k * 16..k * 16 + 16)
            .and_then(|b| b.try_into().ok())
            .map(u128::from_be_bytes)
    }

    /// The bytes of item `i`, out of the row's `data` ([`ItemRow::unpack`]).
    pub(super) fn item<'d>(&self, data: &'d [u8], i: usize) -> &'d [u8] {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        data.get(start..self.end(i)).unwrap_or_default()
    }

    /// The first item after `position` (or at it, with `inclusive`).
    pub(super) fn first_from(&self, position: Position, inclusive: bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let p = self.position(mid);
            if p < position || (!inclusive && p == position) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The item at `position`, if the row holds it.
    pub(super) fn find(&self, position: Position) -> Option<usize> {
        let i = self.first_from(position, true);
        (i < self.len() && self.position(i) == position).then_some(i)
    }

    /// Gives a row built with its request's items numbered from 0 ([`super::Prepared`]) their
    /// numbers: each is offset by `first_seq`, the request's first.
    pub(super) fn number(row: &mut [u8], first_seq: u64) {
        let (n, k, _) = row_head(row);
        let heads_at = ROW_HEAD + 16 * k;
        for i in 0..n {
            let at = heads_at + i * ITEM_HEAD + 8;
            if let Some(field) = row.get_mut(at..at + 8) {
                let seq = u64_at(field, 0).saturating_add(first_seq);
                field.copy_from_slice(&seq.to_be_bytes());
            }
        }
    }

    /// How many of its items each of its contexts has.
    pub(super) fn uses(&self) -> Vec<(u128, u64)> {
        let mut uses: Vec<(u128, u64)> = self
            .ids
            .chunks_exact(16)
            .map(|b| (u128::from_be_bytes(b.try_into().unwrap_or_default()), 0))
            .collect();
        for i in 0..self.len() {
            if let Some(use_) = uses.get_mut(u32_at(self.head(i), 16) as usize) {
                use_.1 += 1;
            }
        }
        uses
    }

    /// The row of `items` (in `(time, seq)` order); with the bytes it counts. `None` if it
    /// would not fit the row's 32-bit offsets (a request is limited to far less).
    pub(super) fn write(items: &[NewItem<'_>]) -> Option<(Vec<u8>, u64)> {
        let data: usize = items.iter().map(|i| i.bytes.len()).sum();
        u32::try_from(data).ok()?;
        u32::try_from(items.len()).ok()?;
        // Each context's place among the row's: looked for in the list while it is short (most
        // requests have one or two), by hashing once it is not (a request may have many).
        let mut ids: Vec<u128> = Vec::new();
        let mut places: Option<std::collections::HashMap<u128, usize>> = None;
        let mut place = |id: u128| {
            let found = match &places {
                Some(places) => places.get(&id).copied(),
                None => ids.iter().position(|x| *x == id),
            };
            found.unwrap_or_else(|| {
                ids.push(id);
                match &mut places {
                    Some(places) => {
                        places.insert(id, ids.len() - 1);
                    }
                    None if ids.len() > 16 => {
                        places = Some(ids.iter().enumerate().map(|(k, id)| (*id, k)).collect());
                    }
                    None => {}
                }
                ids.len() - 1
            })
        };
        let contexts: Vec<usize> = items.iter().map(|i| place(i.context)).collect();
        let heads = ROW_HEAD + 16 * ids.len() + ITEM_HEAD * items.len();
        let mut row = Vec::with_capacity(heads + data);
        row.extend_from_slice(&(items.len() as u32).to_be_bytes());
        row.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in &ids {
            row.extend_from_slice(&id.to_be_bytes());
        }
        let mut end = 0usize;
        for (item, k) in items.iter().zip(contexts) {
            end += item.bytes.len();
            row.extend_from_slice(&item.time.to_be_bytes());
            row.extend_from_slice(&item.seq.to_be_bytes());
            row.extend_from_slice(&(k as u32).to_be_bytes());
            row.extend_from_slice(&(end as u32).to_be_bytes());
        }
        for item in items {
            row.extend_from_slice(item.bytes);
        }
        if (PACK_FROM..=PACK_UP_TO).contains(&data) {
            if let Some(packed) = pack(&row[heads..]) {
                row.truncate(heads);
                row.extend_from_slice(&packed);
                row[4..8].copy_from_slice(&(ids.len() as u32 | PACKED).to_be_bytes());
            }
        }
        let counted = (row.len() - heads) as u64
            + OVERHEAD * items.len() as u64
            + ROW_OVERHEAD
            + 16 * ids.len() as u64;
        Some((row, counted))
    }
}

thread_local! {
    /// Each writing thread's zstd context, kept: making one costs more than packing a row.
    static PACKER: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// Each reading thread's zstd context.
    static UNPACKER: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `data` as one zstd frame (its size in the frame's header), when that is smaller.
fn pack(data: &[u8]) -> Option<Vec<u8>> {
    PACKER.with_borrow_mut(|packer| {
        let packer = match packer {
            Some(p) => p,
            None => packer.insert(zstd::bulk::Compressor::new(PACK_LEVEL).ok()?),
        };
        let packed = packer.compress(data).ok()?;
        (packed.len() < data.len()).then_some(packed)
    })
}

/// The digest of `context` of `signal`: how a context seen before is recognised (and, in
/// stores written before [`super::context_ids`], its id).
pub(super) fn context_digest(signal: Signal, context: &[u8]) -> u128 {
    let digest = Sha256::new()
        .chain_update([signal_code(signal)])
        .chain_update(context)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(id)
}

pub(super) fn table(signal: Signal) -> TableDefinition<'static, (u64, u64), &'static [u8]> {
    match signal {
        Signal::Traces => TRACES,
        Signal::Metrics => METRICS,
        Signal::Logs => LOGS,
    }
}

pub(super) fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

pub(super) fn signal_of(code: u8) -> Option<Signal> {
    Signal::ALL.get(usize::from(code)).copied()
}

/// The reference count at the head of a context's value.
pub(super) fn refcount(value: &[u8]) -> u64 {
    u64_at(value, 0)
}

/// The meta key of `signal`'s item count.
pub(super) fn count_key(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "traces",
        Signal::Metrics => "metrics",
        Signal::Logs => "logs",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items of `sizes` bytes each, each a repetition of its own byte (compressible) or
    /// pseudo-random bytes (not).
    fn items(sizes: &[usize], compressible: bool) -> Vec<Vec<u8>> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                (0..n)
                    .map(|_| {
                        if compressible {
                            b'a' + i as u8
                        } else {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            state as u8
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn row(bytes: &[Vec<u8>]) -> (Vec<u8>, u64) {
        let new: Vec<NewItem<'_>> = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| NewItem {
                time: 1_000 + i as u64,
                seq: 10 + i as u64,
                context: (i % 2) as u128,
                bytes: b,
            })
            .collect();
        ItemRow::write(&new).expect("a row")
    }

    fn read_back(value: &[u8]) -> Vec<Vec<u8>> {
        let row = ItemRow::read(value).expect("a whole row");
        let data = row.unpack().expect("its data");
        (0..row.len())
            .map(|i| row.item(&data, i).to_vec())
            .collect()
    }

    #[test]
    fn a_row_of_compressible_items_is_packed_and_reads_back_the_same() {
        let bytes = items(&[300, 1, 0, 500], true);
        let (value, counted) = row(&bytes);
        let read = ItemRow::read(&value).expect("a whole row");
        assert!(read.is_packed());
        assert!(value.len() < 801, "{} bytes", value.len());
        assert_eq!(read_back(&value), bytes);
        assert_eq!(read.position(3), (1_003, 13));
        assert_eq!(read.context(3), Some(1));
        // What is counted is what is kept: the packed data, not the items' own length.
        let data = value.len() - ROW_HEAD - 2 * 16 - 4 * ITEM_HEAD;
        assert_eq!(counted, data as u64 + 4 * OVERHEAD + ROW_OVERHEAD + 2 * 16);
    }

    #[test]
    fn a_row_that_would_not_shrink_or_is_small_stays_plain() {
        for bytes in [items(&[400, 400], false), items(&[60, 60], true)] {
            let (value, counted) = row(&bytes);
            assert!(!ItemRow::read(&value).expect("a whole row").is_packed());
            assert_eq!(read_back(&value), bytes);
            assert_eq!(
                counted,
                bytes.iter().map(|b| b.len() as u64).sum::<u64>()
                    + 2 * OVERHEAD
                    + ROW_OVERHEAD
                    + 2 * 16
            );
        }
    }

    #[test]
    fn a_packed_row_cut_short_or_unpacking_to_another_length_is_damaged() {
        let (value, _) = row(&items(&[300, 500], true));
        let cut = &value[..value.len() - 3];
        assert!(ItemRow::read(cut).is_none_or(|r| r.unpack().is_none()));
        // The last item said to end one byte later than the frame unpacks to.
        let mut longer = value.clone();
        let end_at = ROW_HEAD + 2 * 16 + ITEM_HEAD + 20;
        longer[end_at..end_at + 4].copy_from_slice(&801u32.to_be_bytes());
        assert!(ItemRow::read(&longer)
            .expect("its heads")
            .unpack()
            .is_none());
        // A frame whose bytes are damaged inside.
        let mut garbled = value.clone();
        let data_at = ROW_HEAD + 2 * 16 + 2 * ITEM_HEAD;
        for b in &mut garbled[data_at + 8..] {
            *b = !*b;
        }
        assert!(ItemRow::read(&garbled).is_none_or(|r| r.unpack().is_none()));
    }

    #[test]
    fn a_packed_row_claiming_more_than_a_row_may_hold_is_refused_before_anything_is_allocated() {
        // One item said to end at 4 GiB, then a frame header saying so too: refused on the
        // item's head alone.
        let mut value = Vec::new();
        value.extend_from_slice(&1u32.to_be_bytes());
        value.extend_from_slice(&(1 | PACKED).to_be_bytes());
        value.extend_from_slice(&[0; 16 + 20]);
        value.extend_from_slice(&u32::MAX.to_be_bytes());
        value.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x80, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(ItemRow::read(&value).is_none());
    }

    #[test]
    fn items_whose_ends_go_back_make_a_damaged_row() {
        for compressible in [true, false] {
            let (mut value, _) = row(&items(&[300, 500, 200], compressible));
            let end_at = ROW_HEAD + 2 * 16 + 20;
            value[end_at..end_at + 4].copy_from_slice(&5_000u32.to_be_bytes());
            assert!(
                ItemRow::read(&value).is_none(),
                "compressible {compressible}"
            );
        }
    }

    #[test]
    fn the_heads_of_a_packed_row_whose_frame_is_damaged_still_read() {
        let (mut value, _) = row(&items(&[300, 500], true));
        let data_at = ROW_HEAD + 2 * 16 + 2 * ITEM_HEAD;
        value[data_at] ^= 0xff;
        let read = ItemRow::read(&value).expect("its heads");
        assert_eq!(read.uses(), vec![(0, 1), (1, 1)]);
        assert!(read.unpack().is_none());
    }
}
