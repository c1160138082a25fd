//! `slim-node up`: a SLIM server, a receiving moderator and a printing participant in one
//! process.

use std::time::Duration;

use clap::Args;
use slim_roles::{Identity, RoleConfig, Secret};

use super::*;
use crate::config::{defaults, NodeSettings, ReceiverSettings, UpSettings};

/// `slim-node up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: SlimServerArgs,
    /// Address of the OTLP/HTTP receiver.
    #[arg(
        long,
        env = "SLIM_NODE_OTLP_HTTP",
        default_value = defaults::UP_OTLP_HTTP,
        value_name = "HOST:PORT"
    )]
    pub otlp_http: String,
    /// Address of the OTLP/gRPC receiver.
    #[arg(
        long,
        env = "SLIM_NODE_OTLP_GRPC",
        default_value = defaults::UP_OTLP_GRPC,
        value_name = "HOST:PORT"
    )]
    pub otlp_grpc: String,
    #[command(flatten)]
    pub sinks: SinkArgs,
    /// Shared secret of the channel (at least 32 bytes); a random one when not given, so
    /// that no other process can join.
    #[arg(
        long,
        env = "SLIM_NODE_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret: Option<crate::config::Hidden>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub tls: OtlpTlsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub session: SessionArgs,
}

/// The channel `up`'s two nodes share.
const CHANNEL: &str = "agntcy/otel/telemetry";
/// The moderator with the receivers.
const RECEIVER: &str = "agntcy/otel/receiver";
/// The participant that hands what arrives to the sinks.
const PRINTER: &str = "agntcy/otel/printer";

impl UpArgs {
    /// The server's and the two nodes' settings: the one place `up`'s flags, variables and
    /// config file become them.
    pub fn settings(&self, on_command_line: &[String]) -> anyhow::Result<UpSettings> {
        let secret = Identity::SharedSecret(match self.secret.clone() {
            Some(s) => Secret::new(s.expose().to_string())?,
            // Nobody outside this process needs it: a fresh random secret keeps others out.
            None => Secret::new(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ))?,
        });
        let slim = SlimSide {
            urls: vec![format!("http://{}", connect_address(&self.server.endpoint))],
            tls: Default::default(),
            session: &self.session,
            queue: &self.queue,
            shared_data_dir: true,
        };
        let drain = Duration::from_secs(self.queue.drain_timeout);
        let printer = NodeSettings {
            node: slim.node_config(PRINTER.parse()?, RoleConfig::Participant, secret.clone())?,
            receivers: ReceiverSettings {
                limits: self.limits.limits(),
                ..Default::default()
            },
            sinks: self.sinks.sink.clone(),
            query_api: self.sinks.query_api(on_command_line),
            drain,
            telemetry: Default::default(),
            stamp_origin: false,
        };
        let receiver = NodeSettings {
            node: slim.node_config(
                RECEIVER.parse()?,
                RoleConfig::Moderator {
                    channel: CHANNEL.parse()?,
                    invite: vec![PRINTER.parse()?],
                },
                secret,
            )?,
            receivers: receiver_settings(
                [
                    &Some(self.otlp_http.clone()),
                    &Some(self.otlp_grpc.clone()),
                    &None,
                ],
                &self.limits,
                &self.tls,
                &self.auth,
            ),
            sinks: Vec::new(),
            query_api: None,
            drain,
            telemetry: Default::default(),
            stamp_origin: false,
        };
        Ok(UpSettings {
            endpoint: self.server.endpoint.clone(),
            keepalive: self.server.keepalive(),
            printer,
            receiver,
        })
    }
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
