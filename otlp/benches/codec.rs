//! The receive path's CPU work per request, so that regressions show:
//! OTLP/JSON → protobuf, protobuf decode + validation, the in-place scan that replaces them for
//! requests forwarded as they came, encode, gzip, splitting, and the items the store keeps.
//! Run with `cargo bench -p slim-node-otlp`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use otlp::compression::{decompress, gzip, Encoding};
use otlp::validate::validate;
use otlp::{json, OtlpRequest, Signal};

/// An OTLP/JSON trace request with `spans` spans shaped like the seed's curl body.
fn traces_json(spans: usize) -> Vec<u8> {
    let spans: Vec<String> = (0..spans)
        .map(|i| {
            format!(
                r#"{{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"{:016X}","name":"GET /checkout","kind":2,
                "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
                "attributes":[{{"key":"http.request.method","value":{{"stringValue":"GET"}}}},
                {{"key":"http.response.status_code","value":{{"intValue":"200"}}}}],"status":{{"code":1}}}}"#,
                i + 1
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"test-service"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"bench","version":"1.0.0"}},"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
    .into_bytes()
}

fn codec(c: &mut Criterion) {
    for spans in [1usize, 100] {
        let body = traces_json(spans);
        let request = json::from_json(Signal::Traces, &body).expect("valid JSON");
        let protobuf = request.to_protobuf();
        let gzipped = gzip(&protobuf);

        let mut group = c.benchmark_group(format!("traces/{spans} spans"));
        group.throughput(Throughput::Elements(spans as u64));
        group.bench_function(BenchmarkId::new("json to request", body.len()), |b| {
            b.iter(|| json::from_json(Signal::Traces, black_box(&body)))
        });
        group.bench_function(
            BenchmarkId::new("protobuf decode + validate", protobuf.len()),
            |b| {
                b.iter(|| {
                    let mut r = OtlpRequest::decode_protobuf(Signal::Traces, black_box(&protobuf))
                        .expect("valid protobuf");
                    validate(&mut r)
                })
            },
        );
        group.bench_function(BenchmarkId::new("protobuf scan", protobuf.len()), |b| {
            b.iter(|| otlp::scan::scan(Signal::Traces, black_box(&protobuf)).expect("valid"))
        });
        group.bench_function(BenchmarkId::new("encode protobuf", protobuf.len()), |b| {
            b.iter(|| black_box(&request).to_protobuf())
        });
        group.bench_function(BenchmarkId::new("request to json", protobuf.len()), |b| {
            b.iter(|| json::to_json(black_box(&request)))
        });
        group.bench_function(BenchmarkId::new("gunzip", gzipped.len()), |b| {
            b.iter(|| decompress(Encoding::Gzip, black_box(&gzipped), 64 << 20))
        });
        group.bench_function(
            BenchmarkId::new("items of the encoding", protobuf.len()),
            |b| {
                let shared = bytes::Bytes::from(protobuf.clone());
                b.iter(|| otlp::items::split_encoded(Signal::Traces, black_box(&shared)))
            },
        );
        group.bench_function(BenchmarkId::new("split under 1 KiB", protobuf.len()), |b| {
            b.iter(|| black_box(request.clone()).split(1024))
        });
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
