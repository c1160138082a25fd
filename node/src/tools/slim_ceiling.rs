//! The raw SLIM ceiling: one app publishes fixed-size messages to another through a SLIM
//! server, in a group session with a node's settings (reliability, MLS, in-flight window) but
//! nothing of a node (no outbox, acknowledgements, packing or OTLP). What this carries is the
//! most any node on that server can.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use otlp::wire::{MESSAGE_ID_KEY, PROTOBUF, SIGNAL_KEY};
use slim_roles::{
    connect, group_config, is_timeout, max_payload_bytes, ClientTls, Identity, NodeConfig,
    OutboxLimits, Reliability, RoleConfig, RoleError, Secret, SlimName,
};

/// Longest wait for the session setup and for the next message before giving up on the rest.
const WAIT: Duration = Duration::from_secs(30);

/// What to measure.
#[derive(Debug, Clone)]
pub struct CeilingConfig {
    /// SLIM server URL.
    pub slim_url: String,
    /// TLS to an https:// server.
    pub tls: ClientTls,
    /// MLS on the session.
    pub mls: bool,
    /// SLIM's own session reliability (`None`: best effort, as nodes run).
    pub reliability: Option<Reliability>,
    /// Publishes awaiting SLIM's completion at once.
    pub window: usize,
    /// Payload bytes per message (at least 8: the send time travels in it).
    pub size: usize,
    /// Messages to publish.
    pub messages: u64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct CeilingRun {
    /// Messages published (SLIM took them).
    pub sent: u64,
    /// Messages the receiving app got.
    pub received: u64,
    /// From the first publish to the last message received.
    pub elapsed: Duration,
    /// Publish-to-receive latency of each message received.
    pub latencies: Vec<Duration>,
}

fn node_config(cfg: &CeilingConfig, name: SlimName, secret: &Secret) -> NodeConfig {
    NodeConfig {
        name,
        identity: Identity::SharedSecret(secret.clone()),
        slim_urls: vec![cfg.slim_url.clone()],
        role: RoleConfig::Participant,
        mls: cfg.mls,
        connect_attempts: 3,
        reliability: cfg.reliability,
        in_flight: cfg.window,
        outbox: OutboxLimits {
            max_bytes: 0,
            max_messages: 0,
            max_delay: None,
        },
        spool: None,
        tls: cfg.tls.clone(),
        // Two throw-away apps under fresh names: nothing to keep.
        state_dir: None,
    }
}

/// Runs one measurement: connects two apps under fresh names, sets up the group, publishes
/// `messages` messages and waits until all arrived (or none came for a while).
pub async fn measure(cfg: CeilingConfig) -> Result<CeilingRun, RoleError> {
    let limit = max_payload_bytes(cfg.mls);
    if cfg.size < 8 || cfg.size > limit {
        return Err(RoleError::Slim {
            operation: "benchmark setup",
            message: format!("the message size must be between 8 and {limit} bytes"),
        });
    }
    let run = uuid::Uuid::new_v4().simple().to_string();
    let name = |app: &str| -> Result<SlimName, RoleError> {
        Ok(format!("slim-bench/{run}/{app}").parse()?)
    };
    let secret = Secret::new(format!("{}{}", uuid::Uuid::new_v4().simple(), run))?;
    let sender_cfg = node_config(&cfg, name("sender")?, &secret);
    let receiver_cfg = node_config(&cfg, name("receiver")?, &secret);
    let sender = connect(&sender_cfg, "slim-bench-sender").await?;
    let receiver = connect(&receiver_cfg, "slim-bench-receiver").await?;

    let created = sender
        .app
        .create_session_async(
            group_config(cfg.reliability, cfg.mls),
            name("channel")?.to_slim(),
        )
        .await
        .map_err(|e| RoleError::slim("session creation", e))?;
    created
        .completion
        .wait_for_async(WAIT)
        .await
        .map_err(|e| RoleError::slim("session creation", e))?;
    let session = created.session;
    let listening = {
        let app = receiver.app.clone();
        tokio::spawn(async move { app.listen_for_session_async(Some(WAIT)).await })
    };
    let receiver_name = receiver_cfg.name.to_slim();
    sender
        .app
        .set_route_async(receiver_name.clone(), sender.conn_id)
        .await
        .map_err(|e| RoleError::slim("route", e))?;
    session
        .invite_async(receiver_name)
        .await
        .map_err(|e| RoleError::slim("invite", e))?
        .wait_for_async(WAIT)
        .await
        .map_err(|e| RoleError::slim("invite", e))?;
    let joined = listening
        .await
        .map_err(|e| RoleError::slim("join", e))?
        .map_err(|e| RoleError::slim("join", e))?;

    let origin = Instant::now();
    let expected = cfg.messages;
    let receiving = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(expected as usize);
        let mut last = origin;
        while (latencies.len() as u64) < expected {
            match joined.get_message_async(Some(WAIT)).await {
                Ok(msg) => {
                    let stamp: [u8; 8] = msg
                        .payload
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or_default();
                    let sent = Duration::from_nanos(u64::from_le_bytes(stamp));
                    last = Instant::now();
                    latencies.push(last.duration_since(origin).saturating_sub(sent));
                }
                // Nothing for WAIT: what is still missing is not coming.
                Err(err) if is_timeout(&err) => break,
                Err(_) => continue,
            }
        }
        (latencies, last)
    });

    let window = Arc::new(Semaphore::new(cfg.window.max(1)));
    let mut sent = 0;
    for _ in 0..cfg.messages {
        let Ok(permit) = window.clone().acquire_owned().await else {
            break;
        };
        let mut payload = vec![0u8; cfg.size];
        let stamp = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        payload[..8].copy_from_slice(&stamp.to_le_bytes());
        // Metadata like a node's, so that the messages weigh the same on the wire.
        let metadata = HashMap::from([
            (SIGNAL_KEY.to_string(), "traces".to_string()),
            (MESSAGE_ID_KEY.to_string(), uuid::Uuid::new_v4().to_string()),
        ]);
        let completion = session
            .publish_async(payload, Some(PROTOBUF.into()), Some(metadata))
            .await
            .map_err(|e| RoleError::slim("publish", e))?;
        sent += 1;
        tokio::spawn(async move {
            let _ = completion.wait_for_async(WAIT).await;
            drop(permit);
        });
    }
    let (latencies, last) = receiving.await.map_err(|e| RoleError::slim("receive", e))?;
    if let Ok(done) = sender.app.delete_session_async(session).await {
        let _ = done.wait_for_async(Duration::from_secs(5)).await;
    }
    Ok(CeilingRun {
        sent,
        received: latencies.len() as u64,
        elapsed: last.duration_since(origin),
        latencies,
    })
}
