//! The participant: waits for an invitation, joins, and keeps listening: a moderator that
//! restarted (or re-created its group) invites again, and the participant moves to the new
//! session — SLIM never tells it that the old group lost its moderator.

use std::sync::Arc;
use std::time::Duration;

use slim_bindings::Session;
use tracing::{info, warn};

use crate::ctx::RoleCtx;
use crate::delivery::liveness::OFFLINE_AFTER;
use crate::delivery::receive::{receive_until_closed, ReceiveEnd};
use crate::delivery::sender;
use crate::health::LinkState;
use crate::slim::connection::is_timeout;
use crate::state::Event;

/// How one session ended.
enum Outcome {
    Ended(ReceiveEnd),
    Replaced(Arc<Session>),
    Stopped,
    /// The watchdog found publishing stalled: the sender starts again on the same session.
    Stalled(Arc<Session>),
    /// Nothing was heard from the group for [`OFFLINE_AFTER`] with the link up.
    Abandoned,
}

pub(crate) async fn run(ctx: RoleCtx) {
    ctx.shared.apply(Event::Listening);
    let mut next: Option<Arc<Session>> = None;
    loop {
        let session = match next.take() {
            Some(s) => s,
            None => match next_invitation(&ctx).await {
                Some(s) => s,
                None => return,
            },
        };
        let channel = session.destination().map(|n| n.to_string()).ok();
        info!(
            channel = channel.as_deref().unwrap_or("?"),
            "invited to a group session"
        );
        ctx.shared.set_channel(channel);
        ctx.shared.apply(Event::Invited);

        let stop_sender = ctx.cancel.child_token();
        let sender = tokio::spawn(sender::run(
            ctx.clone(),
            session.clone(),
            stop_sender.clone(),
        ));
        let outcome = tokio::select! {
            end = receive_until_closed(&ctx, session.clone(), ctx.cancel.clone()) => Outcome::Ended(end),
            newer = next_invitation(&ctx) => match newer {
                Some(s) => Outcome::Replaced(s),
                None => Outcome::Stopped,
            },
            _ = sender::stalled(&ctx) => Outcome::Stalled(session.clone()),
            _ = group_silent(&ctx) => Outcome::Abandoned,
        };
        stop_sender.cancel();
        let _ = sender.await;
        match outcome {
            Outcome::Ended(ReceiveEnd::Cancelled) | Outcome::Stopped => return,
            Outcome::Ended(ReceiveEnd::Closed) => {
                ctx.shared.apply(Event::SessionClosed);
                info!("the group session closed; waiting for a new invitation");
            }
            Outcome::Stalled(same) => next = Some(same),
            Outcome::Abandoned => {
                warn!(silent_for = ?OFFLINE_AFTER, "nothing heard from the group with the link up: the moderator removed this node while it was away, or is gone; leaving the session to be invited again");
                leave(&ctx, session).await;
                ctx.shared.apply(Event::SessionClosed);
            }
            Outcome::Replaced(newer) => {
                info!("invited into a new group session; leaving the old one");
                leave(&ctx, session).await;
                next = Some(newer);
            }
        }
    }
}

/// Leaves `session`; best effort: the old group may have no moderator left to answer.
async fn leave(ctx: &RoleCtx, session: Arc<Session>) {
    if let Ok(done) = ctx.conn.app.delete_session_async(session).await {
        tokio::spawn(done.wait_for_async(Duration::from_secs(5)));
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
