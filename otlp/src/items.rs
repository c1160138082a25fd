//! One request taken apart into its items, and items put back together.
//!
//! An item (a span, a data point, a log record) is kept apart from its *context*: its
//! resource and scope, encoded once per request however many items share them. Put back
//! together ([`entry`]), an item is one resource entry (`ResourceSpans`, `ResourceMetrics`,
//! `ResourceLogs`) holding exactly that item, with its resource, scope and (for a data point)
//! its metric around it. Such an entry is a valid piece of an export request on its own, so a
//! page of them is an export request, and an item's time is exact: a span's start, a data
//! point's time, a log record's time (else its observed time).

use bytes::Bytes;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum, Summary,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use crate::proto::{skip, take, varint};
use crate::split::Container;
use crate::{CodecError, OtlpRequest, Signal};

/// One item, encoded alone (a `Span`, a `Metric` holding one data point, a `LogRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's own time in Unix nanoseconds; 0 when it has none.
    pub time_unix_nano: u64,
    /// Its context: an index into [`Parts::contexts`].
    pub context: usize,
    /// Its protobuf encoding (for items cut from a request's bytes, a slice of them).
    pub bytes: Bytes,
}

/// A request taken apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// The contexts (resource and scope) of the items, each encoded once.
    pub contexts: Vec<Vec<u8>>,
    /// The items, in the request's order.
    pub items: Vec<Item>,
}

impl Parts {
    /// Each item put back together as its resource entry ([`entry`]), in order.
    pub fn entries(&self) -> Result<Vec<Vec<u8>>, CodecError> {
        self.items
            .iter()
            .map(|i| {
                let context = self
                    .contexts
                    .get(i.context)
                    .ok_or_else(|| CodecError::Damaged("its context is missing".into()))?;
                entry(context, &i.bytes)
            })
            .collect()
    }

    /// The items' times, in order.
    pub fn times(&self) -> impl Iterator<Item = u64> + '_ {
        self.items.iter().map(|i| i.time_unix_nano)
    }
}

/// A context: the resource entry without its scopes, then the scope entry without its
/// items, the first prefixed with its length.
fn context(resource_part: &[u8], scope_part: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(resource_part.len() + scope_part.len() + 5);
    prost::encoding::encode_varint(resource_part.len() as u64, &mut out);
    out.extend_from_slice(resource_part);
    out.extend_from_slice(scope_part);
    out
}

/// The `service.name` of a context's resource, if it has one.
pub fn context_service(context: &[u8]) -> Option<String> {
    /// Field 1 of every resource entry: its resource.
    #[derive(Clone, PartialEq, prost::Message)]
    struct ResourceOnly {
        #[prost(message, optional, tag = "1")]
        resource: Option<opentelemetry_proto::tonic::resource::v1::Resource>,
    }
    let mut rest = context;
    let len = usize::try_from(prost::encoding::decode_varint(&mut rest).ok()?).ok()?;
    let resource = ResourceOnly::decode(rest.get(..len)?).ok()?.resource?;
    resource.attributes.iter().find_map(|kv| {
        (kv.key == "service.name").then(|| match kv.value.as_ref()?.value.as_ref()? {
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                Some(s.clone())
            }
            _ => None,
        })?
    })
}

/// Appends field 2 (length-delimited) holding `value`: where every resource entry keeps its
/// scope entries, and every scope entry its items.
fn push_field_2(out: &mut Vec<u8>, value: &[u8]) {
    out.push(0x12);
    prost::encoding::encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// The resource entry holding `item` in `context` (as [`split_items`] made them).
pub fn entry(context: &[u8], item: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut rest = context;
    let len = prost::encoding::decode_varint(&mut rest)
        .map_err(|e| CodecError::Damaged(format!("its context: {e}")))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= rest.len())
        .ok_or_else(|| CodecError::Damaged("its context is cut short".into()))?;
    let (resource_part, scope_part) = rest.split_at(len);
    let mut scope = Vec::with_capacity(scope_part.len() + item.len() + 6);
    scope.extend_from_slice(scope_part);
    push_field_2(&mut scope, item);
    let mut out = Vec::with_capacity(resource_part.len() + scope.len() + 6);
    out.extend_from_slice(resource_part);
    push_field_2(&mut out, &scope);
    Ok(out)
}

/// Takes `request` apart into its items and their contexts. Resources, scopes and metrics
/// without items give none.
pub fn split_items(request: &OtlpRequest) -> Parts {
    let mut parts = Parts::default();
    match request {
        OtlpRequest::Traces(r) => {
            for rs in &r.resource_spans {
                let resource = ResourceSpans {
                    resource: rs.resource.clone(),
                    schema_url: rs.schema_url.clone(),
                    scope_spans: Vec::new(),
                }
                .encode_to_vec();
                for ss in rs.scope_spans.iter().filter(|ss| !ss.spans.is_empty()) {
                    let scope = ScopeSpans {
                        scope: ss.scope.clone(),
                        schema_url: ss.schema_url.clone(),
                        spans: Vec::new(),
                    }
                    .encode_to_vec();
                    parts.contexts.push(context(&resource, &scope));
                    let at = parts.contexts.len() - 1;
                    parts.items.extend(ss.spans.iter().map(|span| Item {
                        time_unix_nano: span.start_time_unix_nano,
                        context: at,
                        bytes: span.encode_to_vec().into(),
                    }));
                }
            }
        }
        OtlpRequest::Metrics(r) => {
            for rm in &r.resource_metrics {
                let resource = ResourceMetrics {
                    resource: rm.resource.clone(),
                    schema_url: rm.schema_url.clone(),
                    scope_metrics: Vec::new(),
                }
                .encode_to_vec();
                for sm in &rm.scope_metrics {
                    let points: Vec<(u64, Metric)> = sm
                        .metrics
                        .iter()
                        .flat_map(|metric| {
                            data_points(metric.data.as_ref()).into_iter().map(
                                move |(time, data)| {
                                    (
                                        time,
                                        Metric {
                                            data: Some(data),
                                            ..without_data(metric)
                                        },
                                    )
                                },
                            )
                        })
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    let scope = ScopeMetrics {
                        scope: sm.scope.clone(),
                        schema_url: sm.schema_url.clone(),
                        metrics: Vec::new(),
                    }
                    .encode_to_vec();
                    parts.contexts.push(context(&resource, &scope));
                    let at = parts.contexts.len() - 1;
                    parts
                        .items
                        .extend(points.into_iter().map(|(time, metric)| Item {
                            time_unix_nano: time,
                            context: at,
                            bytes: metric.encode_to_vec().into(),
                        }));
                }
            }
        }
        OtlpRequest::Logs(r) => {
            for rl in &r.resource_logs {
                let resource = ResourceLogs {
                    resource: rl.resource.clone(),
                    schema_url: rl.schema_url.clone(),
                    scope_logs: Vec::new(),
                }
                .encode_to_vec();
                for sl in rl.scope_logs.iter().filter(|sl| !sl.log_records.is_empty()) {
                    let scope = ScopeLogs {
                        scope: sl.scope.clone(),
                        schema_url: sl.schema_url.clone(),
                        log_records: Vec::new(),
                    }
                    .encode_to_vec();
                    parts.contexts.push(context(&resource, &scope));
                    let at = parts.contexts.len() - 1;
                    parts.items.extend(sl.log_records.iter().map(|record| Item {
                        time_unix_nano: match record.time_unix_nano {
                            0 => record.observed_time_unix_nano,
                            t => t,
                        },
                        context: at,
                        bytes: record.encode_to_vec().into(),
                    }));
                }
            }
        }
    }
    parts
}

/// [`split_items`] of a request's protobuf encoding, for spans and log records, without
/// decoding it: items, resources and scopes are cut from the bytes as they came (fields this
/// version does not know included). `None` for metrics (their items are rebuilt, see
/// [`split_items`]) or bytes that are not a well-formed request.
pub fn split_encoded(signal: Signal, bytes: &Bytes) -> Option<Parts> {
    if signal == Signal::Metrics {
        return None;
    }
    let mut parts = Parts::default();
    for field in fields(bytes) {
        let (field, resource_entry) = field?;
        if field.number != 1 || field.wire != LEN {
            continue;
        }
        let (resource_part, scopes) = without_field_2(resource_entry.value)?;
        for scope_entry in scopes {
            let (scope_part, items) = without_field_2(scope_entry)?;
            if items.is_empty() {
                continue;
            }
            parts.contexts.push(context(&resource_part, &scope_part));
            let at = parts.contexts.len() - 1;
            for item in items {
                parts.items.push(Item {
                    time_unix_nano: item_time(signal, item)?,
                    context: at,
                    bytes: bytes.slice_ref(item),
                });
            }
        }
    }
    Some(parts)
}

/// A message's other fields, encoded as they came, and the values of its field 2 (where a
/// resource entry keeps its scope entries, and a scope entry its items).
fn without_field_2(message: &[u8]) -> Option<(Vec<u8>, Vec<&[u8]>)> {
    let (mut rest, mut values) = (Vec::new(), Vec::new());
    for field in fields(message) {
        let (f, raw) = field?;
        match (f.number, f.wire) {
            (2, LEN) => values.push(raw.value),
            _ => rest.extend_from_slice(f.whole),
        }
    }
    Some((rest, values))
}

/// Wire type of length-delimited fields.
const LEN: u8 = 2;

/// One field as it is encoded.
struct Field<'a> {
    number: u64,
    wire: u8,
    /// The whole field: key, length and value.
    whole: &'a [u8],
}

/// A field's value (for length-delimited fields, without the length).
struct Raw<'a> {
    value: &'a [u8],
}

/// The fields of a message, one by one; `None` where it is not well formed (and nothing
/// after). An iterator, not a list: items are read field by field many times per request.
fn fields(bytes: &[u8]) -> Fields<'_> {
    Fields { bytes }
}

struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(Field<'a>, Raw<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_none() {
            // Nothing after a field that is not well formed.
            self.bytes = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Option<(Field<'a>, Raw<'a>)> {
        let start = self.bytes;
        let mut bytes = self.bytes;
        let key = varint(&mut bytes)?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        let raw = match wire {
            0 => {
                varint(&mut bytes)?;
                Raw { value: &[] }
            }
            1 => {
                let (value, rest) = bytes.split_at_checked(8)?;
                bytes = rest;
                Raw { value }
            }
            LEN => Raw {
                value: take(&mut bytes)?,
            },
            5 => {
                let (value, rest) = bytes.split_at_checked(4)?;
                bytes = rest;
                Raw { value }
            }
            _ => return None,
        };
        if number == 0 {
            return None;
        }
        let whole = &start[..start.len() - bytes.len()];
        self.bytes = bytes;
        Some((
            Field {
                number,
                wire,
                whole,
            },
            raw,
        ))
    }
}

/// A span's start time, or a log record's time (else its observed time); the last occurrence
/// of a field wins, as in any decoder. `None` when the item is not well formed. Read in one
/// tight pass: every item of every stored request goes through it.
fn item_time(signal: Signal, item: &[u8]) -> Option<u64> {
    let (mut first, mut second) = (0, 0);
    let (a, b) = match signal {
        Signal::Traces => (7, 0),
        _ => (1, 11),
    };
    let mut buf = item;
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = key >> 3;
        if number == 0 {
            return None;
        }
        match (key & 7) as u8 {
            1 => {
                let (value, rest) = buf.split_first_chunk::<8>()?;
                buf = rest;
                if number == a {
                    first = u64::from_le_bytes(*value);
                } else if number == b && b != 0 {
                    second = u64::from_le_bytes(*value);
                }
            }
            wire => skip(wire, &mut buf)?,
        }
    }
    Some(if first != 0 { first } else { second })
}

fn without_data(metric: &Metric) -> Metric {
    Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data: None,
    }
}

/// Each data point of a metric with its time, as the metric's data holding only that point.
fn data_points(data: Option<&Data>) -> Vec<(u64, Data)> {
    match data {
        Some(Data::Gauge(g)) => g
            .data_points
            .iter()
            .map(|p| {
                let data = Data::Gauge(Gauge {
                    data_points: vec![p.clone()],
                });
                (p.time_unix_nano, data)
            })
            .collect(),
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| {
                let data = Data::Sum(Sum {
                    data_points: vec![p.clone()],
                    aggregation_temporality: s.aggregation_temporality,
                    is_monotonic: s.is_monotonic,
                });
                (p.time_unix_nano, data)
            })
            .collect(),
        Some(Data::Histogram(h)) => h
            .data_points
            .iter()
            .map(|p| {
                let data = Data::Histogram(Histogram {
                    data_points: vec![p.clone()],
                    aggregation_temporality: h.aggregation_temporality,
                });
                (p.time_unix_nano, data)
            })
            .collect(),
        Some(Data::ExponentialHistogram(h)) => h
            .data_points
            .iter()
            .map(|p| {
                let data = Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![p.clone()],
                    aggregation_temporality: h.aggregation_temporality,
                });
                (p.time_unix_nano, data)
            })
            .collect(),
        Some(Data::Summary(s)) => s
            .data_points
            .iter()
            .map(|p| {
                let data = Data::Summary(Summary {
                    data_points: vec![p.clone()],
                });
                (p.time_unix_nano, data)
            })
            .collect(),
        None => Vec::new(),
    }
}

/// The protobuf export request of `signal` holding `entries` (encoded resource entries) in
/// order. Every request type keeps its resource entries in field 1, so this needs no decoding.
pub fn request_bytes<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        // Field 1, wire type 2 (length-delimited).
        out.push(0x0a);
        prost::encoding::encode_varint(entry.len() as u64, &mut out);
        out.extend_from_slice(entry);
    }
    out
}

/// `request` with neighbouring entries of the same resource and scope merged into one:
/// the same items in the same order, in a smaller request (for re-exporting pages).
pub fn merge_neighbours(request: OtlpRequest) -> OtlpRequest {
    match request {
        OtlpRequest::Traces(mut r) => {
            r.resource_spans = merge(std::mem::take(&mut r.resource_spans));
            OtlpRequest::Traces(r)
        }
        OtlpRequest::Metrics(mut r) => {
            r.resource_metrics = merge(std::mem::take(&mut r.resource_metrics));
            OtlpRequest::Metrics(r)
        }
        OtlpRequest::Logs(mut r) => {
            r.resource_logs = merge(std::mem::take(&mut r.resource_logs));
            OtlpRequest::Logs(r)
        }
    }
}

/// Resource entries with each run of neighbours of the same resource merged, their scope
/// entries merged the same way.
fn merge<R>(resources: Vec<R>) -> Vec<R>
where
    R: Container + PartialEq,
    R::Item: Container + PartialEq,
{
    let mut out: Vec<R> = Vec::new();
    for mut resource in resources {
        if let Some(last) = out.last_mut() {
            if same_shell(last, &mut resource) {
                for scope in std::mem::take(resource.items()) {
                    push_merged(last.items(), scope);
                }
                continue;
            }
        }
        out.push(resource);
    }
    out
}

/// Appends `next` to `list`, into its last container when both are the same but for items.
fn push_merged<C: Container + PartialEq>(list: &mut Vec<C>, mut next: C) {
    if let Some(last) = list.last_mut() {
        if same_shell(last, &mut next) {
            last.items().append(next.items());
            return;
        }
    }
    list.push(next);
}

/// Whether `a` and `b` are equal but for their items.
fn same_shell<C: Container + PartialEq>(a: &mut C, b: &mut C) -> bool {
    let (items_a, items_b) = (std::mem::take(a.items()), std::mem::take(b.items()));
    let same = a == b;
    (*a.items(), *b.items()) = (items_a, items_b);
    same
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_json;

    /// The request of `signal` holding `entries`, decoded.
    fn assemble<'a>(
        signal: Signal,
        entries: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<OtlpRequest, CodecError> {
        OtlpRequest::decode_protobuf(signal, &request_bytes(entries))
    }

    /// `item_time` as the fields iterator reads it, field by field.
    fn time_by_fields(signal: Signal, item: &[u8]) -> Option<u64> {
        let (a, b) = if signal == Signal::Traces {
            (7, 0)
        } else {
            (1, 11)
        };
        let (mut first, mut second) = (0, 0);
        for field in fields(item) {
            let (f, raw) = field?;
            let fixed64 = (f.wire == 1).then(|| u64::from_le_bytes(raw.value.try_into().unwrap()));
            match fixed64 {
                Some(t) if f.number == a => first = t,
                Some(t) if f.number == b && b != 0 => second = t,
                _ => {}
            }
        }
        Some(if first != 0 { first } else { second })
    }

    #[test]
    fn an_items_time_is_read_as_the_fields_iterator_reads_it_however_damaged() {
        let span = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"GET /","kind":2,"startTimeUnixNano":"7","endTimeUnixNano":"9","attributes":[{"key":"k","value":{"intValue":"200"}}],"status":{"code":1}}]}]}]}"#;
        let log = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"3","observedTimeUnixNano":"4","severityNumber":9,"body":{"stringValue":"x"},"flags":1}]}]}]}"#;
        for (signal, json) in [(Signal::Traces, &span[..]), (Signal::Logs, &log[..])] {
            let parts = split_items(&from_json(signal, json).unwrap());
            let item = &parts.items[0].bytes;
            assert!(item_time(signal, item).is_some_and(|t| t > 0));
            for at in 0..item.len() {
                assert_eq!(
                    item_time(signal, &item[..at]),
                    time_by_fields(signal, &item[..at])
                );
                for value in [0x00, 0x01, 0x08, 0x09, 0x39, 0x59, 0x7f, 0x80, 0xb9, 0xff] {
                    let mut damaged = item.to_vec();
                    damaged[at] = value;
                    assert_eq!(
                        item_time(signal, &damaged),
                        time_by_fields(signal, &damaged),
                        "{signal} byte {at} = {value:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn items_cut_from_a_requests_bytes_are_slices_of_them_not_copies() {
        let json = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"3"},{"timeUnixNano":"4"}]}]}]}"#;
        let bytes = Bytes::from(from_json(Signal::Logs, json).unwrap().to_protobuf());
        let parts = split_encoded(Signal::Logs, &bytes).unwrap();
        assert_eq!(parts.items.len(), 2);
        let within = bytes.as_ptr_range();
        for item in &parts.items {
            assert!(within.contains(&item.bytes.as_ptr()), "a copy");
        }
    }

    #[test]
    fn an_entry_decodes_to_its_resource_scope_and_item() {
        let request = from_json(Signal::Logs, br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"k","value":{"intValue":"1"}}]},"schemaUrl":"r","scopeLogs":[{"scope":{"name":"s"},"schemaUrl":"u","logRecords":[{"timeUnixNano":"3","body":{"stringValue":"x"}}]}]}]}"#).unwrap();
        let parts = split_items(&request);
        let OtlpRequest::Logs(r) = &request else {
            unreachable!()
        };
        let entries = entries(&parts);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            ResourceLogs::decode(entries[0].as_slice()).unwrap(),
            r.resource_logs[0]
        );
        assert!(entry(&[0x7f, 1], b"").is_err(), "a context cut short");
    }

    #[test]
    fn a_large_resource_is_kept_once_however_many_items_share_it() {
        let big = "v".repeat(10_000);
        let spans: Vec<String> = (0..1000).map(|i| format!(r#"{{"name":"{i}"}}"#)).collect();
        let body = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"k","value":{{"stringValue":"{big}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        );
        let parts = split_items(&from_json(Signal::Traces, body.as_bytes()).unwrap());
        let total: usize = parts.contexts.iter().map(Vec::len).sum::<usize>()
            + parts.items.iter().map(|i| i.bytes.len()).sum::<usize>();
        assert_eq!(parts.items.len(), 1000);
        assert!(total < 20_000, "{total} bytes");
    }

    const TRACES: &[u8] = br#"{"resourceSpans":[
        {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
         "scopeSpans":[{"scope":{"name":"s1"},"spans":[
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","startTimeUnixNano":"30"},
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709","name":"y","startTimeUnixNano":"10"}]}]},
        {"resource":{},"scopeSpans":[{"spans":[]}]}]}"#;

    fn entries(parts: &Parts) -> Vec<Vec<u8>> {
        parts.entries().unwrap()
    }

    fn times(parts: &Parts) -> Vec<u64> {
        parts.times().collect()
    }

    #[test]
    fn every_span_becomes_one_entry_with_its_start_time() {
        let request = from_json(Signal::Traces, TRACES).unwrap();
        let parts = split_items(&request);
        assert_eq!(times(&parts), vec![30, 10]);
        assert_eq!(
            parts.contexts.len(),
            1,
            "one context for the spans that share it"
        );
        let entries = entries(&parts);
        let back = assemble(Signal::Traces, entries.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(back.summary().resources, 2);
        assert_eq!(back.summary().items, 2);
    }

    #[test]
    fn merging_neighbours_gives_back_the_request_without_empty_parts() {
        let request = from_json(Signal::Traces, TRACES).unwrap();
        let entries = entries(&split_items(&request));
        let merged =
            merge_neighbours(assemble(Signal::Traces, entries.iter().map(Vec::as_slice)).unwrap());
        let OtlpRequest::Traces(mut expected) = request else {
            unreachable!()
        };
        expected.resource_spans.truncate(1);
        assert_eq!(merged, OtlpRequest::Traces(expected));
    }

    #[test]
    fn every_data_point_becomes_one_entry_keeping_its_metric() {
        let request = from_json(
            Signal::Metrics,
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
                {"name":"c","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
                 "dataPoints":[{"asInt":"1","timeUnixNano":"5"},{"asInt":"2","timeUnixNano":"6"}]}},
                {"name":"g","gauge":{"dataPoints":[{"asDouble":1.5,"timeUnixNano":"7"}]}},
                {"name":"empty"}]}]}]}"#,
        )
        .unwrap();
        let parts = split_items(&request);
        assert_eq!(times(&parts), vec![5, 6, 7]);
        let entries = entries(&parts);
        let back = assemble(Signal::Metrics, entries.iter().map(Vec::as_slice)).unwrap();
        let OtlpRequest::Metrics(m) = &back else {
            unreachable!()
        };
        let sum = &m.resource_metrics[1].scope_metrics[0].metrics[0];
        assert_eq!(sum.name, "c");
        let Some(Data::Sum(s)) = &sum.data else {
            panic!("{sum:?}")
        };
        assert!(s.is_monotonic && s.aggregation_temporality == 2 && s.data_points.len() == 1);
        assert_eq!(merge_neighbours(back).summary().items, 3);
    }

    #[test]
    fn a_log_record_without_a_time_has_its_observed_time() {
        let request = from_json(
            Signal::Logs,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
                {"timeUnixNano":"9","observedTimeUnixNano":"11"},{"observedTimeUnixNano":"12"},{}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(times(&split_items(&request)), vec![9, 12, 0]);
    }
}
