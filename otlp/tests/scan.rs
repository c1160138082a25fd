//! Property: the scanner vouches for a protobuf request only when decoding it succeeds and
//! validation drops nothing, and then its counts are the decoder's — for well-formed requests
//! and for any damage done to their bytes.

mod requests;

use otlp::scan::{scan, Scanned};
use otlp::validate::validate;
use otlp::{OtlpRequest, Signal};
use proptest::collection::vec;
use proptest::prelude::*;
use requests::requests;

/// What the decoder says of `bytes`: its counts when it decodes and validation drops
/// nothing, else `None`.
fn decoder_verdict(signal: Signal, bytes: &[u8]) -> Option<Scanned> {
    let mut request = OtlpRequest::decode_protobuf(signal, bytes).ok()?;
    if validate(&mut request).count > 0 {
        return None;
    }
    let summary = request.summary();
    Some(Scanned {
        resources: summary.resources,
        items: summary.items,
    })
}

/// Damage to a request's bytes: bytes overwritten, then the end cut off.
#[derive(Debug, Clone)]
struct Damage {
    writes: Vec<(prop::sample::Index, u8)>,
    keep: Option<prop::sample::Index>,
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::option::weighted(0.2, any::<prop::sample::Index>()),
    )
        .prop_map(|(writes, keep)| Damage { writes, keep })
}

impl Damage {
    fn apply(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        if bytes.is_empty() {
            return bytes;
        }
        for (at, value) in &self.writes {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some(keep) = &self.keep {
            bytes.truncate(keep.index(bytes.len()));
        }
        bytes
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn well_formed_requests_get_the_decoders_verdict(request in requests()) {
        let signal = request.signal();
        let bytes = request.to_protobuf();
        prop_assert_eq!(scan(signal, &bytes), decoder_verdict(signal, &bytes));
    }

    #[test]
    fn damaged_bytes_are_never_vouched_for_wrongly(request in requests(), damage in damage()) {
        let signal = request.signal();
        let bytes = damage.apply(request.to_protobuf());
        if let Some(scanned) = scan(signal, &bytes) {
            prop_assert_eq!(Some(scanned), decoder_verdict(signal, &bytes));
        }
    }

    #[test]
    fn any_bytes_are_never_vouched_for_wrongly(bytes in vec(any::<u8>(), 0..256)) {
        for signal in Signal::ALL {
            if let Some(scanned) = scan(signal, &bytes) {
                prop_assert_eq!(Some(scanned), decoder_verdict(signal, &bytes));
            }
        }
    }
}
