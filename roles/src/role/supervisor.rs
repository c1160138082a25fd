//! The supervisor: keeps a node connected to SLIM and its role running.
//!
//! SLIM's client reconnects on its own after a short outage, but it gives up after a single
//! failed attempt to reopen its stream (a restarting server that accepts TCP and resets it,
//! say) and then forgets the connection: nothing is routed any more, yet every call still
//! reports success. The supervisor watches SLIM's connection table; when the connection is
//! gone it stops the role, throws the service away, connects a new one (capped exponential
//! backoff with jitter, for as long as the node runs) and starts the role again, which then
//! recovers as after a restart: the moderator creates its group again and invites, the
//! participant waits for the new invitation. The outbox survives, so nothing taken is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::config::{NodeConfig, RoleConfig};
use crate::ctx::{RoleCtx, Shared};
use crate::delivery::incoming::Incoming;
use crate::role::{moderator, participant, signal_moderator};
use crate::slim::connection::{self, Connection};
use crate::state::Event;

/// How often the connection table is looked at.
const LINK_CHECK: Duration = Duration::from_secs(1);
/// Consecutive checks that must find the connection gone: SLIM replaces the entry while it
/// reconnects, and a single miss may catch it in between.
const LINK_MISSES: u32 = 2;
/// How long the server must stay unreachable before a node with other servers moves: longer
/// than a server restart SLIM's client rides out on its own, far shorter than its give-up.
const FAILOVER_AFTER: Duration = Duration::from_secs(5);
/// Longest wait for a stopped role task or a service shutdown.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Everything a role needs besides its connection.
pub(crate) struct Supervisor {
    pub shared: Arc<Shared>,
    pub cfg: Arc<NodeConfig>,
    pub incoming: mpsc::Sender<Incoming>,
    pub cancel: CancellationToken,
    pub service_name: String,
}

impl Supervisor {
    /// Runs the role on `conn`, and on every connection after it, until the node stops.
    pub(crate) async fn run(self, mut conn: Arc<Connection>) {
        let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            let lost = self.play_role(conn.clone()).await;
            shutdown_service(&conn).await;
            if !lost {
                return;
            }
            self.shared
                .link
                .down("SLIM's client gave up reconnecting and dropped the connection");
            self.shared.apply(Event::Disconnected);
            let next = conn.index + 1;
            conn = match self.reconnect(&mut retry, next).await {
                Some(c) => c,
                None => return,
            };
            retry.reset();
            self.shared.link.up();
            self.shared.apply(Event::Connected);
        }
    }

    /// Plays the role on `conn` until the node stops (`false`) or the connection is lost
    /// (`true`).
    async fn play_role(&self, conn: Arc<Connection>) -> bool {
        self.shared.set_connection(Some(conn.clone()));
        let role_cancel = self.cancel.child_token();
        let ctx = RoleCtx {
            shared: self.shared.clone(),
            conn: conn.clone(),
            cfg: self.cfg.clone(),
            incoming: self.incoming.clone(),
            cancel: role_cancel.clone(),
        };
        let mut role = spawn_role(ctx);
        let (lost, role_ended) = tokio::select! {
            _ = self.cancel.cancelled() => (false, false),
            _ = link_lost(&conn, &self.shared, self.cfg.slim_urls.len() > 1) => (true, false),
            ended = &mut role => {
                if let Err(err) = ended {
                    warn!(%err, "role task ended abnormally");
                }
                (false, true)
            }
        };
        if role_ended {
            // Only a consumer that went away ends a role on its own: stay until told.
            self.cancel.cancelled().await;
        } else {
            if lost {
                warn!(url = %conn.url, "the SLIM connection is gone; connecting again");
            }
            role_cancel.cancel();
            match tokio::time::timeout(STOP_WAIT, &mut role).await {
                Ok(Err(err)) => warn!(%err, "role task ended abnormally"),
                Err(_) => {
                    warn!("the role task did not stop in time; aborting it");
                    role.abort();
                }
                Ok(Ok(())) => {}
            }
        }
        self.shared.set_connection(None);
        lost
    }

    /// Connects again until it works or the node stops, trying the servers from the one at
    /// `start`.
    async fn reconnect(&self, retry: &mut Backoff, start: usize) -> Option<Arc<Connection>> {
        loop {
            let attempt = tokio::select! {
                _ = self.cancel.cancelled() => return None,
                c = connection::connect_from(&self.cfg, &self.service_name, start) => c,
                // A connect can take its whole backoff (tens of seconds): still working.
                _ = beating(&self.shared) => return None,
            };
            match attempt {
                Ok(conn) => {
                    info!(url = %conn.url, "connected to SLIM again");
                    return Some(Arc::new(conn));
                }
                Err(err) => {
                    let delay = retry.next_delay();
                    self.shared.link.attempt_failed(&err.to_string());
                    warn!(%err, retry_in = ?delay, "reconnecting to SLIM failed");
                    tokio::select! {
                        _ = self.cancel.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                        _ = beating(&self.shared) => return None,
                    }
                }
            }
        }
    }
}

/// Shows the supervisor is working, every [`LINK_CHECK`]; never ends.
async fn beating(shared: &Shared) {
    let mut tick = tokio::time::interval(LINK_CHECK);
    loop {
        tick.tick().await;
        shared.beat();
    }
}

fn spawn_role(ctx: RoleCtx) -> JoinHandle<()> {
    match &ctx.cfg.role {
        RoleConfig::Moderator { channel, .. } => {
            let channel = channel.clone();
            tokio::spawn(moderator::run(ctx, channel))
        }
        RoleConfig::SignalModerator { channels, .. } => {
            let channels = channels.clone();
            tokio::spawn(signal_moderator::run(ctx, channels))
        }
        RoleConfig::Participant => tokio::spawn(participant::run(ctx)),
    }
}

/// Resolves once SLIM no longer lists the connection, or, when the node has other servers
/// to move to, once this one has been unreachable for [`FAILOVER_AFTER`]. Meanwhile keeps the
/// link's status: down while no socket is connected to the server (SLIM is reconnecting on
/// its own).
async fn link_lost(conn: &Connection, shared: &Shared, can_move: bool) {
    let mut tick = tokio::time::interval(LINK_CHECK);
    let mut misses = 0;
    let mut down_since: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        shared.beat();
        // SLIM reconnects on its own after short outages, on a new socket.
        crate::slim::sockets::sweep();
        match conn.is_up() {
            Some(false) => {
                shared
                    .link
                    .down("no connection to the SLIM server; SLIM's client is reconnecting");
                let since = *down_since.get_or_insert_with(tokio::time::Instant::now);
                if can_move && since.elapsed() >= FAILOVER_AFTER {
                    warn!(url = %conn.url, after = ?FAILOVER_AFTER, "the SLIM server is unreachable; moving to the next");
                    return;
                }
            }
            Some(true) | None => {
                down_since = None;
                shared.link.up();
            }
        }
        if conn.is_listed() {
            misses = 0;
        } else {
            misses += 1;
            if misses >= LINK_MISSES {
                return;
            }
        }
    }
}

async fn shutdown_service(conn: &Connection) {
    match tokio::time::timeout(STOP_WAIT, conn.service.shutdown_async()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => warn!(%err, "SLIM service shutdown failed"),
        Err(_) => warn!("SLIM service shutdown timed out"),
    }
}
