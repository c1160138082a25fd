//! Connecting to SLIM: the client service, the app identity, and how SLIM's errors read.

use std::sync::Arc;
use std::time::Duration;

use slim_bindings::{
    App, BackoffConfig, ClientConfig, ExponentialBackoff, KeepaliveConfig, Service, SlimError,
};

use crate::config::NodeConfig;
use crate::error::RoleError;
use crate::slim::identity::Identity;

/// A connected SLIM app: its own service (one client connection) and identity.
pub struct Connection {
    pub service: Arc<Service>,
    pub app: Arc<App>,
    pub conn_id: u64,
    /// The name the app subscribed to.
    pub name: Arc<slim_bindings::Name>,
    /// The server's addresses, resolved when connecting: the link is up while a socket of
    /// this process is connected to one of them.
    pub server_addrs: Vec<std::net::SocketAddr>,
    /// The server's URL.
    pub url: String,
    /// Its place in the node's list of servers.
    pub index: usize,
}

impl Connection {
    /// Whether the link is up now: a socket is connected to the server. SLIM keeps the
    /// connection listed while it reconnects and says nothing; `None` where the sockets cannot
    /// be seen.
    pub(crate) fn is_up(&self) -> Option<bool> {
        crate::slim::sockets::connected_to(&self.server_addrs)
    }

    /// Whether SLIM still lists the connection; it drops it once its own reconnect gave up.
    pub(crate) fn is_listed(&self) -> bool {
        self.service
            .inner()
            .get_all_connections()
            .iter()
            .any(|c| c.id == self.conn_id)
    }
}

/// Bounded backoff: SLIM's default retries forever, so `connect` would never return while the
/// server is down. The same policy governs automatic reconnects after an outage.
fn backoff(attempts: u32) -> BackoffConfig {
    BackoffConfig::Exponential {
        config: ExponentialBackoff {
            base: Duration::from_millis(250),
            factor: 2,
            max_delay: Duration::from_secs(5),
            max_attempts: u64::from(attempts.max(1)),
            jitter: true,
        },
    }
}

/// HTTP/2 pings when nothing was read from the server for a moment: behind a cut link (no
/// reset, no FIN) a connection otherwise looks up until TCP gives up, many minutes later, and
/// the node neither reconnects nor says its link is down. SLIM's client has none by default.
pub(crate) fn keepalive() -> KeepaliveConfig {
    KeepaliveConfig {
        http2_keepalive: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        keep_alive_while_idle: true,
        ..KeepaliveConfig::default()
    }
}

/// Attempts per server when the node has several: a server that is gone should cost
/// seconds, not the whole `--connect-attempts` backoff, before the next one is tried.
const FAILOVER_ATTEMPTS: u32 = 3;

/// Connects to the first of the node's servers that answers.
pub async fn connect(cfg: &NodeConfig, service_name: &str) -> Result<Connection, RoleError> {
    connect_from(cfg, service_name, 0).await
}

/// Connects to the first server that answers, trying them in order from the one at `start`
/// (wrapping around), so a node that leaves a server tries the others before it again.
pub(crate) async fn connect_from(
    cfg: &NodeConfig,
    service_name: &str,
    start: usize,
) -> Result<Connection, RoleError> {
    let urls = &cfg.slim_urls;
    let attempts = if urls.len() > 1 {
        cfg.connect_attempts.min(FAILOVER_ATTEMPTS)
    } else {
        cfg.connect_attempts
    };
    let mut failures = Vec::new();
    for offset in 0..urls.len() {
        let index = (start + offset) % urls.len();
        match connect_to(cfg, service_name, index, attempts).await {
            Ok(conn) => return Ok(conn),
            Err(RoleError::Connect { url, message, .. }) => {
                if urls.len() > 1 {
                    tracing::warn!(%url, %message, "SLIM server did not answer; trying the next");
                }
                failures.push((url, message));
            }
            Err(other) => return Err(other),
        }
    }
    let (url, message) = match failures.len() {
        1 => failures.remove(0),
        _ => (
            failures
                .iter()
                .map(|(u, _)| u.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            failures
                .into_iter()
                .map(|(u, m)| format!("{u}: {m}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    Err(RoleError::Connect {
        url,
        attempts,
        message,
    })
}

/// Connects to the server `cfg.slim_urls[index]`.
async fn connect_to(
    cfg: &NodeConfig,
    service_name: &str,
    index: usize,
    attempts: u32,
) -> Result<Connection, RoleError> {
    let url = &cfg.slim_urls[index];
    let service = Arc::new(Service::new(service_name.to_string()));
    let client = ClientConfig {
        backoff: Some(backoff(attempts)),
        keepalive: Some(keepalive()),
        tls: cfg.tls.for_url(url)?,
        ..slim_bindings::new_insecure_client_config(url.clone())
    };
    let conn_id = service
        .connect_async(client)
        .await
        .map_err(|e| RoleError::Connect {
            url: url.clone(),
            attempts,
            message: e.to_string(),
        })?;
    crate::slim::sockets::sweep();
    let name = cfg.name.to_slim();
    let app = match &cfg.identity {
        Identity::SharedSecret(secret) => {
            service
                .create_app_with_secret_async(name.clone(), secret.expose())
                .await
        }
        Identity::Keys(keys) => {
            let (provider, verifier) = keys.configs(&cfg.name);
            service
                .create_app_async(name.clone(), provider, verifier)
                .await
        }
    }
    .map_err(|e| RoleError::slim("app creation", e))?;
    app.subscribe_async(name.clone(), Some(conn_id))
        .await
        .map_err(|e| RoleError::slim("subscribe", e))?;
    Ok(Connection {
        service,
        app,
        conn_id,
        name,
        server_addrs: server_addrs(url).await,
        url: url.clone(),
        index,
    })
}

/// The addresses `url`'s host and port resolve to (none when it does not resolve: the link
/// is then judged by SLIM's connection table alone).
async fn server_addrs(url: &str) -> Vec<std::net::SocketAddr> {
    let host_port = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    match tokio::net::lookup_host(host_port).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => Vec::new(),
    }
}

/// SLIM reports timeouts with several texts and variants; they are never fatal.
pub fn is_timeout(err: &SlimError) -> bool {
    matches!(err, SlimError::Timeout) || {
        let text = err.to_string().to_lowercase();
        text.contains("timeout") || text.contains("timed out")
    }
}

/// The session is gone for good (closed by its moderator, removed, or dropped).
pub(crate) fn is_closed(err: &SlimError) -> bool {
    let text = err.to_string().to_lowercase();
    text.contains("session closed")
        || text.contains("already closed")
        || text.contains("closed or dropped")
        || text.contains("channel closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_recognised_in_all_their_forms() {
        assert!(is_timeout(&SlimError::Timeout));
        assert!(is_timeout(&SlimError::SessionError {
            message: "receive timeout waiting for message".into()
        }));
        assert!(is_timeout(&SlimError::ReceiveError {
            message: "listen_for_session timed out".into()
        }));
        assert!(!is_timeout(&SlimError::SessionError {
            message: "session closed".into()
        }));
    }

    #[test]
    fn closed_sessions_are_recognised() {
        assert!(is_closed(&SlimError::SessionError {
            message: "session closed".into()
        }));
        assert!(!is_closed(&SlimError::SessionError {
            message: "message lost for session id: 3".into()
        }));
    }
}
