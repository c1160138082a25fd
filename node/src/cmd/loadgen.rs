//! `slim-node loadgen`.

use std::time::Duration;

use anyhow::{bail, ensure};

use anyhow::Context;

use crate::cli::LoadgenArgs;
use crate::export::{Protocol, Settings};
use crate::tools::loadgen::{self, Plan};

/// Runs the load, then prints the report (text or JSON) to stdout.
pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    ensure!(
        args.duration.is_finite() && args.duration > 0.0,
        "--duration must be a positive number of seconds, not {}",
        args.duration
    );
    let endpoint = args.endpoint.clone().unwrap_or_else(|| {
        match args.protocol {
            Protocol::Grpc => "http://127.0.0.1:4317",
            Protocol::HttpProtobuf | Protocol::HttpJson => "http://127.0.0.1:4318",
        }
        .to_string()
    });
    ensure!(
        endpoint.starts_with("http://") || endpoint.starts_with("https://"),
        "--endpoint must be an http:// or https:// URL, not {:?}",
        crate::net::redact::urls(&endpoint)
    );
    let mut target = Settings::new(args.protocol, &endpoint);
    target.gzip = args.gzip;
    target.timeout = Duration::from_secs(30);
    target.certs = crate::net::tls::ClientCerts::read(args.ca.as_deref(), None)?;
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        target
            .headers
            .push(("authorization".into(), format!("Bearer {}", token.trim())));
    }
    let plan = Plan {
        target,
        signal: args.signal,
        items: args.items as usize,
        clients: args.clients as usize,
        rate: args.rate.map(|r| f64::from(r.get())),
        duration: Duration::from_secs_f64(args.duration),
        requests: args.requests,
    };
    let report = loadgen::run(plan, super::shutdown_signal()).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    if report.requests > 0 && report.ok == 0 {
        bail!(
            "the receiver took none of {} requests{}",
            report.requests,
            report
                .last_error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
