//! What the OTLP receivers record: each request's duration and body size, the items accepted
//! per signal, and what was refused and why.

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;
use otlp::Signal;

/// Why a request (or some of its items) was refused: the `reason` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It could not be read (400).
    BadData,
    /// Too large (413).
    TooLarge,
    /// No member to take it yet (503).
    NotReady,
    /// The outbox is full or SLIM refused it (503).
    Unavailable,
    /// No channel carries its signal (404).
    NotCarried,
    /// Items dropped from an accepted request (partial success).
    Invalid,
}

impl Refusal {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadData => "bad_data",
            Refusal::TooLarge => "too_large",
            Refusal::NotReady => "not_ready",
            Refusal::Unavailable => "unavailable",
            Refusal::NotCarried => "not_carried",
            Refusal::Invalid => "invalid",
        }
    }
}

/// The receivers' instruments.
pub struct ReceiverMetrics {
    duration: Histogram<f64>,
    body_size: Histogram<u64>,
    rpc_duration: Histogram<f64>,
    rpc_size: Histogram<u64>,
    /// Per signal, in [`Signal::ALL`] order.
    accepted: [Counter<u64>; 3],
    refused_items: [Counter<u64>; 3],
    refused_requests: Counter<u64>,
}

/// The Collector's word for a signal's items, as its counters name them.
fn items(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metric_points",
        Signal::Logs => "log_records",
    }
}

fn index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl ReceiverMetrics {
    pub(super) fn new(meter: &Meter) -> ReceiverMetrics {
        let per_signal = |what: &str, description: &str| {
            Signal::ALL.map(|signal| {
                meter
                    .u64_counter(format!("slim_node.receiver.{what}.{}", items(signal)))
                    .with_unit(format!("{{{}}}", items(signal)))
                    .with_description(format!("{description} ({})", items(signal)))
                    .build()
            })
        };
        let metrics = ReceiverMetrics {
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description(
                    "Duration of the receivers' requests, from the request line to the answer",
                )
                .build(),
            body_size: meter
                .u64_histogram("http.server.request.body.size")
                .with_unit("By")
                .with_description(
                    "Size of the receivers' request bodies as received (compressed, if they were)",
                )
                .build(),
            rpc_duration: meter
                .f64_histogram("rpc.server.duration")
                .with_unit("s")
                .with_description("Duration of the OTLP/gRPC receiver's export calls")
                .build(),
            rpc_size: meter
                .u64_histogram("rpc.server.request.size")
                .with_unit("By")
                .with_description("Size of the OTLP/gRPC receiver's export messages (decompressed)")
                .build(),
            accepted: per_signal("accepted", "Items taken into the outbox"),
            refused_items: per_signal(
                "refused",
                "Items of accepted requests that were dropped (partial success)",
            ),
            refused_requests: meter
                .u64_counter("slim_node.receiver.refused.requests")
                .with_unit("{request}")
                .with_description("Requests refused whole, by signal and reason")
                .build(),
        };
        // Each signal's count shows from the start, at 0: a dashboard's rate needs a series.
        for counter in &metrics.accepted {
            counter.add(0, &[]);
        }
        metrics
    }

    /// A request answered `status` after `seconds`: `method` and `route` as the server saw them
    /// (`route` the matched route, never the raw path), over `scheme` (`http` or `https`).
    pub fn request(
        &self,
        method: &str,
        route: &'static str,
        status: u16,
        scheme: &'static str,
        seconds: f64,
    ) {
        self.duration.record(
            seconds,
            &[
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("http.route", route),
                KeyValue::new("http.response.status_code", i64::from(status)),
                KeyValue::new("url.scheme", scheme),
            ],
        );
    }

    /// An OTLP/gRPC export call (`service`/`method` as its path names them, a message of
    /// `bytes`) answered with gRPC status `code` (0: OK) after `seconds`.
    pub fn rpc(&self, (service, method): (&str, &str), code: i64, bytes: u64, seconds: f64) {
        let attributes = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_string()),
            KeyValue::new("rpc.method", method.to_string()),
            KeyValue::new("rpc.grpc.status_code", code),
        ];
        self.rpc_duration.record(seconds, &attributes);
        self.rpc_size.record(bytes, &attributes[..3]);
    }

    /// A request body of `bytes` for `route`.
    pub fn body(&self, route: &'static str, bytes: u64) {
        self.body_size
            .record(bytes, &[KeyValue::new("http.route", route)]);
    }

    /// `items` of `signal` taken into the outbox, and `dropped` of the same request refused.
    pub fn accepted(&self, signal: Signal, items: u64, dropped: u64) {
        self.accepted[index(signal)].add(items, &[]);
        if dropped > 0 {
            self.refused_items[index(signal)].add(
                dropped,
                &[KeyValue::new("reason", Refusal::Invalid.as_str())],
            );
        }
    }

    /// A request of `signal` refused whole for `reason`.
    pub fn refused(&self, signal: Signal, reason: Refusal) {
        self.refused_requests.add(
            1,
            &[
                KeyValue::new("signal", signal.as_str()),
                KeyValue::new("reason", reason.as_str()),
            ],
        );
    }
}
