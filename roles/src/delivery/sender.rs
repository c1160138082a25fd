//! The sender: publishes what the outbox says is due, packed into as few SLIM messages as
//! fit under the cap. Full frames are pipelined (up to [`MAX_IN_FLIGHT`] awaiting SLIM's
//! completion); frames that are not full also need one of the few partial-frame permits, so
//! that under load what arrives meanwhile accumulates in the outbox and travels packed.
//!
//! Sessions run without SLIM's own reliability, so a completion says that the session took the
//! message, never that a member did. A frame stays in flight until the first acknowledgement
//! of it from any member (or [`GATE_WAIT`]): the fastest member paces the sender, and one that
//! hangs among others holds no permit. The sender also
//! keeps the outbox told which members are away, and a watchdog ([`stalled`]) sees when
//! publishing stops while there is something to send and a member to take it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slim_bindings::Session;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::delivery::frame;
use crate::slim::completion::completed;
use otlp::wire::{PING_ID_KEY, PING_PAYLOAD_TYPE};

use crate::ctx::RoleCtx;
use crate::delivery::liveness::PING_EVERY;
use crate::state::State;

/// First wait for an acknowledgement before sending again (SLIM's own retransmission,
/// 5 × 1 s, has given up by then); it doubles with each send.
const RESEND_AFTER: Duration = Duration::from_secs(6);
/// How often due messages are looked for without a wake-up.
const TICK: Duration = Duration::from_millis(500);
/// How often the outbox is told who is away.
pub(crate) const AWAY_EVERY: Duration = Duration::from_millis(250);
/// How often the session's member list is read.
const MEMBERS_REFRESH: Duration = Duration::from_secs(2);
/// Publishes awaiting SLIM's completion at once: unbounded, SLIM deadlocks (measured at ~8k);
/// 256 was the best trade-off measured.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// How long a completion is awaited; SLIM can leave handles unresolved forever. Without SLIM's
/// reliability a completion resolves as soon as the session takes the message: a wait this
/// long means the session's loop is stuck, and the watchdog sees to it.
pub(crate) const COMPLETION_WAIT: Duration = Duration::from_secs(10);
/// Longest a frame counts as in flight without an acknowledgement from any member (when none
/// answers, or the only one refuses data). As long as the first re-send: meanwhile at most one
/// window of frames goes out into SLIM's queues, and re-sends find their permits.
const GATE_WAIT: Duration = RESEND_AFTER;
/// Longest wait for SLIM's member list: it is answered by the session's own loop.
const LIST_WAIT: Duration = Duration::from_secs(1);
/// Publishing is stalled when a message waits unsent this long, nothing was published for as
/// long, and a member is live to take it.
pub(crate) const WATCHDOG_AFTER: Duration = Duration::from_secs(10);

/// Runs for one session; returns when `cancel` fires.
pub(crate) async fn run(ctx: RoleCtx, session: Arc<Session>, cancel: CancellationToken) {
    let own = ctx.cfg.name.to_string();
    let mut tick = tokio::time::interval(TICK);
    let mut listed: Option<Instant> = None;
    let mut pinged: Option<Instant> = None;
    let mut pings: u64 = 0;
    let mut judged: Option<Instant> = None;
    let mut all_away = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ctx.shared.outbox.wake.notified() => {}
            _ = tick.tick() => {}
        }
        // Who is away changes on the scale of seconds: not worth working out on every wake-up.
        if judged.is_none_or(|at| at.elapsed() >= AWAY_EVERY) {
            let now = Instant::now();
            let view = ctx.shared.member_view(now);
            all_away = !view.live;
            ctx.shared.outbox.set_members(view);
            judged = Some(now);
        }
        // SLIM silently drops what is published while nobody is there to receive it.
        if !ctx.shared.state_is(State::has_members) {
            continue;
        }
        if pinged.is_none_or(|at| at.elapsed() >= PING_EVERY) {
            pinged = Some(Instant::now());
            pings += 1;
            ping(&ctx, &session, pings).await;
        }
        // Asking SLIM for the member list on every wake-up would put a round trip on the
        // publish path; members change rarely (the moderator's joins arrive as events).
        if listed.is_none_or(|at| at.elapsed() >= MEMBERS_REFRESH) {
            note_listed_members(&ctx, &session, &own).await;
            listed = Some(Instant::now());
        }
        let members = ctx.shared.known_members();
        if members.is_empty() {
            // Nobody would be required to acknowledge: the message would count as delivered.
            continue;
        }
        // Nobody answers (the link is down, or every member hangs): what is published now
        // would only fill SLIM's queues. It waits here, and a member that answers again gets
        // all of it at once; pings go on meanwhile.
        if all_away {
            continue;
        }
        let due = ctx
            .shared
            .outbox
            .due(Instant::now(), &members, RESEND_AFTER);
        let cap = frame::TARGET_BYTES.min(ctx.shared.max_payload);
        for planned in frame::pack(due, cap) {
            let partial = if planned.is_full() {
                None
            } else {
                match acquire(&ctx.shared.partial_window, 1, &cancel).await {
                    Some(p) => Some(p),
                    None => return,
                }
            };
            let frame = planned.build();
            let permits = frame::window_permits(frame.payload.len(), MAX_IN_FLIGHT);
            let Some(permit) = acquire(&ctx.shared.window, permits, &cancel).await else {
                return;
            };
            let messages = frame.ids.len();
            let bytes = frame.payload.len();
            let gate = Arc::new(Notify::new());
            ctx.shared.outbox.gate(&frame.ids, &gate);
            let published_at = tokio::time::Instant::now();
            let published = session
                .publish_async(
                    frame.payload,
                    Some(frame.payload_type),
                    Some(frame.metadata),
                )
                .await;
            match published {
                Ok(completion) => {
                    ctx.shared.outbox.count_published(messages, bytes);
                    tokio::spawn(async move {
                        if let Err(err) = completed(completion, COMPLETION_WAIT).await {
                            debug!(%err, "SLIM did not confirm a publish; the outbox re-sends it");
                        }
                        // In flight until a member acknowledged it (the session taking it
                        // says nothing of the way to the members), for GATE_WAIT at most.
                        let _ = tokio::time::timeout_at(published_at + GATE_WAIT, gate.notified())
                            .await;
                        drop((permit, partial));
                    });
                }
                // It stays in the outbox and is sent again.
                Err(err) => warn!(messages, first = ?frame.ids.first(), %err,
                    "SLIM refused a publish"),
            }
        }
    }
}

/// Pings the group: every member acknowledges it, so each is heard from at least once a
/// second even on a quiet channel. Skipped when the publish window is full: the
/// acknowledgements of that data are heard from then.
async fn ping(ctx: &RoleCtx, session: &Session, n: u64) {
    let Ok(permit) = ctx.shared.window.clone().try_acquire_owned() else {
        return;
    };
    let metadata = std::collections::HashMap::from([(PING_ID_KEY.to_string(), n.to_string())]);
    match session
        .publish_async(
            b"ping".to_vec(),
            Some(PING_PAYLOAD_TYPE.to_string()),
            Some(metadata),
        )
        .await
    {
        Ok(completion) => {
            tokio::spawn(async move {
                let _ = completed(completion, COMPLETION_WAIT).await;
                drop(permit);
            });
        }
        Err(err) => debug!(%err, "SLIM refused a ping"),
    }
}

/// `n` permits of `window`, or `None` when the sender stops first.
async fn acquire(
    window: &Arc<Semaphore>,
    n: u32,
    cancel: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    tokio::select! {
        _ = cancel.cancelled() => None,
        p = window.clone().acquire_many_owned(n) => p.ok(),
    }
}

/// Records whoever the session lists besides us as members. Who must acknowledge what is
/// sent is every member that ever joined, so one that is away gets it when it is back.
async fn note_listed_members(ctx: &RoleCtx, session: &Session, own: &str) {
    if let Ok(Ok(list)) = tokio::time::timeout(LIST_WAIT, session.participants_list_async()).await {
        ctx.shared.note_members(
            list.iter()
                .map(|p| p.name.to_string())
                .filter(|name| name != own),
        );
    }
}

/// Resolves once publishing is stalled: a message taken [`WATCHDOG_AFTER`] ago is still unsent,
/// SLIM took nothing from this node for as long, and a member is live to take it. Logs why.
/// The caller recovers: a moderator creates its session again, a participant restarts its
/// sender.
pub(crate) async fn stalled(ctx: &RoleCtx) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let bound = WATCHDOG_AFTER.as_millis() as u64;
    // What was started after the last recovery gets as long to show it works.
    let started = Instant::now();
    loop {
        tick.tick().await;
        if started.elapsed() < WATCHDOG_AFTER {
            continue;
        }
        let stats = ctx.shared.outbox.stats();
        let unsent = stats.oldest_unsent_ms.filter(|ms| *ms >= bound);
        let quiet = stats.last_published_ms.is_none_or(|ms| ms >= bound);
        let live = ctx.shared.state().has_members() && ctx.shared.member_view(Instant::now()).live;
        if let (Some(unsent_ms), true, true) = (unsent, quiet, live) {
            warn!(
                unsent_ms,
                last_published_ms = stats.last_published_ms,
                messages = stats.messages,
                "publishing is stalled: a member is live but nothing was sent for {} s; recovering",
                WATCHDOG_AFTER.as_secs()
            );
            return;
        }
    }
}
