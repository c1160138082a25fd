//! OTLP/HTTP receiver (default port 4318): `POST /v1/{traces,metrics,logs}` and `GET /health`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody};
use tracing::info;

use crate::config::ReceiverSettings;
use crate::ingest::{Accepted, Ingest, IngestError};
use crate::net::answer::method_not_allowed_response;
use crate::net::answer::Answer;
use crate::net::arrival::Arrival;
use crate::net::auth::KeyName;
use crate::net::guard::{self, Guard};
use crate::net::http::{header_str, request_format, Format, JSON_CT, PROTOBUF_CT};
use crate::net::http_server::{self, ConnLimits};
use crate::net::sample::{self, PeerAddr};
use crate::pipeline::SinkHandle;
use otlp::compression::Encoding;
use otlp::response;
use otlp::{CodecError, Signal};
use slim_roles::Admin;

/// Receiver settings beyond the ingest path.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Connection limits.
    pub limits: ConnLimits,
    /// Time a client has to send its body.
    pub body_read_timeout: Duration,
    /// Origins allowed to send from a browser; empty: no CORS.
    pub cors_origins: Vec<String>,
    /// `https` when the receivers serve TLS, else `http` (the `url.scheme` of the metrics).
    pub scheme: &'static str,
}

impl HttpSettings {
    /// The settings of `receivers`; open connections get `drain` to finish on shutdown.
    pub fn new(receivers: &ReceiverSettings, drain: Duration) -> HttpSettings {
        HttpSettings {
            limits: ConnLimits {
                max_connections: receivers.limits.max_connections,
                header_read_timeout: receivers.limits.header_read_timeout,
                drain,
            },
            body_read_timeout: receivers.limits.body_read_timeout,
            cors_origins: receivers.cors_origins.clone(),
            scheme: if receivers.tls.is_some() {
                "https"
            } else {
                "http"
            },
        }
    }
}

/// Builds the receiver's routes.
pub fn router(
    ingest: Ingest,
    settings: &HttpSettings,
    guard: Guard,
    admin: Admin,
    sinks: Vec<SinkHandle>,
) -> Router {
    let scheme = settings.scheme;
    let export = |signal: Signal| {
        post(
            move |State(ingest): State<Ingest>,
                  key: Option<axum::Extension<KeyName>>,
                  headers: HeaderMap,
                  body: Body| {
                export(ingest, signal, key.map(|k| k.0), headers, body)
            },
        )
        .fallback(|| async { method_not_allowed_response("POST") })
    };
    let routes = Router::new()
        .route(route(Signal::Traces), export(Signal::Traces))
        .route(route(Signal::Metrics), export(Signal::Metrics))
        .route(route(Signal::Logs), export(Signal::Logs))
        .merge(super::admin::routes(admin))
        .merge(crate::net::health_endpoints::routes(
            ingest.publisher().clone(),
            sinks,
        ))
        .fallback(|| async {
            Answer::not_found(
                "unknown path; OTLP/HTTP paths are /v1/traces, /v1/metrics and /v1/logs",
            )
            .http(Format::Json)
        })
        .with_state(ingest);
    // Around the whole router rather than layered onto it: `Router::layer` wraps every route
    // in one more boxed service, and each request clones the route's whole stack of them.
    let layers = ServiceBuilder::new()
        // Outermost: an export is timed from the moment its headers are read, whatever
        // answers it (the guard's 401, 429 and 503 as well).
        .layer(axum::middleware::from_fn_with_state(
            Observed { scheme },
            observe,
        ))
        // The middleware's types: a response with an axum body, a request with one.
        .map_response(IntoResponse::into_response)
        // Without configured origins there is no CORS at all: preflights are not answered.
        .option_layer((!settings.cors_origins.is_empty()).then(|| cors(&settings.cors_origins)))
        .layer(RequestBodyTimeoutLayer::new(settings.body_read_timeout))
        .map_request(|request: Request<TimeoutBody<Body>>| request.map(Body::new))
        .layer(CompressionLayer::new().gzip(true))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check));
    Router::new().fallback_service(layers.service(routes))
}

/// CORS for browser senders from `origins`.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::AUTHORIZATION,
        ])
        .max_age(Duration::from_secs(3600))
}

/// Serves `app` (from [`router`]) on `listener` until `shutdown` fires, then finishes open
/// requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "OTLP/HTTP receiver listening");
    http_server::serve(listener, app, limits, tls, shutdown).await
}

/// The route of `signal`'s exports.
fn route(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/v1/traces",
        Signal::Metrics => "/v1/metrics",
        Signal::Logs => "/v1/logs",
    }
}

/// What [`observe`] records the export routes' requests under.
#[derive(Clone, Copy)]
struct Observed {
    scheme: &'static str,
}

/// Records each export request's duration (from its first bytes to the answer, every status)
/// and body size in the node's telemetry, and samples a 5xx in the log. Other paths pass.
async fn observe(
    State(Observed { scheme }): State<Observed>,
    request: Request,
    next: Next,
) -> Response {
    // From when its first bytes reached the machine, where the kernel said (HTTP/1): the
    // time it waited to be read is part of what its client waits.
    let waited = request
        .extensions()
        .get::<Arrival>()
        .filter(|_| request.version() <= axum::http::Version::HTTP_11)
        .and_then(Arrival::elapsed)
        .unwrap_or_default();
    let now = std::time::Instant::now();
    let started = now.checked_sub(waited).unwrap_or(now);
    // CORS preflights are not exports.
    let export = request.method() != Method::OPTIONS;
    let Some(route) = Signal::ALL
        .into_iter()
        .map(route)
        .find(|r| export && *r == request.uri().path())
    else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let size = header_str(request.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
    // Kept as the header value (no copy of its text) until a sample needs it.
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let peer = request.extensions().get::<PeerAddr>().map(|p| p.0);
    let response = next.run(request).await;
    if response.status().is_server_error() {
        sample::refused(&sample::Refused {
            status: response.status().as_str(),
            method: method.as_str(),
            path: route,
            peer,
            content_type: content_type.as_ref().and_then(|v| v.to_str().ok()),
            size,
            why: response
                .status()
                .canonical_reason()
                .unwrap_or("server error"),
        });
    }
    let metrics = &crate::telemetry::get().receiver;
    metrics.request(
        method.as_str(),
        route,
        response.status().as_u16(),
        scheme,
        started.elapsed().as_secs_f64(),
    );
    if let Some(bytes) = size {
        metrics.body(route, bytes);
    }
    response
}

/// Bytes reserved up front for a body from its declared length at most: a client declaring
/// a large body and sending none holds no more than this.
const BODY_RESERVE: usize = 1 << 20;

/// Reads a body of at most `limit` bytes into one buffer, sized by the declared length when
/// there is one: the bytes are copied once out of hyper's buffers, and not again.
async fn read_body(
    body: Body,
    declared: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, axum::BoxError> {
    let mut body = http_body_util::Limited::new(body, limit);
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit).min(BODY_RESERVE));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

async fn export(
    ingest: Ingest,
    signal: Signal,
    key: Option<KeyName>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(format) = request_format(&headers) else {
        return Answer::unsupported_media_type().http(Format::Json);
    };
    let encoding = match Encoding::from_header(header_str(&headers, header::CONTENT_ENCODING)) {
        Ok(e) => e,
        Err(err) => return ingest_error(format, &IngestError::from(err)),
    };
    let too_large = || {
        IngestError::from(CodecError::TooLarge {
            limit: ingest.max_body(),
        })
    };
    let declared =
        header_str(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > ingest.max_body()) {
        return ingest_error(format, &too_large());
    }
    let bytes = match read_body(body, declared, ingest.max_body()).await {
        Ok(bytes) => bytes,
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return ingest_error(format, &too_large())
        }
        Err(err) => {
            return Answer::bad_request(format!("could not read the request body: {err}"))
                .http(format)
        }
    };
    match ingest
        .ingest_body(signal, format, encoding, bytes, key.as_ref())
        .await
    {
        Ok(accepted) => success(format, &accepted),
        Err(err) => ingest_error(format, &err),
    }
}

/// 200 with the `Export*ServiceResponse`: `partial_success` unset unless items were dropped.
fn success(format: Format, accepted: &Accepted) -> Response {
    let (ct, body) = match format {
        Format::Protobuf => (
            PROTOBUF_CT,
            response::to_protobuf(accepted.signal, &accepted.rejected),
        ),
        Format::Json => (
            JSON_CT,
            response::to_json(accepted.signal, &accepted.rejected),
        ),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
        body,
    )
        .into_response()
}

fn ingest_error(format: Format, err: &IngestError) -> Response {
    // A 5xx is sampled in the log by `observe`, with the request's particulars.
    if err.refusal() != crate::telemetry::Refusal::BadData {
        tracing::debug!(%err, "refused an export request");
    }
    Answer::ingest(err).http(format)
}
