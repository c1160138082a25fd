//! A running node: its SLIM connection, its role task, and the handles the binary uses.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{max_payload_bytes, NodeConfig, RoleConfig};
use crate::ctx::Shared;
use crate::delivery::incoming::Incoming;
use crate::delivery::liveness::LastHeard;
use crate::delivery::message::Outgoing;
use crate::delivery::outbox::{Outbox, OutboxStats};
use crate::delivery::seen::Seen;
use crate::delivery::spool::Spool;
use crate::error::{AdminError, PublishError, RoleError};
use crate::health::{Health, Link};
use crate::name::SlimName;
use crate::role::supervisor::Supervisor;
use crate::slim::connection;
use crate::state::{Event, RoleKind, State, Status};
use crate::sync::lock;

/// Messages buffered between SLIM and the consumer.
const INCOMING_BUFFER: usize = 1024;
/// Ids remembered to drop duplicates.
const SEEN_IDS: usize = 200_000;
/// Longest wait for another process to release the state directory.
const STATE_DIR_WAIT: Duration = Duration::from_secs(30);

/// Opens the record of received ids in `dir`. A node that is still leaving under the same
/// name holds it for up to its drain timeout: wait for it, for at most [`STATE_DIR_WAIT`].
async fn open_seen(dir: &std::path::Path) -> Result<Seen, RoleError> {
    let deadline = tokio::time::Instant::now() + STATE_DIR_WAIT;
    let mut said = false;
    loop {
        match Seen::open(dir, SEEN_IDS) {
            Ok(seen) => {
                info!(dir = %dir.display(), remembered = seen.len(), "keeping the ids of received messages on disk");
                return Ok(seen);
            }
            Err(err) if err.in_use() && tokio::time::Instant::now() < deadline => {
                if !said {
                    info!(dir = %dir.display(), "the state directory is in use, by a node of the same name still leaving?; waiting for it");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Set once a node of this process has drained and tears its SLIM side down: what SLIM logs
/// from then on is about that (the node's log leaves it out).
pub static LEAVING: AtomicBool = AtomicBool::new(false);

/// A node connected to SLIM, playing its role in the background.
pub struct Node {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Node {
    /// Connects to SLIM (retrying up to `connect_attempts`), creates the app and starts the
    /// role. Returns the node and the stream of messages other members publish.
    pub async fn start(cfg: NodeConfig) -> Result<(Node, mpsc::Receiver<Incoming>), RoleError> {
        let role = match cfg.role {
            RoleConfig::Moderator { .. } | RoleConfig::SignalModerator { .. } => {
                RoleKind::Moderator
            }
            RoleConfig::Participant => RoleKind::Participant,
        };
        let channel = match &cfg.role {
            RoleConfig::Moderator { channel, .. } => Some(channel.to_string()),
            RoleConfig::SignalModerator { channels, .. } => Some(
                channels
                    .iter()
                    .map(|c| c.channel.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            RoleConfig::Participant => None,
        };
        let (status, _) = watch::channel(Status {
            role,
            name: cfg.name.to_string(),
            channel,
            state: State::Connecting,
        });
        let outbox = match &cfg.spool {
            Some(spool) => {
                let owed_to = cfg
                    .role
                    .invitees()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let outbox = Outbox::with_spool(cfg.outbox, Spool::open(spool)?, owed_to)?;
                let restored = outbox.stats();
                if restored.messages > 0 {
                    info!(messages = restored.messages, bytes = restored.bytes, dir = %spool.dir.display(),
                        "restored undelivered messages from the spool");
                }
                outbox
            }
            None => Outbox::new(cfg.outbox),
        };
        let seen = Arc::new(match &cfg.state_dir {
            Some(dir) => open_seen(dir).await?,
            None => Seen::in_memory(SEEN_IDS),
        });
        let shared = Arc::new(Shared {
            role,
            status,
            connection: Mutex::new(None),
            window: Arc::new(Semaphore::new(crate::delivery::sender::MAX_IN_FLIGHT)),
            partial_window: Arc::new(Semaphore::new(cfg.in_flight.max(1))),
            max_payload: max_payload_bytes(cfg.mls),
            outbox,
            known: Mutex::new(BTreeSet::new()),
            invitees: Mutex::new(cfg.role.invitees().iter().cloned().collect()),
            signals: match &cfg.role {
                RoleConfig::SignalModerator { channels, .. } => {
                    Some(channels.iter().map(|c| c.signal).collect())
                }
                _ => None,
            },
            invitees_changed: Notify::new(),
            removed: Mutex::new(BTreeSet::new()),
            had_members: AtomicBool::new(false),
            seen,
            heard: LastHeard::default(),
            link: Link::new(),
            beat: Mutex::new(std::time::Instant::now()),
        });
        info!(%role, name = %cfg.name, urls = %cfg.slim_urls.join(","), "connecting to SLIM");
        let service_name = format!("slim-node-{role}");
        let conn = Arc::new(connection::connect(&cfg, &service_name).await?);
        shared.link.up();
        shared.apply(Event::Connected);

        let (tx, rx) = mpsc::channel(INCOMING_BUFFER);
        let cancel = CancellationToken::new();
        let supervisor = Supervisor {
            shared: shared.clone(),
            cfg: Arc::new(cfg),
            incoming: tx,
            cancel: cancel.clone(),
            service_name,
        };
        let task = tokio::spawn(supervisor.run(conn));
        Ok((
            Node {
                shared,
                cancel,
                task,
            },
            rx,
        ))
    }

    /// A handle to publish on the channel; cheap to clone.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            shared: self.shared.clone(),
        }
    }

    /// A handle to change the moderator's members at runtime.
    pub fn admin(&self) -> Admin {
        Admin {
            shared: self.shared.clone(),
        }
    }

    /// A live view of the node's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Waits up to `drain` for the members that answer to acknowledge what was taken (not
    /// for members that are away), then leaves the channel (a moderator closes the group) and
    /// disconnects. What only away members lack stays in the spool, when there is one, and is
    /// named in the log either way.
    pub async fn shutdown(self, drain: Duration) {
        let left = self.shared.outbox.stats().messages;
        if left > 0 && self.shared.state().has_members() {
            info!(
                messages = left,
                ?drain,
                "waiting for the members that answer to acknowledge what was taken"
            );
            let _ = tokio::time::timeout(drain, self.drained()).await;
        }
        self.say_what_is_left();
        // What SLIM says from here on is about connections being torn down.
        LEAVING.store(true, Ordering::Relaxed);
        // Stop taking invitations first: SLIM routes an invite for our name to any app that
        // subscribed it, and a node on its way out would accept it and vanish. A successor
        // started under the same name then gets the invitations. What does it is the app
        // forgetting the name (it then refuses new sessions for it); the server is asked too,
        // without the app's id (SLIM's unsubscribe does not add it), so it refuses and keeps
        // routing to us what closing our sessions still needs (a moderator's close waits for
        // the members' answers). Its refusal is expected: not a warning.
        if let Some(conn) = self.shared.connection() {
            let unsubscribe = conn
                .app
                .unsubscribe_async(conn.name.clone(), Some(conn.conn_id));
            if let Ok(Err(err)) = tokio::time::timeout(Duration::from_secs(2), unsubscribe).await {
                debug!(%err, "the server kept our subscription until we leave");
            }
        }
        self.cancel.cancel();
        if let Err(err) = self.task.await {
            warn!(%err, "node supervisor ended abnormally");
        }
        self.shared.apply(Event::Stop);
    }

    /// Until every message was sent and only members that are away lack any.
    async fn drained(&self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            let notified = self.shared.outbox.drained.notified();
            // Who is away changes with time as well as with acknowledgements.
            self.shared
                .outbox
                .set_members(self.shared.member_view(std::time::Instant::now()));
            if self.shared.outbox.only_away_lack() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = tick.tick() => {}
            }
        }
    }

    /// Logs what the node leaves behind: per member, what it lacks.
    fn say_what_is_left(&self) {
        let stats = self.shared.outbox.stats();
        if stats.messages == 0 {
            return;
        }
        let (lacking, unsent) = self.shared.outbox.left_behind();
        let spooled = self.shared.outbox.is_spooled();
        let lacking = lacking
            .iter()
            .map(|(m, n)| format!("{m}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        if spooled {
            info!(messages = stats.messages, unsent, lacking = %lacking,
                "leaving messages only members that are away lack (or none got yet) in the spool: they are sent when the node is back");
        } else {
            warn!(messages = stats.messages, bytes = stats.bytes, unsent, lacking = %lacking,
                "leaving with messages only members that are away lack (or none got yet): they are lost, as there is no spool");
        }
    }
}

/// Publishes on the node's channel.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

impl Publisher {
    /// The node's current status.
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// The largest payload this node will publish.
    pub fn max_payload(&self) -> usize {
        self.shared.max_payload
    }

    /// What waits in the outbox.
    pub fn outbox(&self) -> OutboxStats {
        self.shared.outbox.stats()
    }

    /// The node's health: link, members, outbox, and the verdict on them.
    pub fn health(&self) -> Health {
        self.shared.health()
    }

    /// Why the node no longer works, if it does not (for a liveness probe).
    pub fn wedged(&self) -> Option<String> {
        self.shared.wedged()
    }

    /// Takes messages for the channel: all of them or none. They stay in the outbox until
    /// every member acknowledged them, and are sent again until then (receivers drop the
    /// duplicates). Refused until a member first joined (SLIM would drop them), when a
    /// payload exceeds SLIM's limit, or when the outbox is full.
    pub async fn publish_all(&self, messages: Vec<Outgoing>) -> Result<(), PublishError> {
        if let Some(big) = messages
            .iter()
            .find(|m| m.payload.len() > self.shared.max_payload)
        {
            return Err(PublishError::TooLarge {
                size: big.payload.len(),
                limit: self.shared.max_payload,
            });
        }
        if let Some(signals) = &self.shared.signals {
            let carried = |m: &Outgoing| {
                m.metadata
                    .get(otlp::wire::SIGNAL_KEY)
                    .is_some_and(|s| signals.iter().any(|sig| sig.as_str() == s))
            };
            if let Some(other) = messages.iter().find(|m| !carried(m)) {
                let signal = other.metadata.get(otlp::wire::SIGNAL_KEY);
                return Err(PublishError::NoChannel(
                    signal.map_or("this signal", String::as_str).to_string(),
                ));
            }
        }
        // Once a member joined, what is taken waits in the outbox through session restarts
        // and SLIM outages until the members are back.
        let had_members = self.shared.had_members.load(Ordering::Relaxed);
        let ready = |state: &State| state.has_members() || had_members && *state != State::Stopped;
        // Looked at in place: the state (with its member list) is cloned only to report it.
        if !self.shared.state_is(ready) {
            return Err(PublishError::NotReady {
                state: self.shared.state().to_string(),
            });
        }
        // A backlog of more than --queue-max-delay of work: the sender waits for its answer.
        self.shared.outbox.paced().await?;
        if !self.shared.outbox.is_spooled() {
            return self.shared.outbox.push_all(messages);
        }
        // Writing (and syncing) the spool blocks: keep it off the async workers.
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.outbox.push_all(messages))
            .await
            .map_err(|e| PublishError::Spool(e.to_string()))?
    }
}

/// Changes who is in a moderator's group while it runs.
#[derive(Clone)]
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    fn moderator(&self) -> Result<(), AdminError> {
        match self.shared.role {
            RoleKind::Moderator => Ok(()),
            RoleKind::Participant => Err(AdminError::NotModerator),
        }
    }

    /// Adds `name` to the invitees; it is invited (with backoff) until it joins. Returns
    /// whether it was new.
    pub fn invite(&self, name: SlimName) -> Result<bool, AdminError> {
        self.moderator()?;
        let text = name.to_string();
        let added = lock(&self.shared.invitees).insert(name);
        lock(&self.shared.removed).remove(&text);
        if added {
            info!(invitee = %text, "invitee added by an administrator");
            self.shared.apply(Event::MemberAdded(text));
            self.shared.invitees_changed.notify_one();
        }
        Ok(added)
    }

    /// Removes `name` from the group and the invitees; what waits only for its
    /// acknowledgement is done. Returns whether it was there.
    pub fn remove(&self, name: SlimName) -> Result<bool, AdminError> {
        self.moderator()?;
        let text = name.to_string();
        let was_invitee = lock(&self.shared.invitees).remove(&name);
        lock(&self.shared.removed).insert(text.clone());
        let was_member = lock(&self.shared.known).remove(&text);
        self.shared.outbox.forget_member(&text);
        if was_invitee || was_member {
            info!(member = %text, "member removed by an administrator");
            self.shared.apply(Event::MemberRemoved(text));
            self.shared.invitees_changed.notify_one();
        }
        Ok(was_invitee || was_member)
    }

    /// The names the moderator invites.
    pub fn invitees(&self) -> Vec<String> {
        self.shared
            .invitees()
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}
