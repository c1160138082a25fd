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
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{info, warn};

use crate::ingest::{Ingest, IngestError};

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

/// Serves OTLP/gRPC on `listener` until `shutdown` fires, then finishes open calls.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    info!(addr = ?listener.local_addr().ok(), "OTLP/gRPC receiver listening");
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
    tonic::transport::Server::builder()
        .add_service(configured!(TraceServiceServer))
        .add_service(configured!(MetricsServiceServer))
        .add_service(configured!(LogsServiceServer))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown.cancelled())
        .await
}
