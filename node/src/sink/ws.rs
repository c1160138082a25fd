//! `ws:HOST:PORT` sink: a live view over WebSocket. Serves `/ws/traces`, `/ws/metrics`,
//! `/ws/logs` and `/ws/all` on its own address; each text frame is one OTLP/JSON export request
//! as the OTLP specification renders it (`/ws/all` wraps it: `{"signal","from",
//! "verified_sender","payload"}`). `?service.name=NAME` keeps only requests with a resource of
//! that service. Many clients: each gets what arrives through a bounded buffer, and one that
//! falls behind it (or cannot take a frame within 5 s) is disconnected with close code 1008,
//! counted — it never slows the channel or the other clients. Pings every 20 s; a clean close
//! (1001) when the node stops. Never holds acknowledgements back: live data, not durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fastwebsockets::{Frame, OpCode, Payload};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::kind::{OptionSpec, SinkKind, SinkSpec};
use crate::config::defaults;
use crate::ingest::Format;
use crate::net::answer::Answer;
use crate::net::auth::{Keys, Verdict};
use crate::pipeline::QueueKind;
use crate::pipeline::{Sink, SinkFuture, SinkInput};

/// `ws:HOST:PORT`.
pub static KIND: SinkKind = SinkKind {
    name: "ws",
    arg: Some(("HOST:PORT", true)),
    summary: "live view over WebSocket on HOST:PORT: `/ws/traces`, `/ws/metrics`, `/ws/logs` (one OTLP/JSON export request per text frame) and `/ws/all` (`{\"signal\",\"from\",\"verified_sender\",\"payload\"}`); `?service.name=NAME` filters; a client that falls behind is disconnected (1008)",
    durable: false,
    queue: QueueKind::Memory,
    options: OPTIONS,
    open: |spec, _| Ok(Box::new(WsSink::new(spec)?)),
};

static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "client-buffer",
        value: "N",
        default: "1024",
        help: "requests a client may be behind before it is disconnected (close code 1008)",
        repeats: false,
    },
    OptionSpec {
        key: "tls-cert",
        value: "PEM",
        default: "plain text",
        help: "serve `wss://` with this certificate chain (with tls-key), reloaded when the file changes",
        repeats: false,
    },
    OptionSpec {
        key: "tls-key",
        value: "PEM",
        default: "",
        help: "the private key of tls-cert",
        repeats: false,
    },
    OptionSpec {
        key: "token-file",
        value: "PATH",
        default: "open",
        help: "require a bearer token (`Authorization: Bearer KEY`, or `?token=KEY` for browsers) from this token file, as `--auth-token-file` reads it (any scope)",
        repeats: false,
    },
];

/// How long one frame may take to reach a client before it counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often clients are pinged.
const PING_EVERY: Duration = Duration::from_secs(20);

/// One request, rendered once for every client.
struct Rendered {
    signal: otlp::Signal,
    services: Vec<String>,
    json: String,
    all: String,
}

/// Counters for `/health` (the sink's `detail`).
#[derive(Default)]
struct Clients {
    connected: AtomicU64,
    served: AtomicU64,
    slow: AtomicU64,
}

#[derive(Serialize)]
struct ClientsReport {
    connected: u64,
    served: u64,
    disconnected_slow: u64,
}

/// The sink.
pub struct WsSink {
    listener: std::net::TcpListener,
    buffer: usize,
    keys: Option<Arc<Keys>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl WsSink {
    /// Binds `spec`'s address now, so a taken port is an error at start-up.
    pub fn new(spec: &SinkSpec) -> anyhow::Result<WsSink> {
        let addr = spec.arg.as_deref().unwrap_or_default();
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("sink ws: cannot listen on {addr}: {e}"))?;
        listener.set_nonblocking(true)?;
        let keys = match spec.option("token-file") {
            Some(path) => Some(Arc::new(Keys::load(std::path::Path::new(path))?)),
            None => None,
        };
        let tls = match (spec.option("tls-cert"), spec.option("tls-key")) {
            (Some(cert), Some(key)) => Some(crate::net::tls::acceptor(&slim_roles::ServerTls {
                identity: slim_roles::CertKey {
                    cert: cert.into(),
                    key: key.into(),
                },
                client_ca: None,
            })?),
            (None, None) => None,
            _ => anyhow::bail!("sink ws: tls-cert and tls-key go together"),
        };
        Ok(WsSink {
            listener,
            buffer: spec.value::<usize>("client-buffer")?.max(1),
            keys,
            tls,
        })
    }
}

impl Sink for WsSink {
    fn run(self: Box<Self>, input: SinkInput) -> SinkFuture {
        Box::pin(run(*self, input))
    }
}

#[derive(Clone)]
struct Shared {
    frames: broadcast::Sender<Arc<Rendered>>,
    keys: Option<Arc<Keys>>,
    clients: Arc<Clients>,
    stop: CancellationToken,
}

async fn run(sink: WsSink, mut input: SinkInput) {
    let (frames, _) = broadcast::channel(sink.buffer);
    let shared = Shared {
        frames,
        keys: sink.keys,
        clients: Arc::new(Clients::default()),
        stop: CancellationToken::new(),
    };
    let listener = match tokio::net::TcpListener::from_std(sink.listener) {
        Ok(l) => l,
        Err(err) => return input.failed(&format!("listening: {err}")),
    };
    info!(sink = %input.name(), addr = ?listener.local_addr().ok(), tls = sink.tls.is_some(), "WebSocket live view listening");
    let app = Router::new()
        .route("/ws/{path}", get(upgrade))
        .with_state(shared.clone());
    let limits = crate::net::http_server::ConnLimits {
        max_connections: 1024,
        header_read_timeout: Duration::from_secs(defaults::HEADER_READ_TIMEOUT_SECS),
        drain: Duration::from_secs(2),
    };
    let server = tokio::spawn(crate::net::http_server::serve(
        listener,
        app,
        limits,
        sink.tls,
        shared.stop.clone(),
    ));
    loop {
        // Woken at least every second, so `/health` follows clients that come and go.
        let Some(item) = input.next_within(Duration::from_secs(1)).await else {
            if input.is_stopping() {
                break;
            }
            input.set_detail(report(&shared.clients));
            continue;
        };
        let d = &item.delivered;
        let request = d.payload.request();
        let json = serde_json::to_string(request).unwrap_or_default();
        let all = format!(
            "{{\"signal\":\"{}\",\"from\":{},\"verified_sender\":{},\"payload\":{json}}}",
            d.payload.signal(),
            serde_json::to_string(&d.from).unwrap_or_default(),
            serde_json::to_string(&d.verified_sender).unwrap_or_default(),
        );
        let frame = Rendered {
            signal: d.payload.signal(),
            services: request.summary().services.into_iter().collect(),
            json,
            all,
        };
        // No client connected is fine: live data goes to whoever watches.
        let _ = shared.frames.send(Arc::new(frame));
        input.delivered(std::slice::from_ref(&item));
        input.set_detail(report(&shared.clients));
    }
    shared.stop.cancel();
    let _ = server.await;
}

fn report(clients: &Clients) -> serde_json::Value {
    serde_json::to_value(ClientsReport {
        connected: clients.connected.load(Ordering::Relaxed),
        served: clients.served.load(Ordering::Relaxed),
        disconnected_slow: clients.slow.load(Ordering::Relaxed),
    })
    .unwrap_or_default()
}

/// What a client watches.
#[derive(Clone)]
struct Watch {
    signal: Option<otlp::Signal>,
    all: bool,
    service: Option<String>,
}

async fn upgrade(
    State(shared): State<Shared>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    mut req: Request,
) -> Response {
    let (signal, all) = match path.as_str() {
        "all" => (None, true),
        other => match other.parse::<otlp::Signal>() {
            Ok(signal) => (Some(signal), false),
            Err(_) => return Answer::not_found(
                "unknown path; the live view serves /ws/traces, /ws/metrics, /ws/logs and /ws/all",
            )
            .http(Format::Json),
        },
    };
    if let Some(keys) = &shared.keys {
        let from_query = query.get("token").map(|t| format!("Bearer {t}"));
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec())
            .or_else(|| from_query.map(String::into_bytes));
        match keys.check(presented.as_deref()) {
            Verdict::Known(_) => {}
            Verdict::Missing => return Answer::unauthenticated().http(Format::Json),
            Verdict::Wrong => {
                return Answer::forbidden("the bearer token is not valid").http(Format::Json)
            }
        }
    }
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return Answer::bad_request("expected a WebSocket upgrade").http(Format::Json);
    }
    let (response, upgraded) = match fastwebsockets::upgrade::upgrade(&mut req) {
        Ok(pair) => pair,
        Err(err) => {
            return Answer::bad_request(format!("WebSocket handshake: {err}")).http(Format::Json)
        }
    };
    let watch = Watch {
        signal,
        all,
        service: query.get("service.name").cloned(),
    };
    let frames = shared.frames.subscribe();
    tokio::spawn(async move {
        match upgraded.await {
            Ok(ws) => {
                shared.clients.connected.fetch_add(1, Ordering::Relaxed);
                serve_client(ws, frames, watch, &shared).await;
                shared.clients.connected.fetch_sub(1, Ordering::Relaxed);
            }
            Err(err) => debug!(%err, "a WebSocket upgrade failed"),
        }
    });
    let (parts, _) = response.into_parts();
    let mut response = Response::from_parts(parts, Body::empty());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response.into_response()
}

type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// Sends `watch`'s frames to one client until it leaves, falls behind, or the node stops.
async fn serve_client(
    ws: fastwebsockets::WebSocket<Upgraded>,
    mut frames: broadcast::Receiver<Arc<Rendered>>,
    watch: Watch,
    shared: &Shared,
) {
    let (mut read, mut write) = ws.split(tokio::io::split);
    // What the reader must answer (pongs, the close reply) goes through the writer.
    let (obligated_tx, mut obligated) = mpsc::channel::<Vec<u8>>(8);
    let left = CancellationToken::new();
    let reader_left = left.clone();
    let reader = tokio::spawn(async move {
        let mut send = |frame: Frame<'_>| {
            let tx = obligated_tx.clone();
            // Opcode first, then the payload: the writer rebuilds the frame.
            let mut owned = vec![frame.opcode as u8];
            owned.extend_from_slice(&frame.payload);
            async move { tx.send(owned).await.map_err(|_| "the writer is gone") }
        };
        loop {
            match read.read_frame(&mut send).await {
                Ok(frame) if frame.opcode == OpCode::Close => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        reader_left.cancel();
    });
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let close = |code: u16, reason: &'static str| Frame::close(code, reason.as_bytes());
    loop {
        let frame = tokio::select! {
            _ = shared.stop.cancelled() => Some(close(1001, "the node is stopping")),
            _ = left.cancelled() => None,
            _ = ping.tick() => Some(Frame::new(true, OpCode::Ping, None, Payload::Owned(Vec::new()))),
            owed = obligated.recv() => match owed {
                Some(owed) if !owed.is_empty() => {
                    let opcode = if owed[0] == OpCode::Close as u8 { OpCode::Close } else { OpCode::Pong };
                    Some(Frame::new(true, opcode, None, Payload::Owned(owed[1..].to_vec())))
                }
                _ => None,
            },
            next = frames.recv() => match next {
                Ok(f) => {
                    if !wanted(&watch, &f) {
                        continue;
                    }
                    let text = if watch.all { f.all.clone() } else { f.json.clone() };
                    match send(&mut write, Frame::text(Payload::Owned(text.into_bytes()))).await {
                        Ok(()) => {
                            shared.clients.served.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(Failed::Stuck) => {
                            slow(shared, &format!("a frame did not reach it within {WRITE_TIMEOUT:?}"));
                            break;
                        }
                        Err(Failed::Gone) => break,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    slow(shared, &format!("it fell {missed} requests behind"));
                    Some(close(1008, "too slow: fell behind the live view"))
                }
                Err(broadcast::error::RecvError::Closed) => Some(close(1001, "the node is stopping")),
            },
        };
        let Some(frame) = frame else { break };
        let closing = frame.opcode == OpCode::Close;
        if send(&mut write, frame).await.is_err() || closing {
            break;
        }
    }
    reader.abort();
}

/// Why a frame did not reach a client.
enum Failed {
    /// It left (or its connection broke).
    Gone,
    /// It did not take the frame within [`WRITE_TIMEOUT`].
    Stuck,
}

/// Writes one frame, giving up after [`WRITE_TIMEOUT`].
async fn send(
    write: &mut fastwebsockets::WebSocketWrite<tokio::io::WriteHalf<Upgraded>>,
    frame: Frame<'_>,
) -> Result<(), Failed> {
    match tokio::time::timeout(WRITE_TIMEOUT, write.write_frame(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Failed::Gone),
        Err(_) => Err(Failed::Stuck),
    }
}

fn slow(shared: &Shared, why: &str) {
    shared.clients.slow.fetch_add(1, Ordering::Relaxed);
    warn!(
        reason = why,
        "disconnected a WebSocket client that could not keep up"
    );
}

/// Whether a client watching `watch` gets `frame`.
fn wanted(watch: &Watch, frame: &Rendered) -> bool {
    watch.signal.is_none_or(|s| s == frame.signal)
        && watch
            .service
            .as_ref()
            .is_none_or(|name| frame.services.iter().any(|s| s == name))
}
