//! `slim-node node`: one node with its role, sinks and optional OTLP/HTTP receiver.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use slim_roles::{Node, NodeConfig, RoleConfig, Secret};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::{NodeArgs, QueryApiArgs, ReceiverArgs, Role, SecretArgs, SessionArgs, SinkArgs};
use crate::ingest::Ingest;
use crate::net::auth::Keys;
use crate::net::guard::{Guard, GuardSettings};
use crate::pipeline::Pipeline;
use crate::receiver;
use crate::receiver::http::HttpSettings;

/// Runs until SIGINT/SIGTERM.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal();
    let config = node_config(&args)?;
    let drain = Duration::from_secs(args.queue.drain_timeout);
    let node = RunningNode::start(config, &args.sinks, &args.receiver, drain).await?;
    shutdown.cancelled().await;
    node.stop(drain).await;
    Ok(())
}

fn node_config(args: &NodeArgs) -> anyhow::Result<NodeConfig> {
    let role = match args.role {
        Role::Moderator => RoleConfig::Moderator {
            channel: args.channel.clone().context(
                "a moderator needs a channel: pass --channel ORG/NS/CHANNEL (or set SLIM_NODE_CHANNEL)",
            )?,
            invite: args.invite.clone(),
        },
        Role::Participant => {
            if args.channel.is_some() || !args.invite.is_empty() {
                bail!("--channel and --invite are for moderators; a participant learns its channel from the invitation");
            }
            RoleConfig::Participant
        }
    };
    if matches!(&role, RoleConfig::Moderator { invite, .. } if invite.is_empty()) {
        warn!("this moderator invites nobody (no --invite): nothing it receives can be forwarded");
    }
    build_config(
        args.name.clone(),
        role,
        read_secret(&args.secret)?,
        args.slim.clone(),
        args.slim_tls.settings(),
        &args.session,
        &args.queue,
        false,
    )
}

/// The one place a node's settings become its [`NodeConfig`] (`node` runs one, `up` two;
/// `shared_data_dir`: the nodes share --data-dir, each in a directory for its name).
#[allow(clippy::too_many_arguments)]
pub fn build_config(
    name: slim_roles::SlimName,
    role: RoleConfig,
    secret: Secret,
    slim_url: String,
    tls: slim_roles::ClientTls,
    session: &SessionArgs,
    queue: &crate::cli::QueueArgs,
    shared_data_dir: bool,
) -> anyhow::Result<NodeConfig> {
    let state_dir = queue.state_dir(&name, shared_data_dir)?;
    // One spool per directory: only a moderator (the receiving side of `up`) keeps one there.
    let spool = match (&role, shared_data_dir) {
        (RoleConfig::Participant, true) => None,
        _ => queue.spool_config(&state_dir),
    };
    let config = NodeConfig {
        name,
        secret,
        slim_url,
        role,
        mls: mls(session),
        connect_attempts: session.connect_attempts,
        reliability: None,
        in_flight: session.max_in_flight as usize,
        outbox: queue.limits(),
        spool,
        tls,
        state_dir: Some(state_dir),
    };
    config.validate()?;
    Ok(config)
}

/// Whether MLS is on, warning when it is not.
pub fn mls(session: &SessionArgs) -> bool {
    if session.no_mls {
        warn!("MLS is off (--no-mls): payloads are readable by every SLIM server on the path");
    }
    !session.no_mls
}

fn read_secret(args: &SecretArgs) -> anyhow::Result<Secret> {
    let value = match (&args.secret, &args.secret_file) {
        (Some(s), _) => {
            if std::env::args().any(|a| a == "--secret" || a.starts_with("--secret=")) {
                warn!("the shared secret was given as a flag: other users can read it in the process list; use --secret-file or SLIM_NODE_SECRET");
            }
            s.clone()
        }
        (None, Some(path)) => read_secret_file(path)?,
        (None, None) => {
            bail!("a shared secret is required: --secret-file PATH or SLIM_NODE_SECRET")
        }
    };
    Ok(Secret::new(value)?)
}

fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret file {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// The query API over the node's one `store` sink, with its keys and cursor key.
fn query_api(
    sink_args: &SinkArgs,
    data_dir: &Path,
) -> anyhow::Result<crate::history::api::QueryApi> {
    let QueryApiArgs {
        query_api_keys,
        cursor_key_file,
        cursor_key,
        ..
    } = &sink_args.query;
    if cursor_key.is_some()
        && std::env::args().any(|a| a.starts_with("--cursor-key=") || a == "--cursor-key")
    {
        warn!("the cursor key was given as a flag: other users can read it in the process list; use SLIM_NODE_CURSOR_KEY");
    }
    let mut stores = sink_args
        .sink
        .iter()
        .filter(|s| s.kind == &crate::sink::store::KIND);
    let (Some(spec), None) = (stores.next(), stores.next()) else {
        bail!("--query-api serves the items of one store sink: give exactly one --sink store:DIR");
    };
    let keys = match query_api_keys {
        Some(path) => {
            let keys =
                Keys::load_for(path, crate::net::auth::Scope::Query).context("--query-api-keys")?;
            info!(keys = ?keys.names(), "the query API requires a key");
            Some(std::sync::Arc::new(keys))
        }
        None => {
            warn!("the query API is open (no --query-api-keys): whoever can reach it can read the stored telemetry");
            None
        }
    };
    Ok(crate::history::api::QueryApi {
        store: crate::sink::store::open_store(spec)?,
        sealer: std::sync::Arc::new(crate::history::cursor::Sealer::load(
            cursor_key.as_deref(),
            cursor_key_file.as_deref(),
            data_dir,
        )?),
        keys,
    })
}

/// A node with its pipeline of sinks and its OTLP receivers.
pub struct RunningNode {
    node: Node,
    pipeline: Pipeline,
    stop_receivers: CancellationToken,
    receivers: Vec<(&'static str, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

/// Binds a receiver's address, naming the receiver in the error.
async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

impl RunningNode {
    /// Opens the sinks, connects the node and starts the receivers and the query API; on
    /// shutdown, open requests get `drain` to finish.
    pub async fn start(
        config: NodeConfig,
        sink_args: &SinkArgs,
        receivers: &ReceiverArgs,
        drain: Duration,
    ) -> anyhow::Result<RunningNode> {
        let data_dir = config
            .state_dir
            .clone()
            .context("a node needs a data directory for its sinks' queues")?;
        let sinks = crate::sink::open_all(&sink_args.sink, &data_dir)?;
        let query_api = match &sink_args.query.query_api {
            Some(addr) => Some((
                bind("the query API", addr).await?,
                query_api(sink_args, &data_dir)?,
            )),
            None => {
                let q = &sink_args.query;
                if q.query_api_keys.is_some()
                    || q.cursor_key_file.is_some()
                    || q.cursor_key.is_some()
                {
                    warn!("query API keys or a cursor key are set, but no --query-api: nothing is served");
                }
                None
            }
        };
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
        let tls = match receivers.tls.files() {
            Some(files) => Some(
                crate::net::tls::acceptor(&files)
                    .context("cannot set up TLS for the OTLP receivers")?,
            ),
            None => None,
        };
        let keys = match &receivers.auth.auth_token_file {
            Some(path) => {
                let keys = Keys::load(path)?;
                info!(keys = ?keys.names(), "receivers require a bearer token");
                Some(keys)
            }
            None => None,
        };
        let guard = Guard::new(GuardSettings {
            keys,
            rate_per_key: receivers.limits.rate_limit,
            max_concurrent: receivers.limits.max_concurrent_requests,
        });
        let (node, incoming) = Node::start(config).await?;
        let pipeline =
            Pipeline::start(incoming, sinks).context("cannot start the sink pipeline")?;
        let sinks = pipeline.sinks();
        let ingest = Ingest::new(node.publisher(), receivers.limits.max_body_size);
        let stop = CancellationToken::new();
        let mut settings = HttpSettings::from(&receivers.limits);
        settings.limits.drain = drain;
        let mut tasks = Vec::new();
        if let Some(listener) = http {
            let app = receiver::http::router(
                ingest.clone(),
                &settings,
                guard.clone(),
                node.admin(),
                sinks.clone(),
            );
            let serve =
                receiver::http::serve(listener, app, settings.limits, tls.clone(), stop.clone());
            tasks.push(("OTLP/HTTP", tokio::spawn(serve)));
        }
        if let Some(listener) = health {
            info!(addr = ?listener.local_addr().ok(), "health endpoints listening");
            let routes = crate::net::health::routes(node.publisher(), sinks.clone()).layer(
                axum::middleware::from_fn_with_state(guard.clone(), crate::net::guard::check),
            );
            let serve = crate::net::server::serve(
                listener,
                routes,
                settings.limits,
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
            let serve =
                receiver::grpc::serve(listener, ingest, settings.limits, guard, tls, stop.clone());
            tasks.push(("OTLP/gRPC", tokio::spawn(serve)));
        }
        Ok(RunningNode {
            node,
            pipeline,
            stop_receivers: stop,
            receivers: tasks,
        })
    }

    /// Stops accepting, waits up to `drain` for the members to acknowledge what was taken,
    /// leaves the channel, and waits up to `drain` for the sinks to finish.
    pub async fn stop(self, drain: Duration) {
        self.stop_receivers.cancel();
        for (name, task) in self.receivers {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => warn!(%err, "the {name} receiver failed"),
                Err(err) => warn!(%err, "the {name} receiver task failed"),
            }
        }
        self.node.shutdown(drain).await;
        // The pipeline ends once the node dropped its side of the message channel.
        self.pipeline.stop(drain).await;
        info!("node stopped");
    }
}
