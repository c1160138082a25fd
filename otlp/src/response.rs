//! `Export*ServiceResponse` bodies: empty on full success (`partial_success` unset), or with
//! the rejected count and an English message on partial success.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::validate::Rejected;
use crate::Signal;

/// The traces response.
pub fn traces(rejected: &Rejected) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected.count > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected.count as i64,
            error_message: rejected.message(),
        }),
    }
}

/// The metrics response.
pub fn metrics(rejected: &Rejected) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (rejected.count > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: rejected.count as i64,
            error_message: rejected.message(),
        }),
    }
}

/// The logs response.
pub fn logs(rejected: &Rejected) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (rejected.count > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected.count as i64,
            error_message: rejected.message(),
        }),
    }
}

/// The protobuf response for `signal`.
pub fn to_protobuf(signal: Signal, rejected: &Rejected) -> Vec<u8> {
    match signal {
        Signal::Traces => traces(rejected).encode_to_vec(),
        Signal::Metrics => metrics(rejected).encode_to_vec(),
        Signal::Logs => logs(rejected).encode_to_vec(),
    }
}

/// The OTLP/JSON response for `signal`: `{}`, or `{"partialSuccess":{…}}` with the 64-bit
/// count written as a string, as OTLP/JSON requires.
pub fn to_json(signal: Signal, rejected: &Rejected) -> Vec<u8> {
    if rejected.count == 0 {
        return b"{}".to_vec();
    }
    let key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let body = serde_json::json!({
        "partialSuccess": { key: rejected.count.to_string(), "errorMessage": rejected.message() }
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What a backend's `Export*ServiceResponse` says it rejected: the count and its message
/// (`None` when `partial_success` is unset or rejects nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialSuccess {
    /// Spans, data points or log records rejected.
    pub rejected: i64,
    /// The backend's reason.
    pub message: String,
}

/// Reads a protobuf `Export*ServiceResponse` for `signal`.
pub fn partial_success_from_protobuf(
    signal: Signal,
    body: &[u8],
) -> Result<Option<PartialSuccess>, prost::DecodeError> {
    let found = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)?
            .partial_success
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)?
            .partial_success
            .map(|p| (p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)?
            .partial_success
            .map(|p| (p.rejected_log_records, p.error_message)),
    };
    Ok(partial(found))
}

/// Reads an OTLP/JSON `Export*ServiceResponse` for `signal` (counts as string or number).
pub fn partial_success_from_json(
    signal: Signal,
    body: &[u8],
) -> Result<Option<PartialSuccess>, serde_json::Error> {
    let v: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body)?
    };
    let key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let p = &v["partialSuccess"];
    let rejected = match &p[key] {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    };
    let message = p["errorMessage"].as_str().unwrap_or_default().to_string();
    Ok(partial(p.is_object().then_some((rejected, message))))
}

fn partial(found: Option<(i64, String)>) -> Option<PartialSuccess> {
    // A partial_success with nothing rejected and no message is a full success (some
    // servers send it empty).
    found
        .filter(|(rejected, message)| *rejected != 0 || !message.is_empty())
        .map(|(rejected, message)| PartialSuccess { rejected, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backends_partial_success_is_read_in_both_encodings() {
        let mut rejected = Rejected::default();
        rejected.add(2, "bad ids");
        for signal in Signal::ALL {
            let pb = partial_success_from_protobuf(signal, &to_protobuf(signal, &rejected))
                .unwrap()
                .unwrap();
            assert_eq!(pb.rejected, 2);
            assert!(pb.message.contains("bad ids"));
            let json = partial_success_from_json(signal, &to_json(signal, &rejected))
                .unwrap()
                .unwrap();
            assert_eq!(json, pb);
        }
    }

    #[test]
    fn an_empty_or_empty_partial_success_is_full_success() {
        assert_eq!(
            partial_success_from_protobuf(Signal::Logs, b"").unwrap(),
            None
        );
        assert_eq!(
            partial_success_from_json(Signal::Logs, b"{}").unwrap(),
            None
        );
        assert_eq!(partial_success_from_json(Signal::Logs, b"").unwrap(), None);
        assert_eq!(
            partial_success_from_json(Signal::Traces, br#"{"partialSuccess":{}}"#).unwrap(),
            None
        );
    }

    #[test]
    fn full_success_leaves_partial_success_unset() {
        for signal in Signal::ALL {
            assert!(to_protobuf(signal, &Rejected::default()).is_empty());
            assert_eq!(to_json(signal, &Rejected::default()), b"{}");
        }
    }

    #[test]
    fn partial_success_names_count_and_reason() {
        let mut rejected = Rejected::default();
        rejected.add(
            3,
            "invalid span: trace_id must be 16 bytes and not all zero",
        );
        let v: serde_json::Value =
            serde_json::from_slice(&to_json(Signal::Traces, &rejected)).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedSpans"], "3");
        assert!(v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace_id"));
        let pb = ExportLogsServiceResponse::decode(to_protobuf(Signal::Logs, &rejected).as_slice())
            .unwrap();
        assert_eq!(pb.partial_success.unwrap().rejected_log_records, 3);
    }
}
