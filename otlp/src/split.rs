//! Splitting a request that is too large for one SLIM message into requests that each fit,
//! along its own structure: resources, then scopes, then items. An item that cannot fit
//! even alone (with its resource and scope) is dropped and counted.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use crate::validate::Rejected;
use crate::OtlpRequest;

/// The result of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Requests whose protobuf encodings are each at most the limit, in the original order.
    pub parts: Vec<OtlpRequest>,
    /// Items dropped because they cannot fit even alone.
    pub rejected: Rejected,
}

impl OtlpRequest {
    /// Splits into requests of at most `max` encoded bytes each.
    pub fn split(self, max: usize) -> Split {
        let mut dropped = 0;
        let parts = match self {
            OtlpRequest::Traces(r) => split_container(r, max, &mut dropped)
                .into_iter()
                .map(OtlpRequest::Traces)
                .collect(),
            OtlpRequest::Metrics(r) => split_container(r, max, &mut dropped)
                .into_iter()
                .map(OtlpRequest::Metrics)
                .collect(),
            OtlpRequest::Logs(r) => split_container(r, max, &mut dropped)
                .into_iter()
                .map(OtlpRequest::Logs)
                .collect(),
        };
        let mut rejected = Rejected::default();
        rejected.add(
            dropped,
            format!("too large: does not fit in one SLIM message of {max} bytes even alone"),
        );
        Split { parts, rejected }
    }
}

/// Bytes a length-delimited field adds around its payload: one tag byte and the length.
fn field_len(payload: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(payload as u64) + payload
}

/// A message holding a list of smaller messages, at one level of an OTLP request.
pub(crate) trait Container: Message + Clone + Sized {
    type Item: Message + Clone;

    fn items(&mut self) -> &mut Vec<Self::Item>;

    fn items_ref(&self) -> &[Self::Item];

    /// Counts the telemetry items (spans, data points, log records) in one item.
    fn count(item: &Self::Item) -> usize;

    /// Splits an item too large to fit alone into pieces of at most `budget` encoded bytes,
    /// adding what cannot fit to `dropped`.
    fn split_item(item: Self::Item, budget: usize, dropped: &mut usize) -> Vec<Self::Item>;
}

fn split_container<C: Container>(mut c: C, max: usize, dropped: &mut usize) -> Vec<C> {
    if c.encoded_len() <= max {
        return vec![c];
    }
    let items = std::mem::take(c.items());
    let shell = c;
    let shell_len = shell.encoded_len();
    // The largest item payload that still fits in a shell of its own.
    let budget = max.saturating_sub(shell_len + field_len(max) - max);
    if budget == 0 {
        // Even the envelope (e.g. the resource's attributes) is too large.
        *dropped += items.iter().map(C::count).sum::<usize>();
        return vec![];
    }
    let mut parts = Vec::new();
    let mut current = shell.clone();
    let mut current_len = shell_len;
    for item in items {
        let pieces = if item.encoded_len() <= budget {
            vec![item]
        } else {
            C::split_item(item, budget, dropped)
        };
        for piece in pieces {
            let len = field_len(piece.encoded_len());
            if current_len + len > max && !current.items().is_empty() {
                parts.push(std::mem::replace(&mut current, shell.clone()));
                current_len = shell_len;
            }
            current.items().push(piece);
            current_len += len;
        }
    }
    if !current.items().is_empty() {
        parts.push(current);
    }
    parts
}

/// Containers whose items are containers themselves split them one level down.
macro_rules! nested {
    ($outer:ty, $field:ident, $inner:ty) => {
        impl Container for $outer {
            type Item = $inner;
            fn items(&mut self) -> &mut Vec<$inner> {
                &mut self.$field
            }
            fn items_ref(&self) -> &[$inner] {
                &self.$field
            }
            fn count(item: &$inner) -> usize {
                item.items_ref().iter().map(<$inner>::count).sum()
            }
            fn split_item(item: $inner, budget: usize, dropped: &mut usize) -> Vec<$inner> {
                split_container(item, budget, dropped)
            }
        }
    };
}

/// The innermost containers: an item too large alone is dropped.
macro_rules! leaf {
    ($outer:ty, $field:ident, $item:ty, $count:expr) => {
        impl Container for $outer {
            type Item = $item;
            fn items(&mut self) -> &mut Vec<$item> {
                &mut self.$field
            }
            fn items_ref(&self) -> &[$item] {
                &self.$field
            }
            fn count(item: &$item) -> usize {
                $count(item)
            }
            fn split_item(item: $item, _budget: usize, dropped: &mut usize) -> Vec<$item> {
                *dropped += Self::count(&item);
                vec![]
            }
        }
    };
}

nested!(ExportTraceServiceRequest, resource_spans, ResourceSpans);
nested!(ResourceSpans, scope_spans, ScopeSpans);
leaf!(ScopeSpans, spans, Span, |_: &Span| 1);
nested!(ExportLogsServiceRequest, resource_logs, ResourceLogs);
nested!(ResourceLogs, scope_logs, ScopeLogs);
leaf!(ScopeLogs, log_records, LogRecord, |_: &LogRecord| 1);
nested!(
    ExportMetricsServiceRequest,
    resource_metrics,
    ResourceMetrics
);
nested!(ResourceMetrics, scope_metrics, ScopeMetrics);
leaf!(ScopeMetrics, metrics, Metric, |m: &Metric| {
    crate::request::data_points(m.data.as_ref())
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{json, Signal};

    fn logs(resources: usize, scopes: usize, records: usize, body_len: usize) -> OtlpRequest {
        let record = format!(r#"{{"body":{{"stringValue":"{}"}}}}"#, "x".repeat(body_len));
        let scope = format!(r#"{{"logRecords":[{}]}}"#, vec![record; records].join(","));
        let resource = format!(r#"{{"scopeLogs":[{}]}}"#, vec![scope; scopes].join(","));
        let body = format!(
            r#"{{"resourceLogs":[{}]}}"#,
            vec![resource; resources].join(",")
        );
        json::from_json(Signal::Logs, body.as_bytes()).unwrap()
    }

    fn check(req: OtlpRequest, max: usize) -> Split {
        let items = req.summary().items;
        let split = req.split(max);
        for part in &split.parts {
            assert!(
                part.to_protobuf().len() <= max,
                "a part of {} bytes",
                part.to_protobuf().len()
            );
        }
        let kept: usize = split.parts.iter().map(|p| p.summary().items).sum();
        assert_eq!(
            kept + split.rejected.count,
            items,
            "every item is kept or counted"
        );
        split
    }

    #[test]
    fn a_request_that_fits_is_one_part() {
        let req = logs(2, 2, 2, 10);
        let split = check(req.clone(), 1 << 20);
        assert_eq!(split.parts, vec![req]);
    }

    #[test]
    fn splits_by_resource_scope_and_item_keeping_order() {
        let req = logs(3, 2, 5, 100);
        let split = check(req.clone(), 400);
        assert!(split.parts.len() > 3);
        assert_eq!(split.rejected.count, 0);
        // Concatenating the parts' records gives the original sequence.
        let bodies = |r: &OtlpRequest| -> Vec<Vec<u8>> {
            let OtlpRequest::Logs(l) = r else {
                unreachable!()
            };
            l.resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .flat_map(|sl| &sl.log_records)
                .map(|lr| lr.encode_to_vec())
                .collect()
        };
        let joined: Vec<Vec<u8>> = split.parts.iter().flat_map(bodies).collect();
        assert_eq!(joined, bodies(&req));
    }

    #[test]
    fn an_item_too_large_alone_is_dropped_and_counted() {
        let mut req = logs(1, 1, 3, 100);
        if let OtlpRequest::Logs(l) = &mut req {
            l.resource_logs[0].scope_logs[0].log_records[1] = LogRecord {
                severity_text: "y".repeat(5000),
                ..Default::default()
            };
        }
        let split = check(req, 1000);
        assert_eq!(split.rejected.count, 1);
        assert!(split.rejected.message().contains("too large"));
    }

    #[test]
    fn a_resource_too_large_for_any_item_drops_its_items() {
        let mut req = logs(1, 1, 2, 10);
        if let OtlpRequest::Logs(l) = &mut req {
            l.resource_logs[0].schema_url = "s".repeat(5000);
        }
        let split = check(req, 1000);
        assert_eq!(split.rejected.count, 2);
        assert!(split.parts.is_empty());
    }
}
