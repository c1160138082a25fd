//! The query API (`--query-api HOST:PORT`, its own listener, never the OTLP port):
//! `POST /api/{traces,metrics,logs}/fetch` pages through the store ([`super::query`]), and
//! `GET /health` says whether it serves and, to callers with a key, what the store holds.
//!
//! With `--query-api-keys`, every fetch needs `Authorization: Bearer KEY` of a key with the
//! `query` scope (the default there): 401 without one, 403 with a wrong one. Keys are compared
//! in constant time (`net::auth`) and never logged; a cursor only opens for the key that
//! got it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::cursor::Sealer;
use super::query::{self, Fetch, FetchError};
use super::store::Store;
use crate::config::defaults;
use crate::ingest::Format;
use crate::net::answer::Answer;
use crate::net::auth::{Keys, Scope, Verdict};
use crate::net::http::{JSON_CT, PROTOBUF_CT};
use otlp::Signal;

/// Largest fetch request body.
const MAX_BODY: usize = 64 * 1024;

/// What the API serves from.
#[derive(Clone)]
pub struct QueryApi {
    /// The store.
    pub store: Arc<Store>,
    /// Seals and opens cursors.
    pub sealer: Arc<Sealer>,
    /// The keys allowed to query; `None`: open.
    pub keys: Option<Arc<Keys>>,
}

/// The API's routes.
pub fn router(api: QueryApi) -> Router {
    let not_allowed = |allow: &'static str| {
        move || async move { crate::net::answer::method_not_allowed_response(allow) }
    };
    Router::new()
        .route("/api/{signal}/fetch", post(fetch).fallback(not_allowed("POST")))
        .route("/health", get(health).fallback(not_allowed("GET")))
        .fallback(|| async {
            Answer::not_found("not found: the query API serves POST /api/{traces,metrics,logs}/fetch and GET /health")
                .http(Format::Json)
        })
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(api)
}

/// Serves the API on `listener` (over TLS with `tls`) until `stop`.
pub async fn serve(
    listener: TcpListener,
    api: QueryApi,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let limits = crate::net::http_server::ConnLimits {
        max_connections: 256,
        header_read_timeout: Duration::from_secs(defaults::HEADER_READ_TIMEOUT_SECS),
        drain: Duration::from_secs(5),
    };
    crate::net::http_server::serve(listener, router(api), limits, tls, stop).await
}

/// The caller's key name (empty when the API is open), or the refusal.
fn caller(api: &QueryApi, headers: &HeaderMap) -> Result<String, Answer> {
    let Some(keys) = &api.keys else {
        return Ok(String::new());
    };
    match keys.check(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        Verdict::Known(info) if info.may(Scope::Query) => Ok(info.name),
        Verdict::Known(_) => Err(Answer::forbidden(format!(
            "this key has no `{}` scope",
            Scope::Query.name()
        ))),
        Verdict::Missing => Err(Answer::unauthenticated()),
        Verdict::Wrong => Err(Answer::forbidden("this key is not valid for the query API")),
    }
}

/// The answer's encoding from `Accept`: JSON unless protobuf is asked for.
fn answer_format(headers: &HeaderMap) -> Result<Format, Answer> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::Json);
    };
    let mut any = false;
    for mime in accept.split(',').map(|m| {
        m.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }) {
        match mime.as_str() {
            JSON_CT => return Ok(Format::Json),
            PROTOBUF_CT | "application/protobuf" => return Ok(Format::Protobuf),
            "*/*" | "application/*" => any = true,
            _ => {}
        }
    }
    if any {
        Ok(Format::Json)
    } else {
        Err(Answer::not_acceptable(
            "Accept must allow application/json or application/x-protobuf",
        ))
    }
}

async fn fetch(
    State(api): State<QueryApi>,
    Path(signal): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Refusals come in the request's encoding, as OTLP/HTTP's do.
    let request_format = crate::net::http::request_format(&headers);
    let refusal_format = request_format.unwrap_or(Format::Json);
    let refuse = |answer: Answer| answer.http(refusal_format);
    let key_name = match caller(&api, &headers) {
        Ok(name) => name,
        Err(answer) => return refuse(answer),
    };
    let Ok(signal) = signal.parse::<Signal>() else {
        return refuse(Answer::not_found(format!(
            "no signal {signal:?}: fetch from /api/traces/fetch, /api/metrics/fetch or /api/logs/fetch"
        )));
    };
    let format = match answer_format(&headers) {
        Ok(f) => f,
        Err(answer) => return refuse(answer),
    };
    let has_body_type = headers.contains_key(header::CONTENT_TYPE);
    if has_body_type && request_format.is_none() {
        return refuse(Answer::unsupported_media_type_for(
            "Content-Type must be application/json or application/x-protobuf (with curl: -H 'Content-Type: application/json')",
        ));
    }
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return refuse(Answer::bad_request(format!(
                "the request body is larger than {MAX_BODY} bytes, or broke off"
            )))
        }
    };
    let parsed = match request_format {
        Some(Format::Protobuf) => Fetch::from_protobuf(&body),
        _ => Fetch::from_json(&body),
    };
    let fetch = match parsed {
        Ok(f) => f,
        Err(err) => return refuse(Answer::bad_request(err.to_string())),
    };
    let now = super::now_unix_nano();
    let done = tokio::task::spawn_blocking(move || {
        let reply = query::run(&api.store, &api.sealer, signal, &key_name, &fetch, now)?;
        let body = match format {
            Format::Protobuf => reply.to_protobuf(),
            Format::Json => reply.to_json().map_err(FetchError::Render)?,
        };
        debug!(key = %key_name, %signal, entries = reply.entries.len(), has_more = reply.has_more, "fetch");
        Ok::<_, FetchError>(body)
    })
    .await;
    match done {
        Ok(Ok(body)) => {
            let ct = match format {
                Format::Protobuf => PROTOBUF_CT,
                Format::Json => JSON_CT,
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
                body,
            )
                .into_response()
        }
        Ok(Err(err @ (FetchError::Store(_) | FetchError::Render(_)))) => {
            warn!(%err, "the query API cannot read the store");
            refuse(Answer::internal(err.to_string()))
        }
        Ok(Err(err)) => refuse(Answer::bad_request(err.to_string())),
        Err(err) => refuse(Answer::internal(format!("the fetch failed: {err}"))),
    }
}

async fn health(State(api): State<QueryApi>, headers: HeaderMap) -> Response {
    let body = match caller(&api, &headers) {
        Ok(_) => serde_json::json!({ "status": "ok", "store": api.store.totals() }),
        Err(_) => serde_json::json!({ "status": "ok" }),
    };
    crate::net::health_endpoints::json(StatusCode::OK, body)
}
