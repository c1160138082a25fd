//! What the node's HTTP clients do the same way (the OTLP exporter and the query API's
//! client; S3 goes through `object_store`'s own): follow no redirect (a backend that answers
//! 3xx is misconfigured, and a redirect would carry the credentials elsewhere), wait at most
//! [`MAX_RETRY_AFTER`] whatever a server asks, and read at most a bounded answer.

use std::time::{Duration, SystemTime};

/// The longest wait a server's `Retry-After` (or gRPC `RetryInfo`) can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// `Retry-After`: seconds, or an HTTP date; at most [`MAX_RETRY_AFTER`].
pub fn retry_after(value: &str) -> Option<Duration> {
    let wait = if let Ok(secs) = value.trim().parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = time::OffsetDateTime::parse(
            value.trim(),
            &time::format_description::well_known::Rfc2822,
        )
        .ok()?;
        SystemTime::from(at)
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    };
    Some(bounded_wait(wait))
}

/// `wait`, at most [`MAX_RETRY_AFTER`].
pub fn bounded_wait(wait: Duration) -> Duration {
    wait.min(MAX_RETRY_AFTER)
}

/// Whether `url` goes in the clear to another machine: `http://` to a host that is not this
/// one (`localhost`, `127.0.0.0/8`, `::1`). What it carries can be read on the way.
pub fn in_the_clear(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !local
}

/// An HTTP client builder with the rules above (no redirects).
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
}

/// An answer's body, read up to `cap` bytes; a longer one is an error that says so.
pub async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| crate::net::redact::urls(&e.to_string()))?
    {
        if body.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::routing::get;

    /// Serves `app` on a free loopback port for the rest of the test; its base URL.
    pub(crate) async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let base = serve(
            axum::Router::new()
                .route(
                    "/",
                    get(|| async { axum::response::Redirect::temporary("/elsewhere") }),
                )
                .route("/elsewhere", get(|| async { "followed" })),
        )
        .await;
        let answer = builder().build().unwrap().get(&base).send().await.unwrap();
        assert_eq!(answer.status(), 307);
    }

    #[tokio::test]
    async fn an_answer_over_the_cap_is_an_error_and_one_within_it_is_read() {
        let base = serve(axum::Router::new().route("/", get(|| async { "x".repeat(2048) }))).await;
        let client = builder().build().unwrap();
        let over = read_capped(client.get(&base).send().await.unwrap(), 1024).await;
        assert!(over.unwrap_err().contains("larger than 1024"));
        let within = read_capped(client.get(&base).send().await.unwrap(), 4096).await;
        assert_eq!(within.unwrap().len(), 2048);
    }

    #[test]
    fn plain_http_to_another_host_is_in_the_clear_and_to_this_one_is_not() {
        assert!(in_the_clear("http://collector.example:4318/v1/traces"));
        assert!(in_the_clear("http://u:p@10.0.0.5"));
        assert!(!in_the_clear("http://127.0.0.1:4318"));
        assert!(!in_the_clear("http://localhost:4318"));
        assert!(!in_the_clear("http://[::1]:4318"));
        assert!(!in_the_clear("https://collector.example"));
    }

    #[test]
    fn a_retry_after_of_a_day_waits_five_minutes() {
        assert_eq!(retry_after("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2099 07:28:00 GMT"),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date gone by: at once"
        );
        assert_eq!(retry_after("soon"), None);
    }
}
