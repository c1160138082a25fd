//! OTLP/gRPC receiver (default port 4317): the Trace, Metrics and Logs services' `Export`,
//! served by tonic's gRPC framing (compression, size limit, status) over raw request bytes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use otlp::{response, Signal};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::Status;
use tracing::info;

use crate::ingest::{Ingest, IngestError};
use crate::net::answer::Answer;
use crate::net::auth::KeyName;
use crate::net::grpc_raw::{export_path, RawCodec};
use crate::net::guard::{self, Guard};
use crate::net::http_server::{self, ConnLimits};
use tokio_rustls::TlsAcceptor;

/// The gRPC status for a refused request, as [`Answer`] decides it; one the client should
/// retry is sampled in the log.
fn status(err: IngestError, signal: Signal) -> Status {
    let answer = Answer::ingest(&err);
    if answer.retry_after.is_some() {
        let why = err.to_string();
        crate::net::sample::refused(&crate::net::sample::Refused {
            status: "UNAVAILABLE",
            method: "POST",
            path: crate::net::grpc_raw::export_path(signal),
            peer: None,
            content_type: Some("application/grpc"),
            size: None,
            why: &why,
        });
    }
    answer.grpc()
}

/// One signal's `Export` method.
#[derive(Clone)]
struct Export {
    signal: Signal,
    ingest: Ingest,
}

impl Export {
    async fn export(
        self,
        request: tonic::Request<Vec<u8>>,
    ) -> Result<tonic::Response<Vec<u8>>, Status> {
        let started = std::time::Instant::now();
        let key = request.extensions().get::<KeyName>().cloned();
        let message = request.into_inner();
        let bytes = message.len() as u64;
        let answered = self
            .ingest
            .ingest_protobuf(self.signal, message, key.as_ref())
            .await
            .map_err(|err| status(err, self.signal))
            .map(|accepted| {
                tonic::Response::new(response::to_protobuf(self.signal, &accepted.rejected))
            });
        let code = match &answered {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        let path = crate::net::grpc_raw::export_path(self.signal);
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, "Export"));
        crate::telemetry::get().receiver.rpc(
            (service, method),
            code as i64,
            bytes,
            started.elapsed().as_secs_f64(),
        );
        answered
    }
}

impl tower::Service<http::Request<axum::body::Body>> for Export {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let export = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(export.ingest.max_body());
            let method = tower::service_fn(move |r| export.clone().export(r));
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// tonic refuses a message over the size limit with OUT_OF_RANGE, which OTLP clients retry
/// forever; the same request will never fit, so it becomes INVALID_ARGUMENT.
fn not_retryable_when_too_large<B>(mut response: http::Response<B>) -> http::Response<B> {
    let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
    if response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
    {
        let invalid = (tonic::Code::InvalidArgument as i32).to_string();
        if let Ok(value) = http::HeaderValue::from_str(&invalid) {
            response.headers_mut().insert("grpc-status", value);
        }
    }
    response
}

/// The three OTLP services as routes.
pub fn router(ingest: Ingest, guard: Guard) -> axum::Router {
    let router = Signal::ALL
        .into_iter()
        .fold(axum::Router::new(), |router, signal| {
            let export = Export {
                signal,
                ingest: ingest.clone(),
            };
            router.route_service(export_path(signal), export)
        });
    router
        .fallback(|| async {
            Status::unimplemented(
                "unknown gRPC method; OTLP's are the Trace, Metrics and Logs services' Export",
            )
            .into_http::<axum::body::Body>()
        })
        .layer(tower::util::MapResponseLayer::new(
            not_retryable_when_too_large::<axum::body::Body>,
        ))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
}

/// Serves OTLP/gRPC on `listener` (over TLS when `tls` is set) until `shutdown` fires, then
/// finishes open calls.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    limits: ConnLimits,
    guard: Guard,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "OTLP/gRPC receiver listening");
    http_server::serve(listener, router(ingest, guard), limits, tls, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::auth::Keys;
    use crate::net::guard::GuardSettings;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use slim_roles::{
        ClientTls, Identity, Incoming, Keepalive, Node, NodeConfig, OutboxLimits, RoleConfig,
        Secret, SlimServer,
    };
    use std::io::Write;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tonic_types::StatusExt;

    const TOKEN: &str = "Bearer gggggggggggggggggggg";

    /// Runs `test` on SLIM's runtime, the one the node runs on (`main` does the same), for
    /// two minutes at most.
    fn on_slim_runtime<F: Future>(test: F) -> F::Output {
        // Ours first, as `main` does, or SLIM installs its own and prints to stdout; silent
        // unless RUST_LOG asks.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        slim_roles::runtime::init();
        slim_roles::runtime::handle()
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), test).await })
            .expect("the test finishes within two minutes")
    }

    /// A SLIM server of its own, a participant node connected to it (nobody invites it, so
    /// it has no members), and the gRPC receiver in front of that node on a loopback port.
    struct Receiver {
        addr: SocketAddr,
        stop: CancellationToken,
        serving: tokio::task::JoinHandle<std::io::Result<()>>,
        node: Node,
        _incoming: mpsc::Receiver<Incoming>,
        slim: SlimServer,
        _token_file: Option<tempfile::NamedTempFile>,
    }

    impl Receiver {
        /// With a body limit of `max_body` bytes, and a token required when `token_required`.
        async fn start(max_body: usize, token_required: bool) -> Receiver {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let endpoint = format!("127.0.0.1:{port}");
            let slim = SlimServer::start(
                &endpoint,
                None,
                Keepalive {
                    interval: Duration::from_secs(2),
                    timeout: Duration::from_secs(3),
                },
            )
            .await
            .unwrap();
            let (node, incoming) = Node::start(NodeConfig {
                name: "test/grpc/receiver".parse().unwrap(),
                identity: Identity::SharedSecret(
                    Secret::new("a shared secret of at least 32 bytes".into()).unwrap(),
                ),
                slim_urls: vec![format!("http://{endpoint}")],
                role: RoleConfig::Participant,
                mls: false,
                connect_attempts: 5,
                reliability: None,
                in_flight: 4,
                outbox: OutboxLimits {
                    max_bytes: 1 << 20,
                    max_messages: 100,
                    max_delay: None,
                },
                spool: None,
                tls: ClientTls::default(),
                state_dir: None,
            })
            .await
            .unwrap();
            let token_file = token_required.then(|| {
                let mut file = tempfile::NamedTempFile::new().unwrap();
                writeln!(file, "sender={}", TOKEN.trim_start_matches("Bearer ")).unwrap();
                file
            });
            let guard = Guard::new(GuardSettings {
                keys: token_file.as_ref().map(|f| Keys::load(f.path()).unwrap()),
                rate_per_key: None,
                max_concurrent: 16,
            });
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = CancellationToken::new();
            let limits = ConnLimits {
                max_connections: 16,
                header_read_timeout: Duration::from_secs(10),
                drain: Duration::from_secs(2),
            };
            let serving = tokio::spawn(serve(
                listener,
                Ingest::new(node.publisher(), max_body),
                limits,
                guard,
                None,
                stop.clone(),
            ));
            Receiver {
                addr,
                stop,
                serving,
                node,
                _incoming: incoming,
                slim,
                _token_file: token_file,
            }
        }

        async fn channel(&self) -> tonic::transport::Channel {
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
                .unwrap()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(30))
                .connect()
                .await
                .unwrap()
        }

        /// Calls `path` with `body` as the message, as it is (no encoding), with `token`.
        async fn call_raw(
            &self,
            path: &'static str,
            body: Vec<u8>,
            token: Option<&str>,
        ) -> Result<Vec<u8>, Status> {
            let mut grpc = tonic::client::Grpc::new(self.channel().await);
            grpc.ready().await.unwrap();
            let mut request = tonic::Request::new(body);
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert("authorization", token.parse().unwrap());
            }
            grpc.unary::<_, Vec<u8>, _>(
                request,
                http::uri::PathAndQuery::from_static(path),
                RawCodec,
            )
            .await
            .map(tonic::Response::into_inner)
        }

        async fn stop(self) {
            self.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(30), self.serving).await;
            self.node.shutdown(Duration::from_secs(1)).await;
            let _ = self.slim.shutdown().await;
        }
    }

    /// One span, valid.
    fn one_span() -> ExportTraceServiceRequest {
        let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"checkout","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let bytes = otlp::json::from_json(Signal::Traces, json)
            .unwrap()
            .to_protobuf();
        prost::Message::decode(bytes.as_slice()).unwrap()
    }

    #[test]
    fn an_export_that_is_not_otlp_is_invalid_argument_without_retry_info() {
        on_slim_runtime(async {
            let receiver = Receiver::start(1 << 20, false).await;
            // A varint that never ends: not protobuf.
            let status = receiver
                .call_raw(export_path(Signal::Traces), vec![0xff; 16], None)
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            assert!(status.get_details_retry_info().is_none());
            receiver.stop().await;
        });
    }

    #[test]
    fn an_export_over_the_size_limit_is_invalid_argument_not_out_of_range() {
        on_slim_runtime(async {
            let receiver = Receiver::start(1024, false).await;
            // Valid OTLP: were it not too large, it would wait for a member (UNAVAILABLE).
            let mut request = one_span();
            request.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(4096);
            let status = TraceServiceClient::new(receiver.channel().await)
                .export(request)
                .await
                .unwrap_err();
            let answer = Answer::ingest(&IngestError::TooLarge(String::new()));
            assert_eq!(status.code(), answer.grpc().code(), "{status:?}");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains("1024"), "{status:?}");
            assert!(status.get_details_retry_info().is_none());
            receiver.stop().await;
        });
    }

    #[test]
    fn an_export_without_a_token_is_unauthenticated_when_a_token_is_required() {
        on_slim_runtime(async {
            let receiver = Receiver::start(1 << 20, true).await;
            let status = TraceServiceClient::new(receiver.channel().await)
                .export(one_span())
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            receiver.stop().await;
        });
    }

    #[test]
    fn an_export_with_an_unknown_token_is_permission_denied() {
        on_slim_runtime(async {
            let receiver = Receiver::start(1 << 20, true).await;
            let status = receiver
                .call_raw(
                    export_path(Signal::Traces),
                    Vec::new(),
                    Some("Bearer not-a-key-of-this-node"),
                )
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
            receiver.stop().await;
        });
    }

    #[test]
    fn an_empty_export_with_the_token_is_accepted() {
        on_slim_runtime(async {
            let receiver = Receiver::start(1 << 20, true).await;
            let mut request = tonic::Request::new(ExportTraceServiceRequest::default());
            request
                .metadata_mut()
                .insert("authorization", TOKEN.parse().unwrap());
            let response = TraceServiceClient::new(receiver.channel().await)
                .export(request)
                .await
                .unwrap();
            assert_eq!(response.into_inner().partial_success, None);
            receiver.stop().await;
        });
    }

    #[test]
    fn an_export_before_any_member_joined_is_unavailable_with_retry_info() {
        on_slim_runtime(async {
            let receiver = Receiver::start(1 << 20, false).await;
            let status = TraceServiceClient::new(receiver.channel().await)
                .export(one_span())
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            let retry = status.get_details_retry_info().expect("RetryInfo");
            assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO));
            receiver.stop().await;
        });
    }

    #[test]
    fn an_unknown_method_is_unimplemented() {
        on_slim_runtime(async {
            let receiver = Receiver::start(1 << 20, false).await;
            let status = receiver
                .call_raw(
                    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
                    Vec::new(),
                    None,
                )
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
            receiver.stop().await;
        });
    }
}
