//! A SLIM data-plane server run inside this process.

use std::sync::Arc;
use std::time::Duration;

use slim_bindings::{DataplaneConfig, Service, ServiceConfig};
use tracing::info;

use crate::error::RoleError;
use crate::slim::peers::{self, Peer, PeerLinks};
use crate::slim::tls::ServerTls;

/// How the server finds clients that stopped answering: a client it has read nothing from for
/// `interval` is sent an HTTP/2 ping, and one that does not answer within `timeout` is
/// disconnected. SLIM's server forwards each sender's messages in order and waits for room in
/// every receiver's queue, so a client that hangs, or sits behind a cut link, would otherwise
/// hold up what the server forwards to every other client until its queues drain (SLIM's
/// default: 120 s + 20 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence from a client before it is pinged.
    pub interval: Duration,
    /// How long a ping may go unanswered.
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
        }
    }
}

/// A running SLIM server. It keeps serving until `shutdown` or the end of the process.
pub struct SlimServer {
    service: Arc<Service>,
    endpoint: String,
    /// Gives accepted connections TCP_NODELAY (SLIM's server leaves Nagle on).
    sweeper: tokio::task::JoinHandle<()>,
    /// The tasks keeping the peer links.
    peers: Vec<tokio::task::JoinHandle<()>>,
}

impl SlimServer {
    /// Binds `endpoint` (`HOST:PORT`) and starts serving, over TLS when `tls` is given,
    /// dropping clients that stop answering per `keepalive`; returns once the listener is bound.
    pub async fn start(
        endpoint: &str,
        tls: Option<&ServerTls>,
        keepalive: Keepalive,
    ) -> Result<SlimServer, RoleError> {
        let mut server = slim_bindings::new_insecure_server_config(endpoint.to_string());
        if let Some(tls) = tls {
            server.tls = tls.to_slim()?;
        }
        server.keepalive = Some(slim_bindings::KeepaliveServerParameters {
            time: keepalive.interval,
            timeout: keepalive.timeout,
            ..Default::default()
        });
        let config = ServiceConfig {
            node_id: None,
            domain_name: None,
            dataplane: DataplaneConfig {
                servers: vec![server],
                clients: vec![],
            },
        };
        let service = Arc::new(Service::new_with_config(
            "slim-node-server".to_string(),
            config,
        ));
        service.run_async().await.map_err(|e| RoleError::Slim {
            operation: "server start",
            message: format!("cannot serve on {endpoint}: {e}"),
        })?;
        info!(%endpoint, tls = tls.is_some(), mtls = tls.is_some_and(|t| t.client_ca.is_some()),
            "SLIM data-plane server listening");
        let sweeper = tokio::spawn(async {
            let mut tick = tokio::time::interval(crate::slim::sockets::SERVER_SWEEP);
            loop {
                tick.tick().await;
                crate::slim::sockets::sweep();
            }
        });
        Ok(SlimServer {
            service,
            endpoint: endpoint.to_string(),
            sweeper,
            peers: Vec::new(),
        })
    }

    /// Links this server to each of `peers` as a SLIM peer (in the background: a peer that is
    /// down is linked once it is up); the links' states show in what this returns.
    pub fn link_peers(&mut self, peers: Vec<Peer>) -> PeerLinks {
        let links = PeerLinks::default();
        for peer in peers {
            info!(peer = %peer.url, tls = peer.tls.is_set(), "will link to SLIM peer");
            self.peers
                .push(peers::spawn(self.service.clone(), peer, links.clone()));
        }
        links
    }

    /// The endpoint it serves on.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Closes the listener and every connection.
    pub async fn shutdown(self) -> Result<(), RoleError> {
        self.sweeper.abort();
        for task in &self.peers {
            task.abort();
        }
        self.service
            .shutdown_async()
            .await
            .map_err(|e| RoleError::slim("server shutdown", e))
    }
}
