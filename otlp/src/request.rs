//! One decoded OTLP export request of any signal.

use std::collections::BTreeSet;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::{CodecError, Signal};

/// An `Export{Trace,Metrics,Logs}ServiceRequest`.
#[derive(Debug, Clone, PartialEq)]
pub enum OtlpRequest {
    /// Spans.
    Traces(ExportTraceServiceRequest),
    /// Metrics.
    Metrics(ExportMetricsServiceRequest),
    /// Logs.
    Logs(ExportLogsServiceRequest),
}

/// What a request holds, for logs and the stdout sink.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Number of resources.
    pub resources: usize,
    /// Spans, data points or log records.
    pub items: usize,
    /// Distinct `service.name` values of the resources.
    pub services: BTreeSet<String>,
}

impl OtlpRequest {
    /// The request's signal.
    pub fn signal(&self) -> Signal {
        match self {
            OtlpRequest::Traces(_) => Signal::Traces,
            OtlpRequest::Metrics(_) => Signal::Metrics,
            OtlpRequest::Logs(_) => Signal::Logs,
        }
    }

    /// A request of `signal` holding nothing.
    pub fn empty(signal: Signal) -> Self {
        match signal {
            Signal::Traces => OtlpRequest::Traces(Default::default()),
            Signal::Metrics => OtlpRequest::Metrics(Default::default()),
            Signal::Logs => OtlpRequest::Logs(Default::default()),
        }
    }

    /// Decodes the protobuf encoding of `signal`'s request type.
    pub fn decode_protobuf(signal: Signal, bytes: &[u8]) -> Result<Self, CodecError> {
        let err =
            |e: prost::DecodeError| CodecError::Protobuf(signal.request_name(), e.to_string());
        Ok(match signal {
            Signal::Traces => {
                OtlpRequest::Traces(ExportTraceServiceRequest::decode(bytes).map_err(err)?)
            }
            Signal::Metrics => {
                OtlpRequest::Metrics(ExportMetricsServiceRequest::decode(bytes).map_err(err)?)
            }
            Signal::Logs => {
                OtlpRequest::Logs(ExportLogsServiceRequest::decode(bytes).map_err(err)?)
            }
        })
    }

    /// The canonical protobuf encoding.
    pub fn to_protobuf(&self) -> Vec<u8> {
        match self {
            OtlpRequest::Traces(r) => r.encode_to_vec(),
            OtlpRequest::Metrics(r) => r.encode_to_vec(),
            OtlpRequest::Logs(r) => r.encode_to_vec(),
        }
    }

    /// The length of the canonical protobuf encoding, without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            OtlpRequest::Traces(r) => r.encoded_len(),
            OtlpRequest::Metrics(r) => r.encoded_len(),
            OtlpRequest::Logs(r) => r.encoded_len(),
        }
    }

    /// Whether the request carries no resources at all (a valid, empty export).
    pub fn is_empty(&self) -> bool {
        match self {
            OtlpRequest::Traces(r) => r.resource_spans.is_empty(),
            OtlpRequest::Metrics(r) => r.resource_metrics.is_empty(),
            OtlpRequest::Logs(r) => r.resource_logs.is_empty(),
        }
    }

    /// Sets the resource attribute `key` of every resource to the string `value`, replacing
    /// whatever value of that key came in (every one of them); with `None`, only removes
    /// them. A resource entry without a resource gets one.
    pub fn set_resource_attribute(&mut self, key: &str, value: Option<&str>) {
        let stamp = |resource: &mut Option<Resource>| {
            if let Some(resource) = resource.as_mut() {
                resource.attributes.retain(|kv| kv.key != key);
            }
            if let Some(value) = value {
                let resource = resource.get_or_insert_with(Resource::default);
                resource.attributes.push(KeyValue {
                    key: key.to_string(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(value.to_string())),
                    }),
                    ..Default::default()
                });
            }
        };
        match self {
            OtlpRequest::Traces(r) => r
                .resource_spans
                .iter_mut()
                .for_each(|e| stamp(&mut e.resource)),
            OtlpRequest::Metrics(r) => r
                .resource_metrics
                .iter_mut()
                .for_each(|e| stamp(&mut e.resource)),
            OtlpRequest::Logs(r) => r
                .resource_logs
                .iter_mut()
                .for_each(|e| stamp(&mut e.resource)),
        }
    }

    /// Counts resources and items and collects service names.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        let mut add_resource = |resource: Option<&Resource>, items: usize| {
            s.resources += 1;
            s.items += items;
            if let Some(name) = resource.and_then(|r| service_name(&r.attributes)) {
                s.services.insert(name);
            }
        };
        match self {
            OtlpRequest::Traces(r) => r.resource_spans.iter().for_each(|rs| {
                let n = rs.scope_spans.iter().map(|ss| ss.spans.len()).sum();
                add_resource(rs.resource.as_ref(), n);
            }),
            OtlpRequest::Metrics(r) => r.resource_metrics.iter().for_each(|rm| {
                let n = rm
                    .scope_metrics
                    .iter()
                    .flat_map(|sm| &sm.metrics)
                    .map(|m| data_points(m.data.as_ref()))
                    .sum();
                add_resource(rm.resource.as_ref(), n);
            }),
            OtlpRequest::Logs(r) => r.resource_logs.iter().for_each(|rl| {
                let n = rl.scope_logs.iter().map(|sl| sl.log_records.len()).sum();
                add_resource(rl.resource.as_ref(), n);
            }),
        }
        s
    }
}

/// The number of data points of a metric.
pub(crate) fn data_points(data: Option<&Data>) -> usize {
    match data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

fn service_name(attributes: &[KeyValue]) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_round_trips_through_decode_and_encode() {
        let req = crate::json::from_json(
            Signal::Logs,
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]}"#,
        )
        .unwrap();
        let bytes = req.to_protobuf();
        assert_eq!(req.encoded_len(), bytes.len());
        assert_eq!(
            OtlpRequest::decode_protobuf(Signal::Logs, &bytes).unwrap(),
            req
        );
    }

    #[test]
    fn garbage_is_a_protobuf_error_naming_the_type() {
        let err = OtlpRequest::decode_protobuf(Signal::Traces, &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            err.to_string().contains("ExportTraceServiceRequest"),
            "{err}"
        );
    }

    #[test]
    fn summary_counts_items_and_services() {
        let req = crate::json::from_json(
            Signal::Metrics,
            br#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
                "scopeMetrics":[{"metrics":[{"name":"m","gauge":{"dataPoints":[{"asInt":"1"},{"asDouble":2.5}]}}]}]}]}"#,
        )
        .unwrap();
        let s = req.summary();
        assert_eq!(s.resources, 1);
        assert_eq!(s.items, 2);
        assert_eq!(s.services.into_iter().collect::<Vec<_>>(), vec!["api"]);
    }

    #[test]
    fn empty_request_is_empty() {
        let req = OtlpRequest::decode_protobuf(Signal::Traces, &[]).unwrap();
        assert!(req.is_empty());
        assert_eq!(req.summary(), Summary::default());
    }

    #[test]
    fn a_stamped_attribute_replaces_every_incoming_value_of_its_key_on_every_resource() {
        let json = br#"{"resourceLogs":[
            {"resource":{"attributes":[
                {"key":"service.name","value":{"stringValue":"checkout"}},
                {"key":"slim.sender","value":{"stringValue":"forged/a"}},
                {"key":"slim.sender","value":{"stringValue":"forged/b"}}]},
             "scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]},
            {"scopeLogs":[{"logRecords":[{"body":{"stringValue":"y"}}]}]}]}"#;
        let mut request = crate::json::from_json(Signal::Logs, json).unwrap();
        request.set_resource_attribute("slim.sender", Some("acme/otel/receiver"));
        let OtlpRequest::Logs(logs) = &request else {
            panic!()
        };
        for entry in &logs.resource_logs {
            let attributes = &entry.resource.as_ref().unwrap().attributes;
            let senders: Vec<_> = attributes
                .iter()
                .filter(|kv| kv.key == "slim.sender")
                .collect();
            assert_eq!(senders.len(), 1, "{attributes:?}");
            assert_eq!(
                senders[0].value.as_ref().unwrap().value,
                Some(any_value::Value::StringValue("acme/otel/receiver".into()))
            );
        }
        assert_eq!(request.summary().services.len(), 1, "service.name is kept");
        request.set_resource_attribute("slim.sender", None);
        assert!(!format!("{request:?}").contains("slim.sender"));
    }
}
