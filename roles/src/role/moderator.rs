//! The moderator: creates the group session on the channel and invites until everyone joined.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use slim_bindings::{MlsSettings, Session, SessionConfig, SessionType};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::Reliability;
use crate::ctx::RoleCtx;
use crate::delivery::liveness::OFFLINE_AFTER;
use crate::delivery::receive::{receive_until_closed, ReceiveEnd};
use crate::delivery::sender;
use crate::error::RoleError;
use crate::health::LinkState;
use crate::name::SlimName;
use crate::slim::completion::completed;
use crate::state::Event;

/// Longest wait for SLIM to set up a session or finish one invite.
const CONTROL_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for the group to close on shutdown.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How one group session ended.
enum SessionEnd {
    /// The node stops.
    Stopped,
    /// SLIM closed it.
    Closed,
    /// The moderator gave it up (it lost every member, or delivery stalled): a fresh one
    /// is created at once.
    Renew,
}

pub(crate) async fn run(ctx: RoleCtx, channel: SlimName) {
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let delay = match session_lifetime(&ctx, &channel).await {
            Ok(SessionEnd::Stopped) => return,
            Ok(SessionEnd::Renew) => {
                retry.reset();
                Duration::ZERO
            }
            Ok(SessionEnd::Closed) => {
                warn!(%channel, "the group session closed; creating it again");
                retry.reset();
                retry.next_delay()
            }
            Err(err) => {
                warn!(%channel, %err, "could not set up the group session");
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

/// The settings of a node's group session: SLIM's reliability when given (its acks and
/// retransmission are on only when both retries and interval are set), MLS when asked.
pub fn group_config(reliability: Option<Reliability>, mls: bool) -> SessionConfig {
    SessionConfig {
        session_type: SessionType::Group,
        max_retries: reliability.map(|r| r.max_retries),
        interval: reliability.map(|r| r.interval),
        metadata: Default::default(),
        mls_settings: mls.then(MlsSettings::default),
    }
}

/// Creates a group session on `channel` and waits until SLIM set it up.
pub(crate) async fn create_group(
    ctx: &RoleCtx,
    channel: &SlimName,
    config: SessionConfig,
) -> Result<Arc<Session>, RoleError> {
    let created = ctx
        .conn
        .app
        .create_session_async(config, channel.to_slim())
        .await
        .map_err(|e| RoleError::slim("session creation", e))?;
    completed(created.completion, CONTROL_WAIT)
        .await
        .map_err(|e| RoleError::slim("session creation", e))?;
    Ok(created.session)
}

/// One group session from creation to close.
async fn session_lifetime(ctx: &RoleCtx, channel: &SlimName) -> Result<SessionEnd, RoleError> {
    let config = group_config(ctx.cfg.reliability, ctx.cfg.mls);
    let session = create_group(ctx, channel, config).await?;
    ctx.shared.apply(Event::SessionCreated);
    info!(%channel, mls = ctx.cfg.mls, "group session created");
    let invite = ctx.shared.invitees();
    ctx.shared.apply(Event::InvitesStarted(
        invite.iter().map(ToString::to_string).collect(),
    ));

    // Ended by the node stopping, or by the watchdog when SLIM stopped delivering.
    let lifetime = ctx.cancel.child_token();
    ctx.shared.outbox.reset_progress(std::time::Instant::now());
    let inviter = tokio::spawn(manage_members(
        ctx.clone(),
        vec![session.clone()],
        invite,
        lifetime.clone(),
        Answers::Pings,
    ));
    let sender = tokio::spawn(sender::run(ctx.clone(), session.clone(), lifetime.clone()));
    // The watchdog: a session whose publishing stalled is given up, and a fresh one invited.
    let watchdog = {
        let (ctx, lifetime) = (ctx.clone(), lifetime.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = sender::stalled(&ctx) => lifetime.cancel(),
                _ = lifetime.cancelled() => {}
            }
        })
    };
    let (spoke, _) = tokio::sync::watch::channel(false);
    let end = receive_until_closed(ctx, session.clone(), lifetime.clone(), spoke).await;
    watchdog.abort();
    lifetime.cancel();
    inviter.abort();
    let _ = sender.await;
    match end {
        ReceiveEnd::Closed => Ok(SessionEnd::Closed),
        ReceiveEnd::Cancelled if ctx.cancel.is_cancelled() => {
            close(ctx, session).await;
            Ok(SessionEnd::Stopped)
        }
        // Given up: start over with a new session at once; members follow the new
        // invitation. Closing the old one waits for members that may be gone: not for that.
        ReceiveEnd::Cancelled => {
            let ctx = ctx.clone();
            tokio::spawn(async move { close(&ctx, session).await });
            Ok(SessionEnd::Renew)
        }
    }
}

/// How often the moderator checks that its members are still online.
const MEMBER_CHECK: Duration = Duration::from_secs(1);
/// The group session is re-created when a message was sent this many times and nothing at
/// all was acknowledged for this long.
const STALL_SENDS: u32 = 3;
const STALL_QUIET: Duration = Duration::from_secs(45);
/// Invitations are retried from this delay, doubling up to [`INVITE_MAX_DELAY`]: a member that
/// was away (a host that hung, a link that was cut) is back in the group seconds after it
/// answers again.
const INVITE_FIRST_DELAY: Duration = Duration::from_millis(500);
const INVITE_MAX_DELAY: Duration = Duration::from_secs(3);
/// Longest wait for SLIM's member list: it is answered by the session's own loop.
const LIST_WAIT: Duration = Duration::from_secs(2);

/// How the members of a moderator's sessions show they are there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answers {
    /// They acknowledge data and pings (slim-node members): one silent for
    /// [`OFFLINE_AFTER`] is offline.
    Pings,
    /// They send nothing back (slim-otel's receiver): SLIM's member list alone tells.
    Nothing,
}

/// Invites every name into every session, retrying each with its own backoff until it joins
/// (and names an administrator adds later; those removed leave the group): invitees may start
/// after the moderator, and SLIM fails an invite to a name that is not up yet. Then watches the
/// members: SLIM reports no error when one crashes, only lists it Offline, and keeps nothing
/// for it; an offline member is removed and invited again until it is back. Invitations and
/// removals run on tasks of their own: SLIM takes seconds to give up on a member that hangs,
/// and the other members are watched meanwhile.
pub(crate) async fn manage_members(
    ctx: RoleCtx,
    sessions: Vec<Arc<Session>>,
    names: BTreeSet<SlimName>,
    lifetime: CancellationToken,
    answers: Answers,
) {
    let new_backoff = || Backoff::new(INVITE_FIRST_DELAY, INVITE_MAX_DELAY);
    let mut pending: BTreeMap<SlimName, (Instant, Backoff)> = names
        .into_iter()
        .map(|n| (n, (Instant::now(), new_backoff())))
        .collect();
    // Invitations under way; their outcome comes back on `done`.
    let mut inviting: BTreeSet<SlimName> = BTreeSet::new();
    let (done_tx, mut done) =
        tokio::sync::mpsc::unbounded_channel::<(SlimName, Result<(), RoleError>)>();
    let mut joined: BTreeSet<SlimName> = BTreeSet::new();
    let mut check = tokio::time::interval(MEMBER_CHECK);
    loop {
        let next_invite = pending
            .iter()
            .filter(|(name, _)| !inviting.contains(*name))
            .map(|(_, (at, _))| *at)
            .min();
        let invite_due = async {
            match next_invite {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = invite_due => {
                let due: Vec<SlimName> = pending
                    .iter()
                    .filter(|(name, (at, _))| *at <= Instant::now() && !inviting.contains(*name))
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in due {
                    inviting.insert(name.clone());
                    let (ctx, sessions, done_tx) = (ctx.clone(), sessions.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let result = invite_one(&ctx, &sessions, &name).await;
                        let _ = done_tx.send((name, result));
                    });
                }
            }
            Some((name, result)) = done.recv() => {
                inviting.remove(&name);
                // Removed by an administrator meanwhile: its outcome no longer matters.
                let Some((at, backoff)) = pending.get_mut(&name) else { continue };
                match result {
                    Ok(()) => {
                        info!(invitee = %name, "invitee joined");
                        pending.remove(&name);
                        joined.insert(name.clone());
                        ctx.shared.apply(Event::MemberJoined(name.to_string()));
                    }
                    Err(err) => {
                        let delay = backoff.next_delay();
                        debug!(invitee = %name, %err, retry_in = ?delay, "invite not accepted yet");
                        *at = Instant::now() + delay;
                    }
                }
            }
            _ = ctx.shared.invitees_changed.notified() => {
                let wanted = ctx.shared.invitees();
                for name in &wanted {
                    if !pending.contains_key(name) && !joined.contains(name) {
                        pending.insert(name.clone(), (Instant::now(), new_backoff()));
                    }
                }
                pending.retain(|name, _| wanted.contains(name));
                let gone: Vec<SlimName> = joined.difference(&wanted).cloned().collect();
                for name in gone {
                    info!(member = %name, "removing a member from the group");
                    remove_member(&sessions, &name);
                    joined.remove(&name);
                }
            }
            _ = check.tick(), if !joined.is_empty() => {
                if ctx.shared.outbox.stalled(std::time::Instant::now(), STALL_SENDS, STALL_QUIET) {
                    warn!(quiet = ?STALL_QUIET, "members are online but nothing was acknowledged despite re-sends; re-creating the group session");
                    lifetime.cancel();
                    return;
                }
                let offline = offline_members(&ctx, &sessions, &joined, answers).await;
                if !offline.is_empty() && offline.len() == joined.len() {
                    // SLIM replays a session's last 512 messages to the next member that joins
                    // a group left without receivers (and keeps them for whoever comes next):
                    // a fresh session gives the returning members only what is sent from now
                    // on, and the outbox re-sends what they did not acknowledge.
                    for name in &offline {
                        warn!(member = %name, "member is offline");
                        ctx.shared.apply(Event::MemberLost(name.to_string()));
                    }
                    warn!("the group lost its last member; creating a fresh group session to invite into");
                    lifetime.cancel();
                    return;
                }
                for name in offline {
                    warn!(member = %name, "member is offline; removing it and inviting it again");
                    remove_member(&sessions, &name);
                    joined.remove(&name);
                    ctx.shared.apply(Event::MemberLost(name.to_string()));
                    pending.insert(name, (Instant::now(), new_backoff()));
                }
            }
        }
    }
}

/// Removes `name` from the groups without waiting: SLIM waits for the member's answer, which a
/// member that hangs never gives, and takes the invitation that follows in turn after it.
fn remove_member(sessions: &[Arc<Session>], name: &SlimName) {
    for session in sessions {
        let (session, name) = (session.clone(), name.clone());
        tokio::spawn(async move {
            match session.remove_async(name.to_slim()).await {
                Ok(done) => {
                    if let Err(err) = completed(done, CONTROL_WAIT).await {
                        debug!(member = %name, %err, "SLIM did not confirm the removal");
                    }
                }
                Err(err) => warn!(member = %name, %err, "SLIM refused the removal"),
            }
        });
    }
}

/// Members that SLIM lists as offline (or no longer lists at all) in any session, or, when
/// they answer pings, that answered nothing for [`OFFLINE_AFTER`] while the link was up.
/// Nobody is judged while the link is down: silence then says nothing about the members.
/// Members that send nothing back count as heard from while SLIM lists them online.
async fn offline_members(
    ctx: &RoleCtx,
    sessions: &[Arc<Session>],
    joined: &BTreeSet<SlimName>,
    answers: Answers,
) -> Vec<SlimName> {
    let link = ctx.shared.link.get();
    if link.state != LinkState::Connected {
        return vec![];
    }
    let up_for = link.since.elapsed().unwrap_or_default();
    let now = std::time::Instant::now();
    let mut lists = Vec::with_capacity(sessions.len());
    for session in sessions {
        let Ok(Ok(list)) = tokio::time::timeout(LIST_WAIT, session.participants_list_async()).await
        else {
            return vec![];
        };
        lists.push(list);
    }
    joined
        .iter()
        .filter(|name| {
            let wanted = name.to_string();
            // `ParticipantStatus` is not re-exported by the bindings; its Debug form is.
            let listed_online = lists.iter().all(|list| {
                list.iter()
                    .any(|p| p.name.to_string() == wanted && format!("{:?}", p.status) == "Online")
            });
            match answers {
                Answers::Pings => {
                    let silence = ctx.shared.heard.silence(&wanted, now).min(up_for);
                    silence >= OFFLINE_AFTER || !listed_online
                }
                Answers::Nothing => {
                    if listed_online {
                        ctx.shared.heard.heard(&wanted, now);
                    }
                    !listed_online
                }
            }
        })
        .cloned()
        .collect()
}

/// Invites `name` into every session; when one refuses, it leaves those it joined, so the
/// next attempt starts clean.
async fn invite_one(
    ctx: &RoleCtx,
    sessions: &[Arc<Session>],
    name: &SlimName,
) -> Result<(), RoleError> {
    let slim_name = name.to_slim();
    ctx.conn
        .app
        .set_route_async(slim_name.clone(), ctx.conn.conn_id)
        .await
        .map_err(|e| RoleError::slim("route", e))?;
    for (joined, session) in sessions.iter().enumerate() {
        if let Err(err) = invite(ctx, session, name, slim_name.clone()).await {
            remove_member(&sessions[..joined], name);
            return Err(err);
        }
    }
    Ok(())
}

/// Invites `name` into `session`. With per-member keys the invitation goes to the one app whose
/// name id the invitee's identity derives (not to whoever else subscribed to the name), and
/// only an answer verified as that identity is admitted (SLIM drops any other).
async fn invite(
    ctx: &RoleCtx,
    session: &Session,
    name: &SlimName,
    slim_name: Arc<slim_bindings::Name>,
) -> Result<(), RoleError> {
    let Some(subject) = ctx.cfg.identity.expected_subject(name) else {
        let invited = session
            .invite_async(slim_name)
            .await
            .map_err(|e| RoleError::slim("invite", e))?;
        return completed(invited, CONTROL_WAIT)
            .await
            .map_err(|e| RoleError::slim("invite", e));
    };
    // The bindings do not offer a pinned invitation; their session's controller does.
    let controller = session
        .session
        .upgrade()
        .ok_or_else(|| RoleError::slim("invite", "the session is closed"))?;
    let addressed = slim_name
        .as_slim_name()
        .with_id(slim_session::name_id::app_id(&subject));
    let completion = controller
        .invite_participant_pinned(&addressed, subject)
        .await
        .map_err(|e| RoleError::slim("invite", e))?;
    match tokio::time::timeout(CONTROL_WAIT, completion).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(RoleError::slim("invite", err)),
        Err(_) => Err(RoleError::slim("invite", "no answer from the invitee")),
    }
}

/// Closes the group so participants learn the moderator left.
pub(crate) async fn close(ctx: &RoleCtx, session: Arc<Session>) {
    let closing = ctx.conn.app.delete_session_and_wait_async(session);
    match tokio::time::timeout(CLOSE_WAIT, closing).await {
        Ok(Ok(())) => info!("group session closed"),
        Ok(Err(err)) => warn!(%err, "closing the group session failed"),
        Err(_) => warn!("closing the group session timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_runs_without_slims_reliability_unless_given_and_with_mls_when_asked() {
        let plain = group_config(None, true);
        assert_eq!(plain.session_type, SessionType::Group);
        assert_eq!((plain.max_retries, plain.interval), (None, None));
        assert!(plain.mls_settings.is_some());

        let reliable = group_config(
            Some(Reliability {
                max_retries: 3,
                interval: Duration::from_millis(500),
            }),
            false,
        );
        assert_eq!(reliable.max_retries, Some(3));
        assert_eq!(reliable.interval, Some(Duration::from_millis(500)));
        assert!(reliable.mls_settings.is_none());
    }
}
