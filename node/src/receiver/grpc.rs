//! OTLP/gRPC receiver (default port 4317): the Trace, Metrics and Logs services' `Export`.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use otlp::{response, OtlpRequest};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{info, warn};

use super::guard::{self, Guard};
use super::server::{self, ConnLimits};
use crate::ingest::{Ingest, IngestError};
use tokio_rustls::TlsAcceptor;

/// The three OTLP services over one [`Ingest`].
#[derive(Clone)]
struct Otlp {
    ingest: Ingest,
}

/// The gRPC status for a refused request: RetryInfo on the retryable ones (UNAVAILABLE),
/// none on the others (INVALID_ARGUMENT, RESOURCE_EXHAUSTED), so clients do not retry those.
fn status(err: IngestError) -> Status {
    let code = tonic::Code::from_i32(err.code() as i32);
    match err.retry_after() {
        Some(secs) => {
            warn!(%err, "refused an export request");
            let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(secs)));
            Status::with_error_details(code, err.to_string(), details)
        }
        None => Status::new(code, err.to_string()),
    }
}

macro_rules! service {
    ($trait:ident, $req:ty, $resp:ty, $variant:ident, $response:path) => {
        #[tonic::async_trait]
        impl $trait for Otlp {
            async fn export(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                let accepted = self
                    .ingest
                    .ingest(OtlpRequest::$variant(request.into_inner()))
                    .await
                    .map_err(status)?;
                Ok(Response::new($response(&accepted.rejected)))
            }
        }
    };
}

service!(
    TraceService,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
    Traces,
    response::traces
);
service!(
    MetricsService,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
    Metrics,
    response::metrics
);
service!(
    LogsService,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    Logs,
    response::logs
);

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
    let max = ingest.max_body();
    let otlp = Otlp { ingest };
    macro_rules! configured {
        ($server:ident) => {
            $server::new(otlp.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max)
        };
    }
    tonic::service::Routes::new(configured!(TraceServiceServer))
        .add_service(configured!(MetricsServiceServer))
        .add_service(configured!(LogsServiceServer))
        .into_axum_router()
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
    server::serve(listener, router(ingest, guard), limits, tls, shutdown).await
}
