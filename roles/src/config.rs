//! What a node needs to know to take its role.

use std::time::Duration;

use crate::delivery::outbox::OutboxLimits;
use crate::delivery::spool::SpoolConfig;
use crate::error::ConfigError;
use crate::name::SlimName;
use crate::slim::identity::Identity;
use crate::slim::tls::ClientTls;

/// Default SLIM server URL (SLIM's conventional port).
pub const DEFAULT_SLIM_URL: &str = "http://127.0.0.1:46357";

/// The role and what it needs.
#[derive(Debug, Clone)]
pub enum RoleConfig {
    /// Create the group session on `channel` and keep inviting `invite` until each joined.
    Moderator {
        /// The group channel name.
        channel: SlimName,
        /// Names to invite.
        invite: Vec<SlimName>,
    },
    /// Create one group session per signal on `channels` and keep inviting `invite` into each:
    /// each signal's requests travel there as the OpenTelemetry Collector's SLIM exporter
    /// (agntcy/slim-otel) sends them, one request's protobuf bytes per message and nothing else.
    SignalModerator {
        /// The channel of each signal.
        channels: Vec<SignalChannel>,
        /// Names to invite.
        invite: Vec<SlimName>,
    },
    /// Wait for invitations and join each (one session per channel).
    Participant,
}

impl RoleConfig {
    /// The names a moderator invites (none for a participant).
    pub fn invitees(&self) -> &[SlimName] {
        match self {
            RoleConfig::Moderator { invite, .. } | RoleConfig::SignalModerator { invite, .. } => {
                invite
            }
            RoleConfig::Participant => &[],
        }
    }
}

/// The channel one signal travels on, slim-otel's way: `traces=agntcy/otel/channel-traces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalChannel {
    /// The signal.
    pub signal: otlp::Signal,
    /// Its group channel.
    pub channel: SlimName,
}

impl std::str::FromStr for SignalChannel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (signal, channel) = s
            .split_once('=')
            .ok_or_else(|| format!("expected SIGNAL=ORG/NS/CHANNEL (e.g. traces=agntcy/otel/channel-traces), got {s:?}"))?;
        let signal = otlp::Signal::ALL
            .into_iter()
            .find(|sig| sig.as_str() == signal.trim())
            .ok_or_else(|| format!("unknown signal {signal:?}: traces, metrics or logs"))?;
        let channel = channel.trim().parse().map_err(|e| format!("{e}"))?;
        Ok(SignalChannel { signal, channel })
    }
}

impl std::fmt::Display for SignalChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.signal.as_str(), self.channel)
    }
}

/// SLIM's own session reliability (its acknowledgements and retransmission per message).
///
/// Nodes run without it: their outbox is the one reliability layer (acknowledgements per
/// member, re-sends, a spool). SLIM's layer waits for every member on every message: a member
/// that hangs makes each publish wait out its retransmissions, and a member removed meanwhile
/// leaves completions that never resolve (`SessionSender::remove_endpoint` drops the timers,
/// not the notifiers), so every node's publish window stalled behind one member.
#[derive(Debug, Clone, Copy)]
pub struct Reliability {
    /// Retransmissions before a member is considered gone.
    pub max_retries: u32,
    /// Time between retransmissions.
    pub interval: Duration,
}

impl Default for Reliability {
    fn default() -> Self {
        Reliability {
            max_retries: 5,
            interval: Duration::from_secs(1),
        }
    }
}

/// Everything a node needs to connect and play its role.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's own SLIM name.
    pub name: SlimName,
    /// How the node proves who it is, and checks the other members.
    pub identity: Identity,
    /// SLIM server URLs, `http://HOST:PORT` or `https://HOST:PORT`, in order of preference:
    /// the node uses the first that answers and moves to the next when its server is gone.
    pub slim_urls: Vec<String>,
    /// Moderator or participant.
    pub role: RoleConfig,
    /// MLS end-to-end encryption of the group session (set by the moderator).
    pub mls: bool,
    /// Connection attempts before giving up on an unreachable server.
    pub connect_attempts: u32,
    /// SLIM's own reliability of the group session (set by the moderator); `None` for nodes:
    /// see [`Reliability`].
    pub reliability: Option<Reliability>,
    /// SLIM messages not yet full allowed to wait for SLIM's completion at once (full ones
    /// are pipelined up to a fixed bound: SLIM deadlocks when reliable publishes are not
    /// bounded, measured at ~8k).
    pub in_flight: usize,
    /// How much may wait for the members' acknowledgements.
    pub outbox: OutboxLimits,
    /// Keep the outbox on disk too, so that what was taken survives a crash.
    pub spool: Option<SpoolConfig>,
    /// TLS to an `https://` SLIM server.
    pub tls: ClientTls,
    /// Where the node keeps durable state (the ids of what it received, so that copies are
    /// recognised after a restart); `None` keeps it in memory only.
    pub state_dir: Option<std::path::PathBuf>,
}

impl NodeConfig {
    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.slim_urls.is_empty() {
            return Err(ConfigError::NoServer);
        }
        if let Identity::Keys(keys) = &self.identity {
            keys.validate(&self.name)?;
        }
        for url in &self.slim_urls {
            validate_url(url)?;
            if self.tls.is_set() && !url.starts_with("https://") {
                return Err(ConfigError::TlsWithoutHttps(url.clone()));
            }
            self.tls.for_url(url)?;
        }
        Ok(())
    }
}

/// A SLIM URL must carry its scheme; SLIM's client config needs it.
pub fn validate_url(url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::InvalidUrl(url.to_string()))?;
    let host_port = rest.trim_end_matches('/');
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(ConfigError::InvalidUrl(url.to_string())),
    }
}

/// The largest payload SLIM delivers. Its data plane drops messages above 4 MiB on the wire
/// while reporting success to the sender; MLS padding makes ciphertexts larger than the
/// plaintext (3552 KiB passed, 3584 KiB failed, measured). Both limits keep a margin.
pub fn max_payload_bytes(mls: bool) -> usize {
    if mls {
        3400 * 1024
    } else {
        4 * 1024 * 1024 - 64 * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_channel_reads_signal_equals_channel() {
        let sc: SignalChannel = "metrics=agntcy/otel/channel-metrics".parse().unwrap();
        assert_eq!(sc.signal, otlp::Signal::Metrics);
        assert_eq!(sc.channel.to_string(), "agntcy/otel/channel-metrics");
        assert_eq!(sc.to_string(), "metrics=agntcy/otel/channel-metrics");
        assert!("spans=a/b/c"
            .parse::<SignalChannel>()
            .unwrap_err()
            .contains("unknown signal"));
        assert!("traces"
            .parse::<SignalChannel>()
            .unwrap_err()
            .contains("SIGNAL=ORG/NS/CHANNEL"));
        assert!("traces=a/b".parse::<SignalChannel>().is_err());
    }

    #[test]
    fn url_needs_scheme_host_and_port() {
        assert!(validate_url("http://127.0.0.1:46357").is_ok());
        assert!(validate_url("https://slim.example.org:443/").is_ok());
        assert!(validate_url("127.0.0.1:46357").is_err());
        assert!(validate_url("http://127.0.0.1").is_err());
        assert!(validate_url("ftp://h:1").is_err());
    }

    #[test]
    fn mls_limit_is_below_the_measured_failure() {
        assert!(max_payload_bytes(true) < 3584 * 1024);
        assert!(max_payload_bytes(false) < 4 * 1024 * 1024);
    }
}
