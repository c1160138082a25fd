//! Property: for any OTLP request, protobuf → OTLP/JSON → protobuf is the identity, for every
//! signal and every value type (the opentelemetry-proto serde mapping has lost data before).

mod requests;

use otlp::{json, OtlpRequest, Signal};
use proptest::collection::vec;
use proptest::prelude::*;
use requests::{logs, metrics, traces};

/// protobuf → JSON → protobuf gives the same bytes.
fn assert_round_trip(request: OtlpRequest) {
    let signal = request.signal();
    let proto = request.to_protobuf();
    let decoded = OtlpRequest::decode_protobuf(signal, &proto).unwrap();
    let text = json::to_json(&decoded);
    let back = json::from_json(signal, &text)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&text)));
    assert!(
        back.to_protobuf() == proto,
        "not the identity; JSON: {}",
        String::from_utf8_lossy(&text)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn traces_round_trip_through_json(r in traces()) {
        assert_round_trip(OtlpRequest::Traces(r));
    }

    #[test]
    fn metrics_round_trip_through_json(r in metrics()) {
        assert_round_trip(OtlpRequest::Metrics(r));
    }

    #[test]
    fn logs_round_trip_through_json(r in logs()) {
        assert_round_trip(OtlpRequest::Logs(r));
    }

    #[test]
    fn any_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..512)) {
        for signal in Signal::ALL {
            let _ = OtlpRequest::decode_protobuf(signal, &bytes);
            let _ = json::from_json(signal, &bytes);
        }
    }
}
