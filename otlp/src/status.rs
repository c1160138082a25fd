//! `google.rpc.Status` bodies, the error answer of OTLP/HTTP.

use prost::Message;

/// A gRPC status code (google.rpc.Code) used in error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// Bad data; never retried.
    InvalidArgument = 3,
    /// Unknown path.
    NotFound = 5,
    /// Valid credentials that may not do this.
    PermissionDenied = 7,
    /// A quota (rate limit, size) is used up.
    ResourceExhausted = 8,
    /// Not possible in the current state (e.g. administering a participant).
    FailedPrecondition = 9,
    /// Method not allowed.
    Unimplemented = 12,
    /// A bug on our side.
    Internal = 13,
    /// Try again later.
    Unavailable = 14,
    /// No or bad credentials.
    Unauthenticated = 16,
}

/// Encodes a Status as protobuf.
pub fn to_protobuf(code: Code, message: &str) -> Vec<u8> {
    tonic_types::pb::Status {
        code: code as i32,
        message: message.to_string(),
        details: vec![],
    }
    .encode_to_vec()
}

/// Encodes a Status as JSON (`{"code":3,"message":"…"}`).
pub fn to_json(code: Code, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "code": code as i32, "message": message }))
        .unwrap_or_default()
}

/// The `message` of a `google.rpc.Status` error body, protobuf or JSON, if it is one.
pub fn message_of(body: &[u8]) -> Option<String> {
    if let Ok(st) = tonic_types::pb::Status::decode(body) {
        if !st.message.is_empty() {
            return Some(st.message);
        }
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["message"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_status_decodes_with_code_and_message() {
        let bytes = to_protobuf(Code::InvalidArgument, "bad span");
        let st = tonic_types::pb::Status::decode(bytes.as_slice()).unwrap();
        assert_eq!((st.code, st.message.as_str()), (3, "bad span"));
    }

    #[test]
    fn an_error_bodys_message_is_read_in_both_encodings() {
        assert_eq!(
            message_of(&to_protobuf(Code::InvalidArgument, "bad span")).as_deref(),
            Some("bad span")
        );
        assert_eq!(
            message_of(&to_json(Code::InvalidArgument, "bad span")).as_deref(),
            Some("bad span")
        );
        assert_eq!(message_of(b"<html>oops</html>"), None);
    }

    #[test]
    fn json_status_has_code_and_message() {
        let v: serde_json::Value =
            serde_json::from_slice(&to_json(Code::Unavailable, "later")).unwrap();
        assert_eq!(v, serde_json::json!({"code": 14, "message": "later"}));
    }
}
