//! A SLIM data-plane server run inside this process.

use std::sync::Arc;

use slim_bindings::{DataplaneConfig, Service, ServiceConfig};
use tracing::info;

use crate::error::RoleError;
use crate::tls::ServerTls;

/// A running SLIM server. It keeps serving until `shutdown` or the end of the process.
pub struct SlimServer {
    service: Arc<Service>,
    endpoint: String,
    /// Gives accepted connections TCP_NODELAY (SLIM's server leaves Nagle on).
    sweeper: tokio::task::JoinHandle<()>,
}

impl SlimServer {
    /// Binds `endpoint` (`HOST:PORT`) and starts serving, over TLS when `tls` is given;
    /// returns once the listener is bound.
    pub async fn start(endpoint: &str, tls: Option<&ServerTls>) -> Result<SlimServer, RoleError> {
        let mut server = slim_bindings::new_insecure_server_config(endpoint.to_string());
        if let Some(tls) = tls {
            server.tls = tls.to_slim()?;
        }
        let config = ServiceConfig {
            node_id: None,
            domain_name: None,
            dataplane: DataplaneConfig {
                servers: vec![server],
                clients: vec![],
            },
        };
        let service = Arc::new(Service::new_with_config(
            "slim-node-server".to_string(),
            config,
        ));
        service.run_async().await.map_err(|e| RoleError::Slim {
            operation: "server start",
            message: format!("cannot serve on {endpoint}: {e}"),
        })?;
        info!(%endpoint, tls = tls.is_some(), mtls = tls.is_some_and(|t| t.client_ca.is_some()),
            "SLIM data-plane server listening");
        let sweeper = tokio::spawn(async {
            let mut tick = tokio::time::interval(crate::sockets::SERVER_SWEEP);
            loop {
                tick.tick().await;
                crate::sockets::sweep();
            }
        });
        Ok(SlimServer {
            service,
            endpoint: endpoint.to_string(),
            sweeper,
        })
    }

    /// The endpoint it serves on.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Closes the listener and every connection.
    pub async fn shutdown(self) -> Result<(), RoleError> {
        self.sweeper.abort();
        self.service
            .shutdown_async()
            .await
            .map_err(|e| RoleError::slim("server shutdown", e))
    }
}
