//! `slim-node fetch`: prints what a node's store holds, one OTLP/JSON export request per page
//! and line, oldest first.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{ApiArgs, FetchArgs, RangeArgs};
use crate::history::client::{Api, Pager, Paging};

/// Pages through the range and prints every page; with --follow, keeps going until
/// interrupted.
pub async fn run(args: FetchArgs) -> anyhow::Result<()> {
    let api = api(&args.api)?;
    let mut pager = Pager::new(
        api,
        args.signal,
        paging(&args.range)?,
        super::shutdown_signal(),
    );
    let mut out = std::io::stdout().lock();
    while let Some(request) = pager.next().await? {
        let request = otlp::items::merge_neighbours(request);
        out.write_all(&otlp::json::to_json(&request))?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(())
}

/// The API client `args` describe; the key comes from --api-key-file or SLIM_NODE_API_KEY.
pub(crate) fn api(args: &ApiArgs) -> anyhow::Result<Api> {
    let key = match &args.api_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the API key file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("SLIM_NODE_API_KEY").ok(),
    };
    let identity = match (&args.api_client_cert, &args.api_client_key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        _ => anyhow::bail!("--api-client-cert and --api-client-key go together"),
    };
    Api::new(
        &args.api,
        key.filter(|k| !k.is_empty()),
        args.api_ca.as_deref(),
        identity,
    )
}

/// The range and paging `args` describe, as of now.
pub(crate) fn paging(args: &RangeArgs) -> anyhow::Result<Paging> {
    let poll = Duration::try_from_secs_f64(args.poll_interval)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(3600))
        .ok_or_else(|| anyhow::anyhow!("--poll-interval must be from 0.001 to 3600 seconds"))?;
    let now = crate::history::now_unix_nano();
    let start = args.start.unwrap_or_else(|| {
        now.saturating_sub(u64::try_from(args.since.as_nanos()).unwrap_or(u64::MAX))
    });
    let end = args.end.unwrap_or(0);
    anyhow::ensure!(
        end == 0 || end >= start,
        "--end is before the start of the range"
    );
    Ok(Paging {
        start,
        end,
        limit: args.limit,
        follow: args.follow.then_some(poll),
    })
}
