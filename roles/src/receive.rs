//! The receive loop shared by both roles: SLIM session → `Incoming` messages.

use std::sync::Arc;
use std::time::Duration;

use slim_bindings::Session;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::connection::{is_closed, is_timeout};
use crate::node::Incoming;

/// Key SLIM adds on the receiving side with the MLS-verified sender identity.
const PEER_SUBJECT_KEY: &str = "slim-peer-subject";

/// Why the receive loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReceiveEnd {
    /// The session is gone.
    Closed,
    /// The node is stopping, or nobody consumes messages any more.
    Cancelled,
}

pub(crate) async fn receive_until_closed(
    session: Arc<Session>,
    tx: mpsc::Sender<Incoming>,
    cancel: CancellationToken,
) -> ReceiveEnd {
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return ReceiveEnd::Cancelled,
            r = session.get_message_async(Some(Duration::from_secs(1))) => r,
        };
        match result {
            Ok(msg) => {
                let mut metadata = msg.context.metadata;
                let verified_sender = metadata.remove(PEER_SUBJECT_KEY);
                let incoming = Incoming {
                    from: msg.context.source_name.to_string(),
                    verified_sender,
                    payload_type: msg.context.payload_type,
                    metadata,
                    payload: msg.payload,
                };
                if tx.send(incoming).await.is_err() {
                    return ReceiveEnd::Cancelled;
                }
            }
            Err(err) if is_timeout(&err) => continue,
            Err(err) if is_closed(&err) => {
                debug!(%err, "session closed");
                return ReceiveEnd::Closed;
            }
            // e.g. "message lost": SLIM could not recover a gap; the stream goes on.
            Err(err) => warn!(%err, "SLIM reported a receive error"),
        }
    }
}
