//! The query API (`--query-api HOST:PORT`, its own listener, never the OTLP port):
//! `POST /api/{traces,metrics,logs}/fetch` pages through the store ([`super::query`]), and
//! `GET /health` says whether it serves and, to callers with a key, what the store holds.
//!
//! With `--query-api-keys`, every fetch needs `Authorization: Bearer KEY` of a key with the
//! `query` scope: 401 without one, 403 with a wrong one. Keys are compared in constant time
//! (`net::auth`) and never logged; a cursor only opens for the key that got it.
//!
//! Bounded, so that readers never stall ingest: fetches run on a few blocking threads of
//! their own count (half the cores), a few more wait for one briefly, and the rest are 503
//! with Retry-After; each key (each client address, when open) has a rate (429 beyond it); a
//! body must arrive within 10 s; a page holds at most 4 MiB of items in protobuf and 1 MiB in
//! JSON, rendered one resource at a time; a fetch whose client left before it ran is skipped.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::cursor::Sealer;
use super::query::{self, Fetch, FetchError};
use super::store::Store;
use crate::config::defaults;
use crate::net::answer::Answer;
use crate::net::auth::{Keys, Scope, Verdict};
use crate::net::http::Format;
use crate::net::http::{JSON_CT, PROTOBUF_CT};
use crate::net::rate::KeyedRate;
use otlp::Signal;

/// Largest fetch request body.
const MAX_BODY: usize = 64 * 1024;
/// How long a fetch request's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Items of one page at most, encoded, in protobuf answers.
const PAGE_BYTES_PROTOBUF: usize = 4 << 20;
/// Items of one page at most, encoded, in JSON answers (their rendering is 2–4 times larger).
const PAGE_BYTES_JSON: usize = 1 << 20;
/// Set on an answer that misses segments the bucket did not give (`partial` in the body too).
pub const PARTIAL_HEADER: &str = "slim-node-partial";
/// Fetches that may wait for a thread, each at most [`WAIT_FOR_THREAD`]; beyond, 503.
const MAX_WAITING: usize = 32;
/// See [`MAX_WAITING`].
const WAIT_FOR_THREAD: Duration = Duration::from_secs(5);

/// What bounds the work the API does for its clients.
pub struct Limits {
    threads: Arc<Semaphore>,
    waiting: AtomicUsize,
    limiter: Option<KeyedRate>,
}

impl Limits {
    /// `threads` fetches at once, each key `rate` fetches a second (burst as many).
    pub fn new(threads: usize, rate: Option<NonZeroU32>) -> Limits {
        Limits {
            threads: Arc::new(Semaphore::new(threads.max(1))),
            waiting: AtomicUsize::new(0),
            limiter: rate.map(KeyedRate::new),
        }
    }

    /// Half the cores (at least one): the rest stay with ingest and the sinks.
    pub fn threads_for_this_machine() -> usize {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }
}

/// What the API serves from.
#[derive(Clone)]
pub struct QueryApi {
    /// The store.
    pub store: Arc<Store>,
    /// Seals and opens cursors.
    pub sealer: Arc<Sealer>,
    /// The keys allowed to query; `None`: open.
    pub keys: Option<Arc<Keys>>,
    /// Threads, waiting room and rates.
    pub limits: Arc<Limits>,
    /// The store's sealed segments in object storage, when it keeps them there.
    pub catalog: Option<Arc<super::catalog::Catalog>>,
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

/// The header clients of Oteleport (a signal-replay server this API can stand in for) send
/// their access key in.
const OTELEPORT_KEY: &str = "oteleport-access-key";

/// The caller's key name (empty when the API is open), or the refusal. The key comes as
/// `Authorization: Bearer KEY`, or as `Oteleport-Access-Key: KEY`.
fn caller(api: &QueryApi, headers: &HeaderMap) -> Result<String, Answer> {
    let Some(keys) = &api.keys else {
        return Ok(String::new());
    };
    let oteleport = headers
        .get(OTELEPORT_KEY)
        .map(|key| [b"Bearer ".as_slice(), key.as_bytes()].concat());
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec())
        .or(oteleport);
    match keys.check(presented.as_deref()) {
        Verdict::Known(info) if info.may(Scope::Query) => Ok(info.name),
        Verdict::Known(_) => Err(Answer::forbidden(format!(
            "this key has no `{}` scope",
            Scope::Query.name()
        ))),
        Verdict::Missing => Err(Answer::unauthenticated()),
        Verdict::Wrong => Err(Answer::forbidden("this key is not valid for the query API")),
    }
}

/// Whether the client takes a gzip'd answer (`Accept-Encoding` lists gzip, not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                })
        })
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

/// The budget an address draws on when the API is open: its own for IPv4, its /64 for IPv6
/// (a client holds a whole /64, and could otherwise take a new budget per address).
fn address_budget(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Sets its flag when dropped: the handler's future is dropped when its client goes.
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Leaves the waiting room when dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A thread for one fetch: at once, or after a short wait among few; else the refusal.
async fn thread_for(limits: &Limits) -> Result<tokio::sync::OwnedSemaphorePermit, Answer> {
    if let Ok(permit) = limits.threads.clone().try_acquire_owned() {
        return Ok(permit);
    }
    let busy = || {
        Answer::unavailable(
            "the query API is busy with other fetches; retry later",
            Duration::from_secs(1),
        )
    };
    if limits.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
        limits.waiting.fetch_sub(1, Ordering::AcqRel);
        return Err(busy());
    }
    let _waiting = Waiting(&limits.waiting);
    match tokio::time::timeout(WAIT_FOR_THREAD, limits.threads.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(busy()),
    }
}

async fn fetch(
    State(api): State<QueryApi>,
    Path(signal): Path<String>,
    peer: Option<axum::Extension<crate::net::sample::PeerAddr>>,
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
    if let Some(limiter) = &api.limits.limiter {
        // Open API: each client address has its own budget.
        let budget = match (&api.keys, &peer) {
            (None, Some(peer)) => address_budget(peer.0 .0.ip()),
            _ => key_name.clone(),
        };
        if let Err(answer) = limiter.check(&budget) {
            return refuse(answer);
        }
    }
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
    let read = tokio::time::timeout(
        BODY_TIMEOUT,
        http_body_util::Limited::new(body, MAX_BODY).collect(),
    );
    let body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return refuse(Answer::bad_request(format!(
                "the request body is larger than {MAX_BODY} bytes, or broke off"
            )))
        }
        Err(_) => {
            return refuse(Answer::bad_request(format!(
                "the request body did not arrive within {BODY_TIMEOUT:?}"
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
    let thread = match thread_for(&api.limits).await {
        Ok(permit) => permit,
        Err(answer) => return refuse(answer),
    };
    let left = Arc::new(AtomicBool::new(false));
    let _watch = Abandoned(left.clone());
    let max_bytes = match format {
        Format::Protobuf => PAGE_BYTES_PROTOBUF,
        Format::Json => PAGE_BYTES_JSON,
    };
    // Compressed on the fetch's own thread, so that it counts against the same bound.
    let gzip = accepts_gzip(&headers);
    let runtime = tokio::runtime::Handle::current();
    let done = tokio::task::spawn_blocking(move || {
        let _thread = thread;
        if left.load(Ordering::Acquire) {
            return Ok(None);
        }
        let now = super::now_unix_nano();
        let remote = api
            .catalog
            .as_deref()
            .map(|catalog| query::remote_of(catalog, &runtime));
        let reply = query::run(
            &api.store,
            &api.sealer,
            signal,
            &key_name,
            &fetch,
            now,
            max_bytes,
            remote.as_ref().map(|r| r as query::Remote<'_>),
        )?;
        let body = match format {
            Format::Protobuf => reply.to_protobuf(),
            Format::Json => reply.to_json().map_err(FetchError::Render)?,
        };
        let body = if gzip {
            otlp::compression::gzip(&body)
        } else {
            body
        };
        debug!(key = %key_name, %signal, entries = reply.entries.len(), has_more = reply.has_more, "fetch");
        Ok::<_, FetchError>(Some((body, reply.partial)))
    })
    .await;
    match done {
        Ok(Ok(None)) => refuse(Answer::unavailable(
            "the client left before its fetch ran",
            Duration::from_secs(1),
        )),
        Ok(Ok(Some((body, partial)))) => {
            let ct = match format {
                Format::Protobuf => PROTOBUF_CT,
                Format::Json => JSON_CT,
            };
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
                body,
            )
                .into_response();
            if gzip {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            if partial {
                response.headers_mut().insert(
                    PARTIAL_HEADER,
                    HeaderValue::from_static("segments in object storage could not be read; ask again with the same cursor"),
                );
            }
            response
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
        Ok(_) => {
            let mut body = serde_json::json!({ "status": "ok", "store": api.store.totals() });
            if let Some(catalog) = &api.catalog {
                body["bucket"] = serde_json::json!({ "damaged_segments": catalog.damaged() });
            }
            body
        }
        Err(_) => serde_json::json!({ "status": "ok" }),
    };
    crate::net::health_endpoints::json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::store::{Arrival, Retention};
    use axum::http::Request;
    use otlp::status::Code;
    use serde_json::Value;
    use std::io::Write;
    use tower::ServiceExt;

    /// A key that may query, one that may not (ingest only), in a key file as
    /// `--query-api-keys` reads it.
    const KEYS: &str = "reader:query=rrrrrrrrrrrrrrrrrrrr\nother:query=oooooooooooooooooooo\nsender:ingest=ssssssssssssssssssss\n";
    const READER: &str = "Bearer rrrrrrrrrrrrrrrrrrrr";
    const OTHER: &str = "Bearer oooooooooooooooooooo";
    const SENDER: &str = "Bearer ssssssssssssssssssss";

    /// A store in a temporary directory holding one log record per time of `times`, each
    /// with its time as its body; the directory lives as long as the store is used.
    fn store_with_logs(times: &[u64]) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            Retention {
                max_age: None,
                max_bytes: u64::MAX,
            },
        )
        .unwrap();
        let records = times
            .iter()
            .map(|t| (*t, t.to_string()))
            .collect::<Vec<_>>();
        append_logs(&store, &records);
        (dir, store)
    }

    /// Appends one request of `api-test` log records, each `(time, body)`.
    fn append_logs(store: &Store, records: &[(u64, String)]) {
        let records = records
            .iter()
            .map(|(t, body)| {
                format!(r#"{{"timeUnixNano":"{t}","body":{{"stringValue":"{body}"}}}}"#)
            })
            .collect::<Vec<_>>()
            .join(",");
        let json = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"api-test"}}}}]}},"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#
        );
        let request = otlp::json::from_json(Signal::Logs, json.as_bytes()).unwrap();
        store
            .append(
                vec![Arrival {
                    signal: Signal::Logs,
                    received_unix_nano: 1,
                    parts: otlp::items::split_items(&request),
                    message_id: None,
                }],
                super::super::now_unix_nano(),
            )
            .unwrap();
    }

    fn api(store: Arc<Store>, keys: Option<Keys>) -> Router {
        router(QueryApi {
            store,
            sealer: Arc::new(Sealer::new(&[7; 32])),
            keys: keys.map(Arc::new),
            limits: Arc::new(Limits::new(2, None)),
            catalog: None,
        })
    }

    fn query_keys() -> Keys {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(KEYS.as_bytes()).unwrap();
        Keys::load_for(file.path(), None).unwrap()
    }

    /// POSTs `body` (JSON) to `/api/logs/fetch` with `token`; the status and the body read
    /// as JSON.
    async fn fetch_logs(app: &Router, body: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/logs/fetch")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, token);
        }
        let answered = app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap());
        let response = tokio::time::timeout(Duration::from_secs(30), answered)
            .await
            .expect("an answer within the deadline")
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// The bodies of the log records of an answer, in order.
    fn bodies(answer: &Value) -> Vec<String> {
        answer["resourceLogs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["scopeLogs"].as_array().unwrap())
            .flat_map(|s| s["logRecords"].as_array().unwrap())
            .map(|l| l["body"]["stringValue"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fetch_returns_the_items_of_its_window_in_time_order() {
        let (_dir, store) = store_with_logs(&[50, 10, 40, 20, 30]);
        let app = api(store, None);
        let (status, answer) = fetch_logs(
            &app,
            r#"{"startTimeUnixNano":"20","endTimeUnixNano":"50"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(bodies(&answer), ["20", "30", "40"]);
        assert_eq!(answer["hasMore"], false);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn paging_with_the_cursor_returns_the_rest_of_the_window_exactly_once() {
        let times: Vec<u64> = (1..=7).map(|i| i * 10).collect();
        let (_dir, store) = store_with_logs(&times);
        let app = api(store, None);
        let (status, first) = fetch_logs(
            &app,
            r#"{"startTimeUnixNano":"0","endTimeUnixNano":"1000","limit":3}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["hasMore"], true);
        let mut seen = bodies(&first);
        let mut cursor = first["nextCursor"].as_str().unwrap().to_string();
        let mut pages = 1;
        loop {
            let (status, page) = fetch_logs(
                &app,
                &serde_json::json!({ "cursor": cursor, "limit": 3 }).to_string(),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.extend(bodies(&page));
            cursor = page["nextCursor"].as_str().unwrap().to_string();
            pages += 1;
            if page["hasMore"] == false {
                break;
            }
            assert!(pages < 10, "paging does not end: {seen:?}");
        }
        let expected: Vec<String> = times.iter().map(u64::to_string).collect();
        assert_eq!(seen, expected);
        assert_eq!(pages, 3, "7 items, 3 per page");
        let (_, after) = fetch_logs(
            &app,
            &serde_json::json!({ "cursor": cursor }).to_string(),
            None,
        )
        .await;
        assert!(
            bodies(&after).is_empty(),
            "the last cursor brings only what arrives later: {after}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bad_request_is_400_with_a_message_saying_what_is_wrong() {
        let (_dir, store) = store_with_logs(&[10]);
        let app = api(store, None);
        let (status, answer) = fetch_logs(&app, r#"{"limit":-1}"#, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["code"], Code::InvalidArgument as i32);
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("limit must be"), "{message}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_cursor_that_does_not_open_is_400() {
        let (_dir, store) = store_with_logs(&[10]);
        let app = api(store, None);
        let (status, answer) = fetch_logs(&app, r#"{"cursor":"not-a-cursor"}"#, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fetch_without_a_key_is_401_when_keys_are_set() {
        let (_dir, store) = store_with_logs(&[10]);
        let app = api(store, Some(query_keys()));
        let (status, answer) = fetch_logs(&app, "{}", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert!(answer.get("resourceLogs").is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fetch_with_an_unknown_key_is_403() {
        let (_dir, store) = store_with_logs(&[10]);
        let app = api(store, Some(query_keys()));
        let (status, answer) = fetch_logs(&app, "{}", Some("Bearer not-a-key-of-this-api")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert!(answer.get("resourceLogs").is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_key_without_the_query_scope_is_403() {
        let (_dir, store) = store_with_logs(&[10]);
        let app = api(store, Some(query_keys()));
        let (status, answer) = fetch_logs(&app, "{}", Some(SENDER)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("`query`"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_key_with_the_query_scope_fetches() {
        let (_dir, store) = store_with_logs(&[10]);
        let app = api(store, Some(query_keys()));
        let (status, answer) = fetch_logs(&app, "{}", Some(READER)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(bodies(&answer), ["10"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_cursor_only_opens_for_the_key_that_got_it() {
        let (_dir, store) = store_with_logs(&[10, 20]);
        let app = api(store, Some(query_keys()));
        let (_, first) = fetch_logs(&app, r#"{"limit":1}"#, Some(READER)).await;
        let cursor = serde_json::json!({ "cursor": first["nextCursor"] }).to_string();
        let (status, _) = fetch_logs(&app, &cursor, Some(OTHER)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, page) = fetch_logs(&app, &cursor, Some(READER)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(bodies(&page), ["20"]);
    }

    fn api_with(store: Arc<Store>, limits: Limits) -> (Router, Arc<Limits>) {
        let limits = Arc::new(limits);
        let app = router(QueryApi {
            store,
            sealer: Arc::new(Sealer::new(&[7; 32])),
            keys: None,
            limits: limits.clone(),
            catalog: None,
        });
        (app, limits)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fetch_finding_every_thread_busy_and_the_waiting_room_full_is_503_with_retry_after() {
        let (_dir, store) = store_with_logs(&[10]);
        let (app, limits) = api_with(store, Limits::new(1, None));
        let busy = limits.threads.clone().acquire_owned().await.unwrap();
        limits.waiting.store(MAX_WAITING, Ordering::Release);
        let req = Request::builder()
            .method("POST")
            .uri("/api/logs/fetch")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let refused = app.clone().oneshot(req).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        drop(busy);
        limits.waiting.store(0, Ordering::Release);
        let (status, answer) = fetch_logs(&app, "{}", None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fetch_waits_briefly_for_a_thread_that_comes_free() {
        let (_dir, store) = store_with_logs(&[10]);
        let (app, limits) = api_with(store, Limits::new(1, None));
        let busy = limits.threads.clone().acquire_owned().await.unwrap();
        let waiting = tokio::spawn(async move { fetch_logs(&app, "{}", None).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(busy);
        let (status, answer) = waiting.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_beyond_its_rate_is_429_with_retry_after() {
        let (_dir, store) = store_with_logs(&[10]);
        let (app, _) = api_with(store, Limits::new(2, NonZeroU32::new(1)));
        let (status, _) = fetch_logs(&app, "{}", None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, answer) = fetch_logs(&app, "{}", None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_within_10_s_is_refused() {
        let (_dir, store) = store_with_logs(&[10]);
        let (app, _) = api_with(store, Limits::new(2, None));
        let never = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        let req = Request::builder()
            .method("POST")
            .uri("/api/logs/fetch")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(never))
            .unwrap();
        let response = app.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains("did not arrive"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_json_page_stops_at_1_mib_of_items_and_says_there_is_more() {
        // 400 records of about 4 KiB each: 1.6 MiB in all.
        let (_dir, store) = store_with_logs(&[]);
        let filler = "x".repeat(4096);
        let records: Vec<(u64, String)> = (1..=400).map(|t| (t, filler.clone())).collect();
        append_logs(&store, &records);
        let app = api(store, None);
        let (status, page) = fetch_logs(&app, r#"{"limit":10000}"#, None).await;
        assert_eq!(status, StatusCode::OK);
        let got = bodies(&page).len();
        assert!((200..400).contains(&got), "{got} records in one JSON page");
        assert_eq!(page["hasMore"], true);
    }

    #[test]
    fn gzip_is_taken_when_accept_encoding_lists_it_without_q_0() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            accepts_gzip(&headers)
        };
        assert!(with("gzip"));
        assert!(with("br, gzip;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_page_asked_for_gzip_comes_gzipped() {
        let (_dir, store) = store_with_logs(&[10, 20]);
        let app = api(store, None);
        let req = Request::builder()
            .method("POST")
            .uri("/api/logs/fetch")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::from("{}"))
            .unwrap();
        let response = app.oneshot(req).await.unwrap();
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let mut json = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json)
            .unwrap();
        let page: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(bodies(&page), ["10", "20"]);
    }

    #[test]
    fn an_ipv6_client_draws_on_its_64s_budget_and_an_ipv4_one_on_its_own() {
        let a = address_budget("2001:db8:1:2::1".parse().unwrap());
        let b = address_budget("2001:db8:1:2:ffff::9".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, address_budget("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            address_budget("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_key_in_the_oteleport_access_key_header_fetches_too() {
        let (_dir, store) = store_with_logs(&[10]);
        let app = api(store, Some(query_keys()));
        let req = Request::builder()
            .method("POST")
            .uri("/api/logs/fetch")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Oteleport-Access-Key", READER.trim_start_matches("Bearer "))
            .body(Body::from("{}"))
            .unwrap();
        let response = app.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let wrong = Request::builder()
            .method("POST")
            .uri("/api/logs/fetch")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Oteleport-Access-Key", "not-a-key-of-this-api")
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(
            app.oneshot(wrong).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
}
