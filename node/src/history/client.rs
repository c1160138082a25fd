//! The query API's client: pages through a time range of one signal, and with `follow` keeps
//! polling with the last cursor for what arrives later. `slim-node fetch` prints the pages,
//! `slim-node replay` re-exports them.

use std::path::Path;
use std::time::Duration;

use crate::net::http::PROTOBUF_CT;
use crate::net::tls::ClientCerts;
use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use super::query::{read_protobuf, FetchRequestProto, Received};
use otlp::Signal;

/// Times a busy answer (429, 503) is asked again before giving up.
const BUSY_ATTEMPTS: u32 = 20;
/// Largest answer read: a page holds at most 4 MiB of items.
const MAX_ANSWER: usize = 64 << 20;

/// A client of one query API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Api {
    /// A client of the API at `url` (`http://HOST:PORT`), sending `key` as a bearer token,
    /// trusting `ca` (PEM) for `https://` and presenting `identity` (certificate and key PEM
    /// files) to an API that requires client certificates.
    pub fn new(
        url: &str,
        key: Option<String>,
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> anyhow::Result<Api> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!(
                "--api must be an http:// or https:// URL, not {:?}",
                crate::net::redact::urls(url)
            );
        }
        if url.starts_with("http://") && (ca.is_some() || identity.is_some()) {
            bail!(
                "--api-ca and --api-client-cert need an https:// API, not {}",
                crate::net::redact::urls(url)
            );
        }
        if key.is_some() && crate::net::client::in_the_clear(url) {
            tracing::warn!(api = %crate::net::redact::urls(url), "the API key goes to the query API in the clear over http://; use https://");
        }
        let builder = ClientCerts::read(ca, identity)?
            .http_client()?
            .timeout(Duration::from_secs(60));
        Ok(Api {
            http: builder.build().context("setting up the HTTP client")?,
            base: url.trim_end_matches('/').to_string(),
            key,
        })
    }

    /// One page; a 429 or 503 is asked again after its `Retry-After` (at most 5 min), up to
    /// [`BUSY_ATTEMPTS`] times.
    pub async fn page(
        &self,
        signal: Signal,
        request: &FetchRequestProto,
    ) -> anyhow::Result<Received> {
        let mut attempt = 1;
        loop {
            match self.page_once(signal, request).await? {
                Ok(received) => return Ok(received),
                Err((wait, why)) if attempt < BUSY_ATTEMPTS => {
                    tracing::info!(%why, ?wait, attempt, "the query API is busy; asking again");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err((_, why)) => bail!("{why} ({BUSY_ATTEMPTS} attempts)"),
            }
        }
    }

    /// One attempt: the page, or how long to wait before the next when the API is busy.
    async fn page_once(
        &self,
        signal: Signal,
        request: &FetchRequestProto,
    ) -> anyhow::Result<Result<Received, (Duration, String)>> {
        let url = format!("{}/api/{signal}/fetch", self.base);
        let shown = crate::net::redact::urls(&url);
        let mut call = self
            .http
            .post(&url)
            .header("content-type", PROTOBUF_CT)
            .header("accept", PROTOBUF_CT)
            .body(prost::Message::encode_to_vec(request));
        if let Some(key) = &self.key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the query API at {shown}: {}",
                crate::export::error_chain(&e)
            )
        })?;
        let status = response.status();
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::net::client::retry_after)
            .unwrap_or(Duration::from_secs(1));
        let body = crate::net::client::read_capped(response, MAX_ANSWER)
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer of {shown}: {e}"))?;
        if matches!(status.as_u16(), 429 | 503) {
            let message = otlp::status::message_of(&body).unwrap_or_default();
            return Ok(Err((
                wait,
                format!("the query API answered {status}: {message}"),
            )));
        }
        if !status.is_success() {
            let message = otlp::status::message_of(&body)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            let hint = match status.as_u16() {
                401 => "; give the key with --api-key-file or SLIM_NODE_API_KEY",
                _ => "",
            };
            bail!("the query API answered {status}: {message}{hint}");
        }
        let received = read_protobuf(signal, &body).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        if received.partial {
            // Its cursor stands where ours did: the same page, whole, once the bucket answers.
            return Ok(Err((
                PARTIAL_WAIT,
                "the query API could not read segments in object storage".to_string(),
            )));
        }
        Ok(Ok(received))
    }
}

/// How long a partial page waits before it is asked again.
const PARTIAL_WAIT: Duration = Duration::from_secs(5);

/// A time range and how to page it.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// Start (inclusive), Unix nanoseconds.
    pub start: u64,
    /// End (exclusive); 0: now.
    pub end: u64,
    /// Entries per page.
    pub limit: u32,
    /// Keep polling this often for what arrives later; `None`: stop at the end.
    pub follow: Option<Duration>,
}

/// Pages of one signal, in order.
pub struct Pager {
    api: Api,
    signal: Signal,
    paging: Paging,
    cursor: String,
    done: bool,
    stop: CancellationToken,
}

impl Pager {
    /// Pages `signal` as `paging` says until the range is read (or, following, until `stop`).
    pub fn new(api: Api, signal: Signal, paging: Paging, stop: CancellationToken) -> Pager {
        Pager {
            api,
            signal,
            paging,
            cursor: String::new(),
            done: false,
            stop,
        }
    }

    /// The signal paged.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The next page with items; `None` once the range is read or `stop` fired.
    pub async fn next(&mut self) -> anyhow::Result<Option<otlp::OtlpRequest>> {
        loop {
            if self.done || self.stop.is_cancelled() {
                return Ok(None);
            }
            let request = FetchRequestProto {
                start_time_unix_nano: self.paging.start,
                end_time_unix_nano: self.paging.end,
                limit: i64::from(self.paging.limit),
                cursor: self.cursor.clone(),
            };
            let page = tokio::select! {
                page = self.api.page(self.signal, &request) => page?,
                _ = self.stop.cancelled() => return Ok(None),
            };
            self.cursor = page.next_cursor;
            if !page.has_more {
                match self.paging.follow {
                    None => self.done = true,
                    Some(every) if page.request.is_empty() => {
                        tokio::select! {
                            _ = tokio::time::sleep(every) => {}
                            _ = self.stop.cancelled() => return Ok(None),
                        }
                    }
                    Some(_) => {}
                }
            }
            if !page.request.is_empty() {
                return Ok(Some(page.request));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_busy_api_is_asked_again_after_its_retry_after() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let page = super::super::query::Reply {
            signal: Signal::Logs,
            entries: Vec::new(),
            next_cursor: "next".into(),
            has_more: false,
            partial: false,
        }
        .to_protobuf();
        let app = axum::Router::new().route(
            "/api/logs/fetch",
            axum::routing::post(move || {
                let (calls, page) = (counted.clone(), page.clone());
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [(axum::http::header::RETRY_AFTER, "1")],
                            Vec::new(),
                        )
                    } else {
                        (
                            axum::http::StatusCode::OK,
                            [(axum::http::header::CONTENT_TYPE, PROTOBUF_CT)],
                            page,
                        )
                    }
                }
            }),
        );
        let base = crate::net::client::tests::serve(app).await;
        let api = Api::new(&base, None, None, None).unwrap();
        let received = api
            .page(Signal::Logs, &FetchRequestProto::default())
            .await
            .unwrap();
        assert_eq!(received.next_cursor, "next");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "asked again once");
    }

    #[test]
    fn a_ca_for_a_plain_http_api_is_refused() {
        let err = Api::new(
            "http://api.example:4320",
            None,
            Some(Path::new("/no/such/ca.pem")),
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("https://"), "{err}");
    }
}
