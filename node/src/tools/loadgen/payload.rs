//! The requests the load generator sends: like an instrumented service's, with the send time
//! stamped on the resource so a consumer can measure end-to-end latency.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

use otlp::{OtlpRequest, Signal};
use prost::Message;

/// Resource attribute holding when the request was sent (Unix epoch nanoseconds).
pub const SEND_TIME_KEY: &str = "slim_node.loadgen.send_time_unix_nano";
/// The `service.name` of generated telemetry.
pub const SERVICE_NAME: &str = "slim-node-loadgen";

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_string()))
}

fn resource(send_time: u64) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            text("service.name", SERVICE_NAME),
            kv(SEND_TIME_KEY, any_value::Value::IntValue(send_time as i64)),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "slim-node-loadgen".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    })
}

/// A request of `signal` holding `items` spans, data points or log records, stamped with
/// `send_time` (Unix epoch nanoseconds); spans belong to the trace `trace_id`.
pub fn request(signal: Signal, items: usize, send_time: u64, trace_id: [u8; 16]) -> OtlpRequest {
    match signal {
        Signal::Traces => OtlpRequest::Traces(traces(items, send_time, trace_id)),
        Signal::Metrics => OtlpRequest::Metrics(metrics(items, send_time)),
        Signal::Logs => OtlpRequest::Logs(logs(items, send_time)),
    }
}

/// The protobuf requests one client sends: encoded once, then each one a copy of that encoding
/// with its own send time, timestamps and trace id written in place. Building and encoding 100
/// spans per request took the loadgen ~0.2 ms of CPU per request, taken from the pipeline it
/// measures on the same machine.
pub struct Requests {
    signal: Signal,
    items: usize,
    template: Vec<u8>,
    /// Where the send-time stamp's varint lies.
    stamps: Vec<usize>,
    /// Where fixed64 timestamps equal to the send time lie.
    times: Vec<usize>,
    /// Where fixed64 span start times (1 ms before the send time) lie.
    starts: Vec<usize>,
    /// Where the trace id lies.
    trace_ids: Vec<usize>,
    next_trace_id: u128,
}

/// Values the template is built with, found again in its encoding. Nothing else in a
/// generated request encodes to these bytes (the tests check the rendering against the
/// builder's own encoding).
const TEMPLATE_TIME: u64 = 1_777_777_777_123_456_789;
const TEMPLATE_TRACE_ID: [u8; 16] = *b"slim-node:trace!";
/// How long a generated span lasts.
const SPAN_NANOS: u64 = 1_000_000;

impl Requests {
    /// Requests of `signal` with `items` items each; trace ids start at a random value, so
    /// separate runs never collide.
    pub fn new(signal: Signal, items: usize) -> Self {
        let template = request(signal, items, TEMPLATE_TIME, TEMPLATE_TRACE_ID).to_protobuf();
        let mut stamp = Vec::new();
        prost::encoding::encode_varint(TEMPLATE_TIME, &mut stamp);
        Requests {
            signal,
            items,
            stamps: find_all(&template, &stamp),
            times: find_all(&template, &TEMPLATE_TIME.to_le_bytes()),
            starts: find_all(&template, &(TEMPLATE_TIME - SPAN_NANOS).to_le_bytes()),
            trace_ids: find_all(&template, &TEMPLATE_TRACE_ID),
            template,
            next_trace_id: u128::from_be_bytes(*uuid::Uuid::new_v4().as_bytes()),
        }
    }

    /// The next request, stamped with `send_time` (Unix epoch nanoseconds), as protobuf.
    pub fn next(&mut self, send_time: u64) -> Vec<u8> {
        let trace_id = self.next_trace_id.to_be_bytes();
        self.next_trace_id = self.next_trace_id.wrapping_add(1);
        let stamp_len = prost::encoding::encoded_len_varint(send_time);
        if stamp_len != prost::encoding::encoded_len_varint(TEMPLATE_TIME) {
            // A clock before 1972 or after 2262 does not fit the template's stamp (a time that
            // does fit is far past SPAN_NANOS, so the start time below cannot underflow).
            return request(self.signal, self.items, send_time, trace_id).to_protobuf();
        }
        let mut bytes = self.template.clone();
        let mut stamp = Vec::with_capacity(stamp_len);
        prost::encoding::encode_varint(send_time, &mut stamp);
        put_at(&mut bytes, &self.stamps, &stamp);
        put_at(&mut bytes, &self.times, &send_time.to_le_bytes());
        put_at(
            &mut bytes,
            &self.starts,
            &(send_time - SPAN_NANOS).to_le_bytes(),
        );
        put_at(&mut bytes, &self.trace_ids, &trace_id);
        bytes
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(at, _)| at)
        .collect()
}

fn put_at(bytes: &mut [u8], offsets: &[usize], value: &[u8]) {
    for &at in offsets {
        bytes[at..at + value.len()].copy_from_slice(value);
    }
}

fn traces(items: usize, now: u64, trace_id: [u8; 16]) -> ExportTraceServiceRequest {
    let spans = (0..items)
        .map(|i| Span {
            trace_id: trace_id.to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: "GET /checkout".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: now.saturating_sub(SPAN_NANOS),
            end_time_unix_nano: now,
            attributes: vec![
                text("http.request.method", "GET"),
                kv("http.response.status_code", any_value::Value::IntValue(200)),
            ],
            status: Some(Status {
                code: status::StatusCode::Ok as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(now),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metrics(items: usize, now: u64) -> ExportMetricsServiceRequest {
    let data_points = (0..items)
        .map(|i| NumberDataPoint {
            attributes: vec![kv("index", any_value::Value::IntValue(i as i64))],
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsInt(i as i64)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(now),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![Metric {
                    name: "loadgen.value".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs(items: usize, now: u64) -> ExportLogsServiceRequest {
    let log_records = (0..items)
        .map(|i| LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number: SeverityNumber::Info as i32,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("loadgen record {i}"))),
            }),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(now),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The send time stamped on the first resource of a protobuf request of any signal, read
/// without building the rest of the request.
pub fn send_time(protobuf: &[u8]) -> Option<u64> {
    let entries = ResourcesOnly::decode(protobuf).ok()?.entries;
    let value = entries
        .first()?
        .resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == SEND_TIME_KEY)?
        .value
        .as_ref()?;
    match value.value {
        Some(any_value::Value::IntValue(nanos)) => u64::try_from(nanos).ok(),
        _ => None,
    }
}

/// An `Export*ServiceRequest` of any signal read for its resources only: in all three, field
/// 1 lists the resource entries and an entry's field 1 is its `Resource`; the decoder skips
/// the rest (scopes and items) without building it.
#[derive(Clone, PartialEq, prost::Message)]
struct ResourcesOnly {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<ResourceOnly>,
}

/// A resource entry read for its `Resource` only.
#[derive(Clone, PartialEq, prost::Message)]
struct ResourceOnly {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
}

/// Now, in Unix epoch nanoseconds.
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: [u8; 16] = [7; 16];

    #[test]
    fn each_signal_carries_the_asked_items_and_the_send_time() {
        for signal in Signal::ALL {
            let req = request(signal, 7, 1_700_000_000_000_000_000, TRACE);
            assert_eq!(req.signal(), signal);
            assert_eq!(req.summary().items, 7, "{signal}");
            assert_eq!(
                send_time(&req.to_protobuf()),
                Some(1_700_000_000_000_000_000)
            );
        }
    }

    #[test]
    fn generated_requests_are_valid_otlp() {
        for signal in Signal::ALL {
            let mut req = request(signal, 3, now_unix_nanos(), TRACE);
            let rejected = otlp::validate::validate(&mut req);
            assert_eq!(rejected.count, 0, "{signal}: {rejected:?}");
            let bytes = req.to_protobuf();
            assert_eq!(OtlpRequest::decode_protobuf(signal, &bytes).unwrap(), req);
        }
    }

    #[test]
    fn rendered_requests_are_the_builders_encoding_with_their_own_stamp_and_trace() {
        for signal in Signal::ALL {
            for items in [1, 2, 100] {
                let mut requests = Requests::new(signal, items);
                for send_time in [now_unix_nanos(), 1_700_000_000_000_000_000, 3_000_000] {
                    let trace_id = requests.next_trace_id.to_be_bytes();
                    let rendered = requests.next(send_time);
                    let built = request(signal, items, send_time, trace_id).to_protobuf();
                    assert_eq!(rendered, built, "{signal}, {items} items at {send_time}");
                }
            }
        }
    }

    #[test]
    fn the_template_finds_every_value_it_rewrites() {
        let requests = Requests::new(Signal::Traces, 3);
        assert_eq!(requests.stamps.len(), 1);
        assert_eq!(requests.times.len(), 3);
        assert_eq!(requests.starts.len(), 3);
        assert_eq!(requests.trace_ids.len(), 3);
    }

    #[test]
    fn each_request_has_a_trace_of_its_own() {
        let mut requests = Requests::new(Signal::Traces, 1);
        let ids: std::collections::HashSet<Vec<u8>> = (0..100)
            .map(|_| {
                let req = OtlpRequest::decode_protobuf(
                    Signal::Traces,
                    &requests.next(5_000_000_000_000_000_000),
                )
                .unwrap();
                match req {
                    OtlpRequest::Traces(t) => {
                        t.resource_spans[0].scope_spans[0].spans[0].trace_id.clone()
                    }
                    _ => unreachable!(),
                }
            })
            .collect();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn a_request_without_a_stamp_has_no_send_time() {
        let req = otlp::json::from_json(Signal::Logs, br#"{"resourceLogs":[{}]}"#).unwrap();
        assert_eq!(send_time(&req.to_protobuf()), None);
    }
}
