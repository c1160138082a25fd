//! The node's own telemetry: OpenTelemetry metrics, recorded with the OpenTelemetry SDK and
//! read as Prometheus text at `GET /metrics`, wherever the node serves `/health`, and pushed
//! where `--telemetry` says (`push`). Names and units follow the OpenTelemetry semantic conventions (`http.server.request.duration`, in
//! seconds); component counters mirror the Collector's (its `otelcol_receiver_accepted_spans`
//! is `slim_node.receiver.accepted.spans` here). One set per process: `up` runs two nodes in
//! one, and their metrics add up.

mod node;
mod process;
mod push;
mod receiver;
mod views;

use std::sync::OnceLock;
use std::time::Instant;

use opentelemetry::metrics::MeterProvider;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{Instrument, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

pub use node::NodeMetrics;
pub use push::{Destination, Push};
pub use receiver::{ReceiverMetrics, Refusal};
pub use views::ViewSpec;

/// Request-duration histogram boundaries, in seconds: fine enough that p90, p95, p99 and p99.9
/// read within one bucket (each ~1.5–2.5× the last) from 0.1 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.004, 0.006, 0.01, 0.015, 0.025,
    0.04, 0.06, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 4.0, 6.0, 10.0,
];
/// Request body size boundaries, in bytes: 256 B to 16 MiB, ×4 each.
pub const SIZE_BUCKETS: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// End-to-end latency boundaries, in seconds: 1 ms to an hour (a message may wait in an
/// outbox while a member is away).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// What a process's telemetry is set up with, before its first use.
#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    /// The node's SLIM name: `service.instance.id` of what is pushed.
    pub instance: Option<String>,
    /// Where the metrics are pushed besides `GET /metrics`.
    pub push: Vec<Push>,
    /// Which instruments, attributes and buckets reach the destinations.
    pub views: Vec<ViewSpec>,
    /// Record nothing at all (`--telemetry off`): no `/metrics`, nothing pushed.
    pub off: bool,
}

static SETTINGS: OnceLock<TelemetrySettings> = OnceLock::new();

/// Sets the process's telemetry up with `settings`; the first call wins, and only before the
/// telemetry is first used (a node calls it before it starts).
pub fn configure(settings: TelemetrySettings) -> anyhow::Result<()> {
    for push in &settings.push {
        if let Destination::Otlp(otlp) = &push.destination {
            // Refused at start, not at the first interval.
            crate::export::Exporter::new(otlp)?;
        }
    }
    let _ = SETTINGS.set(settings);
    Ok(())
}

/// The process's metrics and their readers.
pub struct Telemetry {
    /// Kept for as long as the process records: dropping it stops the readers.
    _provider: SdkMeterProvider,
    /// The node whose channel `--telemetry mesh` publishes on.
    mesh: push::MeshNode,
    meter: opentelemetry::metrics::Meter,
    _process: process::ProcessMetrics,
    registry: prometheus::Registry,
    off: bool,
    /// The receivers' instruments.
    pub receiver: ReceiverMetrics,
}

/// The process's telemetry, made on first use.
pub fn get() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(Telemetry::new)
}

impl Telemetry {
    fn new() -> Telemetry {
        let settings = SETTINGS.get().cloned().unwrap_or_default();
        let settings_views = settings.views.clone();
        let registry = prometheus::Registry::new();
        let mut resource = Resource::builder().with_service_name("slim-node");
        if let Some(instance) = &settings.instance {
            resource =
                resource.with_attribute(KeyValue::new("service.instance.id", instance.clone()));
        }
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource.build())
            .with_view(move |i: &Instrument| views::stream(&settings_views, i, default_buckets));
        let mesh = push::MeshNode::default();
        // Off: a provider without readers, so every instrument records nothing.
        if !settings.off {
            for push in &settings.push {
                match push::Pusher::new(&push.destination, &mesh) {
                    Ok(pusher) => {
                        builder = builder.with_reader(
                            PeriodicReader::builder(pusher)
                                .with_interval(push.interval)
                                .build(),
                        )
                    }
                    Err(err) => tracing::warn!(%err, "a telemetry destination could not be set up"),
                }
            }
            match opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()
            {
                Ok(exporter) => builder = builder.with_reader(exporter),
                // Only a registry that already holds these collectors fails; ours is new.
                Err(err) => {
                    tracing::warn!(%err, "the Prometheus reader could not be set up; /metrics stays empty")
                }
            }
        }
        let provider = builder.build();
        let meter = provider.meter("slim-node");
        Telemetry {
            receiver: ReceiverMetrics::new(&meter),
            _process: process::watch(&meter, Instant::now()),
            meter,
            mesh,
            _provider: provider,
            registry,
            off: settings.off,
        }
    }

    /// Whether the node records no metrics (`--telemetry off`).
    pub fn is_off(&self) -> bool {
        self.off
    }

    /// Shows the node `name` (its outbox, link, members) and its `sinks` in the metrics for
    /// as long as the returned value is kept.
    pub fn watch_node(
        &self,
        name: String,
        publisher: slim_roles::Publisher,
        sinks: Vec<crate::pipeline::SinkHandle>,
    ) -> NodeMetrics {
        // The first node's channel carries `--telemetry mesh` (a process runs one node that
        // pushes: `node`).
        let _ = self.mesh.set(publisher.clone());
        node::watch(&self.meter, name, publisher, sinks)
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn prometheus_text(&self) -> Result<String, String> {
        use prometheus::Encoder;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| e.to_string())?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

/// The buckets that suit what a histogram measures, where no view says otherwise.
fn default_buckets(instrument: &Instrument) -> Option<&'static [f64]> {
    let name = instrument.name();
    match instrument.unit() {
        "s" if name.ends_with(".duration") => Some(DURATION_BUCKETS),
        "s" if name.ends_with(".latency") => Some(LATENCY_BUCKETS),
        "By" if name.ends_with(".size") => Some(SIZE_BUCKETS),
        _ => None,
    }
}
