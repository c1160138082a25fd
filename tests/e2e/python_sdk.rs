//! The real OpenTelemetry Python SDK exporting to slim-node over OTLP/HTTP and OTLP/gRPC.
//! The interpreter is `SLIM_NODE_PYTHON`, or `.ci/venv/bin/python` that `.ci/deps.sh` sets up.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

fn python() -> PathBuf {
    let path = std::env::var_os("SLIM_NODE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run `sh .ci/deps.sh` (it creates the venv with the OpenTelemetry SDK)",
        path.display()
    );
    path
}

/// Every string value found anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The data points of the `orders` counter in the metrics lines: (their `transport`
/// attribute, their value).
fn orders_points(lines: &[Value]) -> Vec<(String, String)> {
    let all = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    lines
        .iter()
        .filter(|l| l["signal"] == "metrics")
        .flat_map(|l| all(&l["payload"], "resourceMetrics"))
        .flat_map(|rm| all(&rm, "scopeMetrics"))
        .flat_map(|sm| all(&sm, "metrics"))
        .filter(|m| m["name"] == "orders")
        .flat_map(|m| all(&m["sum"], "dataPoints"))
        .map(|p| {
            let transport = all(&p, "attributes")
                .iter()
                .find(|a| a["key"] == "transport")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_string();
            (
                transport,
                p["asInt"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_exports_every_signal_over_http_and_grpc() {
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    let active = active_mesh(&["--otlp-grpc", &grpc]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/send_all.py");
    let output = Command::new(python())
        .arg(script)
        .args(["--http", &format!("http://127.0.0.1:{}", active.port)])
        .args(["--grpc", &format!("http://{grpc}")])
        .args(["--service", "e2e-python"])
        .output()
        .expect("cannot run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK reported failed exports:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Each transport: two span exports, metrics (flush and shutdown), one log export.
    let lines = wait_jsonl(&active.out, 10, &active.participant).await;
    let mut seen = Vec::new();
    for line in &lines {
        strings(&line["payload"], &mut seen);
    }
    for transport in ["http", "grpc"] {
        for expected in [
            format!("checkout via {transport}"),
            "charge card".to_string(),
            format!("order 1234 placed via {transport}"),
        ] {
            assert!(seen.contains(&expected), "{expected:?} did not arrive");
        }
    }
    assert!(
        seen.contains(&"e2e-python".to_string()),
        "service.name arrived"
    );
    // The counter's data points say which transport carried them: each must have arrived.
    let points = orders_points(&lines);
    for transport in ["http", "grpc"] {
        assert!(
            points.contains(&(transport.to_string(), "3".to_string())),
            "the orders counter (3) sent over {transport} did not arrive; points: {points:?}"
        );
    }
}
