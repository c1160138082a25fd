//! Links from our SLIM server to other SLIM servers as SLIM *peers*: over a peer link the two
//! servers exchange their subscriptions (both ways, and on to their other peers), so a name
//! subscribed at one site is routed to from every other. A node's own link to its server is an
//! *edge* link, which exchanges nothing.
//!
//! Each peer is dialled by a task of its own, so a peer that is down never delays the server.
//! SLIM reconnects a peer link that drops (every 2 s, without end); when it gives up on one
//! (the peer refused it), the task dials it again after a backoff. Every change of a link's
//! state is logged, and [`PeerLinks`] tells the state of each link.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slim_bindings::{ClientConfig, Service};
use slim_config::conn_type::ConnType;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::slim::tls::ClientTls;
use crate::sync::lock;

/// How often a link's state is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Another SLIM server to link to.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its URL (`http://host:port`, or `https://` with TLS).
    pub url: String,
    /// TLS to it (CA, client certificate).
    pub tls: ClientTls,
}

/// The state of one peer link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Being dialled (the peer may be down).
    Connecting,
    /// Linked: subscriptions are exchanged.
    Up,
    /// SLIM gave the link up; it is dialled again after a backoff.
    Down,
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerState::Connecting => "connecting",
            PeerState::Up => "up",
            PeerState::Down => "down",
        })
    }
}

/// The state of every peer link, by URL.
#[derive(Debug, Clone, Default)]
pub struct PeerLinks(Arc<Mutex<BTreeMap<String, PeerState>>>);

impl PeerLinks {
    /// Each peer's URL and the state of its link.
    pub fn states(&self) -> Vec<(String, PeerState)> {
        lock(&self.0)
            .iter()
            .map(|(url, state)| (url.clone(), *state))
            .collect()
    }

    fn set(&self, url: &str, state: PeerState) {
        let previous = lock(&self.0).insert(url.to_string(), state);
        if previous != Some(state) {
            match state {
                PeerState::Up => info!(peer = %url, "SLIM peer link up"),
                PeerState::Connecting => info!(peer = %url, "linking to SLIM peer"),
                PeerState::Down => {
                    warn!(peer = %url, "SLIM peer link down; linking again")
                }
            }
        }
    }
}

/// Starts the task that keeps `peer` linked to `service`.
pub(crate) fn spawn(
    service: Arc<Service>,
    peer: Peer,
    links: PeerLinks,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        loop {
            links.set(&peer.url, PeerState::Connecting);
            match dial(&service, &peer).await {
                Ok(id) => {
                    links.set(&peer.url, PeerState::Up);
                    backoff.reset();
                    // SLIM reconnects a dropped link itself under the same id; once it gives
                    // up, the id leaves its connection table.
                    while service
                        .inner()
                        .message_processor()
                        .connection_table()
                        .contains(id)
                    {
                        tokio::time::sleep(WATCH_EVERY).await;
                    }
                    links.set(&peer.url, PeerState::Down);
                }
                Err(err) => {
                    warn!(peer = %peer.url, %err, "cannot link to SLIM peer");
                    links.set(&peer.url, PeerState::Down);
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    })
}

/// Dials `peer` as a SLIM peer link; returns the link's id once it is up.
async fn dial(service: &Service, peer: &Peer) -> Result<u64, String> {
    let client = ClientConfig {
        tls: peer.tls.for_url(&peer.url).map_err(|e| e.to_string())?,
        // Behind a cut link the peer link would otherwise look up until TCP gives up.
        keepalive: Some(crate::slim::connection::keepalive()),
        ..slim_bindings::new_insecure_client_config(peer.url.clone())
    };
    let mut core: slim_config::client::ClientConfig = client.into();
    core.connection_type = ConnType::Peer;
    let (_task, id) = service
        .inner()
        .message_processor()
        .connect(core, None, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(id)
}
