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
use tracing::{info, warn};

use crate::ingest::{Ingest, IngestError};
use crate::net::answer::Answer;
use crate::net::grpc_raw::{export_path, RawCodec};
use crate::net::guard::{self, Guard};
use crate::net::http_server::{self, ConnLimits};
use tokio_rustls::TlsAcceptor;

/// The gRPC status for a refused request, as [`Answer`] decides it.
fn status(err: IngestError) -> Status {
    let answer = Answer::ingest(&err);
    if answer.retry_after.is_some() {
        warn!(%err, "refused an export request");
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
        let accepted = self
            .ingest
            .ingest_protobuf(self.signal, request.into_inner())
            .await
            .map_err(status)?;
        Ok(tonic::Response::new(response::to_protobuf(
            self.signal,
            &accepted.rejected,
        )))
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
