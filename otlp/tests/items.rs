//! Property: cutting spans and log records out of the protobuf bytes gives the items, times
//! and resource entries that decoding and re-encoding them gives.

mod requests;

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use otlp::items::{split_encoded, split_items};
use otlp::{OtlpRequest, Signal};
use proptest::prelude::*;
use prost::Message;
use requests::{logs, traces};

fn assert_same_split<M: Message + Default + PartialEq + std::fmt::Debug>(request: OtlpRequest) {
    let signal = request.signal();
    let cut = split_encoded(signal, &request.to_protobuf().into()).expect("well-formed bytes");
    let decoded = split_items(&request);
    assert!(cut.times().eq(decoded.times()));
    let decode = |e: &Vec<u8>| M::decode(e.as_slice()).unwrap();
    assert_eq!(
        cut.entries()
            .unwrap()
            .iter()
            .map(decode)
            .collect::<Vec<_>>(),
        decoded
            .entries()
            .unwrap()
            .iter()
            .map(decode)
            .collect::<Vec<_>>()
    );
    assert_eq!(cut.contexts.len(), decoded.contexts.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn spans_cut_from_the_bytes_are_the_decoded_spans(r in traces()) {
        assert_same_split::<ResourceSpans>(OtlpRequest::Traces(r));
    }

    #[test]
    fn log_records_cut_from_the_bytes_are_the_decoded_records(r in logs()) {
        assert_same_split::<ResourceLogs>(OtlpRequest::Logs(r));
    }

    #[test]
    fn any_bytes_never_panic_the_cutter(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for signal in Signal::ALL {
            let _ = split_encoded(signal, &bytes.clone().into());
        }
    }
}
