//! `slim-node server`: a SLIM server of our own.

use std::path::PathBuf;

use clap::Args;

use super::*;
use crate::config::defaults;

/// `slim-node server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub server: SlimServerArgs,
    #[command(flatten)]
    pub tls: ServerTlsArgs,
    #[command(flatten)]
    pub peers: PeerArgs,
}

/// Other SLIM servers to link to as SLIM peers.
#[derive(Debug, Args)]
pub struct PeerArgs {
    /// Link to this SLIM server as a SLIM peer (repeatable; comma-separated in the variable):
    /// the two servers exchange subscriptions, so a name subscribed at one is reached from the
    /// other. Link each pair once, from one side, in a tree: a loop of peer links repeats
    /// messages. A peer that is down is linked once it is up; every link's state is logged.
    #[arg(
        long,
        env = "SLIM_NODE_PEERS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub peer: Vec<String>,
    /// PEM CA bundle that signed the peers' certificates (for https:// peers; default: the
    /// system roots).
    #[arg(long, env = "SLIM_NODE_PEER_CA", value_name = "PEM")]
    pub peer_ca: Option<PathBuf>,
    /// Present this PEM certificate to the peers (mTLS; with --peer-key).
    #[arg(
        long,
        env = "SLIM_NODE_PEER_CERT",
        requires = "peer_key",
        value_name = "PEM"
    )]
    pub peer_cert: Option<PathBuf>,
    /// The PEM private key of --peer-cert.
    #[arg(
        long,
        env = "SLIM_NODE_PEER_KEY",
        requires = "peer_cert",
        value_name = "PEM"
    )]
    pub peer_key: Option<PathBuf>,
}

impl PeerArgs {
    /// The peers to link to, each with the peer TLS settings.
    pub fn peers(&self) -> Vec<slim_roles::Peer> {
        let tls = client_tls(&self.peer_ca, &self.peer_cert, &self.peer_key);
        self.peer
            .iter()
            .map(|url| slim_roles::Peer {
                url: url.clone(),
                tls: tls.clone(),
            })
            .collect()
    }
}

/// TLS of `slim-node server`.
#[derive(Debug, Args)]
pub struct ServerTlsArgs {
    /// Serve TLS 1.3 with this PEM certificate chain (with --tls-key); nodes then connect
    /// with an https:// URL. Reloaded when the file changes.
    #[arg(
        long,
        env = "SLIM_NODE_TLS_CERT",
        requires = "tls_key",
        value_name = "PEM"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SLIM_NODE_TLS_KEY",
        requires = "tls_cert",
        value_name = "PEM"
    )]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA bundle (mTLS).
    #[arg(
        long,
        env = "SLIM_NODE_CLIENT_CA",
        requires = "tls_cert",
        value_name = "PEM"
    )]
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// The server's TLS settings, when TLS was asked for.
    pub fn settings(&self) -> Option<slim_roles::ServerTls> {
        server_tls(&self.tls_cert, &self.tls_key, &self.client_ca)
    }
}

/// Where an embedded SLIM server listens.
#[derive(Debug, Args)]
pub struct SlimServerArgs {
    /// Address the SLIM data-plane server listens on (SLIM's conventional port is 46357).
    #[arg(
        long,
        env = "SLIM_NODE_ENDPOINT",
        default_value = defaults::SLIM_ENDPOINT,
        value_name = "HOST:PORT"
    )]
    pub endpoint: String,
    /// A client the server has heard nothing from for this long is pinged (HTTP/2).
    #[arg(long, env = "SLIM_NODE_KEEPALIVE_INTERVAL", default_value = defaults::KEEPALIVE_INTERVAL, value_parser = parse_positive_duration, value_name = "DURATION")]
    pub keepalive_interval: std::time::Duration,
    /// A client that does not answer the ping within this is disconnected: the server waits
    /// for room in every receiver's queue, so a client that hangs or sits behind a cut link
    /// would hold up what it forwards to all the others.
    #[arg(long, env = "SLIM_NODE_KEEPALIVE_TIMEOUT", default_value = defaults::KEEPALIVE_TIMEOUT, value_parser = parse_positive_duration, value_name = "DURATION")]
    pub keepalive_timeout: std::time::Duration,
}

impl SlimServerArgs {
    /// How the server finds clients that stopped answering.
    pub fn keepalive(&self) -> slim_roles::Keepalive {
        slim_roles::Keepalive {
            interval: self.keepalive_interval,
            timeout: self.keepalive_timeout,
        }
    }
}
