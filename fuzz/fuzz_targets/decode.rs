//! The ingest decode path on arbitrary bytes: decompression, protobuf and OTLP/JSON decoding,
//! validation and splitting must never panic, whatever decodes must survive
//! protobuf → JSON → protobuf, and the in-place scan vouches only for what the decoder takes
//! whole, with the decoder's counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp::compression::{decompress, Encoding};
use otlp::validate::validate;
use otlp::{json, OtlpRequest, Signal};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let signal = Signal::ALL[usize::from(selector % 3)];
    let encoding = [Encoding::Identity, Encoding::Gzip, Encoding::Deflate, Encoding::Zstd]
        [usize::from(selector / 3 % 4)];
    let Ok(raw) = decompress(encoding, body, 1 << 20) else { return };
    if let Some(scanned) = otlp::scan::scan(signal, &raw) {
        let mut request = OtlpRequest::decode_protobuf(signal, &raw).expect("scanned bytes decode");
        assert_eq!(validate(&mut request).count, 0, "the scan let an invalid item through");
        let summary = request.summary();
        assert_eq!((scanned.resources, scanned.items), (summary.resources, summary.items));
    }
    let decoded = if selector & 0x80 == 0 {
        OtlpRequest::decode_protobuf(signal, &raw)
    } else {
        json::from_json(signal, &raw)
    };
    let Ok(mut request) = decoded else { return };
    // JSON → protobuf → JSON gives the same text (NaN stays "NaN", so text, not bytes).
    let text = json::to_json(&request);
    let back = json::from_json(signal, &text).expect("our own JSON must parse");
    assert_eq!(json::to_json(&back), text, "JSON is not stable");
    let proto = back.to_protobuf();
    OtlpRequest::decode_protobuf(signal, &proto).expect("our own protobuf must decode");
    let total = request.summary().items;
    let rejected = validate(&mut request);
    let before = request.summary().items;
    assert_eq!(before + rejected.count, total, "validation lost items");
    let split = request.split(4096);
    let kept: usize = split.parts.iter().map(|p| p.summary().items).sum();
    assert_eq!(kept + split.rejected.count, before, "split lost items");
    assert!(split.parts.iter().all(|p| p.to_protobuf().len() <= 4096), "a part is too large");
});
