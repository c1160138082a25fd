//! `slim-node up`: the whole mesh in one process.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn up_prints_what_the_receiver_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let endpoint = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{port}");
    let grpc = format!("127.0.0.1:{}", free_port());
    let up = Proc::spawn(
        dir.path(),
        "up",
        &[
            "up",
            "--endpoint",
            &endpoint,
            "--otlp-http",
            &http,
            "--otlp-grpc",
            &grpc,
        ],
    );
    wait_state(port, "active", &up).await;
    let resp = post(
        port,
        "/v1/traces",
        "application/json",
        example("traces.json"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    wait_until(
        DELIVERY_TIMEOUT,
        || {
            std::fs::read_to_string(&up.stdout)
                .unwrap_or_default()
                .contains("services=test-service")
        },
        || {
            format!(
                "stdout: {:?}\nstderr: {}",
                std::fs::read_to_string(&up.stdout),
                up.stderr_text()
            )
        },
    );
    let printed = std::fs::read_to_string(&up.stdout).unwrap();
    assert!(
        printed.contains("from=agntcy/otel/receiver verified=agntcy/otel/receiver")
            && printed.contains(" signal=traces "),
        "{printed}"
    );
    assert!(printed.contains("spans=1"), "{printed}");
    assert_eq!(up.terminate(), Some(0), "SIGTERM is a clean exit");
}
