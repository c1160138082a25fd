//! A running node: its SLIM connection, its role task, and the handles the binary uses.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{max_payload_bytes, NodeConfig, RoleConfig};
use crate::connection::{self, Connection};
use crate::error::{AdminError, PublishError, RoleError};
use crate::health::{self, Health, Link, MemberHealth};
use crate::liveness::LastHeard;
use crate::name::SlimName;
use crate::outbox::{Outbox, OutboxStats, Outgoing};
use crate::seen::Seen;
use crate::spool::Spool;
use crate::state::{Event, RoleKind, State, Status};
use crate::supervisor::Supervisor;

/// Messages buffered between SLIM and the consumer.
const INCOMING_BUFFER: usize = 1024;
/// Ids remembered to drop duplicates.
const SEEN_IDS: usize = 200_000;
/// Longest wait for another process to release the state directory.
const STATE_DIR_WAIT: Duration = Duration::from_secs(30);
/// A node whose supervisor did not run for this long is wedged (`/health/live` fails).
pub const WEDGED_AFTER: Duration = Duration::from_secs(30);

/// A message another member published on the channel.
#[derive(Debug)]
pub struct Incoming {
    /// The sender's SLIM name (`org/ns/app`).
    pub from: String,
    /// The sender's identity as verified by MLS, when MLS is on.
    pub verified_sender: Option<String>,
    /// The payload type the sender gave.
    pub payload_type: String,
    /// The sender's metadata (travels in the clear).
    pub metadata: HashMap<String, String>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Acknowledges it to its publisher once taken; `None` for a message without an id
    /// (its sender asks for no acknowledgement).
    pub ack: Option<crate::receive::Ack>,
}

/// Locks `m`; a panic elsewhere while holding it leaves data that is still usable here.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// State shared by the role task and the handles.
pub(crate) struct Shared {
    role: RoleKind,
    status: watch::Sender<Status>,
    /// The SLIM connection the role runs on; replaced when the supervisor reconnects.
    connection: Mutex<Option<Arc<Connection>>>,
    /// Bounds the publishes awaiting SLIM's completion: unbounded, SLIM deadlocks.
    pub window: Arc<Semaphore>,
    /// Bounds the frames not yet full awaiting completion: meanwhile what arrives waits in
    /// the outbox and is packed, instead of each request costing a SLIM message.
    pub partial_window: Arc<Semaphore>,
    /// The largest SLIM message payload (with its metadata) this node sends.
    pub max_payload: usize,
    /// What was taken and not yet acknowledged by every member.
    pub outbox: Outbox,
    /// Members that joined at some point: what is published must reach each of them.
    known: Mutex<BTreeSet<String>>,
    /// Moderator: the names it invites; administrators change them at runtime.
    invitees: Mutex<BTreeSet<SlimName>>,
    /// Wakes the moderator when the invitees changed.
    pub invitees_changed: Notify,
    /// Names an administrator removed: never counted as members again unless re-invited.
    removed: Mutex<BTreeSet<String>>,
    /// Once a member joined, data is taken even while members are away.
    had_members: AtomicBool,
    /// Ids handed on lately, across sessions and (with a state directory) restarts: a
    /// message re-sent into a new session, or replayed by SLIM to a member that joined
    /// again, is still a copy.
    pub seen: Seen,
    /// When each member was last heard from.
    pub heard: LastHeard,
    /// The link to the SLIM server.
    pub link: Link,
    /// When the supervisor last showed it is working.
    beat: Mutex<std::time::Instant>,
}

impl Shared {
    /// Feeds an event to the state machine, logging the transition.
    pub(crate) fn apply(&self, event: Event) {
        let role = self.role;
        match &event {
            Event::MemberJoined(name) => {
                self.heard.joined(name, std::time::Instant::now());
                self.note_members([name.clone()]);
                self.outbox.resend_now();
            }
            Event::Invited => {
                self.had_members.store(true, Ordering::Relaxed);
                self.outbox.resend_now();
            }
            _ => {}
        }
        self.status
            .send_if_modified(|status| match status.state.on(role, &event) {
                Ok(next) if next != status.state => {
                    info!(%role, from = %status.state, to = %next, "state change");
                    status.state = next;
                    true
                }
                Ok(_) => false,
                Err(err) => {
                    error!(%role, %err, "ignored an impossible state transition");
                    false
                }
            });
    }

    pub(crate) fn set_channel(&self, channel: Option<String>) {
        self.status.send_modify(|status| status.channel = channel);
    }

    pub(crate) fn set_connection(&self, conn: Option<Arc<Connection>>) {
        *lock(&self.connection) = conn;
    }

    fn connection(&self) -> Option<Arc<Connection>> {
        lock(&self.connection).clone()
    }

    /// Records members (names), who must acknowledge what is published from now on.
    pub(crate) fn note_members(&self, names: impl IntoIterator<Item = String>) {
        let removed = lock(&self.removed);
        let mut known = lock(&self.known);
        let now = std::time::Instant::now();
        for name in names.into_iter().filter(|n| !removed.contains(n)) {
            if !known.contains(&name) {
                self.heard.joined(&name, now);
                known.insert(name);
            }
        }
        if !known.is_empty() {
            self.had_members.store(true, Ordering::Relaxed);
        }
    }

    /// The names the moderator should have in its group now.
    pub(crate) fn invitees(&self) -> BTreeSet<SlimName> {
        lock(&self.invitees).clone()
    }

    pub(crate) fn known_members(&self) -> BTreeSet<String> {
        lock(&self.known).clone()
    }

    pub(crate) fn state(&self) -> State {
        self.status.borrow().state.clone()
    }

    /// The supervisor is working (it calls this at least every second).
    pub(crate) fn beat(&self) {
        *lock(&self.beat) = std::time::Instant::now();
    }

    /// Why the node is not working any more, if it is not: stopped, or its supervisor has
    /// not shown it is working for [`WEDGED_AFTER`].
    pub(crate) fn wedged(&self) -> Option<String> {
        if self.state() == State::Stopped {
            return Some("the node has stopped".into());
        }
        let quiet = lock(&self.beat).elapsed();
        (quiet >= WEDGED_AFTER).then(|| {
            format!(
                "the node's supervisor has not run for {} s (nobody consumes received messages, or it is stuck)",
                quiet.as_secs()
            )
        })
    }

    /// Whether `name` is in the current session, as far as this node knows.
    fn in_session(state: &State, name: &str) -> bool {
        match state {
            State::Inviting { joined, .. } | State::Active { joined } => joined.contains(name),
            State::Joined => true,
            _ => false,
        }
    }

    /// How the members are doing at `now`, as the outbox and the sender need to know: away,
    /// slow (live but owing data for [`health::UNACKED_BOUND`]), whether any is live, and
    /// whether any is live and acknowledging.
    pub(crate) fn member_view(&self, now: std::time::Instant) -> crate::outbox::MemberView {
        let away = self.away_members(now);
        let (slow, fine): (BTreeSet<String>, BTreeSet<String>) = self
            .known_members()
            .into_iter()
            .filter(|m| !away.contains(m))
            .partition(|m| {
                self.outbox
                    .backlog(m, now)
                    .oldest_unacked
                    .is_some_and(|d| d >= health::UNACKED_BOUND)
            });
        crate::outbox::MemberView {
            away,
            live: !slow.is_empty() || !fine.is_empty(),
            slow,
            serving: !fine.is_empty(),
        }
    }

    /// The members that are not live at `now`: silent for [`crate::liveness::LAGGING_AFTER`],
    /// out of the session, or unreachable (the link is down).
    pub(crate) fn away_members(&self, now: std::time::Instant) -> BTreeSet<String> {
        let state = self.state();
        let link = self.link.get();
        // A moderator's invitees that have not joined (yet, or again) are away too: what is
        // owed to them waits for them.
        let mut names = self.known_members();
        names.extend(self.invitees().iter().map(ToString::to_string));
        names
            .into_iter()
            .filter(|name| {
                health::member_liveness(
                    &link,
                    Self::in_session(&state, name),
                    self.heard.get(name),
                    now,
                ) != crate::liveness::Liveness::Live
            })
            .collect()
    }

    /// The node's health now.
    pub(crate) fn health(&self) -> Health {
        let now = std::time::Instant::now();
        let node = self.status.borrow().clone();
        let link = self.link.get();
        let members: Vec<MemberHealth> = self
            .known_members()
            .into_iter()
            .map(|name| {
                let heard = self.heard.get(&name);
                let backlog = self.outbox.backlog(&name, now);
                MemberHealth {
                    state: health::member_liveness(
                        &link,
                        Self::in_session(&node.state, &name),
                        heard,
                        now,
                    ),
                    last_heard_ms: heard
                        .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    acked_up_to: backlog.acked_up_to,
                    unacked: backlog.unacked,
                    oldest_unacked_ms: backlog.oldest_unacked.map(|d| d.as_millis() as u64),
                    name,
                }
            })
            .collect();
        let outbox = self.outbox.stats();
        let problems = health::problems(&members, &outbox);
        Health {
            status: health::verdict(&node, &members, &problems),
            node,
            link,
            members,
            outbox,
            problems,
        }
    }
}

/// What a role task works with.
#[derive(Clone)]
pub(crate) struct RoleCtx {
    pub shared: Arc<Shared>,
    pub conn: Arc<Connection>,
    pub cfg: Arc<NodeConfig>,
    pub incoming: mpsc::Sender<Incoming>,
    pub cancel: CancellationToken,
}

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
            RoleConfig::Moderator { .. } => RoleKind::Moderator,
            RoleConfig::Participant => RoleKind::Participant,
        };
        let channel = match &cfg.role {
            RoleConfig::Moderator { channel, .. } => Some(channel.to_string()),
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
                let owed_to = match &cfg.role {
                    RoleConfig::Moderator { invite, .. } => {
                        invite.iter().map(ToString::to_string).collect()
                    }
                    RoleConfig::Participant => BTreeSet::new(),
                };
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
        let seen = match &cfg.state_dir {
            Some(dir) => open_seen(dir).await?,
            None => Seen::in_memory(SEEN_IDS),
        };
        let shared = Arc::new(Shared {
            role,
            status,
            connection: Mutex::new(None),
            window: Arc::new(Semaphore::new(crate::sender::MAX_IN_FLIGHT)),
            partial_window: Arc::new(Semaphore::new(cfg.in_flight.max(1))),
            max_payload: max_payload_bytes(cfg.mls),
            outbox,
            known: Mutex::new(BTreeSet::new()),
            invitees: Mutex::new(match &cfg.role {
                RoleConfig::Moderator { invite, .. } => invite.iter().cloned().collect(),
                RoleConfig::Participant => BTreeSet::new(),
            }),
            invitees_changed: Notify::new(),
            removed: Mutex::new(BTreeSet::new()),
            had_members: AtomicBool::new(false),
            seen,
            heard: LastHeard::default(),
            link: Link::new(),
            beat: Mutex::new(std::time::Instant::now()),
        });
        info!(%role, name = %cfg.name, url = %cfg.slim_url, "connecting to SLIM");
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
        // Stop being reachable first: SLIM routes an invite for our name to any app that
        // subscribed it, and a node on its way out would accept it and vanish. A successor
        // started under the same name then gets the invitations.
        if let Some(conn) = self.shared.connection() {
            let unsubscribe = conn
                .app
                .unsubscribe_async(conn.name.clone(), Some(conn.conn_id));
            if let Ok(Err(err)) = tokio::time::timeout(Duration::from_secs(2), unsubscribe).await {
                warn!(%err, "could not unsubscribe before leaving");
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
        let state = self.shared.state();
        // Once a member joined, what is taken waits in the outbox through session restarts
        // and SLIM outages until the members are back.
        let had_members = self.shared.had_members.load(Ordering::Relaxed);
        if !(state.has_members() || had_members && state != State::Stopped) {
            return Err(PublishError::NotReady {
                state: state.to_string(),
            });
        }
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
