//! The health endpoints, on the OTLP/HTTP port and on `--health HOST:PORT`:
//! - `GET /health`: the node's state as JSON (status, node, link, members, outbox, sinks); callers
//!   without a valid token (when a token file is set) see only the status and the state name;
//! - `GET /health/live`: 200 while the node works, 503 once it is wedged (liveness probe);
//! - `GET /health/ready`: 200 while a publish would reach at least one live member, else 503
//!   (readiness probe);
//! - `GET /metrics`: the node's metrics in Prometheus' text format (`crate::telemetry`).
//!
//! The verdicts are decided in `slim_roles::health`; this module adds the sinks' problems (a
//! sink that cannot write, a disk queue that cannot be written: the node is then not `ok`)
//! and renders them.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use slim_roles::Publisher;

use crate::net::answer::method_not_allowed_response;
use crate::net::guard::Caller;
use crate::net::http::JSON_CT;
use crate::pipeline::SinkHandle;

/// What the health endpoints look at.
#[derive(Clone)]
struct Watched {
    publisher: Publisher,
    sinks: Vec<SinkHandle>,
}

/// The health routes over `publisher`'s node and its `sinks`.
pub fn routes<S>(publisher: Publisher, sinks: Vec<SinkHandle>) -> Router<S> {
    let not_get = || async { method_not_allowed_response("GET") };
    Router::new()
        .route("/health", get(full).fallback(not_get))
        .route("/health/live", get(live).fallback(not_get))
        .route("/health/ready", get(ready).fallback(not_get))
        .route("/metrics", get(metrics).fallback(not_get))
        .with_state(Watched { publisher, sinks })
}

/// A JSON response (the health endpoints', and the query API's `/health`).
pub(crate) fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CT))],
        body.to_string(),
    )
        .into_response()
}

/// The node's health with the problems of its sinks added.
fn health_of(watched: &Watched) -> slim_roles::Health {
    let mut health = watched.publisher.health();
    for problem in watched.sinks.iter().flat_map(SinkHandle::problems) {
        health.add_problem(problem);
    }
    health
}

async fn full(State(watched): State<Watched>, caller: Option<axum::Extension<Caller>>) -> Response {
    let health = health_of(&watched);
    // Names of members and channels, and backends' errors, are for the admin scope (the
    // guard says who has it).
    let body = if caller.is_some_and(|c| c.admin) {
        let mut body = serde_json::to_value(&health).unwrap_or_default();
        let sinks: Vec<_> = watched.sinks.iter().map(SinkHandle::report).collect();
        body["stats"] = stats(&health, &sinks);
        body["sinks"] = serde_json::to_value(sinks).unwrap_or_default();
        body
    } else {
        serde_json::json!({ "status": health.status, "node": { "state": health.node.state.name() } })
    };
    json(StatusCode::OK, body)
}

/// The node's metrics in Prometheus' text format (`telemetry`).
async fn metrics() -> Response {
    let telemetry = crate::telemetry::get();
    if telemetry.is_off() {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "the node's metrics are off (--telemetry off)" }),
        );
    }
    match telemetry.prometheus_text() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(err) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": format!("the metrics could not be written: {err}") }),
        ),
    }
}

/// The figures to watch at a glance: how full the outbox and each sink's queue are, and
/// each sink's state (`ok`, `cannot_write`, `cannot_queue`).
fn stats(health: &slim_roles::Health, sinks: &[crate::pipeline::SinkReport]) -> serde_json::Value {
    let outbox = &health.outbox;
    serde_json::json!({
        "outbox": {
            "messages": outbox.messages,
            "bytes": outbox.bytes,
            "max_messages": outbox.max_messages,
            "max_bytes": outbox.max_bytes,
            "fill": outbox.fill(),
        },
        "sinks": sinks.iter().map(|s| serde_json::json!({
            "name": s.name,
            "state": if s.cannot_write.is_some() {
                "cannot_write"
            } else if s.cannot_queue.is_some() {
                "cannot_queue"
            } else {
                "ok"
            },
            "queue_messages": s.queue.messages,
            "queue_bytes": s.queue.bytes,
            "fill": s.queue.fill(),
        })).collect::<Vec<_>>(),
    })
}

async fn live(State(watched): State<Watched>) -> Response {
    match watched.publisher.wedged() {
        None => json(StatusCode::OK, serde_json::json!({ "status": "live" })),
        Some(reason) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "wedged", "reason": reason }),
        ),
    }
}

async fn ready(State(watched): State<Watched>) -> Response {
    // A sink's problem makes the node `degraded`, still ready: a publish reaches its members.
    let health = health_of(&watched);
    let code = if health.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        code,
        serde_json::json!({ "status": health.status, "state": health.node.state.name(), "link": health.link.state }),
    )
}
