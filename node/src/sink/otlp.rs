//! `otlp:URL` sink: forwards what arrives to any OTLP backend (a Collector, Tempo, Jaeger, a
//! vendor) over OTLP/HTTP (protobuf or JSON) or OTLP/gRPC.
//!
//! Requests of one signal that wait together are sent as one export (protobuf requests of
//! one type concatenated are one valid request holding all their resources, so every item
//! reaches the backend byte for byte as its client sent it). Answers are handled as the OTLP
//! specification says: retryable ones (429, 502, 503, 504; gRPC UNAVAILABLE and the like) are
//! sent again with exponential backoff and jitter, not before the backend's `Retry-After` /
//! `RetryInfo`, for as long as the node runs — meanwhile the sink's queue holds what arrives;
//! a permanent refusal (400 and the like) drops the request it concerns, counted and logged
//! with the backend's message (a refused batch is retried request by request, so only the
//! bad one is dropped); a partial success is logged and its rejected items counted.
//!
//! Settings the user does not give come from the OpenTelemetry SDK variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `…_PROTOCOL`, `…_HEADERS`, `…_COMPRESSION`, `…_TIMEOUT`,
//! `…_CERTIFICATE`, `…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY`, and the per-signal
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`).

use std::path::Path;
use std::time::Duration;

use tracing::{info, warn};

use super::kind::{OptionSpec, SinkKind, SinkSpec};
use crate::export::{Exporter, Outcome, Parts, Protocol, Settings};
use crate::net::tls::ClientCerts;
use crate::pipeline::{DropReason, FailReason, Item, QueueKind};
use crate::pipeline::{Sink, SinkFuture, SinkInput};
use otlp::Signal;
use slim_roles::Backoff;

/// `otlp[:URL]`.
pub static KIND: SinkKind = SinkKind {
    name: "otlp",
    arg: Some(("URL", false)),
    summary: "forwards to an OTLP backend: URL as in OTEL_EXPORTER_OTLP_ENDPOINT (`/v1/traces` etc. appended for HTTP), e.g. `http://collector:4318`; default OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318 (4317 for gRPC); taken once on disk",
    durable: true,
    queue: QueueKind::Disk,
    options: OPTIONS,
    open: |spec, _| Ok(Box::new(OtlpSink::new(spec, &|k| std::env::var(k).ok())?)),
};

static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "protocol",
        value: "http/protobuf|http/json|grpc",
        default: "OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf",
        help: "how to send",
        repeats: false,
    },
    OptionSpec {
        key: "compression",
        value: "gzip|none",
        default: "OTEL_EXPORTER_OTLP_COMPRESSION, else none",
        help: "compress request bodies",
        repeats: false,
    },
    OptionSpec {
        key: "header",
        value: "NAME=VALUE",
        default: "OTEL_EXPORTER_OTLP_HEADERS",
        help: "a header (gRPC metadata) on every request, e.g. `header=Authorization=Bearer TOKEN`; repeat for several; values are never logged",
        repeats: true,
    },
    OptionSpec {
        key: "timeout",
        value: "SECS",
        default: "OTEL_EXPORTER_OTLP_TIMEOUT (ms), else 10",
        help: "how long one export may take before it is retried",
        repeats: false,
    },
    OptionSpec {
        key: "ca",
        value: "PEM",
        default: "OTEL_EXPORTER_OTLP_CERTIFICATE, else the system roots",
        help: "CA bundle that signed the backend's certificate (https://)",
        repeats: false,
    },
    OptionSpec {
        key: "client-cert",
        value: "PEM",
        default: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        help: "client certificate for a backend that requires one (mTLS), with client-key",
        repeats: false,
    },
    OptionSpec {
        key: "client-key",
        value: "PEM",
        default: "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        help: "the key of client-cert",
        repeats: false,
    },
    OptionSpec {
        key: "batch-max-requests",
        value: "N",
        default: "512",
        help: "received requests of one signal sent as one export at most",
        repeats: false,
    },
    OptionSpec {
        key: "batch-max-bytes",
        value: "BYTES",
        default: "1048576",
        help: "bytes of one export at most (a larger request goes alone)",
        repeats: false,
    },
    OptionSpec {
        key: "batch-delay",
        value: "MS",
        default: "50",
        help: "how long an export waits for more requests to join it (with a disk queue; with a memory queue what waits goes at once: acknowledgements wait for the export)",
        repeats: false,
    },
    OptionSpec {
        key: "retry-max-delay",
        value: "SECS",
        default: "30",
        help: "the longest wait between two attempts (backoff doubles from 1 s, with jitter)",
        repeats: false,
    },
];

/// How exports are cut.
#[derive(Debug, Clone, Copy)]
struct Batching {
    max_requests: usize,
    max_bytes: usize,
    delay: Duration,
}

/// The forwarding sink.
pub struct OtlpSink {
    settings: Settings,
    batching: Batching,
    retry_max: Duration,
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `k1=v1,k2=v2`, values URL-encoded.
fn env_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where and how an `otlp` spec sends, with what it leaves out from `env` (the SDK
/// variables); `slim-node replay` sends through the same settings.
pub fn exporter_settings(
    spec: &SinkSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Settings> {
    let protocol: Protocol = match spec.option("protocol") {
        Some(p) => p
            .parse()
            .map_err(|e| anyhow::anyhow!("sink otlp: protocol={e}"))?,
        None => match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(p) => p
                .parse()
                .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_PROTOCOL={e}"))?,
            None => Protocol::HttpProtobuf,
        },
    };
    let endpoint = spec
        .arg
        .clone()
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .unwrap_or_else(|| match protocol {
            Protocol::Grpc => "http://localhost:4317".into(),
            _ => "http://localhost:4318".into(),
        });
    anyhow::ensure!(
        endpoint.starts_with("http://") || endpoint.starts_with("https://"),
        "sink otlp: the endpoint must be an http:// or https:// URL, not {endpoint:?}"
    );
    let mut settings = Settings::new(protocol, &endpoint);
    if spec.arg.is_none() {
        for signal in Signal::ALL {
            let var = format!(
                "OTEL_EXPORTER_OTLP_{}_ENDPOINT",
                signal.as_str().to_uppercase()
            );
            if let Some(url) = env(&var) {
                settings.signal_endpoints.push((signal, url));
            }
        }
    }
    settings.gzip = match spec
        .option("compression")
        .map(str::to_string)
        .or_else(|| env("OTEL_EXPORTER_OTLP_COMPRESSION"))
        .as_deref()
    {
        None | Some("none") => false,
        Some("gzip") => true,
        Some(other) => anyhow::bail!("sink otlp: compression={other:?}: expected gzip or none"),
    };
    let headers: Vec<(String, String)> = spec
        .options_of("header")
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("sink otlp: header={h:?} is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    settings.headers = if headers.is_empty() {
        env("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| env_headers(&h))
            .unwrap_or_default()
    } else {
        headers
    };
    settings.timeout = match spec.option("timeout") {
        Some(_) => Duration::from_secs_f64(spec.parsed("timeout", 10.0)?),
        None => env("OTEL_EXPORTER_OTLP_TIMEOUT")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis),
    };
    let file = |key: &str, var: &str| spec.option(key).map(str::to_string).or_else(|| env(var));
    let ca = file("ca", "OTEL_EXPORTER_OTLP_CERTIFICATE");
    let cert = file("client-cert", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
    let key = file("client-key", "OTEL_EXPORTER_OTLP_CLIENT_KEY");
    let identity = match (&cert, &key) {
        (Some(c), Some(k)) => Some((Path::new(c), Path::new(k))),
        (None, None) => None,
        _ => anyhow::bail!("sink otlp: client-cert and client-key go together"),
    };
    settings.certs = ClientCerts::read(ca.as_deref().map(Path::new), identity)?;
    // Checked now, so that a bad URL or header is an error at start-up.
    Exporter::new(&settings)?;
    Ok(settings)
}

impl OtlpSink {
    /// The sink `spec` describes; what it leaves out comes from `env` (the SDK variables).
    pub fn new(spec: &SinkSpec, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<OtlpSink> {
        Ok(OtlpSink {
            settings: exporter_settings(spec, env)?,
            batching: Batching {
                max_requests: spec.value::<usize>("batch-max-requests")?.max(1),
                max_bytes: spec.value("batch-max-bytes")?,
                delay: Duration::from_millis(spec.value("batch-delay")?),
            },
            retry_max: Duration::from_secs_f64(spec.value::<f64>("retry-max-delay")?.max(1.0)),
        })
    }
}

impl Sink for OtlpSink {
    fn run(self: Box<Self>, input: SinkInput) -> SinkFuture {
        Box::pin(forward(*self, input))
    }
}

/// What is being exported: requests of one signal, in order.
struct Batch {
    signal: Signal,
    items: Vec<Item>,
    bytes: usize,
}

impl Batch {
    /// The requests back to back, as they lie in memory (one request holding them all).
    fn body(&self) -> Parts {
        self.items
            .iter()
            .map(|item| item.delivered.payload.shared())
            .collect()
    }
}

async fn forward(sink: OtlpSink, mut input: SinkInput) {
    let mut exporter = match Exporter::new(&sink.settings) {
        Ok(e) => e,
        Err(err) => {
            input.failed(&format!("{err:#}"));
            return;
        }
    };
    info!(sink = %input.name(), endpoint = %crate::net::redact::urls(&sink.settings.endpoint), protocol = ?sink.settings.protocol,
        "forwarding to an OTLP backend");
    // With a memory queue, what a batch holds is acknowledged only once exported: lingering
    // for more would hold back the acknowledgements its publisher waits for to send more (the
    // chain measured 10× slower with 50 ms). A batch then takes what waits, and goes.
    let delay = if input.holds_acknowledgements() {
        Duration::ZERO
    } else {
        sink.batching.delay
    };
    // An item of another signal ends a batch and starts the next one.
    let mut carried: Option<Item> = None;
    loop {
        let first = match carried.take() {
            Some(item) => item,
            None => match input.next().await {
                Some(item) => item,
                None => return,
            },
        };
        let mut batch = Batch {
            signal: first.delivered.payload.signal(),
            bytes: first.delivered.payload.bytes().len(),
            items: vec![first],
        };
        let until = tokio::time::Instant::now() + delay;
        while batch.items.len() < sink.batching.max_requests {
            let wait = until.saturating_duration_since(tokio::time::Instant::now());
            let Some(item) = input.next_within(wait).await else {
                break;
            };
            let bytes = item.delivered.payload.bytes().len();
            if item.delivered.payload.signal() != batch.signal
                || batch.bytes + bytes > sink.batching.max_bytes
            {
                carried = Some(item);
                break;
            }
            batch.bytes += bytes;
            batch.items.push(item);
        }
        if !export(&sink, &mut exporter, &input, batch).await {
            return;
        }
    }
}

/// Exports `batch` until the backend took it or refused it for good; false when the node
/// stopped first (what was not taken stays in the queue, or was never acknowledged).
async fn export(sink: &OtlpSink, exporter: &mut Exporter, input: &SinkInput, batch: Batch) -> bool {
    let mut backoff = Backoff::new(Duration::from_secs(1), sink.retry_max);
    loop {
        let sent = exporter.send(batch.signal, batch.body()).await;
        match sent.outcome {
            Outcome::Accepted(partial) => {
                let rejected = partial.map(|p| {
                    warn!(sink = %input.name(), rejected = p.rejected, message = %p.message,
                        "the backend rejected part of an export (partial success)");
                    p.rejected.max(0) as u64
                });
                input.delivered(&batch.items);
                if let Some(n) = rejected {
                    input.rejected_items(batch.signal, n);
                }
                return true;
            }
            Outcome::Refused(reason) if batch.items.len() > 1 => {
                // Find the request it concerns: each goes alone.
                warn!(sink = %input.name(), requests = batch.items.len(), %reason,
                    "the backend refused an export; sending its requests one by one");
                for item in batch.items {
                    let alone = Batch {
                        signal: batch.signal,
                        bytes: item.delivered.payload.bytes().len(),
                        items: vec![item],
                    };
                    if !Box::pin(export(sink, exporter, input, alone)).await {
                        return false;
                    }
                }
                return true;
            }
            Outcome::Refused(reason) => {
                let d = &batch.items[0].delivered;
                warn!(sink = %input.name(), from = %d.from, id = d.message_id.as_deref().unwrap_or("-"),
                    %reason, "the backend refused a request for good; dropped it");
                input.failed(&reason);
                input.dropped(&batch.items, DropReason::Refused);
                return true;
            }
            Outcome::Retry { after, reason } => {
                let wait = backoff.next_delay();
                let delay = after.map_or(wait, |after| after.max(wait));
                input.failed(&format!("{reason} (trying again in {delay:.1?})"));
                input.retried(&batch.items, FailReason::Unavailable);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = input.stopping() => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(spec: &str, env: &[(&str, &str)]) -> anyhow::Result<OtlpSink> {
        // A gRPC client is set up on a runtime, as in the node.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _inside = runtime.enter();
        let spec: SinkSpec = spec.parse().map_err(anyhow::Error::msg)?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpSink::new(&spec, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_url_is_a_base_to_which_signal_paths_are_appended() {
        let s = sink("otlp:http://collector:4318", &[]).unwrap();
        assert_eq!(s.settings.endpoint, "http://collector:4318");
        assert_eq!(s.settings.protocol, Protocol::HttpProtobuf);
        assert!(!s.settings.gzip);
    }

    #[test]
    fn the_sdk_variables_fill_in_what_the_spec_leaves_out() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20abc,X-Tenant=t1",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://logs:4318/custom",
            ),
        ];
        let s = sink("otlp", &env).unwrap();
        assert_eq!(s.settings.endpoint, "http://env:4317");
        assert_eq!(s.settings.protocol, Protocol::Grpc);
        assert!(s.settings.gzip);
        assert_eq!(
            s.settings.headers,
            [
                ("Authorization".to_string(), "Bearer abc".to_string()),
                ("X-Tenant".into(), "t1".into())
            ]
        );
        assert_eq!(s.settings.timeout, Duration::from_millis(2500));
        assert_eq!(
            s.settings.signal_endpoints,
            [(Signal::Logs, "http://logs:4318/custom".to_string())]
        );
    }

    #[test]
    fn the_spec_wins_over_the_variables() {
        let env = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "A=1"),
        ];
        let s = sink(
            "otlp:http://c:4318;protocol=http/json;header=B=2;compression=none",
            &env,
        )
        .unwrap();
        assert_eq!(s.settings.protocol, Protocol::HttpJson);
        assert_eq!(s.settings.headers, [("B".to_string(), "2".to_string())]);
    }

    #[test]
    fn bad_settings_are_refused_at_start_up() {
        assert!(sink("otlp:collector:4318", &[]).is_err());
        assert!(sink("otlp:http://c:4318;compression=lz4", &[]).is_err());
        assert!(sink("otlp:http://c:4318;protocol=thrift", &[]).is_err());
        assert!(sink("otlp:http://c:4318;client-cert=/x", &[]).is_err());
        assert!(sink("otlp:http://c:4318;header=NoEquals", &[]).is_err());
    }

    #[test]
    fn a_ca_with_an_http_endpoint_is_refused_for_http_and_grpc() {
        let ca = tempfile::NamedTempFile::new().unwrap();
        for protocol in ["http/protobuf", "grpc"] {
            let spec = format!(
                "otlp:http://collector.example:4318;protocol={protocol};ca={}",
                ca.path().display()
            );
            let err = sink(&spec, &[]).err().expect("refused").to_string();
            assert!(err.contains("https://"), "{protocol}: {err}");
        }
    }
}
