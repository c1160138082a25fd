//! The `files` sink: rolling per-signal files of OTLP/JSON lines, and their upload to a real
//! S3-protocol server (SeaweedFS's `weed mini`, installed by .ci/deps.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;
use serde_json::Value;

use crate::harness::*;

const CHANNEL: &str = "e2e/files/telemetry";
const RECEIVER: &str = "e2e/files/receiver";
const WRITER: &str = "e2e/files/writer";
pub(crate) const BUCKET: &str = "telemetry";
const KEY_ID: &str = "e2e-s3-key";
const KEY_SECRET: &str = "e2e-s3-secret-0123456789";

fn log(body: &str) -> Vec<u8> {
    log_request("files", body)
}

fn rendering(body: &[u8], signal: &str) -> Value {
    otlp::json::to_json_value(&otlp::json::from_json(signal.parse().unwrap(), body).unwrap())
}

/// Every closed file in `dir` (not `.part`), by name, with its lines parsed.
fn closed(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| {
            // Closed files are complete; one uploaded and removed since the listing is gone.
            let text = match std::fs::read_to_string(e.path()) {
                Ok(text) => text,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
                Err(err) => panic!("cannot read {}: {err}", e.path().display()),
            };
            let lines = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a line of OTLP/JSON"))
                .collect();
            Some((e.file_name().to_string_lossy().into_owned(), lines))
        })
        .collect()
}

fn parts(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

/// Every log record body in parsed lines.
fn bodies(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .flat_map(crate::backend::log_bodies_of)
        .collect()
}

/// A receiver (moderator) and a participant writing with `sink`; returns the receiver's port.
async fn mesh_writing(mesh: &Mesh, sink: &str, env: &[(&str, &str)]) -> (Proc, Proc, u16) {
    mesh.receiver_and_participant(
        ("writer", WRITER),
        &["--sink", sink],
        env,
        (RECEIVER, CHANNEL),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn each_signal_lands_in_its_own_file_equal_to_what_was_sent() {
    let mesh = Mesh::start();
    let dir = mesh.path("files");
    let sink = format!("files:{};flush-interval=1", dir.display());
    let (_receiver, writer, port) = mesh_writing(&mesh, &sink, &[]).await;
    for (signal, file) in [
        ("traces", "traces.json"),
        ("metrics", "metrics.json"),
        ("logs", "logs.json"),
    ] {
        post_json(port, &format!("/v1/{signal}"), example(file)).await;
    }
    wait_for("a closed file per signal", &writer, || {
        closed(&dir).len() >= 3
    })
    .await;
    let files = closed(&dir);
    for (signal, file) in [
        ("traces", "traces.json"),
        ("metrics", "metrics.json"),
        ("logs", "logs.json"),
    ] {
        let (name, lines) = files
            .iter()
            .find(|(name, _)| name.ends_with(&format!(".{signal}.log")))
            .unwrap_or_else(|| panic!("no {signal} file in {files:?}"));
        let stamp = name.split('.').next().unwrap();
        assert!(
            stamp.len() == 15
                && stamp.as_bytes()[8] == b'-'
                && stamp.chars().filter(char::is_ascii_digit).count() == 14,
            "{name} is YYYYMMDD-HHMMSS.{signal}.log"
        );
        assert_eq!(
            lines,
            &vec![rendering(&example(file), signal)],
            "{name}: the request as sent, nothing added"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_closes_at_max_lines_and_the_open_one_is_only_a_part() {
    let mesh = Mesh::start();
    let dir = mesh.path("files");
    let sink = format!("files:{};max-lines=3;flush-interval=600", dir.display());
    let (_receiver, writer, port) = mesh_writing(&mesh, &sink, &[]).await;
    for i in 0..7 {
        post_json(port, "/v1/logs", log(&format!("line {i}"))).await;
    }
    wait_for("two full files", &writer, || {
        closed(&dir).len() >= 2 && !parts(&dir).is_empty()
    })
    .await;
    let files = closed(&dir);
    let sizes: Vec<usize> = files.values().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3], "{files:?}");
    let mut got: Vec<String> = files.values().flat_map(|l| bodies(l)).collect();
    assert_eq!(
        parts(&dir).len(),
        1,
        "the seventh line waits in the open file"
    );
    let part = std::fs::read_to_string(dir.join(&parts(&dir)[0])).unwrap();
    got.extend(bodies(&[serde_json::from_str(part.trim()).unwrap()]));
    let expected: Vec<String> = (0..7).map(|i| format!("line {i}")).collect();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_closes_at_max_bytes() {
    let mesh = Mesh::start();
    let dir = mesh.path("files");
    // Each line is ~200 bytes: two fit under 500, the third closes the file.
    let sink = format!("files:{};max-bytes=500;flush-interval=600", dir.display());
    let (_receiver, writer, port) = mesh_writing(&mesh, &sink, &[]).await;
    for i in 0..6 {
        post_json(port, "/v1/logs", log(&format!("sized {i}"))).await;
    }
    wait_for("files closed by size", &writer, || closed(&dir).len() >= 2).await;
    for (name, lines) in closed(&dir) {
        let len = std::fs::metadata(dir.join(&name)).unwrap().len();
        assert!(
            len >= 500,
            "{name} closed at {len} bytes, not before max-bytes"
        );
        assert!(lines.len() < 6, "{name} was closed by size");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_closes_after_the_flush_interval_even_when_nothing_more_comes() {
    let mesh = Mesh::start();
    let dir = mesh.path("files");
    let sink = format!("files:{};flush-interval=2", dir.display());
    let (_receiver, writer, port) = mesh_writing(&mesh, &sink, &[]).await;
    post_json(port, "/v1/logs", log("lonely")).await;
    wait_for("the open file to appear", &writer, || {
        !parts(&dir).is_empty() || !closed(&dir).is_empty()
    })
    .await;
    wait_for("the file to close on time", &writer, || {
        closed(&dir).len() == 1
    })
    .await;
    assert!(parts(&dir).is_empty());
    assert_eq!(bodies(closed(&dir).values().next().unwrap()), ["lonely"]);
}

/// SeaweedFS's all-in-one server (`weed mini`) with S3 on a free port; every other port it
/// opens is a free one too, so tests run side by side. Killed when dropped.
pub(crate) struct Seaweed {
    dir: PathBuf,
    ports: Vec<(&'static str, u16)>,
    pub s3: u16,
    child: Option<Child>,
    log: PathBuf,
    /// It has run: its S3 port is known to its clients and stays.
    started: bool,
}

/// `weed mini`'s port flags besides the S3 port.
const WEED_PORTS: &[&str] = &[
    "admin.port",
    "admin.port.grpc",
    "debug.port",
    "filer.port",
    "filer.port.grpc",
    "master.port",
    "master.port.grpc",
    "metricsPort",
    "volume.port",
    "volume.port.grpc",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "webdav.port",
];

fn weed() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/venv/bin/weed");
    assert!(
        bin.exists(),
        "no weed at {}: run .ci/deps.sh",
        bin.display()
    );
    bin
}

impl Seaweed {
    pub(crate) fn start(dir: &Path) -> Seaweed {
        let mut s = Seaweed {
            dir: dir.join("seaweed"),
            ports: WEED_PORTS.iter().map(|p| (*p, free_port())).collect(),
            s3: free_port(),
            child: None,
            log: dir.join("weed.log"),
            started: false,
        };
        std::fs::create_dir_all(&s.dir).unwrap();
        s.up();
        s
    }

    /// Starts (again) on the same S3 port and data. A port taken meanwhile by another
    /// process (tests run side by side) makes weed exit: its other ports are picked again.
    pub(crate) fn up(&mut self) {
        for _ in 0..5 {
            if self.try_up() {
                self.started = true;
                return;
            }
            self.ports = WEED_PORTS.iter().map(|p| (*p, free_port())).collect();
            // Before anyone was told the S3 port, it may be picked again too.
            if !self.started {
                self.s3 = free_port();
            }
        }
        panic!("SeaweedFS did not start: {}", self.log_tail());
    }

    fn try_up(&mut self) -> bool {
        let mut cmd = Command::new(weed());
        cmd.arg("mini")
            .arg(format!("-dir={}", self.dir.display()))
            // Every address loopback: `-ip` is what its parts advertise and dial each other on.
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg("-metricsIp=127.0.0.1")
            .arg(format!("-s3.port={}", self.s3))
            .arg(format!("-bucket={BUCKET}"))
            .arg("-webdav=false")
            .arg("-admin.ui=false");
        for (flag, port) in &self.ports {
            cmd.arg(format!("-{flag}={port}"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = cmd
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", KEY_SECRET)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed starts");
        self.child = Some(child);
        let deadline = Instant::now() + FORM_TIMEOUT;
        while Instant::now() < deadline {
            // Something answers on the S3 port, but it may be another process that took the
            // port: weed then exits with "address already in use" just after. It is ours once
            // weed is still running a moment later.
            if std::net::TcpStream::connect(("127.0.0.1", self.s3)).is_ok() {
                std::thread::sleep(Duration::from_millis(500));
                let exited = self
                    .child
                    .as_mut()
                    .is_some_and(|c| c.try_wait().ok().flatten().is_some());
                if exited {
                    self.child = None;
                    return false;
                }
                return true;
            }
            if self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some())
            {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("SeaweedFS S3 did not listen: {}", self.log_tail());
    }

    /// Kills it (SIGKILL): the store is unreachable until [`Seaweed::up`].
    pub(crate) fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The end of its log, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3)
    }

    /// The variables a node needs to reach it.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", KEY_SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Every object under `prefix`, by key, with its bytes (gunzipped when the key ends in .gz).
    /// A store that answers an error (it may be starting again: SeaweedFS answers 500 for a
    /// moment after a restart) is asked again for [`READ_TIMEOUT`], then the test fails.
    pub(crate) async fn objects(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            match self.try_objects(prefix).await {
                Ok(objects) => return objects,
                Err(err) => assert!(
                    Instant::now() < deadline,
                    "reading the bucket under {prefix}: {err}\nweed: {}",
                    self.log_tail()
                ),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn try_objects(&self, prefix: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let store = AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(KEY_SECRET)
            .build()
            .map_err(|e| e.to_string())?;
        let listed: Vec<_> = store
            .list(Some(&prefix.into()))
            .try_collect()
            .await
            .map_err(|e| format!("listing: {e}"))?;
        let mut out = BTreeMap::new();
        for meta in listed {
            let got = store
                .get(&meta.location)
                .await
                .map_err(|e| format!("GET {}: {e}", meta.location))?;
            let encoding = got
                .attributes
                .get(&object_store::Attribute::ContentEncoding)
                .map(|v| v.to_string());
            let bytes = got
                .bytes()
                .await
                .map_err(|e| format!("reading {}: {e}", meta.location))?
                .to_vec();
            let key = meta.location.to_string();
            let bytes = if key.ends_with(".gz") {
                assert_eq!(encoding.as_deref(), Some("gzip"), "{key} says it is gzip'd");
                use std::io::Read;
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut plain)
                    .map_err(|e| format!("{key} is not gzip: {e}"))?;
                plain
            } else {
                bytes
            };
            out.insert(key, bytes);
        }
        Ok(out)
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.down();
    }
}

/// Log record bodies in uploaded objects, with how many times each appears.
fn uploaded_bodies(objects: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    objects
        .values()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("an OTLP/JSON line"))
                .collect::<Vec<_>>()
        })
        .flat_map(|v| crate::backend::log_bodies_of(&v))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_files_are_uploaded_under_prefix_signal_and_date_and_read_back_equal() {
    let mesh = Mesh::start();
    let s3 = Seaweed::start(mesh.dir.path());
    let dir = mesh.path("files");
    let sink = format!(
        "files:{};flush-interval=1;upload=s3://{BUCKET}/cluster-a;gzip=true",
        dir.display()
    );
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_receiver, writer, port) = mesh_writing(&mesh, &sink, &env).await;
    let sent: Vec<String> = (0..10).map(|i| format!("shipped {i}")).collect();
    for body in &sent {
        post_json(port, "/v1/logs", log(body)).await;
    }
    post_json(port, "/v1/traces", example("traces.json")).await;
    let deadline = Instant::now() + FORM_TIMEOUT;
    let objects = loop {
        let objects = s3.objects("cluster-a").await;
        if uploaded_bodies(&objects).len() >= sent.len()
            && objects.keys().any(|k| k.contains("/traces/"))
        {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "not uploaded: {:?}\n{}\nweed: {}",
            objects.keys(),
            writer.stderr_text(),
            s3.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let today = time::OffsetDateTime::now_utc();
    let day = format!(
        "{:04}/{:02}/{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    for key in objects.keys() {
        assert!(
            key.starts_with("cluster-a/logs/") || key.starts_with("cluster-a/traces/"),
            "{key}"
        );
        assert!(
            key.contains(&day) || key.contains("/20"),
            "{key} has the date folders"
        );
        assert!(key.ends_with(".log.gz"), "{key}");
    }
    assert_eq!(
        uploaded_bodies(&objects),
        sent,
        "every record once, in order"
    );
    let traces = objects
        .iter()
        .find(|(k, _)| k.contains("/traces/"))
        .unwrap()
        .1;
    let line: Value = serde_json::from_slice(traces.trim_ascii()).unwrap();
    assert_eq!(line, rendering(&example("traces.json"), "traces"));
    wait_for("local files removed once uploaded", &writer, || {
        closed(&dir).is_empty()
    })
    .await;
}

/// Waits until every accepted body is uploaded; prints the counts; fails on loss; returns
/// the duplicates.
async fn assert_all_uploaded(
    what: &str,
    accepted: &[String],
    s3: &Seaweed,
    prefix: &str,
    node: &Proc,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    let got = loop {
        let got = uploaded_bodies(&s3.objects(prefix).await);
        if accepted.iter().all(|a| got.contains(a)) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let unique: std::collections::BTreeSet<&String> = got.iter().collect();
    let duplicates = got.len() - unique.len();
    eprintln!(
        "{what}: answered 200 {}, uploaded {}, duplicates {duplicates}",
        accepted.len(),
        unique.len()
    );
    let missing: Vec<&String> = accepted.iter().filter(|a| !unique.contains(a)).collect();
    assert!(
        missing.is_empty(),
        "{what}: never uploaded {missing:?}\n{}",
        node.stderr_text()
    );
    duplicates
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_store_down_for_20s_files_wait_and_are_uploaded_after_none_missing_none_twice() {
    let mesh = Mesh::start();
    let mut s3 = Seaweed::start(mesh.dir.path());
    let dir = mesh.path("files");
    let sink = format!(
        "files:{};flush-interval=1;upload=s3://{BUCKET}/outage;keep-uploaded=true",
        dir.display()
    );
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let health_port = free_port();
    let health_addr = format!("127.0.0.1:{health_port}");
    let (_receiver, writer, port) = mesh
        .receiver_and_participant(
            ("writer", WRITER),
            &["--sink", &sink, "--health", &health_addr],
            &env,
            (RECEIVER, CHANNEL),
        )
        .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream(port, "files", "outage", stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    s3.down();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        closed(&dir).len() >= 3,
        "closed files wait while the store is away"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    s3.up();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let accepted = load.await.unwrap();
    let duplicates =
        assert_all_uploaded("store down 20 s", &accepted, &s3, "outage", &writer).await;
    assert_eq!(duplicates, 0, "nothing uploaded twice");
    // keep-uploaded: what the store confirmed moved aside, not deleted.
    wait_for("uploaded files kept aside", &writer, || {
        closed(&dir).is_empty()
    })
    .await;
    assert!(!closed(&dir.join("uploaded")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_the_newest_closed_files_and_health_shows_the_open_one() {
    let mesh = Mesh::start();
    let dir = mesh.path("files");
    let health_port = free_port();
    let health_addr = format!("127.0.0.1:{health_port}");
    let sink = format!(
        "files:{};max-lines=2;max-files=2;flush-interval=600",
        dir.display()
    );
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--sink", &sink, "--health", &health_addr]);
    let writer = mesh.node("writer", WRITER, &args);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[WRITER]));
    wait_state(port, "active", &receiver).await;
    for i in 0..9 {
        post_json(port, "/v1/logs", log(&format!("kept {i}"))).await;
    }
    // All nine written: four files closed, the ninth line in the open one.
    let deadline = Instant::now() + FORM_TIMEOUT;
    let h = loop {
        let h = health_of(health_port).await;
        let logs = &h["sinks"][0]["detail"]["logs"];
        if logs["closed"] == 4 && logs["open_lines"] == 1 {
            break h;
        }
        assert!(Instant::now() < deadline, "{h}\n{}", writer.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kept: Vec<String> = closed(&dir).values().flat_map(|l| bodies(l)).collect();
    assert_eq!(
        kept,
        ["kept 4", "kept 5", "kept 6", "kept 7"],
        "the two newest of four closed files"
    );
    assert_eq!(
        parts(&dir).len(),
        1,
        "the ninth line waits in the open file"
    );
    assert_eq!(h["sinks"][0]["detail"]["removed"], 2, "{h}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_killed_while_writing_and_while_uploading_loses_nothing_answered_200() {
    let mesh = Mesh::start();
    let mut s3 = Seaweed::start(mesh.dir.path());
    let dir = mesh.path("files");
    let sink = format!(
        "files:{};flush-interval=1;upload=s3://{BUCKET}/crash",
        dir.display()
    );
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_receiver, writer, port) = mesh_writing(&mesh, &sink, &env).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream(port, "files", "crash", stop.clone());
    // Killed while writing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    writer.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut args = PARTICIPANT_ROLE.to_vec();
    args.extend(["--sink", &sink]);
    let second = mesh.node_with_env("writer-2", WRITER, &args, &env);
    // Killed while files wait for a store that is away (an upload in flight or retrying).
    tokio::time::sleep(Duration::from_secs(3)).await;
    s3.down();
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.kill9();
    s3.up();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let third = mesh.node_with_env("writer-3", WRITER, &args, &env);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let accepted = load.await.unwrap();
    let duplicates =
        assert_all_uploaded("writer killed twice", &accepted, &s3, "crash", &third).await;
    assert!(duplicates <= 10, "{duplicates} records in two files");
}
