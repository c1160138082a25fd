//! `slim-node loadgen`: OTLP load from concurrent clients, in a closed loop or at a rate,
//! with a progress line each second and a report of throughput, answers and latency.

pub mod payload;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::export::{self, Exporter, Outcome, Sent};
use crate::tools::measure::{per_second, Latencies, LatencySummary};
use otlp::Signal;

/// What to generate and how fast.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where and how to send.
    pub target: export::Settings,
    /// The signal sent.
    pub signal: Signal,
    /// Items per request.
    pub items: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests per second in all; `None`: closed loop.
    pub rate: Option<f64>,
    /// How long to run.
    pub duration: Duration,
    /// Requests to send at most.
    pub requests: Option<u64>,
}

/// What came back so far.
#[derive(Default)]
struct Tally {
    requests: u64,
    ok: u64,
    bytes: u64,
    answers: BTreeMap<String, u64>,
    latencies: Latencies,
    last_error: Option<String>,
}

impl Tally {
    fn add(&mut self, sent: Sent) {
        self.requests += 1;
        self.bytes += sent.bytes as u64;
        match sent.outcome {
            Outcome::Accepted(_) => {
                self.ok += 1;
                self.latencies.record(sent.elapsed);
            }
            Outcome::Retry { reason, .. } | Outcome::Refused(reason) => {
                self.last_error = Some(reason)
            }
        }
        *self.answers.entry(sent.code).or_default() += 1;
    }
}

/// The final report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The signal sent.
    pub signal: String,
    /// The request URL or gRPC endpoint.
    pub endpoint: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Items per request.
    pub items_per_request: usize,
    /// The asked rate, if any.
    pub rate: Option<f64>,
    /// Wall time of the run.
    pub seconds: f64,
    /// Requests sent (answered or failed).
    pub requests: u64,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Requests the receiver took (2xx / OK).
    pub ok: u64,
    /// Items in the requests it took.
    pub items: u64,
    /// Items per second taken.
    pub items_per_s: f64,
    /// Request payload bytes sent (before compression).
    pub bytes: u64,
    /// Those bytes per second.
    pub bytes_per_s: f64,
    /// Answers by HTTP status or gRPC code (`error`: no answer).
    pub answers: BTreeMap<String, u64>,
    /// Latency of the requests taken, send to answer.
    pub latency_ms: LatencySummary,
    /// The last failure's message, if any.
    pub last_error: Option<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pace = match self.rate {
            Some(r) => format!("at {r:.0} req/s"),
            None => "closed loop".into(),
        };
        writeln!(
            f,
            "loadgen: {} to {}, {} client(s), {} item(s) per request, {pace}, {:.1} s",
            self.signal, self.endpoint, self.clients, self.items_per_request, self.seconds
        )?;
        writeln!(
            f,
            "requests  {} ({:.1}/s), taken {}",
            self.requests, self.requests_per_s, self.ok
        )?;
        writeln!(f, "items     {} ({:.1}/s)", self.items, self.items_per_s)?;
        writeln!(
            f,
            "bytes     {} ({:.2} MiB/s)",
            self.bytes,
            self.bytes_per_s / (1024.0 * 1024.0)
        )?;
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        writeln!(f, "answers   {}", answers.join("  "))?;
        write!(f, "latency   {}", self.latency_ms)?;
        if let Some(err) = &self.last_error {
            write!(f, "\nlast error: {err}")?;
        }
        Ok(())
    }
}

/// Runs `plan` until its duration or request count is reached, or `stop` fires; prints a
/// progress line to stderr each second.
pub async fn run(plan: Plan, stop: CancellationToken) -> anyhow::Result<Report> {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let issued = Arc::new(AtomicU64::new(0));
    let done = stop.child_token();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.clients {
        let client = Exporter::new(&plan.target)?;
        workers.spawn(worker(
            client,
            plan.clone(),
            tally.clone(),
            issued.clone(),
            done.clone(),
        ));
    }
    let started = Instant::now();
    let progress = tokio::spawn(progress(tally.clone(), started, done.clone()));
    tokio::select! {
        _ = tokio::time::sleep(plan.duration) => {}
        _ = done.cancelled() => {}
        _ = all_finished(&mut workers) => {}
    }
    done.cancel();
    all_finished(&mut workers).await;
    let _ = progress.await;
    let elapsed = started.elapsed();
    let tally = crate::lock(&tally);
    let items = tally.ok * plan.items as u64;
    Ok(Report {
        signal: plan.signal.to_string(),
        endpoint: endpoint_of(&plan),
        clients: plan.clients,
        items_per_request: plan.items,
        rate: plan.rate,
        seconds: elapsed.as_secs_f64(),
        requests: tally.requests,
        requests_per_s: per_second(tally.requests, elapsed),
        ok: tally.ok,
        items,
        items_per_s: per_second(items, elapsed),
        bytes: tally.bytes,
        bytes_per_s: per_second(tally.bytes, elapsed),
        answers: tally.answers.clone(),
        latency_ms: tally.latencies.summary(),
        last_error: tally.last_error.clone(),
    })
}

fn endpoint_of(plan: &Plan) -> String {
    let base = plan.target.endpoint.trim_end_matches('/');
    match plan.target.protocol {
        export::Protocol::Grpc => format!("{base} (gRPC)"),
        _ => format!("{base}/v1/{}", plan.signal),
    }
}

async fn all_finished(workers: &mut tokio::task::JoinSet<()>) {
    while workers.join_next().await.is_some() {}
}

async fn worker(
    mut client: Exporter,
    plan: Plan,
    tally: Arc<Mutex<Tally>>,
    issued: Arc<AtomicU64>,
    done: CancellationToken,
) {
    let mut requests = payload::Requests::new(plan.signal, plan.items);
    let mut pace = plan.rate.map(|rate| {
        let period = Duration::from_secs_f64(plan.clients as f64 / rate);
        let mut tick = tokio::time::interval(period);
        // A slow answer does not earn a burst afterwards: the rate is an upper bound.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    loop {
        if let Some(tick) = pace.as_mut() {
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tick.tick() => {}
            }
        }
        if done.is_cancelled() {
            return;
        }
        if let Some(limit) = plan.requests {
            if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                return;
            }
        }
        let request = requests.next(payload::now_unix_nanos());
        // A request already sent is answered even when the run ends meanwhile, so that
        // what the receiver took is counted.
        let sent = client.send(plan.signal, request).await;
        crate::lock(&tally).add(sent);
    }
}

async fn progress(tally: Arc<Mutex<Tally>>, started: Instant, done: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (requests, ok, p99) = {
            let t = crate::lock(&tally);
            (t.requests, t.ok, t.latencies.summary().p99)
        };
        eprintln!(
            "{:>5.0}s  requests {requests} ({}/s)  taken {ok}  p99 {p99:.2} ms",
            started.elapsed().as_secs_f64(),
            requests - last
        );
        last = requests;
    }
}
