//! The `store` sink with `location=`: what arrived is sealed into segments in object storage
//! (a real S3 server, SeaweedFS) and removed locally once the store confirmed it — every item
//! once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use slim_node::history::segment::Segment;

use crate::files::{Seaweed, BUCKET};
use crate::harness::*;

const CHANNEL: &str = "e2e/archive/telemetry";
const RECEIVER: &str = "e2e/archive/receiver";
const KEEPER: &str = "e2e/archive/keeper";

/// The `(time, seq)` of every item in the segments under `prefix`, and the item count the
/// segments' indexes give.
fn sealed_items(objects: &std::collections::BTreeMap<String, Vec<u8>>) -> (Vec<(u64, u64)>, u64) {
    let (mut keys, mut indexed) = (Vec::new(), 0);
    for (name, bytes) in objects {
        let segment = Segment::open(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        indexed += segment.index.items;
        for b in 0..segment.index.blocks.len() {
            keys.extend(segment.block(b).unwrap().into_iter().map(|(key, _)| key));
        }
    }
    (keys, indexed)
}

/// A keeper archiving to `s3` under `history/` after 1 s (with `options` added to its store
/// sink), serving its query API at the address in the file `api`: its arguments, its health
/// address.
fn keeper_args(mesh: &Mesh, options: &str) -> (Vec<String>, String) {
    let health = format!("127.0.0.1:{}", free_port());
    let api = format!("127.0.0.1:{}", free_port());
    std::fs::write(mesh.path("api"), &api).unwrap();
    let sink = format!(
        "store:{};location=s3://{BUCKET}/history;seal-after=1s{options}",
        mesh.path("store").display()
    );
    let args = ["--sink", &sink, "--health", &health, "--query-api", &api]
        .map(String::from)
        .to_vec();
    (args, health)
}

/// Every span the keeper's query API gives for all time, paged 700 at a time: its
/// `(startTimeUnixNano, traceId/spanId)`, in the order given.
async fn page_everything(mesh: &Mesh) -> Vec<(u64, String)> {
    let api = std::fs::read_to_string(mesh.path("api")).unwrap();
    let client = reqwest::Client::new();
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    for _ in 0..1000 {
        let mut body = serde_json::json!({"limit": 700, "startTimeUnixNano": "0"});
        if let Some(c) = &cursor {
            body["cursor"] = c.clone().into();
        }
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let page: Value = loop {
            let r = client
                .post(format!("http://{api}/api/traces/fetch"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break r.json().await.unwrap();
            }
            let status = r.status();
            assert!(
                Instant::now() < deadline,
                "{status}: {}",
                r.text().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        for rs in page["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for span in ss["spans"].as_array().unwrap() {
                    out.push((
                        span["startTimeUnixNano"].as_str().unwrap().parse().unwrap(),
                        format!(
                            "{}/{}",
                            span["traceId"].as_str().unwrap(),
                            span["spanId"].as_str().unwrap()
                        ),
                    ));
                }
            }
        }
        cursor = page["nextCursor"].as_str().map(str::to_string);
        if page["hasMore"] == false {
            return out;
        }
    }
    panic!("paging did not end");
}

/// Asserts that `spans` are `n`, each once, in time order.
fn assert_each_once_in_time_order(spans: &[(u64, String)], n: usize) {
    let ids: BTreeSet<&String> = spans.iter().map(|(_, id)| id).collect();
    assert_eq!((spans.len(), ids.len()), (n, n));
    assert!(spans.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
}

/// The store sink's `/health` detail at `health`, once `done` holds.
async fn wait_store(
    health: &str,
    what: &str,
    keeper: &Proc,
    s3: &Seaweed,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DELIVERY_TIMEOUT * 3;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Some(h) = health_at(health).await {
            last = h["sinks"][0]["detail"].clone();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{what}: {last}\n{}\nweed: {}",
        keeper.stderr_text(),
        s3.log_tail()
    );
}

async fn health_at(addr: &str) -> Option<Value> {
    reqwest::get(format!("http://{addr}/health"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Asserts that the segments under `history/` hold `n` items, each once.
async fn assert_bucket_holds_each_once(s3: &Seaweed, n: usize) {
    let objects = s3.objects("history/").await;
    assert!(
        objects
            .keys()
            .all(|k| k.contains("/traces/") && k.ends_with(".seg")),
        "{:?}",
        objects.keys()
    );
    let (keys, indexed) = sealed_items(&objects);
    let distinct: BTreeSet<_> = keys.iter().collect();
    assert_eq!((keys.len(), distinct.len(), indexed), (n, n, n as u64));
}

/// `requests` loadgen requests of 100 spans to `port`, `rate` a second; how many were 200.
async fn load(mesh: &Mesh, port: u16, requests: u32, rate: u32) -> u64 {
    load_in_background(mesh, "loadgen", port, requests, rate)
        .await
        .unwrap()
}

/// A keeper archiving to a fresh SeaweedFS: the mesh, the bucket, the keeper's arguments and
/// health address, the receiver, the keeper and the receiver's port.
async fn keeping() -> (Mesh, Seaweed, Vec<String>, String, Proc, Proc, u16) {
    keeping_with("").await
}

/// [`keeping`] with `options` added to the store sink.
async fn keeping_with(options: &str) -> (Mesh, Seaweed, Vec<String>, String, Proc, Proc, u16) {
    let mesh = Mesh::start();
    let s3 = Seaweed::start(mesh.dir.path());
    let (args, health) = keeper_args(&mesh, options);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (receiver, keeper, port) = mesh
        .receiver_and_participant(("keeper", KEEPER), &refs, &env, (RECEIVER, CHANNEL))
        .await;
    (mesh, s3, args, health, receiver, keeper, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_with_a_location_keeps_what_arrived_in_the_bucket_each_item_once() {
    let (mesh, s3, _, health, _receiver, keeper, port) = keeping().await;
    assert_eq!(load(&mesh, port, 30, 1000).await, 30);
    let store = wait_store(&health, "not archived", &keeper, &s3, |s| {
        s["archived"] == 3000 && s["archive"]["waiting_items"] == 0
    })
    .await;
    assert_eq!(
        store["traces"], 0,
        "nothing left here once archived: {store}"
    );
    assert_eq!(store["archive"]["items"], 3000, "{store}");
    assert_bucket_holds_each_once(&s3, 3000).await;
    // The query API pages them back from the bucket.
    assert_each_once_in_time_order(&page_everything(&mesh).await, 3000);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_bucket_down_for_30s_under_load_everything_answered_200_ends_up_in_it() {
    let (mesh, mut s3, _, health, _receiver, keeper, port) = keeping().await;
    assert_eq!(load(&mesh, port, 10, 1000).await, 10);
    wait_store(&health, "the first part not archived", &keeper, &s3, |s| {
        s["archived"] == 1000
    })
    .await;
    s3.down();
    let down_at = Instant::now();
    // 20 s of load while the bucket is away.
    let taken = load(&mesh, port, 100, 5).await;
    let waiting = wait_store(
        &health,
        "no failed put while the bucket is away",
        &keeper,
        &s3,
        |s| {
            s["archive"]["failed_attempts"].as_u64() > Some(0)
                && s["archive"]["waiting_items"].as_u64() > Some(0)
        },
    )
    .await;
    eprintln!("with the bucket away: {waiting}");
    // A query answers what is here, says it is partial, and its cursor does not move on.
    let api = std::fs::read_to_string(mesh.path("api")).unwrap();
    let asked = serde_json::json!({"limit": 10000, "startTimeUnixNano": "0"}).to_string();
    let answer = reqwest::Client::new()
        .post(format!("http://{api}/api/traces/fetch"))
        .header("content-type", "application/json")
        .body(asked)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().contains_key("slim-node-partial"));
    let page: Value = answer.json().await.unwrap();
    let local = page["resourceSpans"].as_array().map_or(0, Vec::len);
    eprintln!(
        "a fetch while the bucket is away: partial {}, {local} spans from the local store",
        page["partial"]
    );
    assert_eq!(
        (page["partial"].clone(), page["hasMore"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
    assert!(local > 0, "the local items are answered");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    s3.up();
    let total = 1000 + taken * 100;
    let store = wait_store(
        &health,
        "not everything archived after the bucket came back",
        &keeper,
        &s3,
        |s| s["archived"].as_u64() == Some(total) && s["archive"]["waiting_items"] == 0,
    )
    .await;
    eprintln!("{taken} of 100 requests answered 200 during the outage; then {store}");
    assert_bucket_holds_each_once(&s3, total as usize).await;
    assert_each_once_in_time_order(&page_everything(&mesh).await, total as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keeper_killed_while_archiving_loses_nothing_answered_200_and_doubles_nothing() {
    let (mesh, s3, args, health, _receiver, keeper, port) = keeping().await;
    // Load in the background while the keeper archives, then kill -9 mid-way.
    let loading = load_in_background(&mesh, "loadgen-kill", port, 100, 10);
    wait_store(
        &health,
        "nothing archived before the kill",
        &keeper,
        &s3,
        |s| s["archived"].as_u64() > Some(0),
    )
    .await;
    keeper.kill9();
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut again: Vec<&str> = PARTICIPANT_ROLE.to_vec();
    again.extend(args.iter().map(String::as_str));
    let _keeper = mesh.node_with_env("keeper-again", KEEPER, &again, &env);
    let taken = loading.await.unwrap();
    // Every span answered 200 reaches the bucket (some come again from the receiver's outbox).
    let deadline = Instant::now() + DELIVERY_TIMEOUT * 3;
    let keys = loop {
        let (keys, _) = sealed_items(&s3.objects("history/").await);
        if keys.len() as u64 >= taken * 100 || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let store = health_at(&health).await.unwrap_or(Value::Null);
    eprintln!(
        "{taken} requests answered 200; in the bucket {} spans; after the restart: {}",
        keys.len(),
        store["sinks"][0]["detail"]
    );
    let distinct: BTreeSet<_> = keys.iter().collect();
    assert_eq!(keys.len(), distinct.len(), "no item twice in the bucket");
    assert_eq!(
        keys.len() as u64,
        taken * 100,
        "every span answered 200 is in the bucket"
    );
    // Paged from what is here and what is in the bucket: each once.
    assert_each_once_in_time_order(&page_everything(&mesh).await, (taken * 100) as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_age_deletes_old_segments_from_the_bucket() {
    let (mesh, s3, _, health, _receiver, keeper, port) = keeping_with(";max-age=15s").await;
    assert_eq!(load(&mesh, port, 10, 1000).await, 10);
    wait_store(&health, "not archived", &keeper, &s3, |s| {
        s["archived"] == 1000
    })
    .await;
    assert!(!s3.objects("history/").await.is_empty());
    let deadline = Instant::now() + Duration::from_secs(90);
    while !s3.objects("history/").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "segments past max-age are still in the bucket\n{}",
            keeper.stderr_text()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let store = wait_store(&health, "no deletion counted", &keeper, &s3, |s| {
        s["archive"]["deleted_segments"].as_u64() > Some(0)
    })
    .await;
    eprintln!("after max-age: {store}");
}

/// Sends `requests` loadgen requests of 100 spans to `port`, `rate` a second, from a process
/// labelled `label`, in the background; the join gives how many were answered 200.
fn load_in_background(
    mesh: &Mesh,
    label: &str,
    port: u16,
    requests: u32,
    rate: u32,
) -> tokio::task::JoinHandle<u64> {
    let (dir, label) = (mesh.dir.path().to_path_buf(), label.to_string());
    tokio::task::spawn_blocking(move || {
        let endpoint = format!("http://127.0.0.1:{port}");
        let (requests, rate) = (requests.to_string(), rate.to_string());
        let mut p = Proc::spawn(
            &dir,
            &label,
            &[
                "loadgen",
                "--endpoint",
                &endpoint,
                "--json",
                "--items",
                "100",
                "--requests",
                &requests,
                "--rate",
                &rate,
                "--duration",
                "300",
            ],
        );
        assert_eq!(p.wait_exit(Duration::from_secs(400)), Some(0), "{label}");
        let out = std::fs::read_to_string(&p.stdout).unwrap_or_default();
        let report: Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{label}: no report ({e}): {out}"));
        report["ok"]
            .as_u64()
            .unwrap_or_else(|| panic!("{label}: no `ok` in {report}"))
    })
}

/// Asserts that `spans` are what loadgen runs of `requests` requests each sent: a trace per
/// request, numbered on from a random start in each run, each with the spans 1 to 100.
fn assert_what_loadgen_sent(spans: &[(u64, String)], runs: usize, requests: usize) {
    let mut traces: std::collections::BTreeMap<u128, BTreeSet<u64>> = Default::default();
    for (_, id) in spans {
        let (trace, span) = id.split_once('/').unwrap();
        let trace = u128::from_str_radix(trace, 16).unwrap();
        let span = u64::from_str_radix(span, 16).unwrap();
        assert!(traces.entry(trace).or_default().insert(span), "{id} twice");
    }
    let all: BTreeSet<u64> = (1..=100).collect();
    assert!(traces.values().all(|spans| *spans == all));
    // Consecutive trace ids form the runs.
    let ids: Vec<u128> = traces.keys().copied().collect();
    let starts = 1 + ids
        .windows(2)
        .filter(|w| w[1] != w[0].wrapping_add(1))
        .count();
    assert_eq!((ids.len(), starts), (runs * requests, runs));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_an_empty_directory_pages_every_span_two_nodes_sealed_into_one_prefix_once() {
    const REQUESTS: u32 = 500;
    let mesh = Mesh::start();
    let s3 = Seaweed::start(mesh.dir.path());
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut writers = Vec::new();
    for site in ["a", "b"] {
        let health = format!("127.0.0.1:{}", free_port());
        let sink = format!(
            "store:{};location=s3://{BUCKET}/history;seal-after=1s",
            mesh.path(&format!("store-{site}")).display()
        );
        let keeper_name = format!("e2e/archive/keeper-{site}");
        let mut args = PARTICIPANT_ROLE.to_vec();
        args.extend(["--sink", &sink, "--health", &health]);
        let keeper = mesh.node_with_env(&format!("keeper-{site}"), &keeper_name, &args, &env);
        let channel = format!("e2e/archive/site-{site}");
        let (receiver, port) = mesh.receiver(
            &format!("receiver-{site}"),
            &format!("e2e/archive/receiver-{site}"),
            &moderator(&channel, &[&keeper_name]),
        );
        wait_state(port, "active", &receiver).await;
        writers.push((health, keeper, receiver, port));
    }
    // Both sites take their load at the same time: their items' times interleave.
    let loads: Vec<_> = writers
        .iter()
        .zip(["load-a", "load-b"])
        .map(|((_, _, _, port), label)| load_in_background(&mesh, label, *port, REQUESTS, 200))
        .collect();
    for load in loads {
        assert_eq!(load.await.unwrap(), u64::from(REQUESTS));
    }
    let per_site = u64::from(REQUESTS) * 100;
    for (health, keeper, _, _) in &writers {
        wait_store(health, "not archived", keeper, &s3, |s| {
            s["archived"].as_u64() == Some(per_site) && s["archive"]["waiting_items"] == 0
        })
        .await;
    }
    assert_bucket_holds_each_once(&s3, 2 * per_site as usize).await;

    // A third node: an empty directory, the same location, nothing else.
    let api = format!("127.0.0.1:{}", free_port());
    std::fs::write(mesh.path("api"), &api).unwrap();
    let sink = format!(
        "store:{};location=s3://{BUCKET}/history",
        mesh.path("reader").display()
    );
    let reader = Proc::spawn_with_env(
        mesh.dir.path(),
        "reader",
        &["query", "--sink", &sink, "--query-api", &api],
        &env,
    );
    wait_until(
        FORM_TIMEOUT,
        || std::net::TcpStream::connect(&api).is_ok(),
        || format!("slim-node query did not listen: {}", reader.stderr_text()),
    );
    let paging = Instant::now();
    let spans = page_everything(&mesh).await;
    eprintln!(
        "the third node paged {} spans of two stores in {:?} (debug build)",
        spans.len(),
        paging.elapsed()
    );
    assert_each_once_in_time_order(&spans, 2 * per_site as usize);
    assert_what_loadgen_sent(&spans, 2, REQUESTS as usize);
    // It wrote nothing to the bucket.
    assert_bucket_holds_each_once(&s3, 2 * per_site as usize).await;
}
