//! Samples of refused requests: what a 5xx (or a 503) answered, logged so that an operator can
//! tell who sent what — the method, path, peer address, content type and size, never the body
//! or any credential — at most once a second, with the count of those not logged meanwhile (a
//! node under overload answers thousands of 503s a second).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

/// At most one sample per this long.
const EVERY: Duration = Duration::from_secs(1);

/// The address a connection came from, as the HTTP server puts it on each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What is logged of a refused request.
pub struct Refused<'a> {
    /// The answer's status (HTTP) or code (gRPC).
    pub status: &'a str,
    /// The method (`POST`).
    pub method: &'a str,
    /// The path.
    pub path: &'a str,
    /// Where it came from, when known.
    pub peer: Option<SocketAddr>,
    /// Its `Content-Type`.
    pub content_type: Option<&'a str>,
    /// Its declared size in bytes.
    pub size: Option<u64>,
    /// Why, as the answer said.
    pub why: &'a str,
}

struct Limiter {
    last: Option<Instant>,
    skipped: u64,
}

static LIMITER: Mutex<Limiter> = Mutex::new(Limiter {
    last: None,
    skipped: 0,
});

/// Logs `refused` unless a sample was logged less than [`EVERY`] ago (then it is counted).
pub fn refused(refused: &Refused<'_>) {
    let skipped = {
        let mut limiter = crate::lock(&LIMITER);
        let now = Instant::now();
        if limiter
            .last
            .is_some_and(|at| now.duration_since(at) < EVERY)
        {
            limiter.skipped += 1;
            return;
        }
        limiter.last = Some(now);
        std::mem::take(&mut limiter.skipped)
    };
    warn!(
        status = refused.status,
        method = refused.method,
        path = refused.path,
        peer = ?refused.peer,
        content_type = refused.content_type.unwrap_or("-"),
        size = ?refused.size,
        not_logged_before = skipped,
        "refused a request: {} (one sample a second at most)",
        refused.why
    );
}
