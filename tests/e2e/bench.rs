//! The measuring tools: `loadgen`, the `bench` sink and `slim-bench`, against real processes.

use serde_json::Value;

use crate::harness::*;

const CHANNEL: &str = "e2e/bench/telemetry";
const RECEIVER: &str = "e2e/bench/receiver";
const PARTICIPANT: &str = "e2e/bench/participant";

/// Runs `slim-node ARGS` in `mesh`'s directory to its end; returns the exit code and the
/// JSON report it printed.
pub(crate) fn run_json(mesh: &Mesh, label: &str, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut p = Proc::spawn(mesh.dir.path(), label, args);
    let code = p.wait_exit(FORM_TIMEOUT);
    let out = std::fs::read_to_string(&p.stdout).unwrap_or_default();
    let report = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (code, report, p.stderr_text())
}

/// Runs `slim-node loadgen --endpoint ENDPOINT ARGS --json` to its end.
pub(crate) fn run_loadgen(
    mesh: &Mesh,
    endpoint: &str,
    args: &[&str],
) -> (Option<i32>, Value, String) {
    let mut all = vec!["loadgen", "--endpoint", endpoint, "--json"];
    all.extend_from_slice(args);
    run_json(mesh, "loadgen", &all)
}

#[tokio::test(flavor = "multi_thread")]
async fn loadgen_reports_what_was_taken_and_the_bench_sink_counts_what_arrived() {
    let mesh = Mesh::start();
    let summary = mesh.path("bench.json");
    let sink = format!("bench:{}", summary.display());
    let mut args = vec!["--sink", sink.as_str()];
    args.extend_from_slice(PARTICIPANT_ROLE);
    let _participant = mesh.node("participant", PARTICIPANT, &args);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;

    let endpoint = format!("http://127.0.0.1:{port}");
    let (code, report, err) = run_loadgen(
        &mesh,
        &endpoint,
        &[
            "--clients",
            "4",
            "--requests",
            "40",
            "--items",
            "3",
            "--duration",
            "60",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["requests"], 40, "{report}");
    assert_eq!(report["ok"], 40, "{report}");
    assert_eq!(report["items"], 120, "{report}");
    assert_eq!(report["answers"]["200"], 40, "{report}");
    assert!(report["latency_ms"]["p50"].as_f64() > Some(0.0), "{report}");

    let read = || -> Value {
        serde_json::from_slice(&std::fs::read(&summary).unwrap_or_default()).unwrap_or(Value::Null)
    };
    wait_until(
        DELIVERY_TIMEOUT,
        || read()["messages"] == 40,
        || format!("the bench sink saw {}", read()),
    );
    let got = read();
    assert_eq!(got["items"], 120, "{got}");
    assert_eq!(got["unstamped"], 0, "{got}");
    assert!(got["latency_ms"]["max"].as_f64() > Some(0.0), "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn loadgen_counts_refusals_by_status_and_fails_when_nothing_was_taken() {
    let mesh = Mesh::start();
    // Nobody to invite ever joins: the receiver answers 503.
    let (receiver, port) = mesh.receiver(
        "receiver",
        RECEIVER,
        &moderator(CHANNEL, &["e2e/bench/nobody"]),
    );
    wait_until(
        FORM_TIMEOUT,
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        || receiver.stderr_text(),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let (code, report, err) = run_loadgen(&mesh, &endpoint, &["--requests", "5"]);
    assert_eq!(code, Some(1));
    assert_eq!(report["answers"]["503"], 5, "{report}");
    assert_eq!(report["ok"], 0, "{report}");
    assert!(err.contains("took none of 5 requests"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn loadgen_speaks_grpc_with_gzip() {
    let mesh = Mesh::start();
    let grpc_port = free_port();
    let (_participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let grpc = format!("127.0.0.1:{grpc_port}");
    let mut args = moderator(CHANNEL, &[PARTICIPANT]);
    args.extend(["--otlp-grpc", grpc.as_str()]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &args);
    wait_state(port, "active", &receiver).await;
    let endpoint = format!("http://{grpc}");
    let (code, report, err) = run_loadgen(
        &mesh,
        &endpoint,
        &[
            "--protocol",
            "grpc",
            "--gzip",
            "--signal",
            "logs",
            "--requests",
            "10",
            "--items",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["answers"]["OK"], 10, "{report}");
    let lines = wait_jsonl(&out, 10, &receiver).await;
    assert!(lines.iter().all(|l| l["signal"] == "logs"));
}

#[tokio::test(flavor = "multi_thread")]
async fn loadgen_speaks_otlp_json_and_each_record_arrives_with_its_own_time() {
    let mesh = Mesh::start();
    let (_participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &receiver).await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let (code, report, err) = run_loadgen(
        &mesh,
        &endpoint,
        &[
            "--protocol",
            "http/json",
            "--signal",
            "metrics",
            "--requests",
            "3",
            "--items",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["answers"]["200"], 3, "{report}");
    let lines = wait_jsonl(&out, 3, &receiver).await;
    let times: std::collections::HashSet<String> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["signal"], "metrics", "{l}");
            let points = &l["payload"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
                ["gauge"]["dataPoints"];
            assert_eq!(points.as_array().map(Vec::len), Some(2), "{l}");
            points[0]["timeUnixNano"].to_string()
        })
        .collect();
    assert_eq!(times.len(), 3, "{times:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slim_bench_carries_every_message_between_two_apps() {
    let mesh = Mesh::start();
    let (code, report, err) = run_json(
        &mesh,
        "slim-bench",
        &[
            "slim-bench",
            "--slim",
            &mesh.url,
            "--messages",
            "300",
            "--size",
            "600",
            "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["sent"], 300, "{report}");
    assert_eq!(report["received"], 300, "{report}");
    assert_eq!(report["mls"], true, "{report}");
    assert!(report["messages_per_s"].as_f64() > Some(0.0), "{report}");
}
