//! The participant: waits for invitations, joins each, and keeps listening: a moderator that
//! restarted (or re-created its group) invites again, and the participant moves to the new
//! session on that channel — SLIM never tells it that the old group lost its moderator. It can
//! be on several channels at once (slim-otel's exporter makes one per signal).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use slim_bindings::Session;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ctx::RoleCtx;
use crate::delivery::liveness::OFFLINE_AFTER;
use crate::delivery::receive::{receive_until_closed, ReceiveEnd};
use crate::delivery::sender;
use crate::health::LinkState;
use crate::slim::completion::completed;
use crate::slim::connection::is_timeout;
use crate::state::Event;

/// How one session ended.
enum Outcome {
    /// SLIM closed it, or the node stops.
    Ended(ReceiveEnd),
    /// Told to stop: a newer invitation to its channel replaces it, or the node stops.
    Stopped,
    /// Nothing was heard from the group for [`OFFLINE_AFTER`] with the link up.
    Abandoned,
}

/// A session the participant takes part in.
struct Joined {
    /// Tells this session from a later one on the same channel.
    generation: u64,
    session: Arc<Session>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Takes every invitation, each channel's in a session of its own: a slim-node channel and,
/// say, slim-otel's per-signal channels at once. A new invitation to a channel it is on
/// replaces that session (its moderator restarted or re-created the group).
pub(crate) async fn run(ctx: RoleCtx) {
    ctx.shared.apply(Event::Listening);
    let mut joined: HashMap<String, Joined> = HashMap::new();
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<(String, u64)>();
    let mut generation = 0;
    loop {
        tokio::select! {
            invited = next_invitation(&ctx) => {
                let Some(session) = invited else { break };
                let channel = session
                    .destination()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into());
                generation += 1;
                let id = generation;
                if let Some(old) = joined.remove(&channel) {
                    info!(%channel, "invited into a new group session on a channel already joined; leaving the old one");
                    old.stop.cancel();
                    let _ = old.task.await;
                    leave(&ctx, old.session).await;
                } else {
                    info!(%channel, "invited to a group session");
                }
                ctx.shared.set_channel(Some(channel.clone()));
                ctx.shared.apply(Event::Invited);
                let stop = ctx.cancel.child_token();
                let task = {
                    let (ctx, session, stop) = (ctx.clone(), session.clone(), stop.clone());
                    let (ended_tx, channel) = (ended_tx.clone(), channel.clone());
                    tokio::spawn(async move {
                        let outcome = take_part(&ctx, session.clone(), stop).await;
                        match outcome {
                            Outcome::Stopped | Outcome::Ended(ReceiveEnd::Cancelled) => return,
                            Outcome::Ended(ReceiveEnd::Closed) => {
                                info!(%channel, "the group session closed; waiting for a new invitation");
                            }
                            Outcome::Abandoned => {
                                warn!(%channel, silent_for = ?OFFLINE_AFTER, "nothing heard from the group with the link up: the moderator removed this node while it was away, or is gone; leaving the session to be invited again");
                                leave(&ctx, session).await;
                            }
                        }
                        let _ = ended_tx.send((channel, id));
                    })
                };
                joined.insert(channel, Joined { generation: id, session, stop, task });
            }
            Some((channel, id)) = ended.recv() => {
                // Unless a newer session on the channel took its place meanwhile.
                if joined.get(&channel).is_some_and(|j| j.generation == id) {
                    joined.remove(&channel);
                }
                if joined.is_empty() {
                    ctx.shared.apply(Event::SessionClosed);
                }
            }
        }
    }
    for (_, j) in joined.drain() {
        j.stop.cancel();
        let _ = j.task.await;
    }
}

/// Takes part in one session until it ends or `stop` fires. Until a slim-node member speaks
/// in it (a ping, or a message asking for acknowledgement) it only receives: a channel of
/// slim-otel's exporter carries raw requests, and there the participant neither publishes nor
/// judges the group by its silence. On a slim-node channel it also publishes its own outbox
/// (a receiver that is a participant), and leaves a group gone silent.
async fn take_part(ctx: &RoleCtx, session: Arc<Session>, stop: CancellationToken) -> Outcome {
    let (spoke, mut spoken) = watch::channel(false);
    let receiving = receive_until_closed(ctx, session.clone(), stop.clone(), spoke);
    tokio::pin!(receiving);
    tokio::select! {
        end = &mut receiving => return Outcome::Ended(end),
        _ = stop.cancelled() => return Outcome::Stopped,
        heard = async { spoken.wait_for(|s| *s).await.is_ok() } => if !heard {
            return Outcome::Ended((&mut receiving).await);
        },
    }
    loop {
        let stop_sender = stop.child_token();
        let sender = tokio::spawn(sender::run(
            ctx.clone(),
            session.clone(),
            stop_sender.clone(),
        ));
        let outcome = tokio::select! {
            end = &mut receiving => Some(Outcome::Ended(end)),
            _ = stop.cancelled() => Some(Outcome::Stopped),
            // The watchdog found publishing stalled: the sender starts again.
            _ = sender::stalled(ctx) => None,
            _ = group_silent(ctx) => Some(Outcome::Abandoned),
        };
        stop_sender.cancel();
        let _ = sender.await;
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

/// Leaves `session`; best effort: the old group may have no moderator left to answer.
async fn leave(ctx: &RoleCtx, session: Arc<Session>) {
    if let Ok(done) = ctx.conn.app.delete_session_async(session).await {
        tokio::spawn(completed(done, Duration::from_secs(5)));
    }
}

/// Resolves once nothing was heard from any member (data, acknowledgement or ping; the
/// moderator pings every second) for [`OFFLINE_AFTER`] while the link was up. A member the
/// moderator removed while it was unreachable never learns it (the removal did not reach it):
/// SLIM keeps it in its old session, which gets nothing any more and hides the invitations
/// into the group. Leaving it lets the next invitation in.
async fn group_silent(ctx: &RoleCtx) {
    let joined = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let link = ctx.shared.link.get();
        if link.state != LinkState::Connected {
            continue;
        }
        let now = std::time::Instant::now();
        let up_for = link.since.elapsed().unwrap_or_default();
        let heard = ctx.shared.heard.latest().map_or(joined, |t| t.max(joined));
        let silence = now.saturating_duration_since(heard).min(up_for);
        if silence >= OFFLINE_AFTER {
            return;
        }
    }
}

/// The next invitation, or `None` when the node stops.
async fn next_invitation(ctx: &RoleCtx) -> Option<Arc<Session>> {
    loop {
        let listened = tokio::select! {
            _ = ctx.cancel.cancelled() => return None,
            r = ctx.conn.app.listen_for_session_async(Some(Duration::from_secs(1))) => r,
        };
        match listened {
            Ok(session) => return Some(session),
            Err(err) if is_timeout(&err) => continue,
            Err(err) => {
                warn!(%err, "waiting for an invitation failed; trying again");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
