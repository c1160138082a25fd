//! `slim-node replay`: sends what a node's store holds again to an OTLP endpoint, all three
//! signals at once, each in time order, through the same client as the `otlp` sink.

use std::time::Duration;

use anyhow::bail;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use slim_roles::Backoff;

use crate::cli::ReplayArgs;
use crate::export::{Exporter, Outcome, Settings};
use crate::history::client::{Api, Pager, Paging};
use crate::sink::SinkSpec;
use otlp::Signal;

/// Attempts per request before replay gives up.
const ATTEMPTS: u32 = 10;
/// The longest wait between two attempts (backoff doubles from 250 ms, with jitter).
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Replays every signal asked for; fails on the first request the endpoint refuses for good.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if let Some(to) = &args.to {
        anyhow::ensure!(
            to.starts_with("http://") || to.starts_with("https://"),
            "--to must be an OTLP endpoint's http:// or https:// URL, not {:?}",
            crate::net::redact::urls(to)
        );
    }
    let api = super::fetch::api(&args.api)?;
    let paging = super::fetch::paging(&args.range)?;
    let spec = SinkSpec {
        kind: &crate::sink::otlp::KIND,
        arg: args.to.clone(),
        options: Vec::new(),
    };
    let settings = crate::sink::otlp::exporter_settings(&spec, &|name| std::env::var(name).ok())?;
    info!(endpoint = %crate::net::redact::urls(&settings.endpoint), protocol = ?settings.protocol, "replaying");
    let signals = match args.signal {
        Some(signal) => vec![signal],
        None => Signal::ALL.to_vec(),
    };
    let stop = super::shutdown_signal();
    let tasks: Vec<_> = signals
        .into_iter()
        .map(|signal| {
            tokio::spawn(replay(
                api.clone(),
                signal,
                paging,
                settings.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let mut failed = None;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                stop.cancel();
                failed.get_or_insert(err);
            }
            Err(err) => {
                failed.get_or_insert(anyhow::anyhow!("a replay task failed: {err}"));
            }
        }
    }
    match failed {
        Some(err) => Err(err),
        None if stop.is_cancelled() => bail!("interrupted: the replay is not complete"),
        None => Ok(()),
    }
}

async fn replay(
    api: Api,
    signal: Signal,
    paging: Paging,
    settings: Settings,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut exporter = Exporter::new(&settings)?;
    let mut pager = Pager::new(api, signal, paging, stop.clone());
    let (mut requests, mut items, mut rejected) = (0u64, 0u64, 0u64);
    while let Some(request) = pager.next().await? {
        let request = otlp::items::merge_neighbours(request);
        let count = request.summary().items as u64;
        let body = request.to_protobuf();
        let mut backoff = Backoff::new(Duration::from_millis(250), RETRY_MAX);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = exporter.send(signal, body.clone()).await;
            match sent.outcome {
                Outcome::Accepted(partial) => {
                    rejected += partial.map_or(0, |p| p.rejected.max(0) as u64);
                    break;
                }
                Outcome::Refused(reason) => bail!(
                    "{} refused {signal} ({}): {reason}; {items} {} were replayed before",
                    settings.endpoint,
                    sent.code,
                    signal.item_name()
                ),
                Outcome::Retry { after, reason } if attempt < ATTEMPTS => {
                    let wait = after.unwrap_or_else(|| backoff.next_delay());
                    warn!(%signal, code = %sent.code, %reason, ?wait, "the endpoint asks to retry");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => return Ok(()),
                    }
                }
                Outcome::Retry { reason, .. } => bail!(
                    "{} did not take {signal} after {ATTEMPTS} attempts: {reason}; {items} {} were replayed before",
                    settings.endpoint,
                    signal.item_name()
                ),
            }
        }
        requests += 1;
        items += count;
    }
    let what = match items {
        // "spans" -> "span", "data points" -> "data point", "log records" -> "log record".
        1 => signal.item_name().trim_end_matches('s'),
        _ => signal.item_name(),
    };
    eprintln!(
        "replayed {items} {what} in {requests} request{} to {}{}",
        if requests == 1 { "" } else { "s" },
        settings.endpoint,
        if rejected > 0 {
            format!(" ({rejected} rejected by the endpoint)")
        } else {
            String::new()
        }
    );
    Ok(())
}
