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

#[cfg(test)]
mod tests {
    use super::*;

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
