//! A fetch: its request (OTLP/JSON-style or protobuf), what it returns, and its answer's
//! encodings. HTTP is [`super::api`]'s.
//!
//! Request: `startTimeUnixNano` (inclusive, default 0), `endTimeUnixNano` (exclusive; 0 or
//! absent: now), `limit` (resource entries per page, default 1000, at most 10000), `cursor`
//! (the `nextCursor` of the previous page; with it the range is the cursor's). Each resource
//! entry holds one item, so `limit` counts items too.
//!
//! Answer: the signal's `Export*ServiceRequest` (`resourceSpans` / `resourceMetrics` /
//! `resourceLogs`) plus `nextCursor` and `hasMore`. In protobuf these two are fields 1000
//! (string) and 1001 (bool) of the request message, which OTLP decoders skip as unknown
//! fields. With `hasMore` false, `nextCursor` picks up what arrives later, exactly once
//! (`slim-node fetch --follow` polls with it).
//!
//! With a bucket (`location=`), items come from the local store and from the segments of
//! every store under the prefix, merged in `(time, store, seq)` order. When segments cannot be
//! read, the answer holds what could be, says `partial` (JSON `"partial": true`, protobuf
//! field 1002, and the `Slim-Node-Partial` header) and its `nextCursor` stands where the
//! request's did: asking again once the bucket answers gets the whole page, and paging with
//! the cursor never skips what was missing.

use serde::Deserialize;
use serde_json::Value;

use super::catalog::{Ask, Catalog, CatalogError, Mark, RemotePage};
use super::cursor::{Cursor, CursorError, Sealer};
use super::store::{position_after, Page, Place, Store, StoreError, Window};
use otlp::{items, json, Signal};

/// Entries per page unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 1000;
/// Entries per page at most.
pub const MAX_LIMIT: usize = 10_000;

/// The protobuf field of `nextCursor` in an answer.
const NEXT_CURSOR_FIELD: u32 = 1000;
/// The protobuf field of `hasMore` in an answer.
const HAS_MORE_FIELD: u32 = 1001;
/// The protobuf field of `partial` in an answer.
const PARTIAL_FIELD: u32 = 1002;

/// A fetch request as it comes in protobuf.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchRequestProto {
    /// Start (inclusive), Unix nanoseconds.
    #[prost(fixed64, tag = "1")]
    pub start_time_unix_nano: u64,
    /// End (exclusive), Unix nanoseconds; 0: now.
    #[prost(fixed64, tag = "2")]
    pub end_time_unix_nano: u64,
    /// Entries per page; 0: the default.
    #[prost(int64, tag = "3")]
    pub limit: i64,
    /// The previous page's `nextCursor`.
    #[prost(string, tag = "4")]
    pub cursor: String,
}

/// A fetch request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Start (inclusive).
    pub start: u64,
    /// End (exclusive); `None`: now.
    pub end: Option<u64>,
    /// Entries per page.
    pub limit: usize,
    /// The previous page's cursor.
    pub cursor: Option<String>,
}

/// Why a fetch is refused (a 400) or failed (a 500).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request is not valid.
    #[error("{0}")]
    Bad(String),
    /// The cursor does not open.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored item cannot be rendered (a fault on this side, not the client's).
    #[error("a stored item cannot be rendered: {0}")]
    Render(otlp::CodecError),
}

/// Reads the sealed segments of a window, as [`Catalog::page`].
pub type Remote<'a> = &'a dyn Fn(&Ask<'_>) -> Result<RemotePage, CatalogError>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FetchJson {
    start_time_unix_nano: Option<Value>,
    end_time_unix_nano: Option<Value>,
    limit: Option<Value>,
    cursor: Option<String>,
}

/// A 64-bit time as OTLP/JSON writes it: a string of digits or a number.
fn time_of(value: Option<Value>, name: &str) -> Result<u64, FetchError> {
    let bad = || {
        FetchError::Bad(format!(
            "{name} must be Unix nanoseconds, as a non-negative integer or a string of digits"
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(bad),
        Some(Value::String(s)) => s.parse().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

impl Fetch {
    /// Reads an `application/json` body (an empty body asks for the defaults).
    pub fn from_json(body: &[u8]) -> Result<Fetch, FetchError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Fetch::checked(0, 0, 0, String::new());
        }
        let parsed: FetchJson = serde_json::from_slice(body).map_err(|e| {
            FetchError::Bad(format!(
                "the body is not a fetch request ({e}); expected {{\"startTimeUnixNano\", \"endTimeUnixNano\", \"limit\", \"cursor\"}}"
            ))
        })?;
        let limit = match parsed.limit {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                FetchError::Bad(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, not {n}"
                ))
            })?,
            Some(other) => {
                return Err(FetchError::Bad(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, not {other}"
                )))
            }
        };
        Fetch::checked(
            time_of(parsed.start_time_unix_nano, "startTimeUnixNano")?,
            time_of(parsed.end_time_unix_nano, "endTimeUnixNano")?,
            limit,
            parsed.cursor.unwrap_or_default(),
        )
    }

    /// Reads an `application/x-protobuf` body ([`FetchRequestProto`]).
    pub fn from_protobuf(body: &[u8]) -> Result<Fetch, FetchError> {
        let p = <FetchRequestProto as prost::Message>::decode(body)
            .map_err(|e| FetchError::Bad(format!("the body is not a FetchRequest: {e}")))?;
        Fetch::checked(
            p.start_time_unix_nano,
            p.end_time_unix_nano,
            p.limit,
            p.cursor,
        )
    }

    fn checked(start: u64, end: u64, limit: i64, cursor: String) -> Result<Fetch, FetchError> {
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            n if n < 0 || n as u64 > MAX_LIMIT as u64 => {
                return Err(FetchError::Bad(format!(
                    "limit must be from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}), not {n}"
                )))
            }
            n => n as usize,
        };
        if end != 0 && end < start {
            return Err(FetchError::Bad(format!(
                "endTimeUnixNano ({end}) is before startTimeUnixNano ({start})"
            )));
        }
        Ok(Fetch {
            start,
            end: (end != 0).then_some(end),
            limit,
            cursor: (!cursor.is_empty()).then_some(cursor),
        })
    }
}

/// One page of a fetch.
#[derive(Debug)]
pub struct Reply {
    /// The signal.
    pub signal: Signal,
    /// Resource entries, encoded, in time order.
    pub entries: Vec<Vec<u8>>,
    /// The cursor of the next page (or, with `has_more` false, of what arrives later).
    pub next_cursor: String,
    /// Whether the range holds more now.
    pub has_more: bool,
    /// Segments could not be read: entries are missing, and `next_cursor` stands where the
    /// request's did.
    pub partial: bool,
}

/// Runs `fetch` of `signal` for the API key `key_name` at `now_unix_nano`, with a page of at
/// most `max_bytes` of items, from the store and, with `remote`, its sealed segments.
#[allow(clippy::too_many_arguments)]
pub fn run(
    store: &Store,
    sealer: &Sealer,
    signal: Signal,
    key_name: &str,
    fetch: &Fetch,
    now_unix_nano: u64,
    max_bytes: usize,
    remote: Option<Remote<'_>>,
) -> Result<Reply, FetchError> {
    let cursor = match &fetch.cursor {
        Some(text) => sealer.open(text, store.id(), signal, key_name, now_unix_nano)?,
        None => Cursor {
            start: fetch.start,
            end: fetch.end,
            window: None,
            prev_end: fetch.start,
            prev_seq: 0,
            marks: Vec::new(),
            after: None,
        },
    };
    let opening = cursor.window.is_none();
    let window = cursor.window.unwrap_or(Window {
        signal,
        start: cursor.start,
        // A clock that went back never shrinks what the previous window covered.
        end: cursor.end.unwrap_or(now_unix_nano).max(cursor.prev_end),
        seq_hi: store.last_seq(),
        prev_end: cursor.prev_end,
        prev_seq: cursor.prev_seq,
    });
    let local_after = cursor.after.map(|place| position_after(place, store.id()));
    let local = store.page(&window, local_after, fetch.limit, max_bytes)?;
    let (page, marks, partial) = match remote {
        None => (with_places(local, store.id()), Vec::new(), Partial::No),
        Some(remote) => {
            let ask = Ask {
                window: &window,
                marks: &cursor.marks,
                opening,
                after: cursor.after,
                limit: fetch.limit,
            };
            match remote(&ask) {
                Ok(mut sealed) => {
                    let marks = sealed.marks.clone();
                    let cut = sealed.unreadable;
                    let mut local = local;
                    if let Some(cut) = cut {
                        // Before the first time that could not be read, the page is whole:
                        // it ends there, and the rest waits until the bucket answers.
                        keep_before(&mut local, cut);
                        sealed.items.retain(|(place, _)| place.0 < cut);
                    }
                    let mut page = merge(local, store.id(), sealed, fetch.limit, max_bytes);
                    // Both sides end at the cut, so neither stopped short there; the window
                    // goes on after it.
                    page.has_more |= cut.is_some();
                    (page, marks, Partial::from_cut(cut))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the bucket cannot be listed; the answer holds local items only and is partial");
                    (
                        with_places(local, store.id()),
                        Vec::new(),
                        Partial::Unlisted,
                    )
                }
            }
        }
    };
    let stands = match partial {
        // Nothing is known of the bucket: what is shown comes again when asked again.
        Partial::Unlisted => true,
        Partial::Before(_) => page.last.is_none(),
        Partial::No => false,
    };
    let next = if stands {
        // Where the request stood: asked again, the page comes whole.
        cursor
    } else if page.has_more {
        Cursor {
            window: Some(window),
            marks,
            after: page.last,
            ..cursor
        }
    } else {
        Cursor {
            window: None,
            prev_end: window.end,
            prev_seq: window.seq_hi,
            marks: marks
                .into_iter()
                .map(|m| Mark {
                    prev_seq: m.seq_hi,
                    seq_hi: 0,
                    ..m
                })
                .collect(),
            after: None,
            ..cursor
        }
    };
    Ok(Reply {
        signal,
        entries: page.entries,
        next_cursor: sealer.seal(&next, store.id(), signal, key_name, now_unix_nano),
        has_more: page.has_more || partial != Partial::No,
        partial: partial != Partial::No,
    })
}

/// Whether a page misses items of the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partial {
    /// Nothing is missing.
    No,
    /// Segments from this time on could not be read: the page ends before it.
    Before(u64),
    /// The bucket could not be listed: the page holds local items only.
    Unlisted,
}

impl Partial {
    fn from_cut(cut: Option<u64>) -> Partial {
        cut.map_or(Partial::No, Partial::Before)
    }
}

/// Leaves in `page` only the items before `time`.
fn keep_before(page: &mut Page, time: u64) {
    let keep = page.positions.partition_point(|p| p.0 < time);
    page.positions.truncate(keep);
    page.entries.truncate(keep);
    page.last = page.positions.last().copied();
}

/// A page of items of several stores, each with its [`Place`].
#[derive(Debug, Default)]
struct Merged {
    entries: Vec<Vec<u8>>,
    last: Option<Place>,
    has_more: bool,
}

/// The local page alone, its positions made places of the store `own`.
fn with_places(local: Page, own: u64) -> Merged {
    Merged {
        last: local.last.map(|(time, seq)| (time, own, seq)),
        entries: local.entries,
        has_more: local.has_more,
    }
}

/// The first `limit` items (and at most about `max_bytes`) of a local page (of the store
/// `own`) and a page of sealed segments, in [`Place`] order; an item in both (sealed, and not
/// yet removed here) comes once.
fn merge(local: Page, own: u64, sealed: RemotePage, limit: usize, max_bytes: usize) -> Merged {
    let mut mine = local
        .positions
        .into_iter()
        .map(|(time, seq)| (time, own, seq))
        .zip(local.entries)
        .peekable();
    let mut theirs = sealed.items.into_iter().peekable();
    let mut out = Merged::default();
    let mut bytes = 0;
    loop {
        let full = out.entries.len() >= limit || (bytes >= max_bytes && !out.entries.is_empty());
        // A side that stopped short (its limit or byte cap) may hold items before the other
        // side's next one: past its last item nothing is known, so the page ends there.
        let cut_short = (mine.peek().is_none() && local.has_more)
            || (theirs.peek().is_none() && sealed.has_more);
        let next = match (mine.peek(), theirs.peek()) {
            (None, None) => break,
            _ if full || cut_short => {
                out.has_more = true;
                break;
            }
            (Some((m, _)), Some((t, _))) if m == t => {
                theirs.next();
                mine.next()
            }
            (Some((m, _)), Some((t, _))) if t < m => theirs.next(),
            (Some(_), _) => mine.next(),
            (None, Some(_)) => theirs.next(),
        };
        let Some((place, entry)) = next else { break };
        bytes += entry.len();
        out.last = Some(place);
        out.entries.push(entry);
    }
    out.has_more |= local.has_more || sealed.has_more;
    out
}

/// Reads `catalog`'s segments for [`run`] from a blocking thread, on `runtime`.
pub fn remote_of<'a>(
    catalog: &'a Catalog,
    runtime: &'a tokio::runtime::Handle,
) -> impl Fn(&Ask<'_>) -> Result<RemotePage, CatalogError> + 'a {
    move |ask| runtime.block_on(catalog.page_within(ask))
}

impl Reply {
    /// The protobuf encoding: the export request, then `nextCursor` and `hasMore`.
    pub fn to_protobuf(&self) -> Vec<u8> {
        let mut out = items::request_bytes(self.entries.iter().map(Vec::as_slice));
        prost::encoding::string::encode(NEXT_CURSOR_FIELD, &self.next_cursor, &mut out);
        prost::encoding::bool::encode(HAS_MORE_FIELD, &self.has_more, &mut out);
        if self.partial {
            prost::encoding::bool::encode(PARTIAL_FIELD, &self.partial, &mut out);
        }
        out
    }

    /// The JSON encoding: the OTLP/JSON export request plus `nextCursor` and `hasMore`.
    /// Rendered one resource entry at a time, so the page is held once in protobuf and once
    /// in JSON, never as a whole tree of values.
    pub fn to_json(&self) -> Result<Vec<u8>, otlp::CodecError> {
        let list = match self.signal {
            Signal::Traces => "resourceSpans",
            Signal::Metrics => "resourceMetrics",
            Signal::Logs => "resourceLogs",
        };
        let mut out = format!("{{\"{list}\":[").into_bytes();
        for (i, entry) in self.entries.iter().enumerate() {
            let one = items::request_bytes(std::iter::once(entry.as_slice()));
            let mut value = json::protobuf_to_json_value(self.signal, &one)?;
            let resource = value
                .get_mut(list)
                .and_then(|l| l.get_mut(0))
                .map(Value::take)
                .unwrap_or_default();
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &resource).unwrap_or_default();
        }
        out.extend_from_slice(b"],\"nextCursor\":");
        serde_json::to_writer(&mut out, &self.next_cursor).unwrap_or_default();
        out.extend_from_slice(format!(",\"hasMore\":{}", self.has_more).as_bytes());
        if self.partial {
            out.extend_from_slice(b",\"partial\":true");
        }
        out.push(b'}');
        Ok(out)
    }
}

/// A page of traces from time 0 at 1,000,000 (the tests' now), of a store and `remote`.
#[cfg(test)]
pub(crate) fn traces_page(
    store: &Store,
    sealer: &Sealer,
    cursor: Option<String>,
    limit: usize,
    remote: Remote<'_>,
) -> Reply {
    let fetch = Fetch {
        start: 0,
        end: None,
        limit,
        cursor,
    };
    let now = 1_000_000;
    run(
        store,
        sealer,
        Signal::Traces,
        "",
        &fetch,
        now,
        usize::MAX,
        Some(remote),
    )
    .unwrap()
}

/// An answer read back (by `slim-node fetch` and `replay`).
pub struct Received {
    /// The page as an export request.
    pub request: otlp::OtlpRequest,
    /// `nextCursor`.
    pub next_cursor: String,
    /// `hasMore`.
    pub has_more: bool,
    /// `partial`: segments could not be read (asking again with the same cursor gets them).
    pub partial: bool,
}

/// Reads a protobuf answer of `signal`.
pub fn read_protobuf(signal: Signal, body: &[u8]) -> Result<Received, String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Paging {
        #[prost(string, tag = "1000")]
        next_cursor: String,
        #[prost(bool, tag = "1001")]
        has_more: bool,
        #[prost(bool, tag = "1002")]
        partial: bool,
    }
    let paging = <Paging as prost::Message>::decode(body)
        .map_err(|e| format!("the answer is not a page: {e}"))?;
    let request = otlp::OtlpRequest::decode_protobuf(signal, body).map_err(|e| e.to_string())?;
    Ok(Received {
        request,
        next_cursor: paging.next_cursor,
        has_more: paging.has_more,
        partial: paging.partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(body: &str) -> String {
        match Fetch::from_json(body.as_bytes()) {
            Err(FetchError::Bad(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn a_json_request_takes_numbers_or_strings_and_defaults_the_rest() {
        let f = Fetch::from_json(br#"{"startTimeUnixNano":"5","endTimeUnixNano":9,"limit":100}"#)
            .unwrap();
        assert_eq!((f.start, f.end, f.limit, f.cursor), (5, Some(9), 100, None));
        let d = Fetch::from_json(b"").unwrap();
        assert_eq!((d.start, d.end, d.limit), (0, None, DEFAULT_LIMIT));
        let z = Fetch::from_json(br#"{"endTimeUnixNano":0,"cursor":""}"#).unwrap();
        assert_eq!((z.end, z.cursor), (None, None));
    }

    #[test]
    fn a_negative_oversized_or_fractional_limit_is_refused_with_the_range() {
        for body in [
            r#"{"limit":-1}"#,
            r#"{"limit":10001}"#,
            r#"{"limit":2.5}"#,
            r#"{"limit":"10"}"#,
        ] {
            assert!(bad(body).contains("limit must be"), "{body}");
        }
        let p = FetchRequestProto {
            limit: -5,
            ..Default::default()
        };
        assert!(Fetch::from_protobuf(&prost::Message::encode_to_vec(&p)).is_err());
    }

    #[test]
    fn unknown_fields_and_bad_times_are_refused() {
        assert!(bad(r#"{"start":5}"#).contains("unknown field"));
        assert!(bad(r#"{"startTimeUnixNano":-3}"#).contains("startTimeUnixNano"));
        assert!(bad(r#"{"startTimeUnixNano":9,"endTimeUnixNano":5}"#).contains("before"));
        assert!(bad("[1]").contains("not a fetch request"));
    }

    #[test]
    fn a_protobuf_answer_reads_back_as_its_request_and_paging() {
        let parts = otlp::items::split_items(
            &otlp::json::from_json(
                Signal::Logs,
                br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1"}]}]}]}"#,
            )
            .unwrap(),
        );
        let answer = Reply {
            signal: Signal::Logs,
            entries: vec![otlp::items::entry(&parts.contexts[0], &parts.items[0].bytes).unwrap()],
            next_cursor: "abc".into(),
            has_more: true,
            partial: false,
        };
        let back = read_protobuf(Signal::Logs, &answer.to_protobuf()).unwrap();
        assert_eq!(back.request.summary().items, 1);
        assert_eq!((back.next_cursor.as_str(), back.has_more), ("abc", true));
        let json: Value = serde_json::from_slice(&answer.to_json().unwrap()).unwrap();
        assert_eq!(json["hasMore"], true);
        assert_eq!(json["resourceLogs"].as_array().unwrap().len(), 1);
    }

    /// This node's store in the tests.
    const OWN: u64 = 5;

    fn local(positions: &[(u64, u64)], has_more: bool) -> Page {
        Page {
            entries: positions.iter().map(|p| vec![b'L', p.1 as u8]).collect(),
            positions: positions.to_vec(),
            last: positions.last().copied(),
            has_more,
        }
    }

    fn sealed(places: &[Place], has_more: bool) -> RemotePage {
        RemotePage {
            items: places
                .iter()
                .map(|p| (*p, vec![if p.1 == OWN { b'R' } else { b'O' }, p.2 as u8]))
                .collect(),
            has_more,
            ..RemotePage::default()
        }
    }

    #[test]
    fn local_and_sealed_items_merge_in_order_each_once() {
        // Item 3 is sealed and not yet removed here: it comes once.
        let merged = merge(
            local(&[(10, 3), (30, 5)], false),
            OWN,
            sealed(&[(5, OWN, 1), (10, OWN, 3), (20, OWN, 2)], false),
            10,
            usize::MAX,
        );
        assert_eq!(merged.entries, [[b'R', 1], [b'L', 3], [b'R', 2], [b'L', 5]]);
        assert_eq!((merged.last, merged.has_more), (Some((30, OWN, 5)), false));
    }

    #[test]
    fn items_of_other_stores_at_the_same_time_come_in_store_order() {
        let merged = merge(
            local(&[(10, 3)], false),
            OWN,
            sealed(&[(10, 2, 3), (10, 9, 3), (10, 9, 4)], false),
            10,
            usize::MAX,
        );
        assert_eq!(merged.entries, [[b'O', 3], [b'L', 3], [b'O', 3], [b'O', 4]]);
        assert_eq!(merged.last, Some((10, 9, 4)));
    }

    #[test]
    fn a_merged_page_stops_at_its_limit_and_says_there_is_more() {
        let merged = merge(
            local(&[(10, 3), (30, 5)], false),
            OWN,
            sealed(&[(5, OWN, 1), (20, OWN, 2)], false),
            3,
            usize::MAX,
        );
        assert_eq!(merged.entries.len(), 3);
        assert_eq!((merged.last, merged.has_more), (Some((20, OWN, 2)), true));
        let more_sealed = merge(
            local(&[], false),
            OWN,
            sealed(&[(5, OWN, 1)], true),
            3,
            usize::MAX,
        );
        assert!(more_sealed.has_more);
    }

    #[test]
    fn a_side_that_stopped_short_ends_the_merged_page_before_what_it_did_not_look_at() {
        // The local page stopped at its byte cap after time 10: its next item may come at 15,
        // before the sealed items at 20 and 30, which must wait for the next page.
        let merged = merge(
            local(&[(10, 3)], true),
            OWN,
            sealed(&[(5, OWN, 1), (20, OWN, 4), (30, OWN, 6)], false),
            10,
            usize::MAX,
        );
        assert_eq!(merged.entries, [[b'R', 1], [b'L', 3]]);
        assert_eq!((merged.last, merged.has_more), (Some((10, OWN, 3)), true));
        // Sealed items found up to the limit, one of them also here: the page ends at the
        // last sealed item, not at local items beyond it.
        let merged = merge(
            local(&[(10, 3), (40, 7)], false),
            OWN,
            sealed(&[(10, OWN, 3), (20, OWN, 4)], true),
            2,
            usize::MAX,
        );
        assert_eq!(merged.entries, [[b'L', 3], [b'R', 4]]);
        assert_eq!((merged.last, merged.has_more), (Some((20, OWN, 4)), true));
    }

    #[test]
    fn a_page_ends_before_what_could_not_be_read_and_the_next_one_brings_it_once() {
        use crate::history::store::testing::{spans_at, KEEP};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), KEEP).unwrap();
        spans_at(&store, &[10, 20, 30]);
        let sealer = Sealer::new(&[3; 32]);
        let other = store.id().wrapping_add(1);
        // Another store's segments: one read (time 5), one that cannot be read now (from 15).
        let bucket_down = |ask: &Ask<'_>| {
            let mut page = RemotePage {
                items: vec![((5, other, 1), vec![5u8])],
                unreadable: Some(15),
                marks: ask.marks.to_vec(),
                ..RemotePage::default()
            };
            page.items.retain(|(p, _)| ask.after.is_none_or(|a| *p > a));
            Ok(page)
        };
        let bucket_up = |ask: &Ask<'_>| {
            let mut page = RemotePage {
                items: vec![((5, other, 1), vec![5u8]), ((17, other, 2), vec![17u8])],
                marks: ask.marks.to_vec(),
                ..RemotePage::default()
            };
            page.items.retain(|(p, _)| ask.after.is_none_or(|a| *p > a));
            Ok(page)
        };
        let page = |cursor: Option<String>, remote: Remote<'_>| {
            let reply = traces_page(&store, &sealer, cursor, 10, remote);
            let tags: Vec<u8> = reply.entries.iter().map(|e| e[e.len() - 1]).collect();
            (tags, reply.partial, reply.has_more, reply.next_cursor)
        };
        let (tags, partial, more, cursor) = page(None, &bucket_down);
        assert_eq!((tags, partial, more), (vec![5, 10], true, true));
        // Nothing local before the cut: the sealed items before it still come.
        let before_local = |ask: &Ask<'_>| {
            Ok(RemotePage {
                items: vec![((5, other, 1), vec![5u8])],
                unreadable: Some(7),
                marks: ask.marks.to_vec(),
                ..RemotePage::default()
            })
        };
        let (tags, partial, more, _) = page(None, &before_local);
        assert_eq!((tags, partial, more), (vec![5], true, true));
        // Still down: nothing more before 15, and the cursor stands.
        let (tags, partial, _, again) = page(Some(cursor), &bucket_down);
        assert_eq!((tags, partial), (vec![], true));
        let (tags, partial, more, _) = page(Some(again), &bucket_up);
        assert_eq!((tags, partial, more), (vec![17, 20, 30], false, false));
    }

    #[test]
    fn a_partial_answer_says_so_in_both_encodings() {
        let answer = Reply {
            signal: Signal::Logs,
            entries: Vec::new(),
            next_cursor: "same".into(),
            has_more: true,
            partial: true,
        };
        let back = read_protobuf(Signal::Logs, &answer.to_protobuf()).unwrap();
        assert!(back.partial);
        let json: Value = serde_json::from_slice(&answer.to_json().unwrap()).unwrap();
        assert_eq!(json["partial"], true);
        let whole = Reply {
            partial: false,
            ..answer
        };
        assert!(
            !read_protobuf(Signal::Logs, &whole.to_protobuf())
                .unwrap()
                .partial
        );
        let json: Value = serde_json::from_slice(&whole.to_json().unwrap()).unwrap();
        assert!(json.get("partial").is_none());
    }
}
