//! The OTLP client: sends export requests over OTLP/HTTP (protobuf or JSON) or OTLP/gRPC, with
//! TLS, headers, gzip and a timeout, and classifies every answer as the OTLP specification
//! says — accepted (perhaps partly), to retry (and when), or refused for good. The load
//! generator and the `otlp` sink both use it.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::net::grpc_raw::{export_path, RawCodec};
use crate::net::http::{JSON_CT, PROTOBUF_CT};
use crate::net::tls::ClientCerts;
use otlp::compression::gzip;
use otlp::response;
use otlp::{json, Signal};

mod body;
mod outcome;

pub use body::Parts;
pub use outcome::{error_chain, Outcome};

/// Largest answer read from a backend (an OTLP answer is a few hundred bytes).
const MAX_ANSWER: usize = 1 << 20;
use outcome::{grpc_outcome, http_outcome};

/// How to talk to the backend (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/HTTP with OTLP/JSON bodies.
    #[value(name = "http/json")]
    HttpJson,
    /// OTLP/gRPC.
    Grpc,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(format!(
                "{other:?}: expected http/protobuf, http/json or grpc"
            )),
        }
    }
}

/// Where and how to send. `Debug` shows header names, never their values, and URLs without
/// their user part and query.
#[derive(Clone)]
pub struct Settings {
    /// Protocol and encoding.
    pub protocol: Protocol,
    /// Base URL: for HTTP, `/v1/traces` etc. are appended (as with
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// Per-signal URLs used as they are (as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` etc.).
    pub signal_endpoints: Vec<(Signal, String)>,
    /// Compress bodies with gzip.
    pub gzip: bool,
    /// Headers (gRPC metadata) sent with every request.
    pub headers: Vec<(String, String)>,
    /// How long one request may take.
    pub timeout: Duration,
    /// The CA to trust and the client certificate to present.
    pub certs: ClientCerts,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = crate::net::redact::urls;
        f.debug_struct("Settings")
            .field("protocol", &self.protocol)
            .field("endpoint", &redact(&self.endpoint))
            .field(
                "signal_endpoints",
                &self
                    .signal_endpoints
                    .iter()
                    .map(|(s, u)| (s, redact(u)))
                    .collect::<Vec<_>>(),
            )
            .field("gzip", &self.gzip)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| format!("{name}: <redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("certs", &self.certs)
            .finish()
    }
}

/// For a plain `http://` URL: TLS settings are an error (they would be ignored), and headers
/// sent to another machine in the clear (where credentials usually are) are warned about.
fn check_plain<'a>(
    settings: &Settings,
    urls: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<()> {
    let plain: Vec<&str> = urls
        .into_iter()
        .filter(|u| u.starts_with("http://"))
        .collect();
    if let Some(url) = plain.first() {
        if settings.certs.is_set() {
            bail!(
                "TLS settings (a CA or a client certificate) need an https:// endpoint, not {}",
                crate::net::redact::urls(url)
            );
        }
    }
    let clear = plain.iter().find(|u| crate::net::client::in_the_clear(u));
    if let (Some(url), false) = (clear, settings.headers.is_empty()) {
        let names: Vec<&str> = settings.headers.iter().map(|(n, _)| n.as_str()).collect();
        tracing::warn!(url = %crate::net::redact::urls(url), headers = ?names, "headers (credentials, usually) go to this backend in the clear over http://; use https://");
    }
    Ok(())
}

impl Settings {
    /// Plain settings for `endpoint` over `protocol`.
    pub fn new(protocol: Protocol, endpoint: &str) -> Settings {
        Settings {
            protocol,
            endpoint: endpoint.to_string(),
            signal_endpoints: Vec::new(),
            gzip: false,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            certs: ClientCerts::default(),
        }
    }

    fn url(&self, signal: Signal) -> String {
        match self.signal_endpoints.iter().find(|(s, _)| *s == signal) {
            Some((_, url)) => url.clone(),
            None => format!("{}/v1/{signal}", self.endpoint.trim_end_matches('/')),
        }
    }
}

/// Connects to `uri`'s host over TLS (for tonic's channel).
async fn connect_tls(
    tls: std::sync::Arc<rustls::ClientConfig>,
    uri: http::Uri,
) -> std::io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>
{
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let host = uri
        .host()
        .ok_or_else(|| invalid("no host in the endpoint"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|_| invalid("the endpoint's host is not a valid TLS server name"))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    Ok(hyper_util::rt::TokioIo::new(stream))
}

/// One request's answer.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The HTTP status (`200`) or gRPC code (`Ok`, `Unavailable`), or `error` without an answer.
    pub code: String,
    /// What it means.
    pub outcome: Outcome,
    /// The body's size as encoded, before compression.
    pub bytes: usize,
    /// From the first byte sent to the answer.
    pub elapsed: Duration,
}

/// A client of one backend, for every signal.
pub enum Exporter {
    /// OTLP/HTTP.
    Http {
        /// The HTTP client (one connection pool).
        http: reqwest::Client,
        /// The URL of each signal, parsed once.
        urls: Vec<(Signal, reqwest::Url)>,
        /// JSON bodies instead of protobuf.
        json: bool,
        /// Compress bodies.
        gzip: bool,
        /// Headers sent with every request.
        headers: reqwest::header::HeaderMap,
    },
    /// OTLP/gRPC, sending the protobuf encoding as it is.
    Grpc {
        /// The channel, with compression and size settings.
        grpc: tonic::client::Grpc<Channel>,
        /// Metadata sent with every request.
        metadata: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
        /// How long one request may take.
        timeout: Duration,
    },
}

impl Exporter {
    /// A client for `settings`; gRPC connects lazily, on the first request.
    pub fn new(settings: &Settings) -> anyhow::Result<Exporter> {
        match settings.protocol {
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let mut headers = reqwest::header::HeaderMap::new();
                for (name, value) in &settings.headers {
                    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                        .with_context(|| format!("{name:?} is not a valid header name"))?;
                    let value = reqwest::header::HeaderValue::from_str(value)
                        .with_context(|| format!("the value of header {name} is not valid"))?;
                    headers.append(name, value);
                }
                let urls: Vec<(Signal, reqwest::Url)> = Signal::ALL
                    .into_iter()
                    .map(|signal| {
                        let url = settings.url(signal);
                        reqwest::Url::parse(&url)
                            .with_context(|| {
                                format!("{} is not a valid URL", crate::net::redact::urls(&url))
                            })
                            .map(|u| (signal, u))
                    })
                    .collect::<anyhow::Result<_>>()?;
                check_plain(settings, urls.iter().map(|(_, u)| u.as_str()))?;
                let builder = settings
                    .certs
                    .http_client()?
                    .timeout(settings.timeout)
                    .tcp_nodelay(true);
                Ok(Exporter::Http {
                    http: builder.build().context("setting up the HTTP client")?,
                    urls,
                    json: settings.protocol == Protocol::HttpJson,
                    gzip: settings.gzip,
                    headers,
                })
            }
            Protocol::Grpc => {
                let base = settings.endpoint.trim_end_matches('/');
                let endpoint = Endpoint::from_shared(base.to_string())
                    .with_context(|| format!("{base} is not a valid gRPC endpoint URL"))?
                    .tcp_nodelay(true)
                    .timeout(settings.timeout);
                let channel = if base.starts_with("https://") {
                    // Our own rustls connector: tonic's TLS features would change how SLIM's
                    // own (tonic-based) client connects, through feature unification.
                    let tls = settings.certs.rustls(&[b"h2"])?;
                    endpoint.connect_with_connector_lazy(tower::service_fn(
                        move |uri: http::Uri| connect_tls(tls.clone(), uri),
                    ))
                } else {
                    check_plain(settings, [base])?;
                    endpoint.connect_lazy()
                };
                let mut grpc =
                    tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_ANSWER);
                if settings.gzip {
                    grpc = grpc
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                let metadata = settings
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                            .with_context(|| {
                                format!("{name:?} is not a valid gRPC metadata key")
                            })?;
                        let value = value.parse().with_context(|| {
                            format!("the value of {name} is not valid gRPC metadata")
                        })?;
                        Ok((key, value))
                    })
                    .collect::<anyhow::Result<_>>()?;
                Ok(Exporter::Grpc {
                    grpc,
                    metadata,
                    timeout: settings.timeout,
                })
            }
        }
    }

    /// Sends one request of `signal`, given in its protobuf encoding (in parts: requests of one
    /// signal back to back are one request), and says how the backend answered.
    pub async fn send(&mut self, signal: Signal, protobuf: impl Into<Parts>) -> Sent {
        let protobuf: Parts = protobuf.into();
        match self {
            Exporter::Http {
                http,
                urls,
                json,
                gzip: compress,
                headers,
            } => {
                let (content_type, body) = if *json {
                    match json::protobuf_to_json(signal, &protobuf.into_vec()) {
                        Ok(body) => (JSON_CT, Parts::from(body)),
                        Err(err) => return Sent::refused(format!("cannot convert to JSON: {err}")),
                    }
                } else {
                    (PROTOBUF_CT, protobuf)
                };
                let bytes = body.len();
                let Some((_, url)) = urls.iter().find(|(s, _)| *s == signal) else {
                    return Sent::refused(format!("no URL for {signal}"));
                };
                let mut post = http
                    .post(url.clone())
                    .headers(headers.clone())
                    .header("content-type", content_type);
                let body = if *compress {
                    post = post.header("content-encoding", "gzip");
                    reqwest::Body::from(gzip(&body.into_vec()))
                } else if url.scheme() == "http" {
                    // Plain http:// is always HTTP/1.1 here: the parts go out one after the
                    // other. Over TLS the backend may choose HTTP/2, where reqwest sends a
                    // request again by itself after a graceful GOAWAY — only a body in one
                    // piece can be sent twice.
                    body.into_body()
                } else {
                    reqwest::Body::from(body.into_vec())
                };
                let sent = Instant::now();
                let (code, outcome) = match post.body(body).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let retry_after = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(crate::net::client::retry_after);
                        // OTLP answers are small (a Status, a partial success): a backend
                        // sending more is cut off instead of filling memory.
                        let body = crate::net::client::read_capped(resp, MAX_ANSWER)
                            .await
                            .unwrap_or_default();
                        (
                            status.as_u16().to_string(),
                            http_outcome(signal, status.as_u16(), retry_after, &body, *json),
                        )
                    }
                    Err(err) => (
                        "error".to_string(),
                        Outcome::Retry {
                            after: None,
                            reason: error_chain(&err),
                        },
                    ),
                };
                Sent {
                    code,
                    outcome,
                    bytes,
                    elapsed: sent.elapsed(),
                }
            }
            Exporter::Grpc {
                grpc,
                metadata,
                timeout,
            } => {
                let bytes = protobuf.len();
                let sent = Instant::now();
                let mut request = tonic::Request::new(protobuf.into_vec());
                request.set_timeout(*timeout);
                for (key, value) in metadata.iter() {
                    request.metadata_mut().append(key.clone(), value.clone());
                }
                let path = http::uri::PathAndQuery::from_static(export_path(signal));
                let result = match grpc.ready().await {
                    Ok(()) => grpc
                        .unary::<_, Vec<u8>, _>(request, path, RawCodec)
                        .await
                        .map(tonic::Response::into_inner),
                    Err(err) => Err(tonic::Status::unavailable(error_chain(&err))),
                };
                let (code, outcome) = match result {
                    Ok(body) => (
                        "OK".to_string(),
                        Outcome::Accepted(
                            response::partial_success_from_protobuf(signal, &body)
                                .ok()
                                .flatten(),
                        ),
                    ),
                    Err(status) => (format!("{:?}", status.code()), grpc_outcome(&status)),
                };
                Sent {
                    code,
                    outcome,
                    bytes,
                    elapsed: sent.elapsed(),
                }
            }
        }
    }
}

impl Sent {
    fn refused(reason: String) -> Sent {
        Sent {
            code: "error".into(),
            outcome: Outcome::Refused(reason),
            bytes: 0,
            elapsed: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_settings_shows_header_names_but_no_value_key_or_credential() {
        let mut s = Settings::new(
            Protocol::HttpProtobuf,
            "https://user:hunter2@backend:4318/?token=query-secret",
        );
        s.headers = vec![("Authorization".into(), "Bearer header-secret".into())];
        s.certs = ClientCerts {
            ca: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            identity: Some((
                b"cert".to_vec(),
                b"-----BEGIN PRIVATE KEY----- key-secret".to_vec(),
            )),
        };
        let shown = format!("{s:?}");
        for secret in ["hunter2", "query-secret", "header-secret", "key-secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("Authorization") && shown.contains("backend:4318"),
            "{shown}"
        );
    }

    #[test]
    fn http_urls_append_the_signal_path_unless_given_per_signal() {
        let mut s = Settings::new(Protocol::HttpProtobuf, "http://c:4318/");
        s.signal_endpoints
            .push((Signal::Logs, "http://l:1/custom".into()));
        assert_eq!(s.url(Signal::Traces), "http://c:4318/v1/traces");
        assert_eq!(s.url(Signal::Logs), "http://l:1/custom");
    }
}
