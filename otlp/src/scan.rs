//! Checks a protobuf `Export*ServiceRequest` where it lies, building nothing: a receiver that
//! only forwards a request need not decode it, check it and encode it again when its bytes can
//! go on as they came.
//!
//! [`scan`] vouches for a request only when decoding it would succeed and [`validate`] would
//! drop nothing: every field of a known number has its declared wire type, lengths stay inside
//! their message, strings are UTF-8, varints fit in 64 bits, nesting is shallow, and the items
//! keep the OTLP rules. Whatever it is not sure of — malformed bytes, an item to drop, a field
//! given twice where the decoder would merge or overwrite, groups, deep nesting — it leaves to
//! the decoder ([`None`]), so that path decides and words the answer. The schema is read from
//! the descriptors `opentelemetry-proto` ships with the types the decoder uses, so the two
//! cannot drift apart. Unknown fields are skipped, as the decoder skips them; forwarded bytes
//! still carry them, and any OTLP decoder downstream skips them again.
//!
//! [`validate`]: crate::validate::validate

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use crate::proto::{take, varint};
use crate::Signal;

/// What a scan counted in a request it vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Resources (`resource_spans`, `resource_metrics` or `resource_logs` entries).
    pub resources: usize,
    /// Spans, data points or log records.
    pub items: usize,
}

/// Checks `bytes` as the protobuf request of `signal`. `Some` when decoding would succeed and
/// no item breaks the rules of [`crate::validate`]; `None` when the decoder must decide.
pub fn scan(signal: Signal, bytes: &[u8]) -> Option<Scanned> {
    let schema = SCHEMA.as_ref()?;
    let mut tally = Tally::default();
    schema.message(schema.roots[signal as usize], bytes, 0, &mut tally)?;
    Some(Scanned {
        resources: tally.resources,
        items: tally.items,
    })
}

/// Deeper nesting (AnyValue inside AnyValue) goes to the decoder, whose own limit is 100.
const MAX_DEPTH: usize = 32;

/// Field numbers at or above this are treated as unknown; OTLP's stay far below it.
const MAX_FIELD: u32 = 64;

static SCHEMA: LazyLock<Option<Schema>> = LazyLock::new(Schema::build);

#[derive(Default)]
struct Tally {
    resources: usize,
    items: usize,
}

/// What the scanner needs to know of one field.
#[derive(Debug, Clone, Copy)]
struct Field {
    kind: FieldKind,
    repeated: bool,
    /// Fields of the same message that must not have been seen before this one: itself (a
    /// singular field given twice is merged or overwritten by the decoder) and the other
    /// members of its oneof (the last one wins). Empty for repeated fields.
    conflicts: u64,
}

#[derive(Debug, Clone, Copy)]
enum FieldKind {
    Message(usize),
    String,
    Bytes,
    Varint,
    Fixed32,
    Fixed64,
}

impl FieldKind {
    fn wire_type(self) -> u8 {
        match self {
            FieldKind::Varint => 0,
            FieldKind::Fixed64 => 1,
            FieldKind::Message(_) | FieldKind::String | FieldKind::Bytes => 2,
            FieldKind::Fixed32 => 5,
        }
    }
}

/// The OTLP rule a message carries, if any (the same rules as [`crate::validate`]).
#[derive(Debug, Clone, Copy)]
enum Rule {
    None,
    /// A top-level resource entry.
    Resource,
    /// A span: trace id 16 bytes not all zero, span id 8 bytes not all zero, parent span id
    /// empty or 8 bytes.
    Span {
        trace: u32,
        span: u32,
        parent: u32,
    },
    /// A log record: trace id empty or 16 bytes, span id empty or 8 bytes.
    LogRecord {
        trace: u32,
        span: u32,
    },
    /// A number data point: one of these fields (its value) must be present.
    NumberPoint {
        value: u64,
    },
    /// Another data point: counted, no rule.
    Point,
}

struct MessageSchema {
    /// Indexed by field number.
    fields: Vec<Option<Field>>,
    /// What to do on each one-byte key (field numbers 1–15, every wire type): the key decides
    /// field and wire type at once, so the common field costs one lookup.
    by_key: Box<[Op; 128]>,
    rule: Rule,
}

/// What the scanner does on a one-byte key.
#[derive(Debug, Clone, Copy)]
struct Op {
    act: Act,
    /// As [`Field::conflicts`]; 0 for unknown fields.
    conflicts: u64,
}

#[derive(Debug, Clone, Copy)]
enum Act {
    /// The decoder must decide (field number 0, a group, a known field of another wire type).
    Decoder,
    /// An unknown field, or a number of the right wire type: step over a varint…
    SkipVarint,
    /// … eight bytes …
    Skip8,
    /// … a length-delimited value …
    SkipLen,
    /// … or four bytes.
    Skip4,
    Message(u32),
    String,
    /// Bytes, kept in the rule's id slot when it has one.
    Bytes(Option<u8>),
    /// Packed repeated numbers.
    Packed(FieldKind),
}

impl MessageSchema {
    fn new(fields: Vec<Option<Field>>, rule: Rule) -> MessageSchema {
        let by_key =
            std::array::from_fn(|key| op_of(&fields, rule, (key >> 3) as u32, key as u8 & 7));
        MessageSchema {
            fields,
            by_key: Box::new(by_key),
            rule,
        }
    }
}

/// Stepping over a value of wire type `wire`; groups are left to the decoder.
fn skip_act(wire: u8) -> Act {
    match wire {
        0 => Act::SkipVarint,
        1 => Act::Skip8,
        2 => Act::SkipLen,
        5 => Act::Skip4,
        _ => Act::Decoder,
    }
}

/// What to do on field `number` with wire type `wire` in a message of `fields` and `rule`.
/// Out of line: the scan reaches it only for keys of more than one byte.
#[inline(never)]
fn op_of(fields: &[Option<Field>], rule: Rule, number: u32, wire: u8) -> Op {
    let field = fields.get(number as usize).copied().flatten();
    let act = match field {
        _ if number == 0 => Act::Decoder,
        None => skip_act(wire),
        // Repeated numbers may come packed; nothing else may differ.
        Some(f) if wire != f.kind.wire_type() => match f.repeated && wire == 2 {
            true => Act::Packed(f.kind),
            false => Act::Decoder,
        },
        Some(f) => match f.kind {
            FieldKind::Message(inner) => Act::Message(inner as u32),
            FieldKind::String => Act::String,
            FieldKind::Bytes => Act::Bytes(id_slot(rule, number).map(|s| s as u8)),
            // Any value of the right wire type decodes.
            FieldKind::Varint | FieldKind::Fixed32 | FieldKind::Fixed64 => skip_act(wire),
        },
    };
    Op {
        act,
        conflicts: field.map_or(0, |f| f.conflicts),
    }
}

struct Schema {
    messages: Vec<MessageSchema>,
    /// The request message of each signal, in [`Signal`] order.
    roots: [usize; 3],
}

impl Schema {
    fn build() -> Option<Schema> {
        let mut builder = Builder::default();
        let mut roots = [0; 3];
        for signal in Signal::ALL {
            let root = crate::json::descriptor(signal).ok()?;
            roots[signal as usize] = builder.add(&root)?;
            // The entries of the request's one repeated field are its resources.
            let entry = match root.fields().next()?.kind() {
                Kind::Message(m) => m,
                _ => return None,
            };
            let index = *builder.index.get(entry.full_name())?;
            builder.messages[index].as_mut()?.rule = Rule::Resource;
        }
        let messages = builder.messages.into_iter().collect::<Option<Vec<_>>>()?;
        Some(Schema { messages, roots })
    }

    /// Scans one message; `None` when the decoder must decide.
    fn message(&self, index: usize, mut buf: &[u8], depth: usize, tally: &mut Tally) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let schema = &self.messages[index];
        let mut seen = 0u64;
        // Lengths and "not all zero" of the id fields a rule looks at, by field number.
        let mut ids: [(usize, bool); 3] = [(0, false); 3];
        while let Some((&first, rest)) = buf.split_first() {
            let (op, number_bit) = if first < 0x80 {
                buf = rest;
                (schema.by_key[usize::from(first)], 1u64 << (first >> 3))
            } else {
                // A key of more than one byte: field numbers from 16 (or an overlong key).
                // The decoder refuses keys past 32 bits (field numbers stop at 2^29 - 1).
                let key = u32::try_from(varint(&mut buf)?).ok()?;
                let (number, wire) = (key >> 3, (key & 7) as u8);
                (
                    op_of(&schema.fields, schema.rule, number, wire),
                    bit(number),
                )
            };
            if seen & op.conflicts != 0 {
                return None;
            }
            seen |= number_bit;
            match op.act {
                Act::Decoder => return None,
                Act::SkipVarint => varint(&mut buf).map(drop)?,
                Act::Skip8 => buf = buf.get(8..)?,
                Act::SkipLen => drop(take(&mut buf)?),
                Act::Skip4 => buf = buf.get(4..)?,
                Act::Message(inner) => {
                    self.message(inner as usize, take(&mut buf)?, depth + 1, tally)?
                }
                Act::String => utf8(take(&mut buf)?)?,
                Act::Bytes(slot) => {
                    let bytes = take(&mut buf)?;
                    if let Some(slot) = slot {
                        ids[usize::from(slot)] = (bytes.len(), bytes.iter().any(|&b| b != 0));
                    }
                }
                Act::Packed(kind) => packed(kind, take(&mut buf)?)?,
            }
        }
        match schema.rule {
            Rule::None => {}
            Rule::Resource => tally.resources += 1,
            Rule::Span { .. } => {
                let [trace, span, parent] = ids;
                let ok = trace == (16, true) && span == (8, true) && matches!(parent.0, 0 | 8);
                ok.then(|| tally.items += 1)?;
            }
            Rule::LogRecord { .. } => {
                let [trace, span, _] = ids;
                let ok = matches!(trace.0, 0 | 16) && matches!(span.0, 0 | 8);
                ok.then(|| tally.items += 1)?;
            }
            Rule::NumberPoint { value } => (seen & value != 0).then(|| tally.items += 1)?,
            Rule::Point => tally.items += 1,
        }
        Some(())
    }
}

/// Where a rule keeps the id field `number` of its message.
fn id_slot(rule: Rule, number: u32) -> Option<usize> {
    match rule {
        Rule::Span {
            trace,
            span,
            parent,
        } => [trace, span, parent].iter().position(|&n| n == number),
        Rule::LogRecord { trace, span } => [trace, span].iter().position(|&n| n == number),
        _ => None,
    }
}

/// Checks a string's bytes are UTF-8. Most OTLP strings are short ASCII keys and values,
/// checked here eight bytes at a time; the rest go to the SIMD validator.
#[inline(always)]
fn utf8(bytes: &[u8]) -> Option<()> {
    if bytes.len() <= 64 {
        let (chunks, tail) = bytes.as_chunks::<8>();
        let high = chunks
            .iter()
            .fold(0u64, |acc, c| acc | u64::from_ne_bytes(*c))
            | tail.iter().fold(0u64, |acc, &b| acc | u64::from(b));
        if high & 0x8080_8080_8080_8080 == 0 {
            return Some(());
        }
    }
    simdutf8::basic::from_utf8(bytes).ok().map(drop)
}

/// Checks packed repeated numbers: whole values, nothing left over.
fn packed(kind: FieldKind, mut contents: &[u8]) -> Option<()> {
    match kind {
        FieldKind::Varint => {
            while !contents.is_empty() {
                varint(&mut contents)?;
            }
            Some(())
        }
        FieldKind::Fixed32 => contents.len().is_multiple_of(4).then_some(()),
        FieldKind::Fixed64 => contents.len().is_multiple_of(8).then_some(()),
        FieldKind::Message(_) | FieldKind::String | FieldKind::Bytes => None,
    }
}

/// Turns descriptors into [`MessageSchema`]s, each message once.
#[derive(Default)]
struct Builder {
    index: HashMap<String, usize>,
    /// `None` while a message's fields are being read (it may contain itself).
    messages: Vec<Option<MessageSchema>>,
}

impl Builder {
    fn add(&mut self, message: &MessageDescriptor) -> Option<usize> {
        if let Some(&index) = self.index.get(message.full_name()) {
            return Some(index);
        }
        let index = self.messages.len();
        self.index.insert(message.full_name().to_string(), index);
        self.messages.push(None);
        let mut fields = vec![None; MAX_FIELD as usize];
        for field in message.fields() {
            let Some(slot) = fields.get_mut(field.number() as usize) else {
                // A field number the scanner cannot track: no schema, every request goes
                // to the decoder.
                return None;
            };
            *slot = Some(self.field(&field)?);
        }
        self.messages[index] = Some(MessageSchema::new(fields, rule(message)));
        Some(index)
    }

    fn field(&mut self, field: &FieldDescriptor) -> Option<Field> {
        if field.is_map() {
            return None;
        }
        let kind = match field.kind() {
            Kind::Message(inner) => FieldKind::Message(self.add(&inner)?),
            Kind::String => FieldKind::String,
            Kind::Bytes => FieldKind::Bytes,
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => FieldKind::Fixed64,
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => FieldKind::Fixed32,
            Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
            | Kind::Bool
            | Kind::Enum(_) => FieldKind::Varint,
        };
        let repeated = field.is_list();
        let conflicts = if repeated {
            0
        } else {
            match field.containing_oneof() {
                Some(oneof) => oneof.fields().fold(0, |m, f| m | bit(f.number())),
                None => bit(field.number()),
            }
        };
        Some(Field {
            kind,
            repeated,
            conflicts,
        })
    }
}

fn bit(number: u32) -> u64 {
    1u64.checked_shl(number).unwrap_or(0)
}

/// The rule of a message type, by its name in the OTLP protos.
fn rule(message: &MessageDescriptor) -> Rule {
    let number = |name: &str| {
        message
            .get_field_by_name(name)
            .map_or(0, |f: FieldDescriptor| f.number())
    };
    match message.full_name() {
        "opentelemetry.proto.trace.v1.Span" => Rule::Span {
            trace: number("trace_id"),
            span: number("span_id"),
            parent: number("parent_span_id"),
        },
        "opentelemetry.proto.logs.v1.LogRecord" => Rule::LogRecord {
            trace: number("trace_id"),
            span: number("span_id"),
        },
        "opentelemetry.proto.metrics.v1.NumberDataPoint" => Rule::NumberPoint {
            value: bit(number("as_double")) | bit(number("as_int")),
        },
        "opentelemetry.proto.metrics.v1.HistogramDataPoint"
        | "opentelemetry.proto.metrics.v1.ExponentialHistogramDataPoint"
        | "opentelemetry.proto.metrics.v1.SummaryDataPoint" => Rule::Point,
        _ => Rule::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{json, OtlpRequest};

    fn protobuf(signal: Signal, json: &str) -> Vec<u8> {
        json::from_json(signal, json.as_bytes())
            .unwrap()
            .to_protobuf()
    }

    const SPAN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
        "scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"a"},
                                {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709","parentSpanId":"0102030405060708","name":"b"}]}]}]}"#;

    #[test]
    fn the_schema_is_built_from_the_descriptors() {
        assert!(SCHEMA.is_some());
    }

    #[test]
    fn a_valid_request_is_vouched_for_with_its_counts() {
        let bytes = protobuf(Signal::Traces, SPAN);
        assert_eq!(
            scan(Signal::Traces, &bytes),
            Some(Scanned {
                resources: 1,
                items: 2
            })
        );
    }

    #[test]
    fn an_empty_request_is_vouched_for_and_empty() {
        assert_eq!(
            scan(Signal::Logs, &[]),
            Some(Scanned {
                resources: 0,
                items: 0
            })
        );
    }

    #[test]
    fn every_example_is_vouched_for_with_the_decoders_counts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for signal in Signal::ALL {
            let bytes = std::fs::read(dir.join(format!("{signal}.pb"))).unwrap();
            let summary = OtlpRequest::decode_protobuf(signal, &bytes)
                .unwrap()
                .summary();
            let scanned = scan(signal, &bytes).unwrap_or_else(|| panic!("{signal}"));
            assert_eq!(
                (scanned.resources, scanned.items),
                (summary.resources, summary.items),
                "{signal}"
            );
        }
    }

    #[test]
    fn a_span_the_validator_would_drop_is_left_to_the_decoder() {
        let zero = SPAN.replacen(
            "0102030405060708090a0b0c0d0e0f10",
            "00000000000000000000000000000000",
            1,
        );
        assert_eq!(scan(Signal::Traces, &protobuf(Signal::Traces, &zero)), None);
        let short = SPAN.replacen("\"spanId\":\"0102030405060708\"", "\"spanId\":\"01\"", 1);
        assert_eq!(
            scan(Signal::Traces, &protobuf(Signal::Traces, &short)),
            None
        );
        let no_ids = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a"}]}]}]}"#;
        assert_eq!(
            scan(Signal::Traces, &protobuf(Signal::Traces, no_ids)),
            None
        );
    }

    #[test]
    fn log_records_with_malformed_ids_are_left_to_the_decoder() {
        let ok =
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"0102030405060708"}]}]}]}"#;
        assert!(scan(Signal::Logs, &protobuf(Signal::Logs, ok)).is_some());
        let bad = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"01"}]}]}]}"#;
        assert_eq!(scan(Signal::Logs, &protobuf(Signal::Logs, bad)), None);
    }

    #[test]
    fn a_number_point_without_a_value_is_left_to_the_decoder() {
        let body = |point: &str| {
            format!(
                r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","sum":{{"dataPoints":[{point}]}}}}]}}]}}]}}"#
            )
        };
        let ok = protobuf(Signal::Metrics, &body(r#"{"asInt":"0"}"#));
        assert_eq!(scan(Signal::Metrics, &ok).map(|s| s.items), Some(1));
        let bad = protobuf(Signal::Metrics, &body(r#"{"timeUnixNano":"5"}"#));
        assert_eq!(scan(Signal::Metrics, &bad), None);
    }

    #[test]
    fn invalid_utf8_in_a_string_is_left_to_the_decoder() {
        let mut bytes = protobuf(Signal::Traces, SPAN);
        let at = bytes.windows(3).position(|w| w == b"api").unwrap();
        bytes[at] = 0xff;
        assert!(OtlpRequest::decode_protobuf(Signal::Traces, &bytes).is_err());
        assert_eq!(scan(Signal::Traces, &bytes), None);
    }

    /// String lengths around the scan's word-at-a-time ASCII check and its end.
    const LENGTHS: [usize; 8] = [1, 7, 8, 9, 63, 64, 65, 200];

    /// [`SPAN`] whose first span is named `name`, as protobuf.
    fn span_named(name: &str) -> Vec<u8> {
        let body = SPAN.replacen("\"name\":\"a\"", &format!("\"name\":\"{name}\""), 1);
        protobuf(Signal::Traces, &body)
    }

    #[test]
    fn non_ascii_strings_are_vouched_for_at_every_length() {
        for len in LENGTHS {
            let bytes = span_named(&"é".repeat(len));
            assert_eq!(
                scan(Signal::Traces, &bytes).map(|s| s.items),
                Some(2),
                "{len}"
            );
        }
    }

    #[test]
    fn invalid_utf8_anywhere_in_a_string_of_any_length_is_left_to_the_decoder() {
        for len in LENGTHS {
            let name = "n".repeat(len);
            let good = span_named(&name);
            let at = good
                .windows(len)
                .position(|w| w == name.as_bytes())
                .unwrap();
            for i in [0, len / 2, len - 1] {
                let mut bytes = good.clone();
                bytes[at + i] = 0xc3; // a lead byte with nothing after it
                assert!(OtlpRequest::decode_protobuf(Signal::Traces, &bytes).is_err());
                assert_eq!(scan(Signal::Traces, &bytes), None, "{len} at {i}");
            }
        }
    }

    #[test]
    fn repeated_numbers_pass_packed_and_unpacked() {
        // A histogram point's bucket_counts (field 6, fixed64) both ways.
        let point = |counts: &[u8]| field(1, &field(2, &field(2, &field(9, &field(1, counts)))));
        let packed = point(&field(6, &[0; 16]));
        let mut unpacked_counts = vec![6 << 3 | 1];
        unpacked_counts.extend_from_slice(&[0; 8]);
        let unpacked = point(&unpacked_counts);
        for bytes in [packed, unpacked] {
            assert!(OtlpRequest::decode_protobuf(Signal::Metrics, &bytes).is_ok());
            assert_eq!(scan(Signal::Metrics, &bytes).map(|s| s.items), Some(1));
        }
        let ragged = point(&field(6, &[0; 15]));
        assert!(OtlpRequest::decode_protobuf(Signal::Metrics, &ragged).is_err());
        assert_eq!(scan(Signal::Metrics, &ragged), None);
    }

    #[test]
    fn a_field_numbered_16_or_more_is_checked_like_the_others() {
        // Span.flags is field 16 (fixed32): its key, 16 << 3 | 5, takes two bytes.
        let OtlpRequest::Traces(mut request) =
            OtlpRequest::decode_protobuf(Signal::Traces, &protobuf(Signal::Traces, SPAN)).unwrap()
        else {
            unreachable!()
        };
        request.resource_spans[0].scope_spans[0].spans[0].flags = 0x100;
        let bytes = OtlpRequest::Traces(request).to_protobuf();
        assert_eq!(scan(Signal::Traces, &bytes).map(|s| s.items), Some(2));
        // The same field as a varint (then an unknown field 15, to keep the lengths): the
        // decoder refuses the wire type.
        let at = bytes
            .windows(6)
            .position(|w| w == [0x85, 0x01, 0x00, 0x01, 0x00, 0x00])
            .unwrap();
        let mut wrong = bytes.clone();
        wrong.splice(at..at + 6, [0x80, 0x01, 0x80, 0x02, 15 << 3, 0x00]);
        assert!(OtlpRequest::decode_protobuf(Signal::Traces, &wrong).is_err());
        assert_eq!(scan(Signal::Traces, &wrong), None);
    }

    #[test]
    fn truncated_bytes_are_left_to_the_decoder() {
        let bytes = protobuf(Signal::Traces, SPAN);
        for len in 1..bytes.len() {
            assert_eq!(scan(Signal::Traces, &bytes[..len]), None, "{len}");
        }
    }

    #[test]
    fn unknown_fields_are_skipped_like_the_decoder_skips_them() {
        let mut bytes = protobuf(Signal::Traces, SPAN);
        // Field 15, length-delimited, 2 bytes — after the request's own fields.
        bytes.extend_from_slice(&[15 << 3 | 2, 2, 0xde, 0xad]);
        assert_eq!(scan(Signal::Traces, &bytes).map(|s| s.items), Some(2));
        assert!(OtlpRequest::decode_protobuf(Signal::Traces, &bytes).is_ok());
    }

    #[test]
    fn a_singular_field_given_twice_is_left_to_the_decoder() {
        // A resource entry whose `resource` (field 1) comes twice: the decoder merges them.
        let entry = [1 << 3 | 2, 0, 1 << 3 | 2, 0];
        let mut bytes = vec![1 << 3 | 2, entry.len() as u8];
        bytes.extend_from_slice(&entry);
        assert!(OtlpRequest::decode_protobuf(Signal::Logs, &bytes).is_ok());
        assert_eq!(scan(Signal::Logs, &bytes), None);
    }

    /// A length-delimited field `number` holding `contents`.
    fn field(number: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![number << 3 | 2, u8::try_from(contents.len()).unwrap()];
        out.extend_from_slice(contents);
        out
    }

    #[test]
    fn a_metric_whose_data_comes_twice_is_left_to_the_decoder() {
        use opentelemetry_proto::tonic::metrics::v1::{
            metric::Data, Gauge, Metric, NumberDataPoint, Sum,
        };
        use prost::Message;
        let point = NumberDataPoint {
            value: Some(
                opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(1),
            ),
            ..Default::default()
        };
        let gauge = Metric {
            data: Some(Data::Gauge(Gauge {
                data_points: vec![point.clone()],
            })),
            ..Default::default()
        };
        let sum = Metric {
            data: Some(Data::Sum(Sum {
                data_points: vec![point],
                ..Default::default()
            })),
            ..Default::default()
        };
        // One metric holding both: the decoder keeps the sum only (one point, not two).
        let metric = [gauge.encode_to_vec(), sum.encode_to_vec()].concat();
        let bytes = field(1, &field(2, &field(2, &metric)));
        let decoded = OtlpRequest::decode_protobuf(Signal::Metrics, &bytes).unwrap();
        assert_eq!(decoded.summary().items, 1);
        assert_eq!(scan(Signal::Metrics, &bytes), None);
    }

    #[test]
    fn a_field_with_the_wrong_wire_type_is_left_to_the_decoder() {
        // `resource_logs` (field 1) as a varint.
        let bytes = [1 << 3, 1];
        assert!(OtlpRequest::decode_protobuf(Signal::Logs, &bytes).is_err());
        assert_eq!(scan(Signal::Logs, &bytes), None);
    }

    #[test]
    fn a_key_past_32_bits_is_left_to_the_decoder() {
        // Found by the fuzz target: a key of 14105980946 (wire type 2), which prost refuses.
        let bytes = [0x92, 0xe0, 0xa0, 0xc6, 0x34, 0x00];
        assert!(OtlpRequest::decode_protobuf(Signal::Logs, &bytes).is_err());
        assert_eq!(scan(Signal::Logs, &bytes), None);
    }
}
