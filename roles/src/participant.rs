//! The participant: waits for an invitation, joins, and waits again when the session closes.

use std::time::Duration;

use tracing::{info, warn};

use crate::connection::is_timeout;
use crate::node::RoleCtx;
use crate::receive::{receive_until_closed, ReceiveEnd};
use crate::sender;
use crate::state::Event;

pub(crate) async fn run(ctx: RoleCtx) {
    ctx.shared.apply(Event::Listening);
    loop {
        let listened = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = ctx.conn.app.listen_for_session_async(Some(Duration::from_secs(1))) => r,
        };
        let session = match listened {
            Ok(session) => session,
            Err(err) if is_timeout(&err) => continue,
            Err(err) => {
                warn!(%err, "waiting for an invitation failed; trying again");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let channel = session.destination().map(|n| n.to_string()).ok();
        info!(
            channel = channel.as_deref().unwrap_or("?"),
            "invited to a group session"
        );
        ctx.shared.set_channel(channel);
        ctx.shared.set_session(Some(session.clone()));
        ctx.shared.apply(Event::Invited);
        let stop_sender = ctx.cancel.child_token();
        let sender = tokio::spawn(sender::run(
            ctx.clone(),
            session.clone(),
            stop_sender.clone(),
        ));
        let end = receive_until_closed(&ctx, session, ctx.cancel.clone()).await;
        stop_sender.cancel();
        let _ = sender.await;
        ctx.shared.set_session(None);
        if end == ReceiveEnd::Cancelled {
            return;
        }
        ctx.shared.apply(Event::SessionClosed);
        info!("the group session closed; waiting for a new invitation");
    }
}
