//! `slim-node node`: one node with its role, sinks and optional OTLP receivers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use slim_roles::{Identity, MemberKeys, RoleConfig, Secret, SignalChannel, SlimName};
use tracing::warn;

use super::*;
use crate::config::{defaults, NodeSettings};

/// A node's role on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Create the group session on --channel (or one per --signal-channel) and invite every
    /// --invite name.
    Moderator,
    /// Wait for invitations and join each.
    Participant,
}

/// How the node proves who it is to the channel's members: a shared secret, or a key of its
/// own with the members' public keys.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct SecretArgs {
    /// Shared secret, at least 32 bytes. Prefer SLIM_NODE_SECRET or --secret-file: a flag
    /// is visible to other users in the process list.
    #[arg(
        long,
        env = "SLIM_NODE_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        conflicts_with_all = ["secret_file", "identity_key", "trust"]
    )]
    pub secret: Option<crate::config::Hidden>,
    /// File holding the shared secret (surrounding white space is ignored).
    #[arg(
        long,
        env = "SLIM_NODE_SECRET_FILE",
        value_name = "PATH",
        conflicts_with_all = ["identity_key", "trust"]
    )]
    pub secret_file: Option<PathBuf>,
    /// The node's own Ed25519 private key (PKCS#8 PEM: `openssl genpkey -algorithm ed25519`),
    /// instead of a shared secret: its SLIM name becomes its identity, which no other member
    /// can take (with --trust)
    #[arg(
        long,
        env = "SLIM_NODE_IDENTITY_KEY",
        value_name = "PEM",
        requires = "trust"
    )]
    pub identity_key: Option<PathBuf>,
    /// The members' public keys, a JWKS whose every key has `kid` = its member's SLIM name
    /// (`slim-node trust-list` writes one): only they are accepted (with --identity-key)
    #[arg(
        long,
        env = "SLIM_NODE_TRUST",
        value_name = "JWKS",
        requires = "identity_key"
    )]
    pub trust: Option<PathBuf>,
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
    /// Publish SIGNAL on a channel of its own, as the OpenTelemetry Collector's SLIM exporter
    /// (agntcy/slim-otel) does: one request's protobuf bytes per message, nothing else
    /// (moderator only, instead of --channel; repeatable, comma-separated in the variable).
    /// Signals without one are answered 404
    #[arg(
        long,
        env = "SLIM_NODE_SIGNAL_CHANNELS",
        value_delimiter = ',',
        value_name = "SIGNAL=ORG/NS/CHANNEL"
    )]
    pub signal_channel: Vec<SignalChannel>,
    /// Who sent what, in the data itself: the receivers add `slim.ingest.key` (the name of
    /// the key a request came with; `anonymous` without --auth-token-file) and the sinks get
    /// `slim.sender` (the MLS-verified sender) on every resource, replacing any value of these
    /// keys that came in. Off by default, so relayed data stays byte-exact
    #[arg(long, env = "SLIM_NODE_STAMP_ORIGIN")]
    pub stamp_origin: bool,
    /// Also push the node's own metrics (always at GET /metrics) to DEST (repeatable): `mesh`
    /// publishes them as OTLP metrics on the node's channel (service.name slim-node,
    /// service.instance.id its name; never counted as received data); `otlp:URL` sends them to
    /// an OTLP endpoint, with the otlp sink's options and OTEL_EXPORTER_OTLP_* variables. Add
    /// `;interval=5s` to one destination to override --telemetry-interval. `off` (alone)
    /// records no metrics at all, /metrics included
    #[arg(
        long,
        env = "SLIM_NODE_TELEMETRY",
        // A destination may hold credentials (`otlp:URL;header=…`): never shown.
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "DEST"
    )]
    pub telemetry: Vec<crate::config::Hidden>,
    /// How often the metrics are pushed to each --telemetry destination
    #[arg(
        long,
        env = "SLIM_NODE_TELEMETRY_INTERVAL",
        default_value = defaults::TELEMETRY_INTERVAL,
        value_parser = super::parse_duration,
        value_name = "DURATION"
    )]
    pub telemetry_interval: Duration,
    /// A view of the node's metrics, as JSON (the config file's `[[telemetry.view]]` tables
    /// become these): `{"instrument":"http.*","attributes":["http.route"],"buckets":[0.01,0.1],
    /// "drop":false}`; the first that matches an instrument decides (repeatable)
    #[arg(long, value_name = "JSON")]
    pub telemetry_view: Vec<crate::telemetry::ViewSpec>,
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
            Role::Moderator if !self.signal_channel.is_empty() => {
                if self.channel.is_some() {
                    bail!("--channel and --signal-channel are two wires: give a moderator one or the other");
                }
                for (i, sc) in self.signal_channel.iter().enumerate() {
                    if self.signal_channel[..i].iter().any(|o| o.signal == sc.signal) {
                        bail!("--signal-channel names {} twice", sc.signal.as_str());
                    }
                }
                RoleConfig::SignalModerator {
                    channels: self.signal_channel.clone(),
                    invite: self.invite.clone(),
                }
            }
            Role::Moderator => RoleConfig::Moderator {
                channel: self.channel.clone().context(
                    "a moderator needs a channel: pass --channel ORG/NS/CHANNEL (or set SLIM_NODE_CHANNEL), or --signal-channel SIGNAL=ORG/NS/CHANNEL",
                )?,
                invite: self.invite.clone(),
            },
            Role::Participant => {
                if self.channel.is_some()
                    || !self.invite.is_empty()
                    || !self.signal_channel.is_empty()
                {
                    bail!("--channel, --signal-channel and --invite are for moderators; a participant learns its channels from the invitations");
                }
                RoleConfig::Participant
            }
        };
        if role.invitees().is_empty() && self.role == Role::Moderator {
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
        let off = self.telemetry.iter().any(|d| d.expose().trim() == "off");
        anyhow::ensure!(
            !off || self.telemetry.len() == 1,
            "--telemetry off records no metrics: it takes no other destination"
        );
        let telemetry = crate::telemetry::TelemetrySettings {
            instance: Some(self.name.to_string()),
            push: if off {
                Vec::new()
            } else {
                self.telemetry
                    .iter()
                    .map(|dest| telemetry_push(dest.expose(), self.telemetry_interval))
                    .collect::<anyhow::Result<_>>()?
            },
            views: self.telemetry_view.clone(),
            off,
        };
        Ok(NodeSettings {
            telemetry,
            node: slim.node_config(self.name.clone(), role, self.secret.read(on_command_line)?)?,
            receivers: self.receiver.settings(),
            sinks: self.sinks.sink.clone(),
            query_api: self.sinks.query_api(on_command_line),
            drain: Duration::from_secs(self.queue.drain_timeout),
            stamp_origin: self.stamp_origin,
        })
    }
}

impl SecretArgs {
    /// The node's identity: its key and trust list, or the shared secret from the variable,
    /// the flag or the file.
    pub fn read(&self, on_command_line: &[String]) -> anyhow::Result<Identity> {
        if let (Some(key), Some(trust)) = (&self.identity_key, &self.trust) {
            return Ok(Identity::Keys(MemberKeys {
                key: key.clone(),
                trust: trust.clone(),
            }));
        }
        let value = match (&self.secret, &self.secret_file) {
            (Some(s), _) => {
                if on_command_line.iter().any(|id| id == "secret") {
                    warn!("the shared secret was given as a flag: other users can read it in the process list; use --secret-file or SLIM_NODE_SECRET");
                }
                s.expose().to_string()
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
        Ok(Identity::SharedSecret(Secret::new(value)?))
    }
}

/// A `--telemetry` destination: `mesh` or `otlp[:URL]`, with `;interval=DURATION` and, for
/// `otlp`, the otlp sink's options.
fn telemetry_push(dest: &str, interval: Duration) -> anyhow::Result<crate::telemetry::Push> {
    use crate::telemetry::{Destination, Push};
    let mut parts = dest.split(';');
    let head = parts.next().unwrap_or_default().trim();
    let mut options = Vec::new();
    let mut interval = interval;
    for option in parts {
        let (key, value) = option.split_once('=').with_context(|| {
            format!("--telemetry {dest}: expected OPTION=VALUE, got {option:?}")
        })?;
        if key == "interval" {
            interval = super::parse_duration(value)
                .map_err(|e| anyhow::anyhow!("--telemetry {dest}: interval: {e}"))?;
        } else {
            options.push((key.to_string(), value.to_string()));
        }
    }
    let destination = match head
        .split_once(':')
        .map_or((head, None), |(k, a)| (k, Some(a)))
    {
        ("mesh", None) if options.is_empty() => Destination::Mesh,
        ("mesh", _) => bail!("--telemetry mesh takes no argument and no option but interval"),
        ("otlp", arg) => {
            let spec = crate::sink::SinkSpec {
                kind: &crate::sink::otlp::KIND,
                arg: arg.map(str::to_string),
                options,
            };
            Destination::Otlp(
                crate::sink::otlp::exporter_settings(&spec, &|v| std::env::var(v).ok())
                    .with_context(|| format!("--telemetry {dest}"))?,
            )
        }
        _ => bail!("--telemetry {dest:?}: expected mesh or otlp:URL"),
    };
    anyhow::ensure!(
        !interval.is_zero(),
        "--telemetry {dest}: the interval must not be 0"
    );
    Ok(Push {
        destination,
        interval,
    })
}
