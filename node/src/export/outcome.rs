//! How an answer is classified, as the OTLP specification says: accepted (perhaps partly), to
//! retry (and not before when), or refused for good.

use std::time::Duration;

use otlp::response::{self, PartialSuccess};
use otlp::Signal;
use tonic_types::StatusExt;

/// What the backend made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken; perhaps with some items rejected.
    Accepted(Option<PartialSuccess>),
    /// Not taken now: send it again, not before `after` when the backend said so.
    Retry {
        /// The backend's `Retry-After` / `RetryInfo`.
        after: Option<Duration>,
        /// What happened.
        reason: String,
    },
    /// Refused for good (bad data, not allowed): sending it again would not help.
    Refused(String),
}

/// The OTLP/HTTP rules: 2xx taken; 429, 502, 503 and 504 retried (after `Retry-After`);
/// anything else refused for good, with the backend's message.
pub(super) fn http_outcome(
    signal: Signal,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    json: bool,
) -> Outcome {
    if (200..300).contains(&status) {
        let partial = if json {
            response::partial_success_from_json(signal, body)
                .ok()
                .flatten()
        } else {
            response::partial_success_from_protobuf(signal, body)
                .ok()
                .flatten()
        };
        return Outcome::Accepted(partial);
    }
    let message = otlp::status::message_of(body)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    let reason = format!("HTTP {status}: {message}");
    match status {
        429 | 502 | 503 | 504 => Outcome::Retry {
            after: retry_after,
            reason,
        },
        _ => Outcome::Refused(reason),
    }
}

/// The OTLP/gRPC rules: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and
/// DATA_LOSS retried; RESOURCE_EXHAUSTED only with a `RetryInfo`; anything else refused.
pub(super) fn grpc_outcome(status: &tonic::Status) -> Outcome {
    use tonic::Code;
    let after = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map(crate::net::client::bounded_wait);
    let reason = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retry { after, reason },
        Code::ResourceExhausted if after.is_some() => Outcome::Retry { after, reason },
        _ => Outcome::Refused(reason),
    }
}

/// An error with its causes, which is where reqwest says what actually went wrong.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // An HTTP client's error names the URL whole: its user part and query stay out.
    crate::net::redact::urls(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_classified_as_the_spec_says() {
        let s = Signal::Logs;
        assert_eq!(
            http_outcome(s, 200, None, b"", false),
            Outcome::Accepted(None)
        );
        for retryable in [429, 502, 503, 504] {
            assert!(matches!(
                http_outcome(s, retryable, Some(Duration::from_secs(3)), b"", false),
                Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
            ));
        }
        for permanent in [400, 401, 403, 404, 413, 500] {
            assert!(matches!(
                http_outcome(s, permanent, None, b"", false),
                Outcome::Refused(_)
            ));
        }
    }

    #[test]
    fn a_refusal_carries_the_backends_message() {
        let body =
            otlp::status::to_protobuf(otlp::status::Code::InvalidArgument, "span 3 has no id");
        let Outcome::Refused(reason) = http_outcome(Signal::Traces, 400, None, &body, false) else {
            panic!("400 is permanent")
        };
        assert!(reason.contains("span 3 has no id"), "{reason}");
    }

    #[test]
    fn grpc_codes_are_classified_as_the_spec_says() {
        use tonic::Code;
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Cancelled,
        ] {
            assert!(matches!(
                grpc_outcome(&tonic::Status::new(code, "x")),
                Outcome::Retry { .. }
            ));
        }
        assert!(matches!(
            grpc_outcome(&tonic::Status::new(Code::ResourceExhausted, "x")),
            Outcome::Refused(_)
        ));
        let with_info = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        );
        assert!(matches!(
            grpc_outcome(&with_info),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(2)
        ));
        assert!(matches!(
            grpc_outcome(&tonic::Status::new(Code::InvalidArgument, "bad")),
            Outcome::Refused(_)
        ));
    }
}
