//! The composition root: starts a node's parts from its [`NodeSettings`] in the order data
//! flows — stores and sinks first, then the pipeline, the SLIM node, and the receivers last —
//! and stops them in the reverse order. What several parts share (a store, TLS, the guard) is
//! opened here once and handed to each.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use slim_roles::Node;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{NodeSettings, QueryApiSettings};
use crate::history::api::QueryApi;
use crate::history::cursor::Sealer;
use crate::history::store::Stores;
use crate::ingest::Ingest;
use crate::net::auth::Keys;
use crate::net::guard::{self, Guard, GuardSettings};
use crate::pipeline::Pipeline;
use crate::receiver;
use crate::receiver::http::HttpSettings;
use crate::sink::kind::SinkContext;
use crate::sink::SinkSpec;

/// A node with its pipeline of sinks and its OTLP receivers.
pub struct RunningNode {
    node: Node,
    pipeline: Pipeline,
    stop_receivers: CancellationToken,
    receivers: Vec<(&'static str, tokio::task::JoinHandle<std::io::Result<()>>)>,
    drain: Duration,
    /// The node in the metrics, for as long as it runs.
    _metrics: crate::telemetry::NodeMetrics,
}

/// Binds a receiver's address, naming the receiver in the error.
async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Warns when `listener` is on a non-loopback address, saying what that exposes.
fn warn_if_public(listener: &TcpListener, exposes: &str) {
    if let Ok(addr) = listener.local_addr() {
        if !addr.ip().is_loopback() {
            warn!(%addr, "listening on a non-loopback address {exposes}");
        }
    }
}

/// The query API over the node's one `store` sink, with its keys and cursor key.
pub(crate) fn query_api(
    settings: &QueryApiSettings,
    sinks: &[SinkSpec],
    stores: &Stores,
    data_dir: &std::path::Path,
) -> anyhow::Result<QueryApi> {
    let mut specs = sinks.iter().filter(|s| s.kind == &crate::sink::store::KIND);
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        bail!("--query-api serves the items of one store sink: give exactly one --sink store:DIR");
    };
    let keys = match &settings.keys {
        Some(path) => {
            let keys = Keys::load_for(path, None).context("--query-api-keys")?;
            info!(keys = ?keys.names(), "the query API requires a key");
            Some(Arc::new(keys))
        }
        None => {
            warn!("the query API is open (no --query-api-keys): whoever can reach it can read the stored telemetry");
            None
        }
    };
    let store = crate::sink::store::open_store(spec, stores)?;
    let catalog = crate::sink::store::catalog_of(spec, &store)?.map(Arc::new);
    Ok(QueryApi {
        catalog,
        store,
        sealer: Arc::new(Sealer::load(
            settings
                .cursor_key
                .as_ref()
                .map(crate::config::Hidden::expose),
            settings.cursor_key_file.as_deref(),
            data_dir,
        )?),
        keys,
        limits: Arc::new(crate::history::api::Limits::new(
            crate::history::api::Limits::threads_for_this_machine(),
            settings.rate_per_key,
        )),
    })
}

impl RunningNode {
    /// Opens the stores and sinks, connects the node and starts the receivers and the query
    /// API.
    pub async fn start(settings: &NodeSettings) -> anyhow::Result<RunningNode> {
        let data_dir = settings
            .data_dir()
            .context("a node needs a data directory for its sinks' queues")?
            .to_path_buf();
        let stores = Stores::default();
        let sinks =
            crate::sink::open_all(&settings.sinks, &data_dir, &SinkContext { stores: &stores })?;
        let query_api = match &settings.query_api {
            Some(api) => Some((
                bind("the query API", &api.listen).await?,
                query_api(api, &settings.sinks, &stores, &data_dir)?,
            )),
            None => None,
        };
        let receivers = &settings.receivers;
        // Bind before connecting: a taken port is reported at once, not after a session exists.
        let http = match &receivers.otlp_http {
            Some(addr) => Some(bind("OTLP/HTTP", addr).await?),
            None => None,
        };
        let grpc = match &receivers.otlp_grpc {
            Some(addr) => Some(bind("OTLP/gRPC", addr).await?),
            None => None,
        };
        let health = match &receivers.health {
            Some(addr) => Some(bind("health probes", addr).await?),
            None => None,
        };
        let tls = match &receivers.tls {
            Some(files) => Some(
                crate::net::tls::acceptor(files)
                    .context("cannot set up TLS for the OTLP receivers")?,
            ),
            None => None,
        };
        let keys = match &receivers.auth_token_file {
            Some(path) => {
                let keys = Keys::load(path)?;
                info!(keys = ?keys.names(), "receivers require a bearer token");
                Some(keys)
            }
            None => {
                for listener in [&http, &grpc, &health].into_iter().flatten() {
                    warn_if_public(listener, "without --auth-token-file: anyone who can reach it may send telemetry (and /admin is refused there without a key)");
                }
                None
            }
        };
        let guard = Guard::new(GuardSettings {
            keys,
            rate_per_key: receivers.limits.rate_limit,
            max_concurrent: receivers.limits.max_concurrent_requests,
        });
        let (node, incoming) = Node::start(settings.node.clone()).await?;
        let pipeline = Pipeline::start(incoming, sinks, settings.stamp_origin)
            .context("cannot start the sink pipeline")?;
        let sinks = pipeline.sinks();
        let ingest = Ingest::new(node.publisher(), receivers.limits.max_body_size)
            .stamping_origin(settings.stamp_origin);
        let stop = CancellationToken::new();
        let http_settings = HttpSettings::new(receivers, settings.drain);
        let mut tasks = Vec::new();
        if let Some(listener) = http {
            let app = receiver::http::router(
                ingest.clone(),
                &http_settings,
                guard.clone(),
                node.admin(),
                sinks.clone(),
            );
            let serve = receiver::http::serve(
                listener,
                app,
                http_settings.limits,
                tls.clone(),
                stop.clone(),
            );
            tasks.push(("OTLP/HTTP", tokio::spawn(serve)));
        }
        if let Some(listener) = health {
            info!(addr = ?listener.local_addr().ok(), "health endpoints listening");
            let routes =
                crate::net::health_endpoints::routes(node.publisher(), sinks.clone()).layer(
                    axum::middleware::from_fn_with_state(guard.clone(), guard::check),
                );
            let serve = crate::net::http_server::serve(
                listener,
                routes,
                http_settings.limits,
                tls.clone(),
                stop.clone(),
            );
            tasks.push(("health", tokio::spawn(serve)));
        }
        if let Some((listener, api)) = query_api {
            info!(addr = ?listener.local_addr().ok(), keys = api.keys.is_some(), "query API listening");
            let serve = crate::history::api::serve(listener, api, tls.clone(), stop.clone());
            tasks.push(("query API", tokio::spawn(serve)));
        }
        if let Some(listener) = grpc {
            let serve = receiver::grpc::serve(
                listener,
                ingest,
                http_settings.limits,
                guard,
                tls,
                stop.clone(),
            );
            tasks.push(("OTLP/gRPC", tokio::spawn(serve)));
        }
        let metrics = crate::telemetry::get().watch_node(
            settings.node.name.to_string(),
            node.publisher(),
            sinks,
        );
        Ok(RunningNode {
            node,
            pipeline,
            stop_receivers: stop,
            receivers: tasks,
            drain: settings.drain,
            _metrics: metrics,
        })
    }

    /// Stops accepting, waits up to the drain timeout for the members to acknowledge what was
    /// taken, leaves the channel, and waits up to the drain timeout for the sinks to finish.
    pub async fn stop(self) {
        self.stop_receivers.cancel();
        for (name, task) in self.receivers {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => warn!(%err, "the {name} receiver failed"),
                Err(err) => warn!(%err, "the {name} receiver task failed"),
            }
        }
        self.node.shutdown(self.drain).await;
        // The pipeline ends once the node dropped its side of the message channel.
        self.pipeline.stop(self.drain).await;
        info!("node stopped");
    }
}
