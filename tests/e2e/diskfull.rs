//! A member whose disk is full: a participant's durable sink (files, jsonl, store) or its disk
//! queue lives on a small tmpfs the test mounts. A stream fills it; then space comes back
//! 1 MiB at a time. Every request answered 200 must be written exactly once (no copy from
//! the retries), `/health` must name the sink while it cannot write and be `ok` again after.
//!
//! Mounting needs root (CI runs as root); elsewhere the tests say they are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::{log_bodies_of, Backend};
use crate::harness::*;

const CHANNEL: &str = "e2e/diskfull/telemetry";
const RECEIVER: &str = "e2e/diskfull/receiver";
const WRITER: &str = "e2e/diskfull/writer";
/// Log records per request.
const RECORDS: usize = 20;
/// The tmpfs's first size.
const FIRST_MIB: u64 = 3;
/// Sizes tried at most while giving space back.
const LAST_MIB: u64 = 64;

/// A tmpfs mounted on a directory; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts `mib` MiB on `dir` (created); `None` after saying why where the test cannot
    /// (not root). As root a mount that fails is a failure.
    fn mount(dir: &Path, mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => {
                return Some(Tmpfs {
                    dir: dir.to_path_buf(),
                })
            }
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(!running_as_root(), "cannot mount tmpfs as root: {why}");
        eprintln!("skipped: cannot mount tmpfs: {why}");
        None
    }

    /// Gives it `mib` MiB in all.
    fn resize(&self, mib: u64) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "remount to {mib} MiB: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a node still holding a file there must not keep the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A logs request of [`RECORDS`] records of ~500 bytes, bodies `ID K …`.
fn request(id: &str) -> Vec<u8> {
    let pad = "x".repeat(480);
    let records: Vec<String> = (0..RECORDS)
        .map(|k| format!(r#"{{"timeUnixNano":"1700000000000000000","body":{{"stringValue":"{id} {k} {pad}"}}}}"#))
        .collect();
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"diskfull"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    )
    .into_bytes()
}

/// What a sink wrote, so far: record bodies, and the lines (or exports) they came in.
struct Written {
    bodies: Vec<String>,
    lines: usize,
}

impl Written {
    /// Records per request id.
    fn per_id(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for body in &self.bodies {
            let id = body.split(' ').next().unwrap_or_default().to_string();
            *out.entry(id).or_insert(0) += 1;
        }
        out
    }

    /// Whether every id of `accepted` has all its records.
    fn holds(&self, accepted: &[String]) -> bool {
        let per_id = self.per_id();
        accepted
            .iter()
            .all(|id| per_id.get(id).is_some_and(|n| *n >= RECORDS))
    }
}

/// The complete lines of the files under `dir` (closed and open; a line still being written
/// is left out), parsed.
fn lines_under(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Renamed from `.part` meanwhile: it is read under its new name next time.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in bytes[..whole]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            out.push(serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!(
                    "{}: a line that is not JSON ({e}): {}",
                    path.display(),
                    String::from_utf8_lossy(&line[..line.len().min(200)])
                )
            }));
        }
    }
    out
}

/// `/health` of the participant, retried until it answers (a node under load may be slow).
async fn health_now(port: u16, node: &Proc) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let failed = match reqwest::get(format!("http://127.0.0.1:{port}/health")).await {
            Ok(r) => match r.json::<Value>().await {
                Ok(v) => return v,
                Err(e) => e,
            },
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "the participant's /health did not answer: {failed}\n{}",
            node.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `health` names the sink `sink` among its problems.
fn names_sink(health: &Value, sink: &str) -> bool {
    health["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|p| p.starts_with(&format!("sink {sink}")))
}

/// The run: streams into the mesh until the disk is full and a while after, checks `/health`
/// meanwhile, gives space back 1 MiB at a time until `written` holds every request answered
/// 200, waits for `/health` to be `ok`, and checks that nothing was written twice.
async fn fill_then_free(
    what: &str,
    tmpfs: &Tmpfs,
    sink: &str,
    (receiver_port, health_port): (u16, u16),
    writer: &Proc,
    mut space_back: impl FnMut(),
    written: impl Fn() -> Written,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream_with(receiver_port, stop.clone(), |i| {
        let id = format!("req-{i}");
        let body = request(&id);
        (id, body)
    });
    // The disk fills within seconds; /health must say so, naming the sink.
    let deadline = Instant::now() + Duration::from_secs(90);
    let full = loop {
        let h = health_now(health_port, writer).await;
        if h["status"] != "ok" && names_sink(&h, sink) {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /health never named the sink while the disk filled: {h}\n{}",
            writer.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Full for a while under load: the retries are what used to write copies. Meanwhile the
    // moderator sees its member answer pings but acknowledge no data, and says so.
    let until = Instant::now() + Duration::from_secs(8);
    let mut at_moderator = None;
    while Instant::now() < until {
        if let Some(h) = health(receiver_port).await {
            let problems = h["problems"].as_array().cloned().unwrap_or_default();
            if let Some(p) = problems
                .iter()
                .filter_map(|p| p.as_str())
                .find(|p| p.contains("has not acknowledged data"))
            {
                at_moderator.get_or_insert(p.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let at_moderator = at_moderator.unwrap_or_else(|| {
        panic!("{what}: the moderator's /health never named its member as not acknowledging")
    });
    eprintln!("{what}: the moderator said: {at_moderator}");
    let still = health_now(health_port, writer).await;
    stop.cancel();
    let accepted = load.await.expect("the stream");
    assert!(!accepted.is_empty(), "{what}: nothing answered 200");
    // Space back a little at a time, until everything answered 200 is written.
    let mut mib = FIRST_MIB;
    while !written().holds(&accepted) && mib < LAST_MIB {
        mib += 1;
        tmpfs.resize(mib);
        space_back();
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // Re-sent messages come back within the publisher's backoff (at most 60 s).
    let deadline = Instant::now() + Duration::from_secs(180);
    while !written().holds(&accepted) {
        let got = written();
        let per_id = got.per_id();
        let missing: Vec<&String> = accepted
            .iter()
            .filter(|id| per_id.get(*id).is_none_or(|n| *n < RECORDS))
            .collect();
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {} requests answered 200 not written after the disk grew to {mib} MiB: {:?}…\n{}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)],
            writer.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let h = health_now(health_port, writer).await;
        if h["status"] == "ok" {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /health not ok again after the disk had room: {h}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let got = written();
    let per_id = got.per_id();
    let copies: usize = per_id.values().map(|n| n.saturating_sub(RECORDS)).sum();
    let accepted_set: BTreeSet<&String> = accepted.iter().collect();
    eprintln!(
        "{what}: answered 200 {}, lines {}, records {}, distinct ids {}, extra copies of records {copies}, \
         disk grew to {mib} MiB; /health while full: {} {:?} (then {}); after: {} (sink {})",
        accepted.len(),
        got.lines,
        got.bodies.len(),
        per_id.len(),
        full["status"],
        full["problems"],
        still["status"],
        after["status"],
        after["sinks"][0]
    );
    assert_eq!(copies, 0, "{what}: records written more than once");
    assert!(
        per_id
            .keys()
            .all(|id| accepted_set.contains(id) || id.starts_with("req-")),
        "{what}: only what was sent"
    );
    assert!(
        still["status"] != "ok" && names_sink(&still, sink),
        "{what}: /health while still full: {still}"
    );
}

/// A participant writing with `sink` (and `--health`), and the receiver inviting it.
async fn writer_with(mesh: &Mesh, args: &[&str]) -> (Proc, Proc, u16, u16) {
    let health_port = free_port();
    let health = format!("127.0.0.1:{health_port}");
    let mut all = args.to_vec();
    all.extend(["--health", &health]);
    let (receiver, writer, port) = mesh
        .receiver_and_participant(("writer", WRITER), &all, &[], (RECEIVER, CHANNEL))
        .await;
    (receiver, writer, port, health_port)
}

#[tokio::test(flavor = "multi_thread")]
async fn files_on_a_full_disk_write_every_request_once_and_say_so_until_space_returns() {
    let mesh = Mesh::start();
    let Some(tmpfs) = Tmpfs::mount(&mesh.path("disk"), FIRST_MIB) else {
        return;
    };
    let dir = tmpfs.dir.join("files");
    let sink = format!("files:{};max-lines=50", dir.display());
    let (_receiver, writer, port, health_port) = writer_with(&mesh, &["--sink", &sink]).await;
    let read = || {
        let lines = lines_under(&dir);
        Written {
            bodies: lines.iter().flat_map(log_bodies_of).collect(),
            lines: lines.len(),
        }
    };
    fill_then_free(
        "files",
        &tmpfs,
        "files",
        (port, health_port),
        &writer,
        || {},
        read,
    )
    .await;
    let got = read();
    assert_eq!(got.lines, got.per_id().len(), "one line per request");
}

#[tokio::test(flavor = "multi_thread")]
async fn jsonl_on_a_full_disk_writes_every_request_once_and_says_so_until_space_returns() {
    let mesh = Mesh::start();
    let Some(tmpfs) = Tmpfs::mount(&mesh.path("disk"), FIRST_MIB) else {
        return;
    };
    let out = tmpfs.dir.join("out.jsonl");
    let sink = format!("jsonl:{}", out.display());
    let (_receiver, writer, port, health_port) = writer_with(&mesh, &["--sink", &sink]).await;
    let read = || {
        let lines = jsonl(&out);
        Written {
            bodies: lines
                .iter()
                .flat_map(|l| log_bodies_of(&l["payload"]))
                .collect(),
            lines: lines.len(),
        }
    };
    fill_then_free(
        "jsonl",
        &tmpfs,
        "jsonl",
        (port, health_port),
        &writer,
        || {},
        read,
    )
    .await;
    let got = read();
    assert_eq!(got.lines, got.per_id().len(), "one line per request");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_on_a_full_disk_stores_every_request_once_and_says_so_until_space_returns() {
    let mesh = Mesh::start();
    let Some(tmpfs) = Tmpfs::mount(&mesh.path("disk"), FIRST_MIB) else {
        return;
    };
    let keys = mesh.path("query-keys");
    std::fs::write(&keys, "reader:query=diskfull-query-key-0123456789\n").expect("key file");
    let api_port = free_port();
    let api = format!("127.0.0.1:{api_port}");
    let sink = format!("store:{}", tmpfs.dir.join("store").display());
    let keys = keys.display().to_string();
    let (_receiver, writer, port, health_port) = writer_with(
        &mesh,
        &[
            "--sink",
            &sink,
            "--query-api",
            &api,
            "--query-api-keys",
            &keys,
        ],
    )
    .await;
    // The store's records, paged through the query API (blocking: called from the checks).
    let read = || {
        let handle = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| handle.block_on(stored_bodies(api_port, &writer)))
    };
    fill_then_free(
        "store",
        &tmpfs,
        "store",
        (port, health_port),
        &writer,
        || {},
        read,
    )
    .await;
}

/// Every log record body in the store, paged through the query API; retried while the API
/// answers a transient error, failing after a deadline.
async fn stored_bodies(api_port: u16, node: &Proc) -> Written {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    'again: loop {
        let mut bodies = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = serde_json::json!({"startTimeUnixNano": 0, "limit": 5000});
            if let Some(c) = &cursor {
                query["cursor"] = Value::from(c.clone());
            }
            let answer = client
                .post(format!("http://127.0.0.1:{api_port}/api/logs/fetch"))
                .bearer_auth("diskfull-query-key-0123456789")
                .header("content-type", "application/json")
                .body(query.to_string())
                .send()
                .await;
            let page = match answer {
                Ok(r) if r.status() == 200 => r.json::<Value>().await.map_err(|e| e.to_string()),
                Ok(r) => Err(format!(
                    "{}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            };
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the query API did not answer: {e}\n{}",
                        node.stderr_text()
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue 'again;
                }
            };
            pages += 1;
            bodies.extend(log_bodies_of(&page));
            cursor = page["nextCursor"].as_str().map(str::to_string);
            if page["hasMore"] != true {
                return Written {
                    bodies,
                    lines: pages,
                };
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_queue_on_a_full_disk_takes_every_request_once_and_says_so_until_space_returns() {
    let mesh = Mesh::start();
    let Some(tmpfs) = Tmpfs::mount(&mesh.path("disk"), FIRST_MIB) else {
        return;
    };
    // The queue (DATA_DIR/sinks/NAME) on the tmpfs; the rest of the node's state beside it.
    let data = mesh.path("data");
    std::fs::create_dir_all(&data).expect("the data directory");
    std::os::unix::fs::symlink(&tmpfs.dir, data.join("sinks")).expect("sinks on the tmpfs");
    // The backend is away while the disk fills: the queue holds everything.
    let mut backend = Backend::start().await;
    backend.down();
    let sink = format!("otlp:{};queue=disk;retry-max-delay=1", backend.url());
    let data = data.display().to_string();
    let (_receiver, writer, port, health_port) =
        writer_with(&mesh, &["--sink", &sink, "--data-dir", &data]).await;
    let recorded = std::sync::Arc::new(std::sync::Mutex::new(None::<Backend>));
    let mut backend = Some(backend);
    let place = recorded.clone();
    // Once space comes back, the backend too.
    let space_back = move || {
        if let Some(mut b) = backend.take() {
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| handle.block_on(b.up()));
            *place.lock().expect("the backend") = Some(b);
        }
    };
    let read = || {
        let got = recorded.lock().expect("the backend");
        let bodies = got.as_ref().map(Backend::log_bodies).unwrap_or_default();
        Written {
            lines: got.as_ref().map_or(0, |b| b.exports().len()),
            bodies,
        }
    };
    fill_then_free(
        "disk queue",
        &tmpfs,
        "otlp",
        (port, health_port),
        &writer,
        space_back,
        read,
    )
    .await;
}
