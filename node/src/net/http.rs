//! HTTP helpers every server of the node shares (the OTLP receiver, the health endpoints,
//! the query API, the live view): the request's body format, the 405 answer, the health paths.

use axum::http::{header, HeaderMap};

/// How the request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

/// `Content-Type` of protobuf bodies.
pub const PROTOBUF_CT: &str = "application/x-protobuf";
/// `Content-Type` of JSON bodies.
pub const JSON_CT: &str = "application/json";

/// The paths of the health endpoints; the guard lets them through without a token (probes
/// carry none).
pub fn is_health_path(path: &str) -> bool {
    matches!(path, "/health" | "/health/live" | "/health/ready")
}

/// A header's value as text, if it is.
pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The body format from `Content-Type`, parameters (e.g. charset) allowed.
pub fn request_format(headers: &HeaderMap) -> Option<Format> {
    let value = header_str(headers, header::CONTENT_TYPE)?;
    let mime = value.split(';').next()?.trim().to_ascii_lowercase();
    match mime.as_str() {
        PROTOBUF_CT => Some(Format::Protobuf),
        JSON_CT => Some(Format::Json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn content_type_parameters_are_allowed() {
        assert_eq!(
            request_format(&headers("application/json; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            request_format(&headers("Application/X-Protobuf")),
            Some(Format::Protobuf)
        );
        assert_eq!(request_format(&headers("text/plain")), None);
        assert_eq!(request_format(&HeaderMap::new()), None);
    }
}
