//! A small OTLP/HTTP backend the tests control: it records every export it takes, refuses with
//! 400 any request holding a marker, and can be taken down and brought back on its port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A log record body that the backend refuses with 400.
pub const POISON: &str = "poison";

/// One export the backend took.
#[derive(Debug, Clone)]
pub struct Export {
    /// `traces`, `metrics` or `logs`.
    pub signal: String,
    /// The request rendered as OTLP/JSON.
    pub json: Value,
    /// `Content-Type` and `Content-Encoding` it came with.
    pub content_type: String,
    pub content_encoding: Option<String>,
}

#[derive(Default)]
struct Recorded {
    exports: Vec<Export>,
    refused: usize,
}

/// The backend; serves until dropped or [`Backend::down`].
pub struct Backend {
    pub port: u16,
    recorded: Arc<Mutex<Recorded>>,
    stop: Option<CancellationToken>,
}

impl Backend {
    /// Starts on a free port.
    pub async fn start() -> Backend {
        let mut backend = Backend {
            port: crate::harness::free_port(),
            recorded: Arc::default(),
            stop: None,
        };
        backend.up().await;
        backend
    }

    /// Serves on its port (again).
    pub async fn up(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the backend's port is free");
        let app = Router::new()
            .route("/v1/{signal}", post(export))
            .with_state(self.recorded.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
        });
        self.stop = Some(stop);
    }

    /// Stops serving: connections are refused until [`Backend::up`].
    pub fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
    }

    /// The base URL of its OTLP/HTTP endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every export taken so far.
    pub fn exports(&self) -> Vec<Export> {
        self.recorded.lock().unwrap().exports.clone()
    }

    /// How many requests it refused with 400.
    pub fn refused(&self) -> usize {
        self.recorded.lock().unwrap().refused
    }

    /// The bodies of every log record taken, in the order taken.
    pub fn log_bodies(&self) -> Vec<String> {
        self.exports()
            .iter()
            .flat_map(|e| log_bodies_of(&e.json))
            .collect()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.down();
    }
}

/// The bodies of every log record in an OTLP/JSON logs request.
pub fn log_bodies_of(json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for rl in json["resourceLogs"].as_array().into_iter().flatten() {
        for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
            for lr in sl["logRecords"].as_array().into_iter().flatten() {
                out.push(lr["body"]["stringValue"].as_str().unwrap_or("").to_string());
            }
        }
    }
    out
}

async fn export(
    State(recorded): State<Arc<Mutex<Recorded>>>,
    Path(signal): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let content_encoding = header("content-encoding");
    let body = match content_encoding.as_deref() {
        Some("gzip") => {
            use std::io::Read;
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .is_err()
            {
                return (StatusCode::BAD_REQUEST, "bad gzip").into_response();
            }
            out
        }
        _ => body.to_vec(),
    };
    let Ok(sig) = signal.parse::<otlp::Signal>() else {
        return (StatusCode::NOT_FOUND, "unknown signal").into_response();
    };
    let request = if content_type.starts_with("application/json") {
        otlp::json::from_json(sig, &body)
    } else {
        otlp::OtlpRequest::decode_protobuf(sig, &body)
    };
    let Ok(request) = request else {
        return (StatusCode::BAD_REQUEST, "undecodable").into_response();
    };
    let json = otlp::json::to_json_value(&request);
    let mut recorded = recorded.lock().unwrap();
    if log_bodies_of(&json).iter().any(|b| b == POISON) {
        recorded.refused += 1;
        let status = otlp::status::to_protobuf(
            otlp::status::Code::InvalidArgument,
            "log record body is poison",
        );
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-protobuf")],
            status,
        )
            .into_response();
    }
    recorded.exports.push(Export {
        signal,
        json,
        content_type: content_type.clone(),
        content_encoding,
    });
    let body = if content_type.starts_with("application/json") {
        b"{}".to_vec()
    } else {
        Vec::new()
    };
    (StatusCode::OK, [("content-type", content_type)], body).into_response()
}
