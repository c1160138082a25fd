//! What the tests share: a SLIM server of our own on a free local port, real nodes on it, and
//! bounded waits.

use std::collections::BTreeSet;
use std::time::Duration;

use slim_roles::{
    Health, Identity, Incoming, Keepalive, MemberHealth, Node, NodeConfig, OutboxLimits, Outgoing,
    RoleConfig, Secret, SlimServer, State,
};
use tokio::sync::mpsc;

/// The longest wait for something a test expects: a group forming, a message arriving, an
/// outbox draining. Generous: the machine may be busy, and a debug build of SLIM's MLS is slow.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a condition is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(50);

/// Runs one test at a time among those that start SLIM: the role tasks judge members by
/// seconds of silence, and several groups forming at once on a busy machine would be judged
/// by how busy it is.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE_AT_A_TIME.lock().await
}

/// Sets up logging and SLIM's runtime, once. SLIM logs through the process's subscriber, or
/// installs a loud one of its own when there is none: logs show with `RUST_LOG` set only.
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        match std::env::var("RUST_LOG") {
            Ok(filter) => tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .init(),
            Err(_) => {
                let quiet = tracing::subscriber::NoSubscriber::default();
                tracing::subscriber::set_global_default(quiet).expect("no subscriber yet");
            }
        }
        slim_roles::runtime::init();
    });
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.local_addr().expect("local address").port()
}

async fn start_server(port: u16) -> Result<SlimServer, slim_roles::RoleError> {
    SlimServer::start(&format!("127.0.0.1:{port}"), None, Keepalive::default()).await
}

/// A SLIM server of our own, and the nodes the test starts on it.
pub struct Mesh {
    pub server: Option<SlimServer>,
    pub port: u16,
    secret: Secret,
    /// Prefix of every name, so that each test's names are its own.
    prefix: String,
}

impl Mesh {
    /// Starts a SLIM server on a free local port (another one if that fails).
    pub async fn start(test: &str) -> Mesh {
        init();
        let mut last = None;
        for _ in 0..5 {
            let port = free_port();
            match start_server(port).await {
                Ok(server) => {
                    return Mesh {
                        server: Some(server),
                        port,
                        secret: Secret::new(format!(
                            "{}{}",
                            uuid::Uuid::new_v4().simple(),
                            uuid::Uuid::new_v4().simple()
                        ))
                        .expect("a valid secret"),
                        prefix: format!("tests/{test}"),
                    }
                }
                Err(err) => last = Some(err),
            }
        }
        panic!("no SLIM server could be started: {last:?}");
    }

    /// The full SLIM name of `short` in this test.
    pub fn name(&self, short: &str) -> String {
        format!("{}/{short}", self.prefix)
    }

    /// The configuration of a node named `short` playing `role` here.
    pub fn config(&self, short: &str, role: RoleConfig) -> NodeConfig {
        NodeConfig {
            name: self.name(short).parse().expect("a valid name"),
            identity: Identity::SharedSecret(self.secret.clone()),
            slim_urls: vec![format!("http://127.0.0.1:{}", self.port)],
            role,
            mls: true,
            connect_attempts: 3,
            reliability: None,
            in_flight: 4,
            outbox: OutboxLimits {
                max_bytes: 16 * 1024 * 1024,
                max_messages: 1000,
                max_delay: None,
            },
            spool: None,
            tls: Default::default(),
            state_dir: None,
        }
    }

    /// Starts a participant named `short`.
    pub async fn participant(&self, short: &str) -> Member {
        Member::start(self.config(short, RoleConfig::Participant)).await
    }

    /// Starts a moderator named `short` on `channel`, inviting `invite` (short names).
    pub async fn moderator(&self, short: &str, channel: &str, invite: &[&str]) -> Member {
        let role = RoleConfig::Moderator {
            channel: self.name(channel).parse().expect("a valid channel"),
            invite: invite
                .iter()
                .map(|n| self.name(n).parse().expect("a valid name"))
                .collect(),
        };
        Member::start(self.config(short, role)).await
    }

    /// A participant `p` and a moderator `m` inviting it on channel `ch`, once the moderator is
    /// active with it and it joined.
    pub async fn group(&self) -> (Member, Member) {
        let participant = self.participant("p").await;
        let moderator = self.moderator("m", "ch", &["p"]).await;
        moderator.wait_active_with(&[&self.name("p")]).await;
        participant.wait_joined().await;
        (moderator, participant)
    }

    /// Stops the SLIM server: every node loses its link.
    pub async fn stop_server(&mut self) {
        let server = self.server.take().expect("the SLIM server runs");
        server.shutdown().await.expect("the SLIM server stops");
    }

    /// Starts the SLIM server again on the same port, retried for a few seconds: the port
    /// may not be free again at once.
    pub async fn restart_server(&mut self) {
        assert!(self.server.is_none(), "the SLIM server still runs");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match start_server(self.port).await {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(err) if tokio::time::Instant::now() >= deadline => {
                    panic!(
                        "the SLIM server did not start again on port {}: {err}",
                        self.port
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Stops the nodes, then the server.
    pub async fn stop(mut self, members: Vec<Member>) {
        // Side by side: a moderator closing its group waits for its members' answers.
        let stops: Vec<_> = members
            .into_iter()
            .map(|m| tokio::spawn(m.node.shutdown(Duration::ZERO)))
            .collect();
        for stop in stops {
            stop.await.expect("a node stops");
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("the SLIM server stops");
        }
    }
}

/// A running node and the messages it receives.
pub struct Member {
    pub node: Node,
    pub rx: mpsc::Receiver<Incoming>,
    pub name: String,
}

impl Member {
    pub async fn start(cfg: NodeConfig) -> Member {
        let name = cfg.name.to_string();
        let (node, rx) = Node::start(cfg).await.expect("the node starts");
        Member { node, rx, name }
    }

    /// Waits until the node's state satisfies `pred`; returns that state.
    pub async fn wait_state(&self, what: &str, pred: impl Fn(&State) -> bool) -> State {
        let mut status = self.node.status();
        let waited = tokio::time::timeout(WAIT, status.wait_for(|s| pred(&s.state))).await;
        match waited {
            Ok(Ok(s)) => s.state.clone(),
            Ok(Err(_)) => panic!("{}: the node ended before it was {what}", self.name),
            Err(_) => panic!(
                "{}: not {what} within {WAIT:?}; it is {}",
                self.name,
                self.node.status().borrow().state
            ),
        }
    }

    /// Waits until a moderator is active with exactly `names` joined.
    pub async fn wait_active_with(&self, names: &[&str]) {
        let wanted: BTreeSet<String> = names.iter().map(ToString::to_string).collect();
        self.wait_state(
            &format!("active with {wanted:?}"),
            |s| matches!(s, State::Active { joined } if *joined == wanted),
        )
        .await;
    }

    /// Waits until a participant joined a group.
    pub async fn wait_joined(&self) {
        self.wait_state("joined", |s| *s == State::Joined).await;
    }

    pub fn health(&self) -> Health {
        self.node.publisher().health()
    }

    /// The member `name` as this node sees it.
    pub fn member(&self, name: &str) -> Option<MemberHealth> {
        self.health().members.into_iter().find(|m| m.name == name)
    }

    /// Publishes `messages`, waiting (boundedly) until the node accepts them.
    pub async fn publish(&self, messages: Vec<Outgoing>) {
        self.node
            .publisher()
            .publish_all(messages)
            .await
            .expect("the node takes the messages");
    }

    /// The next message this node receives.
    pub async fn recv(&mut self) -> Incoming {
        self.recv_within(WAIT).await
    }

    /// The next message this node receives, within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Incoming {
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => panic!("{}: the node stopped handing on messages", self.name),
            Err(_) => panic!("{}: nothing received within {wait:?}", self.name),
        }
    }

    /// Waits until this node's outbox is empty: every member acknowledged what it published.
    pub async fn wait_outbox_empty(&self) {
        wait_until(&format!("{}'s outbox empty", self.name), || {
            let stats = self.node.publisher().outbox();
            (stats.messages == 0).then_some(()).ok_or(Box::new(stats))
        })
        .await;
    }
}

/// Polls `check` until it gives `Ok`, for at most [`WAIT`]; panics with the last `Err`.
pub async fn wait_until<T, E: std::fmt::Debug>(
    what: &str,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("not {what} within {WAIT:?}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// A message with id `id` and payload `payload`, which may share a SLIM message with others.
pub fn message(id: &str, payload: &str) -> Outgoing {
    Outgoing {
        id: id.to_string(),
        payload: payload.as_bytes().to_vec(),
        payload_type: "test".to_string(),
        metadata: Default::default(),
        concatenable: true,
    }
}
