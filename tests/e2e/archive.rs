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
fn load(mesh: &Mesh, port: u16, requests: u32, rate: u32) -> u64 {
    let endpoint = format!("http://127.0.0.1:{port}");
    let (requests, rate) = (requests.to_string(), rate.to_string());
    let (code, report, err) = crate::bench::run_loadgen(
        mesh,
        &endpoint,
        &[
            "--items",
            "100",
            "--requests",
            &requests,
            "--rate",
            &rate,
            "--duration",
            "120",
        ],
    );
    assert_eq!(code, Some(0), "{report}\n{err}");
    report["ok"].as_u64().unwrap_or(0)
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
    assert_eq!(load(&mesh, port, 30, 1000), 30);
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
    assert_eq!(load(&mesh, port, 10, 1000), 10);
    wait_store(&health, "the first part not archived", &keeper, &s3, |s| {
        s["archived"] == 1000
    })
    .await;
    s3.down();
    let down_at = Instant::now();
    // 20 s of load while the bucket is away.
    let taken = load(&mesh, port, 100, 5);
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
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keeper_killed_while_archiving_loses_nothing_answered_200_and_doubles_nothing() {
    let (mesh, s3, args, health, _receiver, keeper, port) = keeping().await;
    // Load in the background while the keeper archives, then kill -9 mid-way.
    let dir = mesh.dir.path().to_path_buf();
    let loading = tokio::task::spawn_blocking(move || {
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut p = Proc::spawn(
            &dir,
            "loadgen-kill",
            &[
                "loadgen",
                "--endpoint",
                &endpoint,
                "--json",
                "--items",
                "100",
                "--requests",
                "100",
                "--rate",
                "10",
                "--duration",
                "120",
            ],
        );
        let code = p.wait_exit(Duration::from_secs(180));
        (code, std::fs::read_to_string(&p.stdout).unwrap_or_default())
    });
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
    let (code, out) = loading.await.unwrap();
    let report: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    assert_eq!(code, Some(0), "{report}");
    let taken = report["ok"].as_u64().unwrap_or(0);
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
    assert_eq!(load(&mesh, port, 10, 1000), 10);
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
