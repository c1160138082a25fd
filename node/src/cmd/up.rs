//! `slim-node up`: a SLIM server, a receiving moderator and a printing participant in one
//! process.

use anyhow::Context;
use slim_roles::SlimServer;
use slim_roles::{NodeConfig, RoleConfig, Secret, SlimName};

use super::node::{build_config, RunningNode};
use crate::cli::{ReceiverArgs, UpArgs};

const CHANNEL: &str = "agntcy/otel/telemetry";
const RECEIVER: &str = "agntcy/otel/receiver";
const PRINTER: &str = "agntcy/otel/printer";

/// Runs until SIGINT/SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal();
    let secret = match args.secret.clone() {
        Some(s) => Secret::new(s)?,
        // Nobody outside this process needs it: a fresh random secret keeps others out.
        None => Secret::new(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))?,
    };
    let server = SlimServer::start(&args.server.endpoint, None, args.server.keepalive())
        .await
        .with_context(|| format!("cannot start the SLIM server on {}", args.server.endpoint))?;
    let url = format!("http://{}", connect_address(&args.server.endpoint));
    let config = |name: &str, role: RoleConfig| -> anyhow::Result<NodeConfig> {
        build_config(
            name.parse::<SlimName>()?,
            role,
            secret.clone(),
            url.clone(),
            Default::default(),
            &args.session,
            &args.queue,
            true,
        )
    };
    let no_receivers = ReceiverArgs {
        otlp_http: None,
        otlp_grpc: None,
        health: None,
        limits: args.limits.clone(),
        tls: args.tls.clone(),
        auth: args.auth.clone(),
    };
    let drain = std::time::Duration::from_secs(args.queue.drain_timeout);
    let printer = RunningNode::start(
        config(PRINTER, RoleConfig::Participant)?,
        &args.sinks,
        &no_receivers,
        drain,
    )
    .await?;
    let receivers = ReceiverArgs {
        otlp_http: Some(args.otlp_http.clone()),
        otlp_grpc: Some(args.otlp_grpc.clone()),
        health: None,
        limits: args.limits.clone(),
        tls: args.tls.clone(),
        auth: args.auth.clone(),
    };
    let receiver = RunningNode::start(
        config(
            RECEIVER,
            RoleConfig::Moderator {
                channel: CHANNEL.parse()?,
                invite: vec![PRINTER.parse()?],
            },
        )?,
        &crate::cli::SinkArgs {
            sink: Vec::new(),
            query: Default::default(),
        },
        &receivers,
        drain,
    )
    .await?;
    eprintln!(
        "slim-node up: send OTLP/HTTP to http://{http}/v1/{{traces,metrics,logs}} or OTLP/gRPC to {grpc}; status at http://{http}/health",
        http = args.otlp_http,
        grpc = args.otlp_grpc,
    );
    shutdown.cancelled().await;
    receiver.stop(drain).await;
    printer.stop(drain).await;
    server.shutdown().await?;
    Ok(())
}

/// Where a local client reaches a server bound to `endpoint` (a wildcard bind is reached on
/// loopback).
fn connect_address(endpoint: &str) -> String {
    match endpoint.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_reached_on_loopback() {
        assert_eq!(connect_address("0.0.0.0:46357"), "127.0.0.1:46357");
        assert_eq!(connect_address("[::]:1"), "[::1]:1");
        assert_eq!(connect_address("10.0.0.5:2"), "10.0.0.5:2");
    }
}
