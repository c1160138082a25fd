//! One load-generator client: sends requests over OTLP/HTTP or OTLP/gRPC on its own
//! connection and says how each was answered.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::cli::Protocol;
use crate::grpc_raw::{export_path, RawCodec};
use otlp::compression::gzip;
use otlp::{json, OtlpRequest, Signal};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// Protocol and encoding.
    pub protocol: Protocol,
    /// Base URL of the receiver.
    pub endpoint: String,
    /// The signal sent.
    pub signal: Signal,
    /// Compress bodies with gzip.
    pub gzip: bool,
    /// Bearer token, if the receiver wants one.
    pub token: Option<String>,
    /// PEM CA bundle to trust for https:// (OTLP/HTTP).
    pub ca: Option<Vec<u8>>,
}

impl Target {
    /// Reads the token and CA files named on the command line.
    pub fn read_files(&mut self, token: Option<&Path>, ca: Option<&Path>) -> anyhow::Result<()> {
        if let Some(path) = token {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?;
            self.token = Some(text.trim().to_string());
        }
        if let Some(path) = ca {
            self.ca = Some(
                std::fs::read(path)
                    .with_context(|| format!("reading the CA file {}", path.display()))?,
            );
        }
        Ok(())
    }
}

/// How one request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status (`200`) or gRPC code (`OK`, `Unavailable`), or `error` when no answer
    /// came at all.
    pub code: String,
    /// Whether the receiver took the request.
    pub ok: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Answer {
    fn failed(error: impl std::fmt::Display) -> Self {
        Answer {
            code: "error".into(),
            ok: false,
            error: Some(error.to_string()),
        }
    }
}

/// A client with its own connection.
pub enum Client {
    /// OTLP/HTTP.
    Http {
        /// The HTTP client (one connection pool).
        http: reqwest::Client,
        /// The signal's URL, parsed once.
        url: reqwest::Url,
        /// The signal sent (to turn requests into JSON).
        signal: Signal,
        /// JSON bodies instead of protobuf.
        json: bool,
        /// Compress bodies.
        gzip: bool,
        /// `Authorization` header value.
        auth: Option<String>,
    },
    /// OTLP/gRPC, sending the protobuf encoding as it is.
    Grpc {
        /// The channel, with the compression and size settings.
        grpc: tonic::client::Grpc<Channel>,
        /// The signal's `Export` path.
        path: http::uri::PathAndQuery,
        /// `authorization` metadata value.
        auth: Option<MetadataValue<tonic::metadata::Ascii>>,
    },
}

impl Client {
    /// A client for `target`; gRPC connects lazily, on the first request.
    pub fn new(target: &Target) -> anyhow::Result<Client> {
        let auth = target.token.as_ref().map(|t| format!("Bearer {t}"));
        let base = target.endpoint.trim_end_matches('/');
        match target.protocol {
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let mut builder = reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .tcp_nodelay(true)
                    .pool_max_idle_per_host(1);
                if let Some(pem) = &target.ca {
                    let cert = reqwest::Certificate::from_pem(pem)
                        .context("the CA file is not a PEM certificate")?;
                    builder = builder.add_root_certificate(cert);
                }
                let url = format!("{base}/v1/{}", target.signal);
                Ok(Client::Http {
                    http: builder.build().context("setting up the HTTP client")?,
                    url: reqwest::Url::parse(&url)
                        .with_context(|| format!("{url} is not a valid URL"))?,
                    signal: target.signal,
                    json: target.protocol == Protocol::HttpJson,
                    gzip: target.gzip,
                    auth,
                })
            }
            Protocol::Grpc => {
                if base.starts_with("https://") {
                    bail!("loadgen speaks gRPC without TLS only; use --protocol http/protobuf for an https:// receiver");
                }
                let channel = Endpoint::from_shared(base.to_string())
                    .with_context(|| format!("{base} is not a valid gRPC endpoint URL"))?
                    .tcp_nodelay(true)
                    .timeout(REQUEST_TIMEOUT)
                    .connect_lazy();
                let mut grpc =
                    tonic::client::Grpc::new(channel).max_decoding_message_size(64 * 1024 * 1024);
                if target.gzip {
                    grpc = grpc
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                let auth = auth
                    .map(|a| a.parse())
                    .transpose()
                    .context("the token cannot be sent as gRPC metadata")?;
                Ok(Client::Grpc {
                    grpc,
                    path: http::uri::PathAndQuery::from_static(export_path(target.signal)),
                    auth,
                })
            }
        }
    }

    /// Sends one request, given in its protobuf encoding, and waits for the answer; also
    /// returns the request's size in bytes as sent (before compression) and the time from the
    /// first byte sent to the answer (encoding is not counted).
    pub async fn send(&mut self, protobuf: Vec<u8>) -> (Answer, usize, Duration) {
        match self {
            Client::Http {
                http,
                url,
                signal,
                json,
                gzip: compress,
                auth,
            } => {
                let (content_type, body) = if *json {
                    match OtlpRequest::decode_protobuf(*signal, &protobuf) {
                        Ok(request) => ("application/json", json::to_json(&request)),
                        Err(err) => return (Answer::failed(err), 0, Duration::ZERO),
                    }
                } else {
                    ("application/x-protobuf", protobuf)
                };
                let size = body.len();
                let mut post = http.post(url.clone()).header("content-type", content_type);
                let body = if *compress {
                    post = post.header("content-encoding", "gzip");
                    gzip(&body)
                } else {
                    body
                };
                if let Some(auth) = auth {
                    post = post.header("authorization", auth.as_str());
                }
                let sent = Instant::now();
                let answer = match post.body(body).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        // Read the body so the connection is reused.
                        let text = resp.text().await.unwrap_or_default();
                        Answer {
                            code: status.as_u16().to_string(),
                            ok: status.is_success(),
                            error: (!status.is_success()).then_some(text),
                        }
                    }
                    Err(err) => Answer::failed(error_chain(&err)),
                };
                (answer, size, sent.elapsed())
            }
            Client::Grpc { grpc, path, auth } => {
                let size = protobuf.len();
                let sent = Instant::now();
                let mut request = tonic::Request::new(protobuf);
                if let Some(auth) = auth {
                    request.metadata_mut().insert("authorization", auth.clone());
                }
                let result = match grpc.ready().await {
                    Ok(()) => grpc
                        .unary::<_, Vec<u8>, _>(request, path.clone(), RawCodec)
                        .await
                        .map(drop),
                    Err(err) => Err(tonic::Status::unavailable(error_chain(&err))),
                };
                let answer = match result {
                    Ok(()) => Answer {
                        code: "OK".into(),
                        ok: true,
                        error: None,
                    },
                    Err(status) => Answer {
                        code: format!("{:?}", status.code()),
                        ok: false,
                        error: Some(status.message().to_string()),
                    },
                };
                (answer, size, sent.elapsed())
            }
        }
    }
}

/// An error with its causes, which is where reqwest says what actually went wrong.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
