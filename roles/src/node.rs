//! A running node: its SLIM connection, its role task, and the handles the binary uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slim_bindings::Session;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{max_payload_bytes, NodeConfig, RoleConfig};
use crate::connection::{self, Connection};
use crate::error::{PublishError, RoleError};
use crate::state::{Event, RoleKind, State, Status};
use crate::{moderator, participant};

/// How long a publish may wait for room in the in-flight window before it is refused.
const WINDOW_WAIT: Duration = Duration::from_secs(5);
/// How long a completion is awaited; SLIM can leave handles unresolved forever.
const COMPLETION_WAIT: Duration = Duration::from_secs(60);
/// Messages buffered between SLIM and the consumer.
const INCOMING_BUFFER: usize = 1024;

/// A message another member published on the channel.
#[derive(Debug, Clone)]
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
}

/// State shared by the role task and the handles.
pub(crate) struct Shared {
    role: RoleKind,
    status: watch::Sender<Status>,
    session: Mutex<Option<Arc<Session>>>,
    window: Arc<Semaphore>,
    max_payload: usize,
}

impl Shared {
    /// Feeds an event to the state machine, logging the transition.
    pub(crate) fn apply(&self, event: Event) {
        let role = self.role;
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

    pub(crate) fn set_session(&self, session: Option<Arc<Session>>) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = session;
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

/// A node connected to SLIM, playing its role in the background.
pub struct Node {
    shared: Arc<Shared>,
    conn: Arc<Connection>,
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
        let shared = Arc::new(Shared {
            role,
            status,
            session: Mutex::new(None),
            window: Arc::new(Semaphore::new(cfg.in_flight.max(1))),
            max_payload: max_payload_bytes(cfg.mls),
        });
        info!(%role, name = %cfg.name, url = %cfg.slim_url, "connecting to SLIM");
        let conn = Arc::new(connection::connect(&cfg, &format!("slim-node-{role}")).await?);
        shared.apply(Event::Connected);

        let (tx, rx) = mpsc::channel(INCOMING_BUFFER);
        let cancel = CancellationToken::new();
        let ctx = RoleCtx {
            shared: shared.clone(),
            conn: conn.clone(),
            cfg: Arc::new(cfg),
            incoming: tx,
            cancel: cancel.clone(),
        };
        let task = match &ctx.cfg.role {
            RoleConfig::Moderator { channel, invite } => {
                tokio::spawn(moderator::run(ctx.clone(), channel.clone(), invite.clone()))
            }
            RoleConfig::Participant => tokio::spawn(participant::run(ctx)),
        };
        Ok((
            Node {
                shared,
                conn,
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

    /// A live view of the node's status.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Leaves the channel (a moderator closes the group), then disconnects.
    pub async fn shutdown(self) {
        // Stop being reachable first: SLIM routes an invite for our name to any app that
        // subscribed it, and a node on its way out would accept it and vanish. A successor
        // started under the same name then gets the invitations.
        let unsubscribe = self
            .conn
            .app
            .unsubscribe_async(self.conn.name.clone(), Some(self.conn.conn_id));
        if let Ok(Err(err)) = tokio::time::timeout(Duration::from_secs(2), unsubscribe).await {
            warn!(%err, "could not unsubscribe before leaving");
        }
        self.cancel.cancel();
        if let Err(err) = self.task.await {
            warn!(%err, "role task ended abnormally");
        }
        self.shared.set_session(None);
        match tokio::time::timeout(Duration::from_secs(5), self.conn.service.shutdown_async()).await
        {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(%err, "SLIM service shutdown failed"),
            Err(_) => warn!("SLIM service shutdown timed out"),
        }
        self.shared.apply(Event::Stop);
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

    /// Hands one message to SLIM. Returns once SLIM has taken it into the session; the
    /// acknowledgement is awaited in the background, bounded by the in-flight window.
    /// `Ok` means "SLIM took it", not "every member got it": SLIM gives no delivery receipt.
    pub async fn publish(
        &self,
        payload: Vec<u8>,
        payload_type: &str,
        metadata: HashMap<String, String>,
    ) -> Result<(), PublishError> {
        if payload.len() > self.shared.max_payload {
            return Err(PublishError::TooLarge {
                size: payload.len(),
                limit: self.shared.max_payload,
            });
        }
        let state = self.shared.status.borrow().state.clone();
        let session = match self.shared.session() {
            Some(session) if state.has_members() => session,
            _ => {
                return Err(PublishError::NotReady {
                    state: state.to_string(),
                })
            }
        };
        let permit = tokio::time::timeout(WINDOW_WAIT, self.shared.window.clone().acquire_owned())
            .await
            .map_err(|_| PublishError::Busy)?
            .map_err(|_| PublishError::Busy)?;
        let completion = session
            .publish_async(payload, Some(payload_type.to_string()), Some(metadata))
            .await
            .map_err(|e| PublishError::Slim(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(err) = completion.wait_for_async(COMPLETION_WAIT).await {
                warn!(%err, "a published message was not acknowledged by every member");
            }
            drop(permit);
        });
        Ok(())
    }
}
