//! `ws:HOST:PORT` sink: a live view over WebSocket. Serves `/ws/traces`, `/ws/metrics`,
//! `/ws/logs` and `/ws/all` on its own address; each text frame is one OTLP/JSON export request
//! as the OTLP specification renders it (`/ws/all` wraps it: `{"signal","from",
//! "verified_sender","payload"}`). `?service.name=NAME` keeps only requests with a resource of
//! that service. Each request is rendered once and shared by every client's queue; a client's
//! queue is bounded in bytes, and one that falls behind it (or cannot take a frame within 5 s)
//! is disconnected with close code 1008, counted — it never slows the channel or the other
//! clients. At most `max-clients` clients at once (beyond it 503 before the upgrade); a client
//! may send small control messages only (anything larger closes it with 1009). Pings every
//! 20 s; a clean close (1001) when the node stops. Never holds acknowledgements back: live
//! data, not durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError};
use serde::Serialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::kind::{OptionSpec, SinkKind, SinkSpec};
use crate::config::defaults;
use crate::net::answer::Answer;
use crate::net::auth::{Keys, Scope, Verdict};
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
        key: "client-buffer-bytes",
        value: "BYTES",
        default: "16777216",
        help: "bytes of frames a client may be behind before it is disconnected (close code 1008); the frames themselves are shared by all clients",
        repeats: false,
    },
    OptionSpec {
        key: "max-clients",
        value: "N",
        default: "64",
        help: "clients connected at once; beyond it an upgrade is answered 503 with Retry-After",
        repeats: false,
    },
    OptionSpec {
        key: "origins",
        value: "ORIGIN,…",
        default: "same origin",
        help: "browser origins allowed to connect (`https://grafana.example.com`, or `*` for any); a page of another origin is 403, so a web site its user visits cannot read the view. Clients that send no `Origin` (not browsers) are not affected",
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
        help: "require a bearer token (`Authorization: Bearer KEY`, or `?token=KEY` for browsers) of a key with the `live` or `query` scope, one `name:live=TOKEN` per line; an ingest key is refused (403)",
        repeats: false,
    },
];

/// How long one frame may take to reach a client before it counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often clients are pinged.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Largest message a client may send: clients only answer pings and close.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Close code for a client that sent a message larger than [`MAX_CLIENT_MESSAGE`].
const CLOSE_TOO_BIG: u16 = 1009;

/// One request, rendered once for every client.
struct Rendered {
    signal: otlp::Signal,
    services: Vec<String>,
    json: String,
    all: String,
}

impl Rendered {
    /// The frame a client of the `/ws/all` path (`all`) or of one signal gets.
    fn text(&self, all: bool) -> &[u8] {
        if all {
            self.all.as_bytes()
        } else {
            self.json.as_bytes()
        }
    }
}

/// Counters for `/health` (the sink's `detail`).
#[derive(Default)]
struct Counters {
    served: AtomicU64,
    slow: AtomicU64,
    refused_full: AtomicU64,
}

#[derive(Serialize)]
struct ClientsReport {
    connected: usize,
    served: u64,
    disconnected_slow: u64,
    refused_full: u64,
    buffered_bytes: usize,
}

/// A connected client as the sink's loop sees it.
struct Subscriber {
    watch: Watch,
    frames: mpsc::UnboundedSender<Arc<Rendered>>,
    /// Bytes of frames queued for it and not yet written.
    queued: Arc<AtomicUsize>,
    /// Fired when it fell more than the buffer behind.
    behind: CancellationToken,
}

/// A client's end of its queue.
struct Subscription {
    frames: mpsc::UnboundedReceiver<Arc<Rendered>>,
    queued: Arc<AtomicUsize>,
    behind: CancellationToken,
}

/// Hands each frame to the clients that want it. Every client's queue holds the same `Arc`
/// of a frame, so a slow client costs the bytes it is behind (bounded), never a copy.
struct Fanout {
    subscribers: Mutex<Vec<Subscriber>>,
    limit: usize,
    counters: Counters,
}

impl Fanout {
    fn new(limit: usize) -> Fanout {
        Fanout {
            subscribers: Mutex::new(Vec::new()),
            limit,
            counters: Counters::default(),
        }
    }

    fn subscribe(&self, watch: Watch) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let behind = CancellationToken::new();
        let mut subscribers = self.lock();
        // Clients that left while nothing arrived are let go here.
        subscribers.retain(|s| !s.frames.is_closed());
        subscribers.push(Subscriber {
            watch,
            frames: tx,
            queued: queued.clone(),
            behind: behind.clone(),
        });
        Subscription {
            frames: rx,
            queued,
            behind,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `frame` for every client that wants it. A client already behind whose queue
    /// would then pass the limit is told so and dropped; a client that is caught up takes
    /// any frame, however large.
    fn offer(&self, frame: &Arc<Rendered>) {
        self.lock().retain(|s| {
            if !wanted(&s.watch, frame) {
                return !s.frames.is_closed();
            }
            let size = frame.text(s.watch.all).len();
            let queued = s.queued.load(Ordering::Acquire);
            if queued > 0 && queued + size > self.limit {
                self.counters.slow.fetch_add(1, Ordering::Relaxed);
                warn!(
                    behind_bytes = queued,
                    limit = self.limit,
                    "disconnected a WebSocket client that could not keep up: it fell more than client-buffer-bytes behind"
                );
                s.behind.cancel();
                return false;
            }
            s.queued.fetch_add(size, Ordering::AcqRel);
            s.frames.send(frame.clone()).is_ok()
        });
    }

    fn report(&self, connected: usize) -> serde_json::Value {
        let buffered_bytes = self
            .lock()
            .iter()
            .map(|s| s.queued.load(Ordering::Relaxed))
            .sum();
        serde_json::to_value(ClientsReport {
            connected,
            served: self.counters.served.load(Ordering::Relaxed),
            disconnected_slow: self.counters.slow.load(Ordering::Relaxed),
            refused_full: self.counters.refused_full.load(Ordering::Relaxed),
            buffered_bytes,
        })
        .unwrap_or_default()
    }
}

/// Which browser origins may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origins {
    /// Any.
    Any,
    /// Only pages served from the view's own address (`Origin` matches `Host`; for a view on
    /// loopback, `Host` must be a loopback name too, so a DNS-rebound name does not pass).
    Same,
    /// These (`scheme://host[:port]`, compared without case).
    Listed(Vec<String>),
}

impl Origins {
    fn of(spec: &SinkSpec) -> Origins {
        match spec.option("origins") {
            Some(list) if list.split(',').any(|o| o.trim() == "*") => Origins::Any,
            Some(list) => Origins::Listed(
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
            None => Origins::Same,
        }
    }

    /// Whether a request with these headers may connect to a view on `local`.
    fn allow(&self, headers: &HeaderMap, local: Option<std::net::SocketAddr>) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return true;
        };
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        match self {
            Origins::Any => true,
            Origins::Listed(list) => list.contains(&origin),
            Origins::Same => {
                let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
                let authority = origin.split_once("://").map(|(_, a)| a);
                let same =
                    matches!((host, authority), (Some(h), Some(a)) if h.eq_ignore_ascii_case(a));
                let on_loopback = local.is_some_and(|a| a.ip().to_canonical().is_loopback());
                same && (!on_loopback || host.is_some_and(is_loopback_host))
            }
        }
    }
}

/// Whether `host` (a `Host` header: name or address, with a port) names this machine's
/// loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The sink.
pub struct WsSink {
    listener: std::net::TcpListener,
    buffer_bytes: usize,
    max_clients: usize,
    origins: Origins,
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
            Some(path) => Some(Arc::new(
                Keys::load_for(std::path::Path::new(path), None)
                    .map_err(|e| anyhow::anyhow!("sink ws: token-file: {e}"))?,
            )),
            None => {
                if listener.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
                    warn!(%addr, "the ws live view listens on a non-loopback address without token-file: anyone who can reach it watches everything the node receives");
                }
                None
            }
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
            buffer_bytes: spec.value::<usize>("client-buffer-bytes")?.max(1),
            max_clients: spec.value::<usize>("max-clients")?.max(1),
            origins: Origins::of(spec),
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
    fanout: Arc<Fanout>,
    keys: Option<Arc<Keys>>,
    origins: Arc<Origins>,
    /// One permit per connected client, held until it leaves.
    places: Arc<Semaphore>,
    max_clients: usize,
    stop: CancellationToken,
}

impl Shared {
    fn connected(&self) -> usize {
        self.max_clients - self.places.available_permits()
    }
}

async fn run(sink: WsSink, mut input: SinkInput) {
    let shared = Shared {
        fanout: Arc::new(Fanout::new(sink.buffer_bytes)),
        keys: sink.keys,
        origins: Arc::new(sink.origins),
        places: Arc::new(Semaphore::new(sink.max_clients)),
        max_clients: sink.max_clients,
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
        // Connections that are not (yet) clients: upgrades in progress and refusals.
        max_connections: 256,
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
            input.set_detail(shared.fanout.report(shared.connected()));
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
        let frame = Arc::new(Rendered {
            signal: d.payload.signal(),
            services: request.summary().services.into_iter().collect(),
            json,
            all,
        });
        // No client connected is fine: live data goes to whoever watches.
        shared.fanout.offer(&frame);
        input.delivered(std::slice::from_ref(&item));
        input.set_detail(shared.fanout.report(shared.connected()));
    }
    shared.stop.cancel();
    let _ = server.await;
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
            Verdict::Known(key) if key.may_any(&[Scope::Live, Scope::Query]) => {}
            Verdict::Known(key) => {
                warn!(key = %key.name, "refused a live view client whose key has neither the `live` nor the `query` scope");
                return Answer::forbidden("this key has no `live` scope").http(Format::Json);
            }
            Verdict::Missing => return Answer::unauthenticated().http(Format::Json),
            Verdict::Wrong => {
                return Answer::forbidden("the bearer token is not valid").http(Format::Json)
            }
        }
    }
    let local = req
        .extensions()
        .get::<crate::net::http_server::LocalAddr>()
        .map(|l| l.0);
    if !shared.origins.allow(req.headers(), local) {
        return Answer::forbidden(
            "this page's origin may not open the live view: add it to the sink's origins=",
        )
        .http(Format::Json);
    }
    if !fastwebsockets::upgrade::is_upgrade_request(&req) {
        return Answer::bad_request("expected a WebSocket upgrade").http(Format::Json);
    }
    let Ok(place) = shared.places.clone().try_acquire_owned() else {
        shared
            .fanout
            .counters
            .refused_full
            .fetch_add(1, Ordering::Relaxed);
        return Answer::unavailable(
            format!(
                "the live view serves at most {} clients at once (max-clients); retry later",
                shared.max_clients
            ),
            Duration::from_secs(5),
        )
        .http(Format::Json);
    };
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
    // Subscribed before the client learns it is connected: it gets everything from then on.
    let subscription = shared.fanout.subscribe(watch.clone());
    tokio::spawn(async move {
        match upgraded.await {
            Ok(mut ws) => {
                ws.set_max_message_size(MAX_CLIENT_MESSAGE);
                serve_client(ws, subscription, watch.all, &shared, place).await;
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

/// Sends a client its frames until it leaves, falls behind, or the node stops; `_place`
/// counts it against `max-clients` until then.
async fn serve_client(
    ws: fastwebsockets::WebSocket<Upgraded>,
    mut subscription: Subscription,
    all: bool,
    shared: &Shared,
    _place: OwnedSemaphorePermit,
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
                Err(WebSocketError::FrameTooLarge) => {
                    debug!("closed a WebSocket client that sent a message over {MAX_CLIENT_MESSAGE} bytes");
                    let mut close = vec![OpCode::Close as u8];
                    close.extend_from_slice(&CLOSE_TOO_BIG.to_be_bytes());
                    close.extend_from_slice(b"message too big");
                    let _ = obligated_tx.send(close).await;
                    break;
                }
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
            // What the reader owes (a close reply above all) goes before noticing it left.
            biased;
            _ = shared.stop.cancelled() => Some(close(1001, "the node is stopping")),
            owed = obligated.recv() => match owed {
                Some(owed) if !owed.is_empty() => {
                    let opcode = if owed[0] == OpCode::Close as u8 { OpCode::Close } else { OpCode::Pong };
                    Some(Frame::new(true, opcode, None, Payload::Owned(owed[1..].to_vec())))
                }
                _ => None,
            },
            _ = left.cancelled() => None,
            _ = subscription.behind.cancelled() => Some(close(1008, "too slow: fell behind the live view")),
            _ = ping.tick() => Some(Frame::new(true, OpCode::Ping, None, Payload::Owned(Vec::new()))),
            next = subscription.frames.recv() => match next {
                Some(f) => {
                    let text = f.text(all);
                    match send(&mut write, Frame::text(Payload::Borrowed(text))).await {
                        Ok(()) => {
                            subscription.queued.fetch_sub(text.len(), Ordering::AcqRel);
                            shared.fanout.counters.served.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(Failed::Stuck) => {
                            shared.fanout.counters.slow.fetch_add(1, Ordering::Relaxed);
                            warn!(reason = %format!("a frame did not reach it within {WRITE_TIMEOUT:?}"), "disconnected a WebSocket client that could not keep up");
                            break;
                        }
                        Err(Failed::Gone) => break,
                    }
                }
                None => Some(close(1001, "the node is stopping")),
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
    const INGEST_TOKEN: &str = "iiiiiiiiiiiiiiiiiiii";

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
            Running::start_with_token_and("")
        }

        /// With a token file holding a `live` key ([`TOKEN`]) and an ingest key
        /// ([`INGEST_TOKEN`]), and `options`.
        fn start_with_token_and(options: &str) -> Running {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            writeln!(file, "viewer:live={TOKEN}\nsender:ingest={INGEST_TOKEN}").unwrap();
            let options = format!(";token-file={}{options}", file.path().display());
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
        connect_from(addr, path_and_query, authorization, None).await
    }

    /// [`connect`] as a browser page of `origin` would.
    async fn connect_from(
        addr: SocketAddr,
        path_and_query: &str,
        authorization: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Client, WebSocketError> {
        connect_as(
            addr,
            &addr.to_string(),
            path_and_query,
            authorization,
            origin,
        )
        .await
    }

    /// [`connect_from`] through the name `host` (the `Host` header), as a browser that
    /// resolved it to `addr` would.
    async fn connect_as(
        addr: SocketAddr,
        host: &str,
        path_and_query: &str,
        authorization: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Client, WebSocketError> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let mut req = http::Request::builder()
            .method("GET")
            .uri(format!("http://{host}{path_and_query}"))
            .header(header::HOST, host)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header("Sec-WebSocket-Key", handshake::generate_key())
            .header("Sec-WebSocket-Version", "13");
        if let Some(authorization) = authorization {
            req = req.header(header::AUTHORIZATION, authorization);
        }
        if let Some(origin) = origin {
            req = req.header(header::ORIGIN, origin);
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

    /// Asserts that a connection attempt was refused with `status` before the upgrade.
    fn assert_refused(attempt: Result<Client, WebSocketError>, status: u16) {
        match attempt {
            Err(WebSocketError::InvalidStatusCode(got)) if got == status => {}
            Err(other) => panic!("expected {status}, got {other:?}"),
            Ok(_) => panic!("expected {status}, but the upgrade succeeded"),
        }
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
        assert_refused(refused, 404);
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_protected_view_refuses_a_client_without_the_token_with_401() {
        let sink = Running::start_with_token();
        let refused = connect(sink.addr, "/ws/logs", None).await;
        assert_refused(refused, 401);
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_protected_view_refuses_a_wrong_token_with_403() {
        let sink = Running::start_with_token();
        let refused = connect(sink.addr, "/ws/logs", Some("Bearer not-the-viewers-token")).await;
        assert_refused(refused, 403);
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

    #[tokio::test(flavor = "multi_thread")]
    async fn an_ingest_key_is_refused_with_403() {
        let sink = Running::start_with_token();
        let bearer = format!("Bearer {INGEST_TOKEN}");
        let refused = connect(sink.addr, "/ws/logs", Some(&bearer)).await;
        assert_refused(refused, 403);
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn connections_past_max_clients_get_503_before_the_upgrade() {
        let sink = Running::start("");
        let (mut open, mut refused) = (Vec::new(), 0);
        for _ in 0..500 {
            match connect(sink.addr, "/ws/logs", None).await {
                Ok(ws) => open.push(ws),
                Err(WebSocketError::InvalidStatusCode(503)) => refused += 1,
                Err(other) => panic!("neither a client nor a 503: {other:?}"),
            }
        }
        assert_eq!((open.len(), refused), (64, 436));
        // A client that leaves gives its place back.
        drop(open.pop());
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match connect(sink.addr, "/ws/logs", None).await {
                Ok(ws) => {
                    open.push(ws);
                    break;
                }
                Err(WebSocketError::InvalidStatusCode(503)) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the place never came back"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_sending_a_1_mib_frame_is_closed_with_1009() {
        let sink = Running::start("");
        let mut ws = connect(sink.addr, "/ws/logs", None).await.unwrap();
        let written = ws
            .write_frame(Frame::binary(Payload::Owned(vec![7; 1 << 20])))
            .await;
        // The server may close before the whole frame is written (a reset), and the close
        // (1009) may be lost to the reset that the unread rest of the frame causes on the
        // server's side; either way the connection ends, long before the node stops.
        if written.is_err() {
            sink.stop().await;
            return;
        }
        let ended = tokio::time::timeout(PATIENCE, async {
            loop {
                match ws.read_frame().await {
                    Ok(f) if f.opcode == OpCode::Close => {
                        return Some(u16::from_be_bytes([f.payload[0], f.payload[1]]))
                    }
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        })
        .await
        .expect("the connection ends within the deadline");
        assert!(matches!(ended, None | Some(CLOSE_TOO_BIG)), "{ended:?}");
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn by_default_only_pages_of_the_same_origin_connect() {
        let sink = Running::start("");
        let foreign = connect_from(sink.addr, "/ws/logs", None, Some("https://evil.example")).await;
        assert_refused(foreign, 403);
        let same = format!("http://{}", sink.addr);
        connect_from(sink.addr, "/ws/logs", None, Some(&same))
            .await
            .expect("a page served from the view's own address connects");
        let local = format!("localhost:{}", sink.addr.port());
        connect_as(
            sink.addr,
            &local,
            "/ws/logs",
            None,
            Some(&format!("http://{local}")),
        )
        .await
        .expect("the same page through the name localhost connects");
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_page_of_a_name_rebound_to_loopback_is_refused() {
        let sink = Running::start("");
        let rebound = format!("evil.example:{}", sink.addr.port());
        let page = format!("http://{rebound}");
        let refused = connect_as(sink.addr, &rebound, "/ws/logs", None, Some(&page)).await;
        assert_refused(refused, 403);
        sink.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn origins_lists_the_pages_that_may_connect() {
        let sink = Running::start_with_token_and(";origins=https://grafana.example.com");
        let bearer = format!("Bearer {TOKEN}");
        connect_from(
            sink.addr,
            "/ws/logs",
            Some(&bearer),
            Some("https://grafana.example.com"),
        )
        .await
        .expect("a listed origin connects");
        let other = connect_from(
            sink.addr,
            "/ws/logs",
            Some(&bearer),
            Some("https://other.example.com"),
        )
        .await;
        assert_refused(other, 403);
        sink.stop().await;
    }

    fn rendered(size: usize) -> Arc<Rendered> {
        Arc::new(Rendered {
            signal: otlp::Signal::Logs,
            services: Vec::new(),
            json: "x".repeat(size),
            all: String::new(),
        })
    }

    fn watching_logs() -> Watch {
        Watch {
            signal: Some(otlp::Signal::Logs),
            all: false,
            service: None,
        }
    }

    #[test]
    fn a_slow_client_costs_the_bytes_it_is_behind_and_no_copy() {
        let fanout = Fanout::new(100_000);
        let slow = fanout.subscribe(watching_logs());
        let mut fast = fanout.subscribe(watching_logs());
        let frame = rendered(30_000);
        for sent in 1..=3 {
            fanout.offer(&frame);
            // Both queues hold the one rendering: no copy per client.
            assert_eq!(Arc::strong_count(&frame), 1 + 2 * sent - (sent - 1));
            // The fast client takes each frame at once.
            drop(fast.frames.try_recv().unwrap());
            fast.queued.fetch_sub(30_000, Ordering::AcqRel);
        }
        assert_eq!(slow.queued.load(Ordering::Acquire), 90_000);
        assert!(!slow.behind.is_cancelled());
        // The fourth frame would put it 120,000 bytes behind, past the buffer.
        fanout.offer(&frame);
        assert!(slow.behind.is_cancelled());
        assert!(!fast.behind.is_cancelled());
        assert_eq!(fanout.counters.slow.load(Ordering::Relaxed), 1);
        assert_eq!(fanout.lock().len(), 1, "only the fast client is left");
    }

    #[test]
    fn a_caught_up_client_takes_a_frame_larger_than_its_buffer() {
        let fanout = Fanout::new(1_000);
        let client = fanout.subscribe(watching_logs());
        fanout.offer(&rendered(5_000));
        assert!(!client.behind.is_cancelled());
        assert_eq!(client.queued.load(Ordering::Acquire), 5_000);
    }
}
