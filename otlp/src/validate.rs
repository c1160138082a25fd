//! Item rules a receiver enforces: an item that breaks one is dropped and counted, and the
//! client is told through `partial_success` (it must not retry those).

use std::collections::BTreeSet;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;

use crate::OtlpRequest;

/// What was dropped, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Spans, data points or log records dropped.
    pub count: usize,
    /// The rules they broke, in English.
    pub reasons: BTreeSet<String>,
}

impl Rejected {
    /// Adds `count` items dropped for `reason`.
    pub fn add(&mut self, count: usize, reason: impl Into<String>) {
        if count > 0 {
            self.count += count;
            self.reasons.insert(reason.into());
        }
    }

    /// Merges another rejection into this one.
    pub fn merge(&mut self, other: Rejected) {
        self.count += other.count;
        self.reasons.extend(other.reasons);
    }

    /// The `error_message` of the partial success.
    pub fn message(&self) -> String {
        self.reasons.iter().cloned().collect::<Vec<_>>().join("; ")
    }
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

fn optional_id(id: &[u8], len: usize) -> bool {
    id.is_empty() || id.len() == len
}

const TRACE_ID: &str = "trace_id must be 16 bytes and not all zero";
const SPAN_ID: &str = "span_id must be 8 bytes and not all zero";
const PARENT_ID: &str = "parent_span_id must be empty or 8 bytes";
const LOG_TRACE_ID: &str = "a log record's trace_id must be empty or 16 bytes";
const LOG_SPAN_ID: &str = "a log record's span_id must be empty or 8 bytes";
const NO_VALUE: &str = "a number data point must have a value (asInt or asDouble)";

/// Drops the items of `request` that break the OTLP rules, and says what was dropped.
pub fn validate(request: &mut OtlpRequest) -> Rejected {
    let mut rejected = Rejected::default();
    match request {
        OtlpRequest::Traces(r) => {
            for ss in r
                .resource_spans
                .iter_mut()
                .flat_map(|rs| rs.scope_spans.iter_mut())
            {
                ss.spans.retain(|s| {
                    let reason = if !valid_id(&s.trace_id, 16) {
                        Some(TRACE_ID)
                    } else if !valid_id(&s.span_id, 8) {
                        Some(SPAN_ID)
                    } else if !optional_id(&s.parent_span_id, 8) {
                        Some(PARENT_ID)
                    } else {
                        None
                    };
                    reason
                        .map(|r| rejected.add(1, format!("invalid span: {r}")))
                        .is_none()
                });
            }
        }
        OtlpRequest::Logs(r) => {
            for sl in r
                .resource_logs
                .iter_mut()
                .flat_map(|rl| rl.scope_logs.iter_mut())
            {
                sl.log_records.retain(|l| {
                    let reason = if !optional_id(&l.trace_id, 16) {
                        Some(LOG_TRACE_ID)
                    } else if !optional_id(&l.span_id, 8) {
                        Some(LOG_SPAN_ID)
                    } else {
                        None
                    };
                    reason
                        .map(|r| rejected.add(1, format!("invalid log record: {r}")))
                        .is_none()
                });
            }
        }
        OtlpRequest::Metrics(r) => {
            let metrics = r
                .resource_metrics
                .iter_mut()
                .flat_map(|rm| rm.scope_metrics.iter_mut())
                .flat_map(|sm| sm.metrics.iter_mut());
            for metric in metrics {
                let points: Option<&mut Vec<NumberDataPoint>> = match &mut metric.data {
                    Some(Data::Gauge(g)) => Some(&mut g.data_points),
                    Some(Data::Sum(s)) => Some(&mut s.data_points),
                    _ => None,
                };
                if let Some(points) = points {
                    let before = points.len();
                    points.retain(|p| p.value.is_some());
                    rejected.add(
                        before - points.len(),
                        format!("invalid data point: {NO_VALUE}"),
                    );
                }
            }
        }
    }
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{json, Signal};

    fn request(signal: Signal, body: &str) -> OtlpRequest {
        json::from_json(signal, body.as_bytes()).unwrap()
    }

    #[test]
    fn spans_with_bad_ids_are_dropped_and_counted() {
        let mut r = request(
            Signal::Traces,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"good"},
            {"traceId":"00000000000000000000000000000000","spanId":"0102030405060708","name":"zero trace"},
            {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102","name":"short span"},
            {"name":"no ids"}]}]}]}"#,
        );
        let rejected = validate(&mut r);
        assert_eq!(rejected.count, 3);
        assert!(
            rejected.message().contains("trace_id must be 16 bytes"),
            "{}",
            rejected.message()
        );
        assert!(rejected.message().contains("span_id must be 8 bytes"));
        assert_eq!(r.summary().items, 1);
    }

    #[test]
    fn valid_requests_lose_nothing() {
        let mut r = request(
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"no ids is fine"}}]}]}]}"#,
        );
        assert_eq!(validate(&mut r), Rejected::default());
        assert_eq!(r.summary().items, 1);
    }

    #[test]
    fn log_records_with_malformed_ids_are_dropped() {
        let mut r = request(
            Signal::Logs,
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"0102"},{"spanId":"01"}]}]}]}"#,
        );
        assert_eq!(validate(&mut r).count, 2);
    }

    #[test]
    fn number_points_without_a_value_are_dropped() {
        let mut r = request(
            Signal::Metrics,
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"g","gauge":{"dataPoints":[{"asInt":"1"},{"timeUnixNano":"5"}]}}]}]}]}"#,
        );
        let rejected = validate(&mut r);
        assert_eq!(rejected.count, 1);
        assert!(rejected.message().contains("must have a value"));
    }
}
