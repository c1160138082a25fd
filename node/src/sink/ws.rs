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
use crate::net::answer::Answer;
use crate::net::auth::{Keys, Verdict};
use crate::net::http::Format;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::queue::{Queue, QueueSettings, WhenFull};
    use crate::pipeline::{Delivered, SinkHandle, SinkStats};
    use fastwebsockets::handshake;
    use fastwebsockets::{WebSocket, WebSocketError};
    use std::io::Write;
    use std::net::SocketAddr;

    /// Bound time for anything the tests wait for.
    const PATIENCE: Duration = Duration::from_secs(30);
    const TOKEN: &str = "wwwwwwwwwwwwwwwwwwww";

    /// A live view sink started on a free port with `options` (`;KEY=VALUE`…), fed by the
    /// returned handle's queue; `_keep` holds what must outlive it (its token file).
    struct Running {
        addr: SocketAddr,
        handle: SinkHandle,
        task: tokio::task::JoinHandle<()>,
        _keep: Option<tempfile::NamedTempFile>,
    }

    impl Running {
        fn start(options: &str) -> Running {
            Running::start_with(options, None)
        }

        fn start_with_token() -> Running {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            writeln!(file, "viewer={TOKEN}").unwrap();
            let options = format!(";token-file={}", file.path().display());
            Running::start_with(&options, Some(file))
        }

        fn start_with(options: &str, keep: Option<tempfile::NamedTempFile>) -> Running {
            let spec: SinkSpec = format!("ws:127.0.0.1:0{options}").parse().unwrap();
            let sink = WsSink::new(&spec).unwrap();
            let addr = sink.listener.local_addr().unwrap();
            let handle = SinkHandle {
                name: "ws".into(),
                kind: KIND.name,
                durable: false,
                queue: Arc::new(
                    Queue::open(
                        QueueSettings {
                            kind: QueueKind::Memory,
                            max_bytes: 1 << 20,
                            max_messages: 100,
                            when_full: WhenFull::DropOldest,
                        },
                        &std::env::temp_dir(),
                    )
                    .unwrap(),
                ),
                stats: Arc::new(SinkStats::default()),
            };
            let task = tokio::spawn(Box::new(sink).run(SinkInput::new(handle.clone())));
            Running {
                addr,
                handle,
                task,
                _keep: keep,
            }
        }

        /// Puts a logs request of `service` with one record saying `text` in the sink's queue.
        fn push(&self, service: &str, text: &str) {
            let json = format!(
                r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{text}"}}}}]}}]}}]}}"#
            );
            let request = otlp::json::from_json(otlp::Signal::Logs, json.as_bytes()).unwrap();
            let delivered = Delivered {
                received_at: time::OffsetDateTime::now_utc(),
                from: "org/ns/sender".into(),
                verified_sender: None,
                message_id: Some(text.into()),
                payload: otlp::Encoded::check(otlp::Signal::Logs, request.to_protobuf()).unwrap(),
            };
            self.handle
                .queue
                .push(vec![(Arc::new(delivered), None)])
                .unwrap();
        }

        /// Stops the sink as the node does, and waits for it to end.
        async fn stop(self) {
            self.handle.queue.stop();
            tokio::time::timeout(PATIENCE, self.task)
                .await
                .expect("the sink ends once the node stops")
                .unwrap();
        }
    }

    type Client = WebSocket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

    /// Opens a WebSocket to `path_and_query` with `authorization`, if any.
    async fn connect(
        addr: SocketAddr,
        path_and_query: &str,
        authorization: Option<&str>,
    ) -> Result<Client, WebSocketError> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let mut req = http::Request::builder()
            .method("GET")
            .uri(format!("http://{addr}{path_and_query}"))
            .header(header::HOST, addr.to_string())
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header("Sec-WebSocket-Key", handshake::generate_key())
            .header("Sec-WebSocket-Version", "13");
        if let Some(authorization) = authorization {
            req = req.header(header::AUTHORIZATION, authorization);
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let executor = hyper_util::rt::TokioExecutor::new();
        tokio::time::timeout(PATIENCE, handshake::client(&executor, req, stream))
            .await
            .expect("the handshake finishes")
            .map(|(ws, _)| ws)
    }

    /// The next text or close frame (pings are answered and skipped).
    async fn next_frame(ws: &mut Client) -> (OpCode, Vec<u8>) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let frame = ws.read_frame().await.expect("a frame");
                if matches!(frame.opcode, OpCode::Text | OpCode::Close) {
                    return (frame.opcode, frame.payload.to_vec());
                }
            }
        })
        .await
        .expect("a frame within the deadline")
    }

    async fn next_json(ws: &mut Client) -> serde_json::Value {
        let (opcode, payload) = next_frame(ws).await;
        assert_eq!(opcode, OpCode::Text);
        serde_json::from_slice(&payload).unwrap()
    }

    fn log_body(request: &serde_json::Value) -> &str {
        request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"]
            .as_str()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_connected_client_receives_what_arrives_as_otlp_json() {
        let sink = Running::start("");
        let mut ws = connect(sink.addr, "/ws/logs", None).await.unwrap();
        sink.push("checkout", "hello live view");
        let request = next_json(&mut ws).await;
        assert_eq!(log_body(&request), "hello live view");
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_all_path_wraps_each_request_with_its_signal_and_sender() {
        let sink = Running::start("");
        let mut ws = connect(sink.addr, "/ws/all", None).await.unwrap();
        sink.push("checkout", "wrapped");
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["signal"], "logs");
        assert_eq!(frame["from"], "org/ns/sender");
        assert_eq!(frame["verified_sender"], serde_json::Value::Null);
        assert_eq!(log_body(&frame["payload"]), "wrapped");
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_watching_another_signal_gets_nothing_of_this_one() {
        let sink = Running::start("");
        let mut traces = connect(sink.addr, "/ws/traces", None).await.unwrap();
        let mut logs = connect(sink.addr, "/ws/logs", None).await.unwrap();
        sink.push("checkout", "only for logs");
        assert_eq!(log_body(&next_json(&mut logs).await), "only for logs");
        // Once the sink stops, the traces client gets the close: nothing came before it.
        sink.stop().await;
        let (opcode, _) = next_frame(&mut traces).await;
        assert_eq!(opcode, OpCode::Close);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_service_name_filter_keeps_only_that_services_requests() {
        let sink = Running::start("");
        let mut ws = connect(sink.addr, "/ws/logs?service.name=billing", None)
            .await
            .unwrap();
        sink.push("checkout", "from checkout");
        sink.push("billing", "from billing");
        assert_eq!(log_body(&next_json(&mut ws).await), "from billing");
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_is_closed_with_1001_when_the_node_stops() {
        let sink = Running::start("");
        let mut ws = connect(sink.addr, "/ws/logs", None).await.unwrap();
        sink.stop().await;
        let (opcode, payload) = next_frame(&mut ws).await;
        assert_eq!(opcode, OpCode::Close);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unknown_path_is_404() {
        let sink = Running::start("");
        let refused = connect(sink.addr, "/ws/everything", None).await;
        assert!(
            matches!(refused, Err(WebSocketError::InvalidStatusCode(404))),
            "{:?}",
            refused.err()
        );
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_protected_view_refuses_a_client_without_the_token_with_401() {
        let sink = Running::start_with_token();
        let refused = connect(sink.addr, "/ws/logs", None).await;
        assert!(
            matches!(refused, Err(WebSocketError::InvalidStatusCode(401))),
            "{:?}",
            refused.err()
        );
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_protected_view_refuses_a_wrong_token_with_403() {
        let sink = Running::start_with_token();
        let refused = connect(sink.addr, "/ws/logs", Some("Bearer not-the-viewers-token")).await;
        assert!(
            matches!(refused, Err(WebSocketError::InvalidStatusCode(403))),
            "{:?}",
            refused.err()
        );
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_protected_view_admits_the_token_in_the_header_or_the_query() {
        let sink = Running::start_with_token();
        let bearer = format!("Bearer {TOKEN}");
        let mut by_header = connect(sink.addr, "/ws/logs", Some(&bearer)).await.unwrap();
        let mut by_query = connect(sink.addr, &format!("/ws/logs?token={TOKEN}"), None)
            .await
            .unwrap();
        sink.push("checkout", "for viewers");
        assert_eq!(log_body(&next_json(&mut by_header).await), "for viewers");
        assert_eq!(log_body(&next_json(&mut by_query).await), "for viewers");
        sink.stop().await;
    }
}
