//! The guard in front of both receivers and the admin endpoints: bearer-token
//! authentication, a per-key rate limit and a cap on concurrent requests. It answers as
//! the protocol expects: OTLP/HTTP status codes with a `Status` body, or gRPC status codes
//! (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED / UNAVAILABLE + RetryInfo).
//! The health paths are open; `/health` learns from the guard whether the caller is authenticated.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::ingest::Format;
use crate::net::answer::Answer;
use crate::net::auth::{KeyInfo, Keys, Scope, Verdict};
use crate::net::http::{is_health_path, request_format};

/// Key name used for rate limiting when no token file is configured.
const ANONYMOUS: &str = "anonymous";

/// Whether a `/health` caller may see everything (a known key, or no token file at all);
/// put into the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// A known key, or no token file.
    pub trusted: bool,
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
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    concurrent: Arc<Semaphore>,
}

impl Guard {
    /// A guard enforcing `settings`.
    pub fn new(settings: GuardSettings) -> Guard {
        Guard(Arc::new(Inner {
            keys: settings.keys,
            limiter: settings
                .rate_per_key
                .map(|rate| RateLimiter::keyed(Quota::per_second(rate))),
            concurrent: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
        }))
    }
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, check)`.
pub async fn check(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let grpc = is_grpc(&req);
    let verdict = match &guard.0.keys {
        None => Verdict::Known(KeyInfo::anonymous(ANONYMOUS)),
        Some(keys) => keys.check(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        ),
    };
    if is_health_path(req.uri().path()) {
        let trusted = matches!(verdict, Verdict::Known(_));
        req.extensions_mut().insert(Caller { trusted });
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
        warn!(key = %key.name, path = %req.uri().path(), scope = ?needs, "refused a key without the scope for this");
        return refuse(
            &req,
            grpc,
            Answer::forbidden(format!("this key has no `{}` scope", needs.name())),
        );
    }
    let key = key.name;
    if let Some(limiter) = &guard.0.limiter {
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(limiter.clock().now());
            debug!(%key, ?wait, "rate limited");
            return refuse(&req, grpc, Answer::rate_limited(wait));
        }
    }
    let Ok(_permit) = guard.0.concurrent.clone().try_acquire_owned() else {
        return refuse(&req, grpc, Answer::busy());
    };
    debug!(%key, path = %req.uri().path(), "request admitted");
    next.run(req).await
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
