//! OTLP/JSON: the JSON encoding the OTLP specification defines (not plain proto3 JSON).
//!
//! Trace and span ids are hex (any case in, lower case out), enums are integers (names are
//! refused), 64-bit integers are read as string or number and written as strings, unknown
//! fields are ignored and `null` means "not set". The mapping itself is the
//! `opentelemetry-proto` crate's serde support; the tests below pin the behaviour we rely on.

use serde::Serialize;

use super::{CodecError, OtlpRequest, Signal};

/// Parses an OTLP/JSON `Export*ServiceRequest` of `signal`.
pub fn from_json(signal: Signal, body: &[u8]) -> Result<OtlpRequest, CodecError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| CodecError::Json(signal, e.to_string()))?;
    if !value.is_object() {
        return Err(CodecError::Json(
            signal,
            "the body must be a JSON object".into(),
        ));
    }
    // proto3 JSON: a null field is the field's default. The generated types refuse null for
    // lists and numbers, so nulls are dropped before mapping.
    strip_nulls(&mut value);
    let err = |e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        CodecError::Json(signal, format!("at {path}: {}", e.into_inner()))
    };
    Ok(match signal {
        Signal::Traces => {
            OtlpRequest::Traces(serde_path_to_error::deserialize(value).map_err(err)?)
        }
        Signal::Metrics => {
            OtlpRequest::Metrics(serde_path_to_error::deserialize(value).map_err(err)?)
        }
        Signal::Logs => OtlpRequest::Logs(serde_path_to_error::deserialize(value).map_err(err)?),
    })
}

fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

impl Serialize for OtlpRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OtlpRequest::Traces(r) => r.serialize(serializer),
            OtlpRequest::Metrics(r) => r.serialize(serializer),
            OtlpRequest::Logs(r) => r.serialize(serializer),
        }
    }
}

/// The OTLP/JSON encoding of `request`.
pub fn to_json(request: &OtlpRequest) -> Vec<u8> {
    // Serializing these plain data types into memory cannot fail.
    serde_json::to_vec(request).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
    use serde_json::json;

    fn traces(
        v: serde_json::Value,
    ) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        match from_json(Signal::Traces, v.to_string().as_bytes()).unwrap() {
            OtlpRequest::Traces(r) => r,
            _ => unreachable!(),
        }
    }

    fn metrics(
        v: serde_json::Value,
    ) -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
        match from_json(Signal::Metrics, v.to_string().as_bytes()).unwrap() {
            OtlpRequest::Metrics(r) => r,
            _ => unreachable!(),
        }
    }

    fn span_json(extra: serde_json::Value) -> serde_json::Value {
        let mut span = json!({
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "eee19b7ec3c1b173",
            "name": "GET /",
            "kind": 2,
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": 1544712661000000000u64
        });
        span.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"resourceSpans":[{"scopeSpans":[{"spans":[span]}]}]})
    }

    #[test]
    fn hex_ids_are_read_in_any_case_and_written_lower_case() {
        let req = traces(span_json(json!({})));
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id.len(), 8);
        let out: serde_json::Value =
            serde_json::from_slice(&to_json(&OtlpRequest::Traces(req))).unwrap();
        let out_span = &out["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(out_span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(out_span["spanId"], "eee19b7ec3c1b174");
        assert_eq!(out_span["parentSpanId"], "eee19b7ec3c1b173");
    }

    #[test]
    fn int64_is_read_as_string_or_number_and_written_as_string() {
        let req = traces(span_json(json!({})));
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1544712660000000000);
        assert_eq!(span.end_time_unix_nano, 1544712661000000000);
        let out: serde_json::Value =
            serde_json::from_slice(&to_json(&OtlpRequest::Traces(req))).unwrap();
        assert_eq!(
            out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["endTimeUnixNano"],
            "1544712661000000000"
        );
    }

    #[test]
    fn enums_are_integers_on_input_and_output() {
        let req = traces(span_json(json!({"status": {"code": 2, "message": "boom"}})));
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, 2);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        let out: serde_json::Value =
            serde_json::from_slice(&to_json(&OtlpRequest::Traces(req))).unwrap();
        assert_eq!(
            out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"],
            2
        );
    }

    #[test]
    fn enum_names_are_refused_naming_the_field() {
        let body = span_json(json!({"kind": "SPAN_KIND_SERVER"})).to_string();
        let err = from_json(Signal::Traces, body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("kind"), "{err}");
    }

    #[test]
    fn unknown_fields_are_ignored_at_every_level() {
        let req = traces(json!({
            "futureTopLevel": 1,
            "resourceSpans": [{"newField": {"x": [1,2]}, "scopeSpans": [{"spans": [{"name": "s", "somethingNew": true}]}]}]
        }));
        assert_eq!(req.resource_spans[0].scope_spans[0].spans[0].name, "s");
    }

    #[test]
    fn null_fields_mean_unset() {
        let req = traces(
            json!({"resourceSpans": [{"resource": null, "scopeSpans": [{"scope": null, "spans": null}]}]}),
        );
        assert!(req.resource_spans[0].resource.is_none());
        assert!(req.resource_spans[0].scope_spans[0].spans.is_empty());
    }

    #[test]
    fn attribute_values_of_every_type_are_kept() {
        let req = traces(json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "s", "value": {"stringValue": "x"}},
            {"key": "i", "value": {"intValue": "-42"}},
            {"key": "n", "value": {"intValue": 7}},
            {"key": "d", "value": {"doubleValue": 1.5}},
            {"key": "b", "value": {"boolValue": true}},
            {"key": "y", "value": {"bytesValue": "AQID"}},
            {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "z"}]}}},
            {"key": "k", "value": {"kvlistValue": {"values": [{"key": "in", "value": {"intValue": "1"}}]}}},
            {"key": "e", "value": {}}
        ]}}]}));
        let attrs = &req.resource_spans[0].resource.as_ref().unwrap().attributes;
        let v = |i: usize| attrs[i].value.as_ref().and_then(|v| v.value.clone());
        assert_eq!(v(0), Some(Value::StringValue("x".into())));
        assert_eq!(v(1), Some(Value::IntValue(-42)));
        assert_eq!(v(2), Some(Value::IntValue(7)));
        assert_eq!(v(3), Some(Value::DoubleValue(1.5)));
        assert_eq!(v(4), Some(Value::BoolValue(true)));
        assert_eq!(v(5), Some(Value::BytesValue(vec![1, 2, 3])));
        assert!(matches!(v(6), Some(Value::ArrayValue(a)) if a.values.len() == 1));
        assert!(matches!(v(7), Some(Value::KvlistValue(k)) if k.values.len() == 1));
        assert_eq!(v(8), None, "an empty AnyValue is valid and empty");
    }

    #[test]
    fn bytes_values_are_written_as_base64() {
        let req = traces(json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "y", "value": {"bytesValue": "AQID"}}]}}]}));
        let out: serde_json::Value =
            serde_json::from_slice(&to_json(&OtlpRequest::Traces(req))).unwrap();
        assert_eq!(
            out["resourceSpans"][0]["resource"]["attributes"][0]["value"]["bytesValue"],
            "AQID"
        );
    }

    #[test]
    fn every_metric_type_keeps_its_data_points() {
        let req = metrics(json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "g", "gauge": {"dataPoints": [{"asInt": "3", "timeUnixNano": "1"}, {"asDouble": 0.5}]}},
            {"name": "s", "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [{"asInt": 9}]}},
            {"name": "h", "histogram": {"aggregationTemporality": 1, "dataPoints": [
                {"count": "3", "sum": 6.0, "bucketCounts": ["1", 2], "explicitBounds": [1.0]}]}},
            {"name": "e", "exponentialHistogram": {"dataPoints": [
                {"count": 2, "scale": 1, "positive": {"offset": 1, "bucketCounts": ["2"]}}]}},
            {"name": "q", "summary": {"dataPoints": [
                {"count": "1", "sum": 1.0, "quantileValues": [{"quantile": 0.5, "value": 1.0}]}]}}
        ]}]}]}));
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        match &metrics[0].data {
            Some(Data::Gauge(g)) => {
                assert_eq!(
                    g.data_points[0].value,
                    Some(number_data_point::Value::AsInt(3))
                );
                assert_eq!(
                    g.data_points[1].value,
                    Some(number_data_point::Value::AsDouble(0.5))
                );
            }
            other => panic!("gauge lost: {other:?}"),
        }
        assert!(
            matches!(&metrics[1].data, Some(Data::Sum(s)) if s.is_monotonic && s.data_points[0].value == Some(number_data_point::Value::AsInt(9)))
        );
        assert!(
            matches!(&metrics[2].data, Some(Data::Histogram(h)) if h.data_points[0].bucket_counts == vec![1, 2])
        );
        assert!(
            matches!(&metrics[3].data, Some(Data::ExponentialHistogram(h)) if h.data_points[0].positive.as_ref().unwrap().bucket_counts == vec![2])
        );
        assert!(
            matches!(&metrics[4].data, Some(Data::Summary(s)) if s.data_points[0].quantile_values.len() == 1)
        );
    }

    #[test]
    fn log_records_keep_their_ids_and_body() {
        let req = from_json(Signal::Logs, json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
            "timeUnixNano": "1", "severityNumber": 9, "severityText": "INFO",
            "body": {"stringValue": "hello"}, "traceId": "0102030405060708090A0B0C0D0E0F10", "spanId": "0102030405060708"
        }]}]}]}).to_string().as_bytes()).unwrap();
        let OtlpRequest::Logs(r) = &req else {
            unreachable!()
        };
        let rec = &r.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, 9);
        assert_eq!(rec.trace_id, (1..=16).collect::<Vec<u8>>());
        let out: serde_json::Value = serde_json::from_slice(&to_json(&req)).unwrap();
        assert_eq!(
            out["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"],
            "0102030405060708090a0b0c0d0e0f10"
        );
    }

    #[test]
    fn json_to_protobuf_to_json_to_protobuf_is_the_identity() {
        for (signal, body) in [
            (
                Signal::Traces,
                span_json(json!({"attributes": [{"key": "k", "value": {"intValue": "5"}}]})),
            ),
            (
                Signal::Metrics,
                json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": [{"asDouble": 1.25}]}}]}]}]}),
            ),
            (
                Signal::Logs,
                json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"kvlistValue": {"values": [{"key": "a", "value": {"boolValue": false}}]}}}]}]}]}),
            ),
        ] {
            let first = from_json(signal, body.to_string().as_bytes()).unwrap();
            let proto = first.to_protobuf();
            let again = from_json(
                signal,
                &to_json(&OtlpRequest::decode_protobuf(signal, &proto).unwrap()),
            )
            .unwrap();
            assert_eq!(again.to_protobuf(), proto, "{signal}");
        }
    }

    #[test]
    fn doubles_survive_json_to_the_last_bit() {
        // Found by the round-trip property: without serde_json's float_roundtrip this came
        // back one ULP off.
        let value = 2.2443254600753686e-63_f64;
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"doubleValue":{value:e}}}}}]}}]}}]}}"#
        );
        let OtlpRequest::Logs(r) = from_json(Signal::Logs, body.as_bytes()).unwrap() else {
            unreachable!()
        };
        let body = r.resource_logs[0].scope_logs[0].log_records[0].body.clone();
        assert_eq!(body.and_then(|b| b.value), Some(Value::DoubleValue(value)));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = from_json(
            Signal::Traces,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("resourceSpans[0].scopeSpans[0].spans[0].name"),
            "{err}"
        );
    }

    #[test]
    fn a_non_object_body_is_refused() {
        assert!(from_json(Signal::Logs, b"[]").is_err());
        assert!(from_json(Signal::Logs, b"not json").is_err());
    }

    #[test]
    fn empty_object_is_an_empty_request() {
        assert!(from_json(Signal::Metrics, b"{}").unwrap().is_empty());
    }
}
