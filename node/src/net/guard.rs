//! The guard in front of both receivers and the admin endpoints: bearer-token
//! authentication, a per-key rate limit and a cap on concurrent requests. It answers as
//! the protocol expects: OTLP/HTTP status codes with a `Status` body, or gRPC status codes
//! (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED / UNAVAILABLE + RetryInfo).
//! The health paths are open; `/health` learns from the guard whether the caller may see
//! everything (the `admin` scope).
//!
//! With no token file every caller may ingest, but only a connection that arrived on a
//! loopback address may administer (`/admin`) or read the full `/health`: anyone who can
//! reach a public port must not change the group's members or read backend errors.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::net::answer::Answer;
use crate::net::auth::{KeyInfo, KeyName, Keys, Scope, Verdict};
use crate::net::http::Format;
use crate::net::http::{is_health_path, request_format};
use crate::net::rate::KeyedRate;

/// Key name used for rate limiting when no token file is configured.
const ANONYMOUS: &str = "anonymous";

/// Whether a `/health` caller may see everything (a key with the `admin` scope, or no token
/// file and a loopback connection); put into the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// May see members, channels, sinks and their errors.
    pub admin: bool,
}

/// What the guard enforces.
pub struct GuardSettings {
    /// Allowed keys; `None`: everyone may send.
    pub keys: Option<Keys>,
    /// Requests per second per key (burst of the same size); `None`: no limit.
    pub rate_per_key: Option<NonZeroU32>,
    /// Requests handled at once across all keys; beyond it 503 + Retry-After.
    pub max_concurrent: usize,
}

/// Shared by every request of both receivers, so limits hold across them.
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

struct Inner {
    keys: Option<Keys>,
    limiter: Option<KeyedRate>,
    concurrent: Arc<Semaphore>,
}

impl Guard {
    /// A guard enforcing `settings`.
    pub fn new(settings: GuardSettings) -> Guard {
        Guard(Arc::new(Inner {
            keys: settings.keys,
            limiter: settings.rate_per_key.map(KeyedRate::new),
            concurrent: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
        }))
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, check)`.
pub async fn check(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let grpc = is_grpc(&req);
    let verdict = match &guard.0.keys {
        None => Verdict::Known(KeyInfo::anonymous(ANONYMOUS, arrived_on_loopback(&req))),
        Some(keys) => keys.check(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        ),
    };
    if is_health_path(req.uri().path()) {
        let admin = matches!(&verdict, Verdict::Known(key) if key.may(Scope::Admin));
        req.extensions_mut().insert(Caller { admin });
        return next.run(req).await;
    }
    let key = match verdict {
        Verdict::Known(key) => key,
        Verdict::Missing => {
            debug!(path = %req.uri().path(), "refused a request without a bearer token");
            return refuse(&req, grpc, Answer::unauthenticated());
        }
        Verdict::Wrong => {
            warn!(path = %req.uri().path(), "refused a request with an unknown bearer token");
            return refuse(
                &req,
                grpc,
                Answer::forbidden("the bearer token is not valid"),
            );
        }
    };
    let needs = if req.uri().path().starts_with("/admin") {
        Scope::Admin
    } else {
        Scope::Ingest
    };
    if !key.may(needs) {
        if guard.0.keys.is_none() {
            warn!(path = %req.uri().path(), "refused /admin to a caller without a key on a non-loopback address: set --auth-token-file with an `admin` key, or call it on 127.0.0.1");
            return refuse(
                &req,
                grpc,
                Answer::forbidden("/admin is served without a key only on a loopback address; this node has no --auth-token-file"),
            );
        }
        warn!(key = %key.name, path = %req.uri().path(), scope = ?needs, "refused a key without the scope for this");
        return refuse(
            &req,
            grpc,
            Answer::forbidden(format!("this key has no `{}` scope", needs.name())),
        );
    }
    let key = key.name;
    if let Some(limiter) = &guard.0.limiter {
        if let Err(answer) = limiter.check(&key) {
            debug!(%key, wait = ?answer.retry_after, "rate limited");
            return refuse(&req, grpc, answer);
        }
    }
    let Ok(_permit) = guard.0.concurrent.clone().try_acquire_owned() else {
        return refuse(&req, grpc, Answer::busy());
    };
    debug!(%key, path = %req.uri().path(), "request admitted");
    req.extensions_mut().insert(KeyName(key));
    next.run(req).await
}

/// Whether the request's connection arrived on a loopback address (unknown: no).
fn arrived_on_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<crate::net::http_server::LocalAddr>()
        .is_some_and(|local| local.0.ip().to_canonical().is_loopback())
}

fn is_grpc(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Renders `answer` in the request's protocol.
fn refuse(req: &Request, grpc: bool, answer: Answer) -> Response {
    if grpc {
        return answer
            .grpc()
            .into_http::<axum::body::Body>()
            .into_response();
    }
    answer.http(request_format(req.headers()).unwrap_or(Format::Json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Extension;
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::routing::{get, post};
    use axum::Router;
    use std::io::Write;
    use std::time::Duration;
    use tokio::sync::{mpsc, Notify};
    use tower::ServiceExt;

    /// An ingest key, and a key that may only administer.
    const KEYS: &str = "team-a=aaaaaaaaaaaaaaaaaaaa\nteam-b=bbbbbbbbbbbbbbbbbbbb\nops:admin=cccccccccccccccccccc\n";
    const TEAM_A: &str = "Bearer aaaaaaaaaaaaaaaaaaaa";
    const TEAM_B: &str = "Bearer bbbbbbbbbbbbbbbbbbbb";
    const OPS: &str = "Bearer cccccccccccccccccccc";
    /// Bound for anything a test waits for.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// The keys of [`KEYS`], read from a token file as the node reads `--auth-token-file`.
    fn keys() -> Keys {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(KEYS.as_bytes()).unwrap();
        Keys::load(file.path()).unwrap()
    }

    fn guard(keys: Option<Keys>, rate: Option<u32>, max_concurrent: usize) -> Guard {
        Guard::new(GuardSettings {
            keys,
            rate_per_key: rate.map(|r| NonZeroU32::new(r).unwrap()),
            max_concurrent,
        })
    }

    /// Routes like the receivers' (an export, an admin path, the health paths) behind `guard`;
    /// the health handler says whether the guard trusted the caller.
    fn app(guard: Guard) -> Router {
        let health = |Extension(caller): Extension<Caller>| async move {
            if caller.admin {
                "full"
            } else {
                "summary"
            }
        };
        Router::new()
            .route("/v1/traces", post(|| async { "exported" }))
            .route("/admin/members", post(|| async { "administered" }))
            .route("/health", get(health))
            .route("/health/live", get(health))
            .route("/health/ready", get(health))
            .layer(axum::middleware::from_fn_with_state(guard, check))
    }

    async fn call(app: &Router, method: &str, path: &str, token: Option<&str>) -> Response {
        call_on(app, "127.0.0.1:4318", method, path, token).await
    }

    /// Calls `path` as a connection that arrived on the address `local` would.
    async fn call_on(
        app: &Router,
        local: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> Response {
        let mut req = HttpRequest::builder()
            .method(method)
            .uri(path)
            .extension(crate::net::http_server::LocalAddr(local.parse().unwrap()));
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, token);
        }
        let answered = app.clone().oneshot(req.body(Body::empty()).unwrap());
        tokio::time::timeout(PATIENCE, answered)
            .await
            .expect("an answer within the deadline")
            .unwrap()
    }

    async fn body(response: Response) -> String {
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_request_without_a_token_is_401_naming_the_scheme_when_a_token_file_is_set() {
        let app = app(guard(Some(keys()), None, 8));
        let r = call(&app, "POST", "/v1/traces", None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn a_request_with_an_unknown_token_is_403() {
        let app = app(guard(Some(keys()), None, 8));
        let r = call(
            &app,
            "POST",
            "/v1/traces",
            Some("Bearer not-a-key-of-this-node"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(body(r).await.contains("not valid"));
    }

    #[tokio::test]
    async fn a_known_ingest_key_reaches_the_receiver() {
        let app = app(guard(Some(keys()), None, 8));
        let r = call(&app, "POST", "/v1/traces", Some(TEAM_A)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "exported");
    }

    #[tokio::test]
    async fn without_a_token_file_a_caller_on_loopback_may_administer() {
        let app = app(guard(None, None, 8));
        let r = call(&app, "POST", "/admin/members", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "administered");
        assert_eq!(body(call(&app, "GET", "/health", None).await).await, "full");
    }

    #[tokio::test]
    async fn without_a_token_file_admin_is_refused_on_a_non_loopback_address() {
        let app = app(guard(None, None, 8));
        let r = call_on(&app, "10.1.2.3:4318", "POST", "/admin/members", None).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(body(r).await.contains("loopback"));
        let health = call_on(&app, "10.1.2.3:4318", "GET", "/health", None).await;
        assert_eq!(body(health).await, "summary");
        let r = call_on(&app, "10.1.2.3:4318", "POST", "/v1/traces", None).await;
        assert_eq!(r.status(), StatusCode::OK, "ingest stays open");
    }

    #[tokio::test]
    async fn a_key_without_the_admin_scope_is_403_on_admin_paths() {
        let app = app(guard(Some(keys()), None, 8));
        let r = call(&app, "POST", "/admin/members", Some(TEAM_A)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(body(r).await.contains("no `admin` scope"));
    }

    #[tokio::test]
    async fn a_key_with_only_the_admin_scope_is_403_on_ingest_paths() {
        let app = app(guard(Some(keys()), None, 8));
        let r = call(&app, "POST", "/v1/traces", Some(OPS)).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(body(r).await.contains("no `ingest` scope"));
    }

    #[tokio::test]
    async fn a_key_with_the_admin_scope_reaches_admin_paths() {
        let app = app(guard(Some(keys()), None, 8));
        let r = call(&app, "POST", "/admin/members", Some(OPS)).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "administered");
    }

    #[tokio::test]
    async fn a_request_beyond_a_keys_rate_is_429_with_retry_after() {
        // One request per second, a burst of one: the second at once is over the limit.
        let app = app(guard(Some(keys()), Some(1), 8));
        assert_eq!(
            call(&app, "POST", "/v1/traces", Some(TEAM_A))
                .await
                .status(),
            StatusCode::OK
        );
        let r = call(&app, "POST", "/v1/traces", Some(TEAM_A)).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let after: u64 = r.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after >= 1, "Retry-After: {after}");
    }

    #[tokio::test]
    async fn the_rate_limit_is_kept_per_key() {
        let app = app(guard(Some(keys()), Some(1), 8));
        assert_eq!(
            call(&app, "POST", "/v1/traces", Some(TEAM_A))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            call(&app, "POST", "/v1/traces", Some(TEAM_A))
                .await
                .status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            call(&app, "POST", "/v1/traces", Some(TEAM_B))
                .await
                .status(),
            StatusCode::OK,
            "another key has its own budget"
        );
    }

    /// A router whose export waits for `release` after saying it `entered`, behind `guard`.
    fn gated(guard: Guard) -> (Router, mpsc::Receiver<()>, Arc<Notify>) {
        let (entered_tx, entered) = mpsc::channel(8);
        let release = Arc::new(Notify::new());
        let gate = release.clone();
        let app = Router::new()
            .route(
                "/v1/traces",
                post(move || {
                    let (entered, gate) = (entered_tx.clone(), gate.clone());
                    async move {
                        entered.send(()).await.unwrap();
                        gate.notified().await;
                        "exported"
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(guard, check));
        (app, entered, release)
    }

    #[tokio::test]
    async fn a_request_beyond_the_concurrency_cap_is_503_with_retry_after() {
        let (app, mut entered, release) = gated(guard(None, None, 1));
        let first = tokio::spawn(call_owned(app.clone()));
        tokio::time::timeout(PATIENCE, entered.recv())
            .await
            .expect("the first request reached its handler");
        let r = call(&app, "POST", "/v1/traces", None).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        release.notify_one();
        assert_eq!(first.await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_finished_request_gives_its_place_back() {
        let (app, mut entered, release) = gated(guard(None, None, 1));
        for _ in 0..2 {
            release.notify_one();
            assert_eq!(call_owned(app.clone()).await.status(), StatusCode::OK);
            entered.try_recv().expect("the request reached its handler");
        }
    }

    async fn call_owned(app: Router) -> Response {
        call(&app, "POST", "/v1/traces", None).await
    }

    #[tokio::test]
    async fn health_paths_are_let_through_without_a_token() {
        let app = app(guard(Some(keys()), None, 8));
        for path in ["/health", "/health/live", "/health/ready"] {
            let r = call(&app, "GET", path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(body(r).await, "summary", "{path}");
        }
    }

    #[tokio::test]
    async fn health_is_full_for_an_admin_key_only() {
        let app = app(guard(Some(keys()), None, 8));
        let r = call(&app, "GET", "/health", Some(OPS)).await;
        assert_eq!(body(r).await, "full");
        let r = call(&app, "GET", "/health", Some(TEAM_A)).await;
        assert_eq!(body(r).await, "summary", "an ingest key sees the summary");
        let r = call(
            &app,
            "GET",
            "/health",
            Some("Bearer not-a-key-of-this-node"),
        )
        .await;
        assert_eq!(body(r).await, "summary");
    }

    #[tokio::test]
    async fn health_paths_are_not_counted_against_the_rate_limit() {
        let app = app(guard(Some(keys()), Some(1), 8));
        for _ in 0..3 {
            let r = call(&app, "GET", "/health", Some(TEAM_A)).await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        assert_eq!(
            call(&app, "POST", "/v1/traces", Some(TEAM_A))
                .await
                .status(),
            StatusCode::OK,
            "the key's budget is untouched"
        );
    }

    #[tokio::test]
    async fn a_grpc_request_is_refused_with_a_grpc_status() {
        let app = app(guard(Some(keys()), None, 8));
        let req = HttpRequest::builder()
            .method("POST")
            .uri("/v1/traces")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::empty())
            .unwrap();
        let r = tokio::time::timeout(PATIENCE, app.oneshot(req))
            .await
            .expect("an answer within the deadline")
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "gRPC says it in grpc-status");
        assert_eq!(
            r.headers()["grpc-status"],
            (tonic::Code::Unauthenticated as i32).to_string().as_str()
        );
    }
}
