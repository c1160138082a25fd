//! Real processes on loopback: a SLIM server, slim-node nodes, and helpers to watch them.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The shared secret every test mesh uses (long enough for SLIM).
pub const SECRET: &str = "e2e-test-shared-secret-0123456789abcdef";
/// How long a mesh may take to form (debug builds on 2 busy cores are slow).
pub const FORM_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a message may take to arrive.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A child process, killed when dropped; its output goes to files in the test's directory.
pub struct Proc {
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Starts `slim-node ARGS` with output in `dir/LABEL.{out,err}`.
    pub fn spawn(dir: &Path, label: &str, args: &[&str]) -> Proc {
        Proc::spawn_with_env(dir, label, args, &[])
    }

    /// [`Proc::spawn`] with more environment variables.
    pub fn spawn_with_env(dir: &Path, label: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_wrapped(dir, label, &[], args, env)
    }

    /// [`Proc::spawn_with_env`] run through `wrapper` (e.g. `ip netns exec NS`).
    pub fn spawn_wrapped(
        dir: &Path,
        label: &str,
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let stdout = dir.join(format!("{label}.out"));
        let stderr = dir.join(format!("{label}.err"));
        let bin = env!("CARGO_BIN_EXE_slim-node");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args(args)
            .env_remove("RUST_LOG")
            .env("SLIM_NODE_LOG", "debug")
            // Each test's nodes keep their state (by name) in the test's own directory.
            .env("XDG_STATE_HOME", dir.join("state"))
            .env_remove("SLIM_NODE_DATA_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("cannot start slim-node");
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        self.signal_term();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bearer tokens the tests use, as the token file names them (`name` or `name:scopes`); like
/// [`SECRET`], they must never appear in a log. The teams may ingest; `ops` may administer.
pub const TOKENS: &[(&str, &str)] = &[
    ("team-a", "e2e-token-team-a-7f3c9a1d"),
    ("team-b", "e2e-token-team-b-52be0e44"),
    ("ops:admin", "e2e-token-ops-admin-c4d1e88b"),
];
/// The index in [`TOKENS`] of the key with the `admin` scope.
pub const ADMIN_TOKEN: usize = 2;
/// Another shared secret, for nodes that must not get in.
pub const WRONG_SECRET: &str = "e2e-wrong-shared-secret-fedcba9876543210";

/// A SLIM server and the nodes of one test, in one temporary directory. When dropped, it
/// checks that no log in the directory holds a secret.
pub struct Mesh {
    pub dir: tempfile::TempDir,
    pub url: String,
    endpoint: String,
    server: Option<Proc>,
    restarts: usize,
    server_args: Vec<String>,
    node_args: Vec<String>,
    /// The command prefix its server and nodes run under (`ip netns exec NS`: another host).
    wrapper: Vec<String>,
}

impl Mesh {
    /// Starts `slim-node server` on a free port and waits until it accepts connections.
    pub fn start() -> Mesh {
        Mesh::start_with("http", vec![], vec![])
    }

    /// Starts the server with TLS (`mtls`: client certificates required); nodes connect
    /// with `https://`, trusting the test CA (and presenting the client certificate).
    pub fn start_tls(certs: &crate::certs::Certs, mtls: bool) -> Mesh {
        let path = |p: &PathBuf| p.display().to_string();
        let mut server = vec![
            "--tls-cert".to_string(),
            path(&certs.server_cert),
            "--tls-key".into(),
            path(&certs.server_key),
        ];
        let mut node = vec!["--ca".to_string(), path(&certs.ca)];
        if mtls {
            server.extend(["--client-ca".into(), path(&certs.ca)]);
            node.extend([
                "--client-cert".into(),
                path(&certs.client_cert),
                "--client-key".into(),
                path(&certs.client_key),
            ]);
        }
        Mesh::start_with("https", server, node)
    }

    /// Starts `slim-node server` on `ip` (an address of this host, e.g. one end of a veth
    /// pair a test made) and a free port.
    pub fn start_on(ip: &str) -> Mesh {
        Mesh::start_at("http", ip, vec![], vec![])
    }

    /// Starts a site on another host: `slim-node server` run through `wrapper` (`ip netns exec
    /// NS`) on `ip` and a free port, with `server_args`; the site's nodes run there too.
    pub fn start_in(wrapper: &[&str], ip: &str, server_args: Vec<String>) -> Mesh {
        let wrapper = wrapper.iter().map(ToString::to_string).collect();
        Mesh::start_at_port("http", ip, free_port(), server_args, vec![], wrapper)
    }

    /// Starts another site: a SLIM server of its own, linked to `site`'s server as a SLIM
    /// peer (`--peer`); its nodes connect to it.
    pub fn start_peered_with(site: &Mesh) -> Mesh {
        Mesh::start_peered_with_url(&site.url)
    }

    /// What the SLIM server logged.
    pub fn server_log(&self) -> String {
        self.server
            .as_ref()
            .map(Proc::stderr_text)
            .unwrap_or_default()
    }

    fn start_with(scheme: &str, server_args: Vec<String>, node_args: Vec<String>) -> Mesh {
        Mesh::start_at(scheme, "127.0.0.1", server_args, node_args)
    }

    fn start_at(scheme: &str, ip: &str, server_args: Vec<String>, node_args: Vec<String>) -> Mesh {
        Mesh::start_at_port(scheme, ip, free_port(), server_args, node_args, vec![])
    }

    /// Starts `slim-node server` on 127.0.0.1:`port` (a port another server was told of
    /// before this one started).
    pub fn start_on_port(port: u16) -> Mesh {
        Mesh::start_at_port("http", "127.0.0.1", port, vec![], vec![], vec![])
    }

    /// Starts another site whose server is linked as a SLIM peer to `url` (which may not be
    /// up yet).
    pub fn start_peered_with_url(url: &str) -> Mesh {
        Mesh::start_peered_with_args(vec!["--peer".into(), url.to_string()])
    }

    /// Starts another site whose server takes `peer_args` (`--peer URL`, TLS to the peer).
    pub fn start_peered_with_args(peer_args: Vec<String>) -> Mesh {
        Mesh::start_with("http", peer_args, vec![])
    }

    fn start_at_port(
        scheme: &str,
        ip: &str,
        port: u16,
        server_args: Vec<String>,
        node_args: Vec<String>,
        wrapper: Vec<String>,
    ) -> Mesh {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("secret"), SECRET).expect("secret file");
        std::fs::write(dir.path().join("wrong-secret"), WRONG_SECRET).expect("secret file");
        let tokens: String = TOKENS.iter().map(|(n, t)| format!("{n}={t}\n")).collect();
        std::fs::write(dir.path().join("tokens"), tokens).expect("token file");
        let endpoint = format!("{ip}:{port}");
        let server = start_server(dir.path(), "server", &wrapper, &endpoint, &server_args);
        Mesh {
            dir,
            url: format!("{scheme}://{endpoint}"),
            endpoint,
            server: Some(server),
            restarts: 0,
            server_args,
            node_args,
            wrapper,
        }
    }

    /// Kills the SLIM server with SIGKILL, waits `down`, and starts it again on the same port.
    pub fn crash_server_for(&mut self, down: Duration) {
        self.kill_server();
        std::thread::sleep(down);
        self.restart_server();
    }

    /// Kills the SLIM server with SIGKILL; for `down`, the port accepts connections and
    /// resets them at once (a server half up, or a load balancer in front of a dead one);
    /// then the server starts again on the same port.
    pub fn crash_server_resetting_for(&mut self, down: Duration) {
        self.kill_server();
        let listener = TcpListener::bind(&self.endpoint).expect("the server's port is free");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let until = Instant::now() + down;
        while Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => {
                    // SO_LINGER 0: closing sends RST instead of FIN.
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    drop(stream);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        drop(listener);
        self.restart_server();
    }

    /// Kills the SLIM server with SIGKILL, for good.
    pub fn kill_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill9();
        }
    }

    /// Starts the server again on its port, with its arguments.
    fn restart_server(&mut self) {
        self.restarts += 1;
        let label = format!("server-{}", self.restarts);
        self.server = Some(start_server(
            self.dir.path(),
            &label,
            &self.wrapper,
            &self.endpoint,
            &self.server_args,
        ));
    }

    /// A path in the test's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts a node: `slim-node node --name NAME --slim URL --secret-file F [TLS] EXTRA…`
    /// (the secret in a file: a flag would show it in `ps`).
    pub fn node(&self, label: &str, name: &str, extra: &[&str]) -> Proc {
        self.node_with_secret(label, name, "secret", extra)
    }

    /// [`Mesh::node`] with more environment variables.
    pub fn node_with_env(
        &self,
        label: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        self.node_full(label, name, "secret", extra, env)
    }

    /// [`Mesh::node`] with the secret in the directory's file `secret_file`.
    pub fn node_with_secret(
        &self,
        label: &str,
        name: &str,
        secret_file: &str,
        extra: &[&str],
    ) -> Proc {
        self.node_full(label, name, secret_file, extra, &[])
    }

    /// [`Mesh::sink_node`] run through `wrapper` (e.g. `ip netns exec NS`).
    pub fn sink_node_wrapped(
        &self,
        wrapper: &[&str],
        label: &str,
        name: &str,
        extra: &[&str],
    ) -> (Proc, PathBuf) {
        let out = self.path(&format!("{label}.jsonl"));
        let sink = format!("jsonl:{}", out.display());
        let mut args = vec!["--sink", &sink];
        args.extend_from_slice(extra);
        (
            self.node_wrapped(wrapper, label, name, "secret", &args, &[]),
            out,
        )
    }

    fn node_full(
        &self,
        label: &str,
        name: &str,
        secret_file: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let wrapper: Vec<&str> = self.wrapper.iter().map(String::as_str).collect();
        self.node_wrapped(&wrapper, label, name, secret_file, extra, env)
    }

    fn node_wrapped(
        &self,
        wrapper: &[&str],
        label: &str,
        name: &str,
        secret_file: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let secret = self.path(secret_file).display().to_string();
        let mut args = vec![
            "node",
            "--name",
            name,
            "--slim",
            &self.url,
            "--secret-file",
            &secret,
        ];
        args.extend(self.node_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        Proc::spawn_wrapped(self.dir.path(), label, wrapper, &args, env)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.kill_server();
        if !std::thread::panicking() {
            assert_no_secrets_in_logs(self.dir.path());
        }
    }
}

/// Fails if any log (`*.out`, `*.err`) in `dir` holds a shared secret or a bearer token.
pub fn assert_no_secrets_in_logs(dir: &Path) {
    let secrets: Vec<&str> = [SECRET, WRONG_SECRET]
        .into_iter()
        .chain(TOKENS.iter().map(|(_, t)| *t))
        .collect();
    for entry in std::fs::read_dir(dir).expect("test directory").flatten() {
        let path = entry.path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("out" | "err")
        ) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for secret in &secrets {
            assert!(
                !text.contains(secret),
                "{} contains a secret",
                path.display()
            );
        }
    }
}

impl Mesh {
    /// Starts a node with an OTLP/HTTP receiver on a free port; returns it and the port. A
    /// port found free can be taken by another process before the node binds it: then the node
    /// exits saying so, and it is started again on another port (at most 3 times).
    pub fn receiver(&self, label: &str, name: &str, extra: &[&str]) -> (Proc, u16) {
        let mut attempt = 0;
        loop {
            let port = free_port();
            let http = format!("127.0.0.1:{port}");
            let mut args = vec!["--otlp-http", &http];
            args.extend_from_slice(extra);
            let mut node = self.node(label, name, &args);
            attempt += 1;
            let deadline = Instant::now() + FORM_TIMEOUT;
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return (node, port);
                }
                if node.has_exited() {
                    if attempt < 3 && node.stderr_text().contains("Address already in use") {
                        break;
                    }
                    return (node, port);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if Instant::now() >= deadline {
                return (node, port);
            }
        }
    }

    /// Starts a node whose sink is the file `LABEL.jsonl`; returns it and the file.
    pub fn sink_node(&self, label: &str, name: &str, extra: &[&str]) -> (Proc, PathBuf) {
        let out = self.path(&format!("{label}.jsonl"));
        let sink = format!("jsonl:{}", out.display());
        let mut args = vec!["--sink", &sink];
        args.extend_from_slice(extra);
        (self.node(label, name, &args), out)
    }
}

/// Arguments of a moderator on `channel` inviting `invites`.
pub fn moderator<'a>(channel: &'a str, invites: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--role", "moderator", "--channel", channel];
    for name in invites {
        args.extend(["--invite", name]);
    }
    args
}

/// Arguments of a participant.
pub const PARTICIPANT_ROLE: &[&str] = &["--role", "participant"];

/// Starts `slim-node server` on `endpoint` and waits until it accepts connections.
fn start_server(
    dir: &Path,
    label: &str,
    wrapper: &[String],
    endpoint: &str,
    extra: &[String],
) -> Proc {
    let mut args = vec!["server", "--endpoint", endpoint];
    args.extend(extra.iter().map(String::as_str));
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let server = Proc::spawn_wrapped(dir, label, &wrapper, &args, &[]);
    wait_until(
        FORM_TIMEOUT,
        || TcpStream::connect(endpoint).is_ok(),
        || format!("SLIM server did not listen: {}", server.stderr_text()),
    );
    server
}

/// Polls `ok` every 100 ms until it holds, or panics with `what()`.
pub fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out: {}", what());
}

/// How long a helper that reads a real server retries transient failures before it fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET URL` (with `headers`) as JSON, retrying transient failures (no connection yet, a 5xx,
/// a body cut short) for [`READ_TIMEOUT`]; then fails naming the last one. Never a default:
/// an assert on an empty answer would pass for nothing.
pub async fn get_json(url: &str, headers: &[(&str, &str)]) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let failed = match req.send().await {
            Ok(r) if r.status().is_server_error() => format!("answered {}", r.status()),
            Ok(r) => match r.json::<Value>().await {
                Ok(v) => return v,
                Err(e) => format!("a body that is not JSON: {e}"),
            },
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < deadline, "GET {url}: {failed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /health` of a node (retried while it does not answer; fails after [`READ_TIMEOUT`]).
pub async fn health_of(port: u16) -> Value {
    get_json(&format!("http://127.0.0.1:{port}/health"), &[]).await
}

/// `GET /health` of a receiver, if it answers now: for polls across a node's restart, where
/// no answer is expected for a while (otherwise use [`health_of`]).
pub async fn health(port: u16) -> Option<Value> {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .ok()?;
    resp.json().await.ok()
}

/// Waits until the receiver's node is in `state` (e.g. "active", "joined").
pub async fn wait_state(port: u16, state: &str, node: &Proc) -> Value {
    let deadline = Instant::now() + FORM_TIMEOUT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(h) = health(port).await {
            if h["node"]["state"] == state {
                return h;
            }
            last = Some(h);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "node never reached {state}; last health {last:?}; log:\n{}",
        node.stderr_text()
    );
}

/// The complete JSON lines of a file (none if it does not exist yet); a last line still
/// being written is left out.
pub fn jsonl(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| serde_json::from_str(l).expect("a jsonl line that is not JSON"))
        .collect()
}

/// Waits until `path` holds at least `n` lines and returns them.
pub async fn wait_jsonl(path: &Path, n: usize, node: &Proc) -> Vec<Value> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while Instant::now() < deadline {
        let lines = jsonl(path);
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} holds {} of {n} lines; consumer log:\n{}",
        path.display(),
        jsonl(path).len(),
        node.stderr_text()
    );
}

/// How long a count that reached what a test expects must then stay put before the test says
/// nothing more arrives: a late copy (SLIM delivering again, a publisher re-sending) lands
/// within it.
pub const QUIET_PERIOD: Duration = Duration::from_secs(3);

/// Reads with `read` (every 100 ms, for at most `timeout`) until `enough` holds, then waits
/// out [`QUIET_PERIOD`] and returns what `read` gives then: what arrived late included, for
/// the caller to count. If `enough` never holds, returns the last read.
pub async fn read_until_quiet<T>(
    timeout: Duration,
    mut read: impl FnMut() -> T,
    enough: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let got = read();
        if enough(&got) {
            break;
        }
        if Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(QUIET_PERIOD).await;
    read()
}

/// Waits until `path` holds `n` lines and checks that it still holds exactly `n` after
/// [`QUIET_PERIOD`]: no fewer, and no late copy. Returns them.
pub async fn wait_jsonl_exactly(path: &Path, n: usize, node: &Proc) -> Vec<Value> {
    let lines = read_until_quiet(DELIVERY_TIMEOUT, || jsonl(path), |l| l.len() >= n).await;
    assert!(
        lines.len() >= n,
        "{} holds {} of {n} lines; consumer log:\n{}",
        path.display(),
        lines.len(),
        node.stderr_text()
    );
    assert_eq!(
        lines.len(),
        n,
        "{} holds {} lines where {n} were expected; the ones beyond: {:?}",
        path.display(),
        lines.len(),
        &lines[n..]
    );
    lines
}

/// A sample file from examples/.
pub fn example(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// POSTs `body` to a receiver.
pub async fn post(port: u16, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    post_with(port, path, &[("content-type", content_type)], body).await
}

/// POSTs an OTLP/JSON `body` to `path`; it must be answered 200.
pub async fn post_json(port: u16, path: &str, body: Vec<u8>) {
    let resp = post(port, path, "application/json", body).await;
    let status = resp.status();
    assert_eq!(
        status,
        200,
        "{path}: {}",
        resp.text().await.unwrap_or_default()
    );
}

/// POSTs `body` with the given headers.
pub async fn post_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.expect("receiver unreachable")
}

/// Asserts that every field of `expected` (OTLP/JSON as a client sent it) is in `actual`
/// (OTLP/JSON as a sink wrote it) with the same value. Hex ids compare case-insensitively,
/// and 64-bit integers compare equal as numbers or strings; `actual` may carry defaults.
pub fn assert_otlp_json_contains(expected: &Value, actual: &Value, path: &str) {
    if let Some(difference) = otlp_json_difference(expected, actual, path) {
        panic!("{difference}");
    }
}

/// The first field of `expected` that `actual` lacks or holds differently, by the rules of
/// [`assert_otlp_json_contains`]; `None` when `actual` contains all of it.
pub fn otlp_json_difference(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, ev)| match a.get(k) {
            Some(av) => otlp_json_difference(ev, av, &format!("{path}.{k}")),
            None => Some(format!("{path}.{k} is missing in {actual}")),
        }),
        (Value::Array(e), Value::Array(a)) if e.len() != a.len() => Some(format!(
            "{path}: array lengths differ ({} expected, {} found)",
            e.len(),
            a.len()
        )),
        (Value::Array(e), Value::Array(a)) => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| otlp_json_difference(ev, av, &format!("{path}[{i}]"))),
        (Value::String(e), Value::String(a)) if path.ends_with("Id") => (e.to_lowercase() != *a)
            .then(|| format!("{path}: ids differ (output must be lower-case hex): {e} / {a}")),
        (Value::Number(e), Value::String(a)) => {
            (e.to_string() != *a).then(|| format!("{path}: {e} expected, {a} found"))
        }
        (e, a) => (e != a).then(|| format!("{path}: {e} expected, {a} found")),
    }
}

/// A receiver (moderator) whose participant has joined, ready to forward.
pub struct Active {
    /// Keeps the SLIM server and the test directory alive.
    pub _mesh: Mesh,
    pub receiver: Proc,
    pub participant: Proc,
    /// The participant's jsonl sink.
    pub out: PathBuf,
    /// The receiver's OTLP/HTTP port.
    pub port: u16,
}

/// Starts a SLIM server, a participant with a jsonl sink, and a receiving moderator with
/// `extra` arguments; returns once the participant has joined.
pub async fn active_mesh(extra: &[&str]) -> Active {
    let mesh = Mesh::start();
    let (participant, out) =
        mesh.sink_node("participant", "e2e/mesh/participant", PARTICIPANT_ROLE);
    let mut args = moderator("e2e/mesh/telemetry", &["e2e/mesh/participant"]);
    args.extend_from_slice(extra);
    let (receiver, port) = mesh.receiver("receiver", "e2e/mesh/receiver", &args);
    wait_state(port, "active", &receiver).await;
    Active {
        _mesh: mesh,
        receiver,
        participant,
        out,
        port,
    }
}

/// The peak resident memory of a process in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the status of process {pid}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in the status of process {pid}"))
}

/// The body of the first log record of each jsonl line (the tests send one record each).
pub fn log_bodies(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l["payload"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Waits until `done` holds, or fails naming `what` with the node's log.
pub async fn wait_for(what: &str, node: &Proc, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + FORM_TIMEOUT;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; log:\n{}", node.stderr_text());
}

/// An OTLP/JSON logs request of one record with `body`, from service `service`, at a fixed time.
pub fn log_request(service: &str, body: &str) -> Vec<u8> {
    format!(r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1700000000000000000","body":{{"stringValue":"{body}"}}}}]}}]}}]}}"#)
        .into_bytes()
}

/// Posts one record (`log_request(service, "PREFIX N")`) every 20 ms until `stop`; returns the
/// bodies answered 200, in order.
pub fn stream(
    port: u16,
    service: &'static str,
    prefix: &'static str,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Vec<String>> {
    stream_with(port, stop, move |i| {
        let body = format!("{prefix} {i}");
        let request = log_request(service, &body);
        (body, request)
    })
}

/// Posts the OTLP/JSON logs request `request(N)` gives (a name and the body) every 20 ms until
/// `stop`; returns the names of those answered 200, in order.
pub fn stream_with(
    port: u16,
    stop: tokio_util::sync::CancellationToken,
    request: impl Fn(usize) -> (String, Vec<u8>) + Send + 'static,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut accepted = Vec::new();
        let mut i = 0;
        while !stop.is_cancelled() {
            let (name, body) = request(i);
            let ok = client
                .post(format!("http://127.0.0.1:{port}/v1/logs"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                accepted.push(name);
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        accepted
    })
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// A tool in .ci/venv/bin; fails the test, naming the install step, when it is not there.
pub fn venv_tool(name: &str) -> PathBuf {
    let bin = repo_root().join(".ci/venv/bin").join(name);
    assert!(
        bin.exists(),
        "no {name} at {}: run .ci/deps.sh",
        bin.display()
    );
    bin
}

/// Whether the tests run as root (they may then make network namespaces and mount tmpfs).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

impl Mesh {
    /// A participant `name` (label `label`) started with `args` and `env`, and a receiver
    /// (moderator of `channel`, named `receiver`) inviting it; returns both and the receiver's
    /// port once the group is up.
    pub async fn receiver_and_participant(
        &self,
        (label, name): (&str, &str),
        args: &[&str],
        env: &[(&str, &str)],
        (receiver, channel): (&str, &str),
    ) -> (Proc, Proc, u16) {
        let mut participant_args = PARTICIPANT_ROLE.to_vec();
        participant_args.extend_from_slice(args);
        let participant = self.node_with_env(label, name, &participant_args, env);
        let (receiver, port) = self.receiver("receiver", receiver, &moderator(channel, &[name]));
        wait_state(port, "active", &receiver).await;
        (receiver, participant, port)
    }
}
