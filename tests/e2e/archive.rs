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

#[tokio::test(flavor = "multi_thread")]
async fn a_store_with_a_location_keeps_what_arrived_in_the_bucket_each_item_once() {
    let mesh = Mesh::start();
    let s3 = Seaweed::start(mesh.dir.path());
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let health = format!("127.0.0.1:{}", free_port());
    let sink = format!(
        "store:{};location=s3://{BUCKET}/history;seal-after=1s",
        mesh.path("store").display()
    );
    let (_receiver, keeper, port) = mesh
        .receiver_and_participant(
            ("keeper", KEEPER),
            &["--sink", &sink, "--health", &health],
            &env,
            (RECEIVER, CHANNEL),
        )
        .await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let (code, report, err) = crate::bench::run_loadgen(
        &mesh,
        &endpoint,
        &["--items", "100", "--requests", "30", "--duration", "60"],
    );
    assert_eq!(
        (code, report["ok"].as_u64()),
        (Some(0), Some(30)),
        "{report}\n{err}"
    );

    let deadline = Instant::now() + DELIVERY_TIMEOUT * 2;
    let store = loop {
        let h: Value = get_json(&format!("http://{health}/health"), &[]).await;
        let store = h["sinks"][0]["detail"].clone();
        if store["archived"] == 3000 && store["archive"]["waiting_items"] == 0 {
            break store;
        }
        assert!(
            Instant::now() < deadline,
            "not archived: {store}\n{}\nweed: {}",
            keeper.stderr_text(),
            s3.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        store["traces"], 0,
        "nothing left here once archived: {store}"
    );
    assert_eq!(store["archive"]["items"], 3000, "{store}");

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
    assert_eq!((keys.len(), distinct.len(), indexed), (3000, 3000, 3000));
}
