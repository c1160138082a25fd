//! proptest strategies for OTLP requests of every signal, with every value type, shared by
//! the property tests.

#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::prelude::*;

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len)
}

fn opt_id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(vec![]), id(len)]
}

/// Finite doubles: NaN is not equal to itself, so it cannot be compared byte for byte after
/// JSON ("NaN" comes back as the canonical NaN).
fn f64s() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(1e-310)
    ]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        any::<String>().prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        f64s().prop_map(any_value::Value::DoubleValue),
        vec(any::<u8>(), 0..8).prop_map(any_value::Value::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            vec(("[a-z.]{1,8}", inner), 0..4).prop_map(|kvs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvs.into_iter().map(|(key, v)| kv(key, v)).collect(),
                })),
            }),
        ]
    })
}

fn kv(key: String, value: AnyValue) -> KeyValue {
    KeyValue {
        key,
        value: Some(value),
        key_strindex: 0,
    }
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec((any::<String>(), any_value()), 0..4)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| kv(k, v)).collect())
}

fn resource() -> impl Strategy<Value = Option<Resource>> {
    proptest::option::of(
        (attributes(), any::<u32>()).prop_map(|(attributes, dropped)| Resource {
            attributes,
            dropped_attributes_count: dropped,
            ..Default::default()
        }),
    )
}

fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    proptest::option::of((any::<String>(), any::<String>(), attributes()).prop_map(
        |(name, version, attributes)| InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count: 0,
        },
    ))
}

fn span() -> impl Strategy<Value = Span> {
    (
        (
            id(16),
            id(8),
            opt_id(8),
            any::<String>(),
            0..=5i32,
            any::<u64>(),
            any::<u64>(),
        ),
        (
            attributes(),
            any::<u32>(),
            any::<String>(),
            proptest::option::of((any::<String>(), 0..=2i32)),
        ),
        vec((any::<u64>(), any::<String>(), attributes()), 0..2),
        vec((id(16), id(8), attributes(), any::<u32>()), 0..2),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id, name, kind, start, end),
                (attributes, flags, trace_state, status),
                events,
                links,
            )| Span {
                trace_id,
                span_id,
                parent_span_id,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                flags,
                trace_state,
                status: status.map(|(message, code)| Status { message, code }),
                events: events
                    .into_iter()
                    .map(|(time_unix_nano, name, attributes)| span::Event {
                        time_unix_nano,
                        name,
                        attributes,
                        dropped_attributes_count: 0,
                    })
                    .collect(),
                links: links
                    .into_iter()
                    .map(|(trace_id, span_id, attributes, flags)| span::Link {
                        trace_id,
                        span_id,
                        attributes,
                        flags,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )
}

pub fn traces() -> impl Strategy<Value = ExportTraceServiceRequest> {
    vec((resource(), vec((scope(), vec(span(), 0..3)), 0..2)), 0..2).prop_map(|resources| {
        ExportTraceServiceRequest {
            resource_spans: resources
                .into_iter()
                .map(|(resource, scopes)| ResourceSpans {
                    resource,
                    scope_spans: scopes
                        .into_iter()
                        .map(|(scope, spans)| ScopeSpans {
                            scope,
                            spans,
                            schema_url: String::new(),
                        })
                        .collect(),
                    schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                })
                .collect(),
        }
    })
}

fn log_record() -> impl Strategy<Value = LogRecord> {
    (
        any::<u64>(),
        any::<u64>(),
        0..=24i32,
        any::<String>(),
        proptest::option::of(any_value()),
        attributes(),
        opt_id(16),
        opt_id(8),
        any::<u32>(),
        any::<String>(),
    )
        .prop_map(
            |(
                time,
                observed,
                severity,
                text,
                body,
                attributes,
                trace_id,
                span_id,
                flags,
                event_name,
            )| LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: observed,
                severity_number: severity,
                severity_text: text,
                body,
                attributes,
                trace_id,
                span_id,
                flags,
                event_name,
                ..Default::default()
            },
        )
}

pub fn logs() -> impl Strategy<Value = ExportLogsServiceRequest> {
    vec(
        (resource(), vec((scope(), vec(log_record(), 0..3)), 0..2)),
        0..2,
    )
    .prop_map(|resources| ExportLogsServiceRequest {
        resource_logs: resources
            .into_iter()
            .map(|(resource, scopes)| ResourceLogs {
                resource,
                scope_logs: scopes
                    .into_iter()
                    .map(|(scope, log_records)| ScopeLogs {
                        scope,
                        log_records,
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect(),
    })
}

fn exemplars() -> impl Strategy<Value = Vec<Exemplar>> {
    vec(
        (
            attributes(),
            any::<u64>(),
            opt_id(8),
            opt_id(16),
            prop_oneof![
                any::<i64>().prop_map(exemplar::Value::AsInt),
                f64s().prop_map(exemplar::Value::AsDouble)
            ],
        ),
        0..2,
    )
    .prop_map(|xs| {
        xs.into_iter()
            .map(
                |(filtered_attributes, time_unix_nano, span_id, trace_id, value)| Exemplar {
                    filtered_attributes,
                    time_unix_nano,
                    span_id,
                    trace_id,
                    value: Some(value),
                },
            )
            .collect()
    })
}

fn number_points() -> impl Strategy<Value = Vec<NumberDataPoint>> {
    vec(
        (
            attributes(),
            any::<u64>(),
            any::<u64>(),
            prop_oneof![
                any::<i64>().prop_map(number_data_point::Value::AsInt),
                f64s().prop_map(number_data_point::Value::AsDouble)
            ],
            exemplars(),
            any::<u32>(),
        ),
        0..3,
    )
    .prop_map(|ps| {
        ps.into_iter()
            .map(
                |(attributes, start, time, value, exemplars, flags)| NumberDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    value: Some(value),
                    exemplars,
                    flags,
                },
            )
            .collect()
    })
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        number_points().prop_map(|data_points| Data::Gauge(Gauge { data_points })),
        (number_points(), 0..=2i32, any::<bool>()).prop_map(|(data_points, t, m)| Data::Sum(Sum {
            data_points,
            aggregation_temporality: t,
            is_monotonic: m
        })),
        (
            vec(
                (
                    attributes(),
                    any::<u64>(),
                    vec(any::<u64>(), 0..4),
                    vec(f64s(), 0..3),
                    proptest::option::of(f64s()),
                    proptest::option::of(f64s()),
                    proptest::option::of(f64s()),
                    exemplars()
                ),
                0..2
            ),
            0..=2i32
        )
            .prop_map(|(ps, t)| Data::Histogram(Histogram {
                aggregation_temporality: t,
                data_points: ps
                    .into_iter()
                    .map(
                        |(
                            attributes,
                            count,
                            bucket_counts,
                            explicit_bounds,
                            sum,
                            min,
                            max,
                            exemplars,
                        )| HistogramDataPoint {
                            attributes,
                            count,
                            sum,
                            bucket_counts,
                            explicit_bounds,
                            min,
                            max,
                            exemplars,
                            ..Default::default()
                        }
                    )
                    .collect(),
            })),
        vec(
            (
                attributes(),
                any::<u64>(),
                any::<i32>(),
                any::<u64>(),
                any::<i32>(),
                vec(any::<u64>(), 0..3),
                f64s()
            ),
            0..2
        )
        .prop_map(|ps| Data::ExponentialHistogram(ExponentialHistogram {
            aggregation_temporality: 1,
            data_points: ps
                .into_iter()
                .map(
                    |(
                        attributes,
                        count,
                        scale,
                        zero_count,
                        offset,
                        bucket_counts,
                        zero_threshold,
                    )| ExponentialHistogramDataPoint {
                        attributes,
                        count,
                        scale,
                        zero_count,
                        positive: Some(Buckets {
                            offset,
                            bucket_counts: bucket_counts.clone()
                        }),
                        negative: Some(Buckets {
                            offset: -offset.saturating_abs(),
                            bucket_counts
                        }),
                        zero_threshold,
                        ..Default::default()
                    }
                )
                .collect(),
        })),
        vec(
            (
                attributes(),
                any::<u64>(),
                f64s(),
                vec((f64s(), f64s()), 0..3)
            ),
            0..2
        )
        .prop_map(|ps| Data::Summary(Summary {
            data_points: ps
                .into_iter()
                .map(|(attributes, count, sum, qs)| SummaryDataPoint {
                    attributes,
                    count,
                    sum,
                    quantile_values: qs
                        .into_iter()
                        .map(|(quantile, value)| ValueAtQuantile { quantile, value })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        })),
    ]
}

pub fn metrics() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    let metric = (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        data(),
        attributes(),
    )
        .prop_map(|(name, description, unit, data, metadata)| Metric {
            name,
            description,
            unit,
            data: Some(data),
            metadata,
        });
    vec((resource(), vec((scope(), vec(metric, 0..3)), 0..2)), 0..2).prop_map(|resources| {
        ExportMetricsServiceRequest {
            resource_metrics: resources
                .into_iter()
                .map(|(resource, scopes)| ResourceMetrics {
                    resource,
                    scope_metrics: scopes
                        .into_iter()
                        .map(|(scope, metrics)| ScopeMetrics {
                            scope,
                            metrics,
                            schema_url: String::new(),
                        })
                        .collect(),
                    schema_url: String::new(),
                })
                .collect(),
        }
    })
}

/// A request of any signal.
pub fn requests() -> impl Strategy<Value = otlp::OtlpRequest> {
    prop_oneof![
        traces().prop_map(otlp::OtlpRequest::Traces),
        metrics().prop_map(otlp::OtlpRequest::Metrics),
        logs().prop_map(otlp::OtlpRequest::Logs),
    ]
}
