//! Pushing the node's metrics every interval, besides `GET /metrics`: `--telemetry mesh` (as
//! ordinary OTLP metrics on the node's own channel, where any participant sees them) and
//! `--telemetry otlp:URL` (to any OTLP endpoint, through the node's one OTLP client). Both send
//! what the SDK collected as one `ExportMetricsServiceRequest`, cumulative.
//!
//! What goes into the mesh is published by the node itself, not through its receivers: it is
//! never counted as received data, so the node does not measure its own metrics.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use otlp::{wire, Signal};
use slim_roles::{Outgoing, Publisher};
use tracing::debug;

use crate::export::{Exporter, Settings};

/// Where pushed metrics go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// The node's own channel.
    Mesh,
    /// An OTLP endpoint.
    Otlp(Settings),
}

/// One destination and how often it is sent to.
#[derive(Debug, Clone)]
pub struct Push {
    /// Where.
    pub destination: Destination,
    /// How often.
    pub interval: Duration,
}

/// The node whose channel `mesh` publishes on, once it runs.
pub(super) type MeshNode = Arc<OnceLock<Publisher>>;

#[derive(Clone)]
enum Target {
    Mesh(MeshNode),
    Otlp(Arc<tokio::sync::Mutex<Exporter>>),
}

/// The SDK's exporter for one destination.
pub(super) struct Pusher {
    target: Target,
}

impl Pusher {
    pub(super) fn new(destination: &Destination, mesh: &MeshNode) -> anyhow::Result<Pusher> {
        let target = match destination {
            Destination::Mesh => Target::Mesh(mesh.clone()),
            Destination::Otlp(settings) => {
                Target::Otlp(Arc::new(tokio::sync::Mutex::new(Exporter::new(settings)?)))
            }
        };
        Ok(Pusher { target })
    }
}

impl PushMetricExporter for Pusher {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let request = ExportMetricsServiceRequest::from(metrics);
        let empty = request
            .resource_metrics
            .iter()
            .all(|r| r.scope_metrics.iter().all(|s| s.metrics.is_empty()));
        let payload = prost::Message::encode_to_vec(&request);
        let target = self.target.clone();
        async move {
            if !empty {
                // Sent on the node's runtime, so a slow destination never holds up the SDK.
                slim_roles::runtime::handle().spawn(send(target, payload));
            }
            Ok(())
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// Sends one request's protobuf `payload` to `target`; a failure is logged (the next interval
/// sends the totals again).
async fn send(target: Target, payload: Vec<u8>) {
    match target {
        Target::Mesh(node) => {
            let Some(publisher) = node.get() else { return };
            let id = wire::message_id();
            let message = Outgoing {
                metadata: wire::metadata(Signal::Metrics, &id),
                id,
                payload,
                payload_type: wire::PROTOBUF.to_string(),
                concatenable: true,
            };
            if let Err(err) = publisher.publish_all(vec![message]).await {
                debug!(%err, "the node's metrics could not be published on its channel");
            }
        }
        Target::Otlp(exporter) => {
            let sent = exporter.lock().await.send(Signal::Metrics, payload).await;
            if !matches!(sent.outcome, crate::export::Outcome::Accepted(_)) {
                debug!(code = %sent.code, "the node's metrics were not taken by the OTLP endpoint");
            }
        }
    }
}
