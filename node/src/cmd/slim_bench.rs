//! `slim-node slim-bench`: the raw SLIM ceiling between two apps, as text or JSON.

use crate::tools::slim_ceiling::{self as ceiling, CeilingConfig};
use anyhow::Context;
use serde::Serialize;

use crate::cli::SlimBenchArgs;
use crate::tools::measure::{per_second, Latencies, LatencySummary};

/// What `slim-bench` reports.
#[derive(Debug, Serialize)]
struct Report {
    size: usize,
    mls: bool,
    window: usize,
    sent: u64,
    received: u64,
    seconds: f64,
    messages_per_s: f64,
    latency_ms: LatencySummary,
}

/// Runs one measurement against the server at `--slim`.
pub async fn run(args: SlimBenchArgs) -> anyhow::Result<()> {
    let tls = args.slim_tls.settings();
    let cfg = CeilingConfig {
        slim_url: args.slim.clone(),
        tls,
        mls: !args.no_mls,
        reliability: None,
        window: args.window,
        size: args.size,
        messages: args.messages,
    };
    let run = ceiling::measure(cfg)
        .await
        .with_context(|| format!("measuring SLIM at {}", args.slim))?;
    let mut latencies = Latencies::new();
    for l in &run.latencies {
        latencies.record(*l);
    }
    let report = Report {
        size: args.size,
        mls: !args.no_mls,
        window: args.window,
        sent: run.sent,
        received: run.received,
        seconds: run.elapsed.as_secs_f64(),
        messages_per_s: per_second(run.received, run.elapsed),
        latency_ms: latencies.summary(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "slim-bench: {} B messages, MLS {}, window {}\nsent {}  received {}  in {:.2} s  ({:.0} msg/s)\nlatency   {}",
            report.size,
            if report.mls { "on" } else { "off" },
            report.window,
            report.sent,
            report.received,
            report.seconds,
            report.messages_per_s,
            report.latency_ms
        );
    }
    anyhow::ensure!(
        run.received == run.sent,
        "{} of {} messages never arrived",
        run.sent - run.received,
        run.sent
    );
    Ok(())
}
