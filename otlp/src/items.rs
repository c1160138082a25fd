//! One request taken apart into its items, and items put back together.
//!
//! A stored item is one resource entry (`ResourceSpans`, `ResourceMetrics`, `ResourceLogs`)
//! holding exactly one span, data point or log record, with its resource, scope and (for a
//! data point) its metric around it. Such an entry is a valid piece of an export request on
//! its own, so a page of them is an export request, and an item's time is exact: a span's
//! start, a data point's time, a log record's time (else its observed time).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum, Summary,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use crate::{CodecError, OtlpRequest, Signal};

/// One item as a resource entry of its own, encoded, with its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's own time in Unix nanoseconds; 0 when it has none.
    pub time_unix_nano: u64,
    /// The protobuf encoding of its resource entry.
    pub entry: Vec<u8>,
}

/// Takes `request` apart into one entry per item, in the request's order. Resources, scopes
/// and metrics without items give none.
pub fn split_items(request: &OtlpRequest) -> Vec<Item> {
    let mut out = Vec::new();
    match request {
        OtlpRequest::Traces(r) => {
            for rs in &r.resource_spans {
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        let entry = ResourceSpans {
                            resource: rs.resource.clone(),
                            schema_url: rs.schema_url.clone(),
                            scope_spans: vec![ScopeSpans {
                                scope: ss.scope.clone(),
                                schema_url: ss.schema_url.clone(),
                                spans: vec![span.clone()],
                            }],
                        };
                        out.push(Item {
                            time_unix_nano: span.start_time_unix_nano,
                            entry: entry.encode_to_vec(),
                        });
                    }
                }
            }
        }
        OtlpRequest::Metrics(r) => {
            for rm in &r.resource_metrics {
                for sm in &rm.scope_metrics {
                    for metric in &sm.metrics {
                        for (time, data) in data_points(metric.data.as_ref()) {
                            let entry = ResourceMetrics {
                                resource: rm.resource.clone(),
                                schema_url: rm.schema_url.clone(),
                                scope_metrics: vec![ScopeMetrics {
                                    scope: sm.scope.clone(),
                                    schema_url: sm.schema_url.clone(),
                                    metrics: vec![Metric {
                                        data: Some(data),
                                        ..without_data(metric)
                                    }],
                                }],
                            };
                            out.push(Item {
                                time_unix_nano: time,
                                entry: entry.encode_to_vec(),
                            });
                        }
                    }
                }
            }
        }
        OtlpRequest::Logs(r) => {
            for rl in &r.resource_logs {
                for sl in &rl.scope_logs {
                    for record in &sl.log_records {
                        let time = match record.time_unix_nano {
                            0 => record.observed_time_unix_nano,
                            t => t,
                        };
                        let entry = ResourceLogs {
                            resource: rl.resource.clone(),
                            schema_url: rl.schema_url.clone(),
                            scope_logs: vec![ScopeLogs {
                                scope: sl.scope.clone(),
                                schema_url: sl.schema_url.clone(),
                                log_records: vec![record.clone()],
                            }],
                        };
                        out.push(Item {
                            time_unix_nano: time,
                            entry: entry.encode_to_vec(),
                        });
                    }
                }
            }
        }
    }
    out
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

/// The request of `signal` holding `entries`, decoded.
pub fn assemble<'a>(
    signal: Signal,
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<OtlpRequest, CodecError> {
    OtlpRequest::decode_protobuf(signal, &request_bytes(entries))
}

/// `request` with neighbouring entries of the same resource and scope merged into one:
/// the same items in the same order, in a smaller request (for re-exporting pages).
pub fn merge_neighbours(request: OtlpRequest) -> OtlpRequest {
    match request {
        OtlpRequest::Traces(r) => {
            let mut out: Vec<ResourceSpans> = Vec::new();
            for rs in r.resource_spans {
                match out.last_mut() {
                    Some(last)
                        if last.resource == rs.resource && last.schema_url == rs.schema_url =>
                    {
                        for ss in rs.scope_spans {
                            match last.scope_spans.last_mut() {
                                Some(l) if l.scope == ss.scope && l.schema_url == ss.schema_url => {
                                    l.spans.extend(ss.spans)
                                }
                                _ => last.scope_spans.push(ss),
                            }
                        }
                    }
                    _ => out.push(rs),
                }
            }
            OtlpRequest::Traces(ExportTraceServiceRequest {
                resource_spans: out,
            })
        }
        OtlpRequest::Metrics(r) => {
            let mut out: Vec<ResourceMetrics> = Vec::new();
            for rm in r.resource_metrics {
                match out.last_mut() {
                    Some(last)
                        if last.resource == rm.resource && last.schema_url == rm.schema_url =>
                    {
                        for sm in rm.scope_metrics {
                            match last.scope_metrics.last_mut() {
                                Some(l) if l.scope == sm.scope && l.schema_url == sm.schema_url => {
                                    l.metrics.extend(sm.metrics)
                                }
                                _ => last.scope_metrics.push(sm),
                            }
                        }
                    }
                    _ => out.push(rm),
                }
            }
            OtlpRequest::Metrics(ExportMetricsServiceRequest {
                resource_metrics: out,
            })
        }
        OtlpRequest::Logs(r) => {
            let mut out: Vec<ResourceLogs> = Vec::new();
            for rl in r.resource_logs {
                match out.last_mut() {
                    Some(last)
                        if last.resource == rl.resource && last.schema_url == rl.schema_url =>
                    {
                        for sl in rl.scope_logs {
                            match last.scope_logs.last_mut() {
                                Some(l) if l.scope == sl.scope && l.schema_url == sl.schema_url => {
                                    l.log_records.extend(sl.log_records)
                                }
                                _ => last.scope_logs.push(sl),
                            }
                        }
                    }
                    _ => out.push(rl),
                }
            }
            OtlpRequest::Logs(ExportLogsServiceRequest { resource_logs: out })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_json;

    const TRACES: &[u8] = br#"{"resourceSpans":[
        {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
         "scopeSpans":[{"scope":{"name":"s1"},"spans":[
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","startTimeUnixNano":"30"},
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709","name":"y","startTimeUnixNano":"10"}]}]},
        {"resource":{},"scopeSpans":[{"spans":[]}]}]}"#;

    #[test]
    fn every_span_becomes_one_entry_with_its_start_time() {
        let request = from_json(Signal::Traces, TRACES).unwrap();
        let items = split_items(&request);
        assert_eq!(
            items.iter().map(|i| i.time_unix_nano).collect::<Vec<_>>(),
            vec![30, 10]
        );
        let back = assemble(Signal::Traces, items.iter().map(|i| i.entry.as_slice())).unwrap();
        assert_eq!(back.summary().resources, 2);
        assert_eq!(back.summary().items, 2);
    }

    #[test]
    fn merging_neighbours_gives_back_the_request_without_empty_parts() {
        let request = from_json(Signal::Traces, TRACES).unwrap();
        let items = split_items(&request);
        let merged = merge_neighbours(
            assemble(Signal::Traces, items.iter().map(|i| i.entry.as_slice())).unwrap(),
        );
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
        let items = split_items(&request);
        assert_eq!(
            items.iter().map(|i| i.time_unix_nano).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        let back = assemble(Signal::Metrics, items.iter().map(|i| i.entry.as_slice())).unwrap();
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
        let times: Vec<_> = split_items(&request)
            .iter()
            .map(|i| i.time_unix_nano)
            .collect();
        assert_eq!(times, vec![9, 12, 0]);
    }
}
