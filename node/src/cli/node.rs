//! `slim-node node`: one node with its role, sinks and optional OTLP receivers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use slim_roles::{RoleConfig, Secret, SlimName};
use tracing::warn;

use super::*;
use crate::config::{defaults, NodeSettings};

/// A node's role on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Create the group session on --channel and invite every --invite name.
    Moderator,
    /// Wait for an invitation and join.
    Participant,
}

/// The shared secret of the channel's members.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SecretArgs {
    /// Shared secret, at least 32 bytes. Prefer SLIM_NODE_SECRET or --secret-file: a flag
    /// is visible to other users in the process list.
    #[arg(
        long,
        env = "SLIM_NODE_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret: Option<String>,
    /// File holding the shared secret (surrounding white space is ignored).
    #[arg(long, env = "SLIM_NODE_SECRET_FILE", value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

/// `slim-node node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's role.
    #[arg(long, env = "SLIM_NODE_ROLE", value_enum)]
    pub role: Role,
    /// The node's SLIM name.
    #[arg(long, env = "SLIM_NODE_NAME", value_name = "ORG/NS/APP")]
    pub name: SlimName,
    /// URL of a SLIM server (repeatable; comma-separated in the variable): the node uses the
    /// first that answers and moves to the next when its server has been unreachable for 5 s,
    /// joining its channel again there
    #[arg(
        long,
        env = "SLIM_NODE_SLIM",
        default_value = defaults::SLIM_URL,
        value_name = "URL",
        value_delimiter = ','
    )]
    pub slim: Vec<String>,
    #[command(flatten)]
    pub slim_tls: SlimTlsArgs,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Group channel to create (moderator only).
    #[arg(long, env = "SLIM_NODE_CHANNEL", value_name = "ORG/NS/CHANNEL")]
    pub channel: Option<SlimName>,
    /// Name to invite (moderator only); repeat, or comma-separate in the variable.
    #[arg(
        long,
        env = "SLIM_NODE_INVITE",
        value_delimiter = ',',
        value_name = "ORG/NS/APP"
    )]
    pub invite: Vec<SlimName>,
    #[command(flatten)]
    pub sinks: SinkArgs,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub session: SessionArgs,
}

impl NodeArgs {
    /// The node's settings: the one place `node`'s flags, variables and config file become
    /// them. `on_command_line` names the arguments given as flags.
    pub fn settings(&self, on_command_line: &[String]) -> anyhow::Result<NodeSettings> {
        let role = match self.role {
            Role::Moderator => RoleConfig::Moderator {
                channel: self.channel.clone().context(
                    "a moderator needs a channel: pass --channel ORG/NS/CHANNEL (or set SLIM_NODE_CHANNEL)",
                )?,
                invite: self.invite.clone(),
            },
            Role::Participant => {
                if self.channel.is_some() || !self.invite.is_empty() {
                    bail!("--channel and --invite are for moderators; a participant learns its channel from the invitation");
                }
                RoleConfig::Participant
            }
        };
        if matches!(&role, RoleConfig::Moderator { invite, .. } if invite.is_empty()) {
            warn!(
                "this moderator invites nobody (no --invite): nothing it receives can be forwarded"
            );
        }
        let slim = SlimSide {
            urls: self.slim.clone(),
            tls: self.slim_tls.settings(),
            session: &self.session,
            queue: &self.queue,
            shared_data_dir: false,
        };
        Ok(NodeSettings {
            node: slim.node_config(self.name.clone(), role, self.secret.read(on_command_line)?)?,
            receivers: self.receiver.settings(),
            sinks: self.sinks.sink.clone(),
            query_api: self.sinks.query_api(on_command_line),
            drain: Duration::from_secs(self.queue.drain_timeout),
        })
    }
}

impl SecretArgs {
    /// The shared secret, from the variable, the flag or the file.
    pub fn read(&self, on_command_line: &[String]) -> anyhow::Result<Secret> {
        let value = match (&self.secret, &self.secret_file) {
            (Some(s), _) => {
                if on_command_line.iter().any(|id| id == "secret") {
                    warn!("the shared secret was given as a flag: other users can read it in the process list; use --secret-file or SLIM_NODE_SECRET");
                }
                s.clone()
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the secret file {}", path.display()))?;
                text.trim().to_string()
            }
            (None, None) => {
                bail!("a shared secret is required: --secret-file PATH or SLIM_NODE_SECRET")
            }
        };
        Ok(Secret::new(value)?)
    }
}
