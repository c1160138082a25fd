//! Every refusal a client gets, decided in one place: the HTTP status, the gRPC code (also
//! the code in HTTP `Status` bodies), `Retry-After` / `RetryInfo`, and the message. The
//! transports only render an [`Answer`]: OTLP/HTTP as a `google.rpc.Status` body in the
//! request's encoding, OTLP/gRPC as a status with a `RetryInfo` detail when it may be retried.
//!
//! The rules (OTLP specification): bad data is 400 / INVALID_ARGUMENT, never retried — a
//! request that is too large too (413 over HTTP; over gRPC INVALID_ARGUMENT, since clients
//! retry OUT_OF_RANGE and RESOURCE_EXHAUSTED without RetryInfo); "try later" is 503 /
//! UNAVAILABLE or 429 / RESOURCE_EXHAUSTED, always with when.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ingest::IngestError;
use crate::net::http::Format;
use crate::net::http::{JSON_CT, PROTOBUF_CT};
use otlp::status::{self, Code};

/// How a refused request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The google.rpc code: the gRPC status, and the code in HTTP error bodies.
    pub code: Code,
    /// When the client may try again (retryable answers only).
    pub retry_after: Option<Duration>,
    /// For developers.
    pub message: String,
}

impl Answer {
    fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Answer {
        Answer {
            status,
            code,
            retry_after: None,
            message: message.into(),
        }
    }

    fn retry(mut self, after: Duration) -> Answer {
        // Whole seconds (Retry-After has no fractions), at least one.
        let secs = (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1);
        self.retry_after = Some(Duration::from_secs(secs));
        self
    }

    /// The export could not be taken.
    pub fn ingest(err: &IngestError) -> Answer {
        match err {
            IngestError::BadData(_) => Answer::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                err.to_string(),
            ),
            IngestError::TooLarge(_) => Answer::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::InvalidArgument,
                err.to_string(),
            ),
            // As a Collector answers a signal it has no pipeline for.
            IngestError::NotCarried(_) => {
                Answer::new(StatusCode::NOT_FOUND, Code::Unimplemented, err.to_string())
            }
            IngestError::NotReady(_) | IngestError::Unavailable(_) => Answer::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
                err.to_string(),
            )
            .retry(Duration::from_secs(5)),
        }
    }

    /// No bearer token.
    pub fn unauthenticated() -> Answer {
        Answer::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthenticated,
            "a bearer token is required (Authorization: Bearer TOKEN)",
        )
    }

    /// A token that is not valid, or not for this.
    pub fn forbidden(message: impl Into<String>) -> Answer {
        Answer::new(StatusCode::FORBIDDEN, Code::PermissionDenied, message)
    }

    /// The key's rate limit is used up for `wait`.
    pub fn rate_limited(wait: Duration) -> Answer {
        Answer::new(
            StatusCode::TOO_MANY_REQUESTS,
            Code::ResourceExhausted,
            "rate limit of this key exceeded; retry later",
        )
        .retry(wait)
    }

    /// Too many requests at once.
    pub fn busy() -> Answer {
        Answer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "too many requests at once; retry later",
        )
        .retry(Duration::from_secs(1))
    }

    /// Not now, for the reason `message` gives; try again after `after`.
    pub fn unavailable(message: impl Into<String>, after: Duration) -> Answer {
        Answer::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, message).retry(after)
    }

    /// A body that cannot be read, or a request that makes no sense.
    pub fn bad_request(message: impl Into<String>) -> Answer {
        Answer::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, message)
    }

    /// Another `Content-Type`.
    pub fn unsupported_media_type() -> Answer {
        Answer::unsupported_media_type_for(
            "Content-Type must be application/x-protobuf or application/json",
        )
    }

    /// Another `Content-Type` than the API's (`message` says which it takes).
    pub fn unsupported_media_type_for(message: impl Into<String>) -> Answer {
        Answer::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            message,
        )
    }

    /// An `Accept` header that allows none of the encodings served.
    pub fn not_acceptable(message: impl Into<String>) -> Answer {
        Answer::new(StatusCode::NOT_ACCEPTABLE, Code::InvalidArgument, message)
    }

    /// Something failed on this side (e.g. the store cannot be read).
    pub fn internal(message: impl Into<String>) -> Answer {
        Answer::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, message)
    }

    /// An unknown path.
    pub fn not_found(message: impl Into<String>) -> Answer {
        Answer::new(StatusCode::NOT_FOUND, Code::NotFound, message)
    }

    /// Another method than `allow`.
    pub fn method_not_allowed(allow: &str) -> Answer {
        Answer::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unimplemented,
            format!("method not allowed; use {allow}"),
        )
    }

    /// Not possible in the node's state (e.g. administering a participant).
    pub fn conflict(message: impl Into<String>) -> Answer {
        Answer::new(StatusCode::CONFLICT, Code::FailedPrecondition, message)
    }

    /// The OTLP/HTTP response: a `Status` body in `format`, `Retry-After` when retryable,
    /// `WWW-Authenticate` on 401.
    pub fn http(&self, format: Format) -> Response {
        let (ct, body) = match format {
            Format::Protobuf => (PROTOBUF_CT, status::to_protobuf(self.code, &self.message)),
            Format::Json => (JSON_CT, status::to_json(self.code, &self.message)),
        };
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }

    /// The gRPC status, with a `RetryInfo` detail when retryable (and only then, so that
    /// clients do not retry the others).
    pub fn grpc(&self) -> tonic::Status {
        let code = tonic::Code::from_i32(self.code as i32);
        match self.retry_after {
            Some(after) => tonic::Status::with_error_details(
                code,
                self.message.clone(),
                ErrorDetails::with_retry_info(Some(after)),
            ),
            None => tonic::Status::new(code, self.message.clone()),
        }
    }
}

/// 405 with `Allow: allow`.
pub fn method_not_allowed_response(allow: &'static str) -> Response {
    let mut response = Answer::method_not_allowed(allow).http(Format::Json);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp::CodecError;

    #[test]
    fn bad_data_is_400_and_invalid_argument_and_never_retried() {
        let a = Answer::ingest(&IngestError::BadData(CodecError::UnknownSignal("x".into())));
        assert_eq!(
            (a.status, a.code, a.retry_after),
            (StatusCode::BAD_REQUEST, Code::InvalidArgument, None)
        );
    }

    #[test]
    fn too_large_is_413_over_http_and_invalid_argument_over_grpc() {
        let a = Answer::ingest(&IngestError::TooLarge("big".into()));
        assert_eq!(
            (a.status, a.code),
            (StatusCode::PAYLOAD_TOO_LARGE, Code::InvalidArgument)
        );
        assert_eq!(a.grpc().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn try_later_says_when_in_both_transports() {
        let a = Answer::ingest(&IngestError::Unavailable("full".into()));
        assert_eq!(
            (a.status, a.code),
            (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
        );
        let http = a.http(Format::Json);
        assert_eq!(http.headers()[header::RETRY_AFTER], "5");
        let grpc = a.grpc();
        assert_eq!(
            grpc.get_details_retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_rate_limit_wait_is_rounded_up_to_whole_seconds() {
        let a = Answer::rate_limited(Duration::from_millis(1200));
        assert_eq!(a.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(
            Answer::rate_limited(Duration::ZERO).retry_after,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn answers_without_retry_carry_no_retry_info() {
        assert!(Answer::forbidden("no")
            .grpc()
            .get_details_retry_info()
            .is_none());
        assert!(!Answer::bad_request("no")
            .http(Format::Json)
            .headers()
            .contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn a_401_names_the_scheme() {
        let r = Answer::unauthenticated().http(Format::Protobuf);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-protobuf");
    }
}
