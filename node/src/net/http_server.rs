//! Serving HTTP connections with the limits a public endpoint needs: HTTP/1.1 and HTTP/2 on
//! one port (h2c, or ALPN over TLS), a cap on open connections, a deadline for the TLS
//! handshake and request headers (slow-loris), bounded header size, and a graceful drain on
//! shutdown. Both receivers, OTLP/HTTP and OTLP/gRPC, are served here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};
use tracing::{debug, warn};

use super::arrival::Stamped;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers before the connection is closed.
    pub header_read_timeout: Duration,
    /// How long open requests may take to finish after shutdown (`--drain-timeout`).
    pub drain: Duration,
}

/// The address a connection arrived on (this side's), put on each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// Largest request head (HTTP/1.1 buffer, HTTP/2 header list); beyond it 431 or a reset.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` (over TLS when `tls` is set) until `shutdown` fires, then
/// drains open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(MAX_HEADER_BYTES)
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    // e.g. out of file descriptors: back off instead of spinning.
                    warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let (stream, arrival) = Stamped::new(stream);
        // Each request carries where its connection came from (for samples in the log) and
        // when its first bytes arrived (for its duration). Put on the request, not layered
        // onto the router: a layer there is one more boxed service cloned for every request.
        let app = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                let extensions = request.extensions_mut();
                extensions.insert(crate::net::sample::PeerAddr(peer));
                extensions.insert(arrival.clone());
                if let Some(local) = local {
                    extensions.insert(LocalAddr(local));
                }
                request
            });
        let service = TowerToHyperService::new(app);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_bytes = limits.header_read_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // hyper's header timeout starts with the first byte (it reads a preface to tell
            // HTTP/1 from h2c): a client that sends nothing is cut here instead.
            // (`readable()` can report a fresh socket ready before any byte: peek instead.)
            let mut first = [0u8; 1];
            let waited = tokio::time::timeout(first_bytes, stream.peek(&mut first)).await;
            if !matches!(waited, Ok(Ok(n)) if n > 0) {
                debug!(%peer, "no request within the header timeout (or closed); closing");
                return;
            }
            let Some(acceptor) = tls else {
                return serve_connection(&builder, TokioIo::new(stream), service, watcher, peer)
                    .await;
            };
            // The handshake shares the header deadline: a client that stalls in it is cut too.
            match tokio::time::timeout(first_bytes, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    serve_connection(&builder, TokioIo::new(stream), service, watcher, peer).await
                }
                Ok(Err(err)) => debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake not finished within the header timeout"),
            }
        });
    }
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(drain = ?limits.drain, "open connections did not finish in time; closing them");
    }
    Ok(())
}

async fn serve_connection<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<S>,
    watcher: Watcher,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(io, service);
    if let Err(err) = watcher.watch(conn.into_owned()).await {
        debug!(%peer, %err, "connection ended with an error");
    }
}
