//! The signal-channel moderator: each signal on a group channel of its own, as the
//! OpenTelemetry Collector's SLIM exporter (agntcy/slim-otel) publishes it: one message per
//! OTLP request, holding the request's protobuf bytes and nothing else (no payload type, no
//! metadata, no pings, nothing packed), in a session with SLIM's own reliability (10 retries,
//! 1 s apart, as slim-otel's). Such consumers acknowledge nothing slim-node can read: SLIM's
//! completion of the publish is the acknowledgement, and the outbox keeps each request until
//! it completed with every member in the session (and re-sends it otherwise).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otlp::Signal;
use slim_bindings::Session;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::{Reliability, SignalChannel};
use crate::ctx::RoleCtx;
use crate::delivery::sender::AWAY_EVERY;
use crate::error::RoleError;
use crate::role::moderator::{self, group_config, Answers};
use crate::slim::completion::completed;
use crate::state::Event;

/// slim-otel's session reliability.
const RELIABILITY: Reliability = Reliability {
    max_retries: 10,
    interval: Duration::from_secs(1),
};
/// Longest wait for SLIM's completion of one publish: its retries (10 × 1 s) and some.
const COMPLETION_WAIT: Duration = Duration::from_secs(20);
/// A request not completed is sent again after this (SLIM's own retries are over by then).
const RESEND_AFTER: Duration = Duration::from_secs(30);
/// How often due requests are looked for without a wake-up.
const TICK: Duration = Duration::from_millis(500);

/// One signal's session.
struct Carrier {
    signal: Signal,
    session: Arc<Session>,
}

/// Runs the role until the node stops: the sessions, and again after SLIM closed them or
/// every member was lost.
pub(crate) async fn run(ctx: RoleCtx, channels: Vec<SignalChannel>) {
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let delay = match sessions_lifetime(&ctx, &channels).await {
            Ok(true) => return,
            Ok(false) => {
                retry.reset();
                Duration::ZERO
            }
            Err(err) => {
                warn!(%err, "could not set up the signal channels");
                retry.next_delay()
            }
        };
        ctx.shared.apply(Event::SessionClosed);
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One session per channel, from creation to close; `Ok(true)` once the node stops.
async fn sessions_lifetime(ctx: &RoleCtx, channels: &[SignalChannel]) -> Result<bool, RoleError> {
    let config = || group_config(Some(RELIABILITY), ctx.cfg.mls);
    let mut carriers = Vec::with_capacity(channels.len());
    for sc in channels {
        let session = moderator::create_group(ctx, &sc.channel, config()).await;
        match session {
            Ok(session) => carriers.push(Carrier {
                signal: sc.signal,
                session,
            }),
            Err(err) => {
                close_all(ctx, carriers).await;
                return Err(err);
            }
        }
    }
    ctx.shared.apply(Event::SessionCreated);
    let names: Vec<String> = channels.iter().map(ToString::to_string).collect();
    info!(channels = %names.join(","), mls = ctx.cfg.mls, "signal channels created");
    let invite = ctx.shared.invitees();
    ctx.shared.apply(Event::InvitesStarted(
        invite.iter().map(ToString::to_string).collect(),
    ));
    let lifetime = ctx.cancel.child_token();
    let sessions = carriers.iter().map(|c| c.session.clone()).collect();
    let members = tokio::spawn(moderator::manage_members(
        ctx.clone(),
        sessions,
        invite,
        lifetime.clone(),
        Answers::Nothing,
    ));
    publish(ctx, &carriers, &lifetime).await;
    lifetime.cancel();
    members.abort();
    let stopping = ctx.cancel.is_cancelled();
    if stopping {
        close_all(ctx, carriers).await;
    } else {
        let ctx = ctx.clone();
        tokio::spawn(async move { close_all(&ctx, carriers).await });
    }
    Ok(stopping)
}

async fn close_all(ctx: &RoleCtx, carriers: Vec<Carrier>) {
    for c in carriers {
        moderator::close(ctx, c.session).await;
    }
}

/// Publishes what the outbox says is due on its signal's session until `lifetime` ends.
async fn publish(ctx: &RoleCtx, carriers: &[Carrier], lifetime: &CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    let mut judged: Option<Instant> = None;
    let mut live = false;
    loop {
        tokio::select! {
            _ = lifetime.cancelled() => return,
            _ = ctx.shared.outbox.wake.notified() => {}
            _ = tick.tick() => {}
        }
        // Who is away changes on the scale of seconds, as for the slim-node sender.
        if judged.is_none_or(|at| at.elapsed() >= AWAY_EVERY) {
            let now = Instant::now();
            let view = ctx.shared.member_view(now);
            live = view.live;
            ctx.shared.outbox.set_members(view);
            judged = Some(now);
        }
        let members = ctx.shared.known_members();
        // SLIM drops what is published while nobody is there to take it.
        if !ctx.shared.state().has_members() || members.is_empty() || !live {
            continue;
        }
        let due = ctx
            .shared
            .outbox
            .due(Instant::now(), &members, RESEND_AFTER);
        // Shared by the completions of this round's publishes.
        let members = Arc::new(members);
        for msg in due {
            let signal = msg.metadata.get(otlp::wire::SIGNAL_KEY);
            let Some(carrier) = carriers
                .iter()
                .find(|c| signal.is_some_and(|s| s == c.signal.as_str()))
            else {
                // Refused at the receiver (`PublishError::NoChannel`); only a spool written
                // with other settings can hold one.
                warn!(id = %msg.id, signal = ?signal, "no channel for this signal; the message waits in the outbox");
                continue;
            };
            let permit = tokio::select! {
                _ = lifetime.cancelled() => return,
                p = ctx.shared.window.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let published = carrier
                .session
                .publish_async(msg.payload.clone(), None, None)
                .await;
            match published {
                Ok(completion) => {
                    ctx.shared.outbox.count_published(1, msg.payload.len());
                    let (shared, members) = (ctx.shared.clone(), members.clone());
                    tokio::spawn(async move {
                        match completed(completion, COMPLETION_WAIT).await {
                            Ok(()) => acknowledge(&shared, &members, &msg.id),
                            Err(err) => {
                                debug!(id = %msg.id, %err, "SLIM did not complete a publish; it is sent again")
                            }
                        }
                        drop(permit);
                    });
                }
                Err(err) => warn!(id = %msg.id, %err, "SLIM refused a publish; it is sent again"),
            }
        }
    }
}

/// SLIM completed the publish of `id` with the session's members: it counts as acknowledged
/// by each.
fn acknowledge(shared: &crate::ctx::Shared, members: &BTreeSet<String>, id: &str) {
    for member in members {
        shared.outbox.ack(member, [id]);
    }
}
