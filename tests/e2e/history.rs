//! The `store` sink and its query API: paging returns every stored item exactly once in time
//! order (also while items keep arriving), the range edges are `[start, end)`, keys and
//! cursors are checked, the store survives a restart, retention removes what was stored
//! first, and `slim-node fetch` / `slim-node replay` read it back.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::harness::*;

const CHANNEL: &str = "e2e/history/telemetry";
const RECEIVER: &str = "e2e/history/receiver";
const KEEPER: &str = "e2e/history/keeper";
/// The query API's key (a `query` key file line `reader:query=…`).
const QUERY_KEY: &str = "query-key-0123456789abcdef";
/// Another valid key of the same file (`auditor=…`).
const OTHER_KEY: &str = "other-query-key-0123456789";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A receiver and a participant keeping a store, serving it on a free port with the key
/// file; returns both, the receiver's port and the API's URL.
struct Kept {
    receiver: Proc,
    keeper: Proc,
    port: u16,
    api: String,
    args: Vec<String>,
}

async fn mesh_keeping(mesh: &Mesh, store_options: &str, extra: &[String]) -> Kept {
    let keys = mesh.path("query-keys");
    std::fs::write(
        &keys,
        format!("# readers\nreader:query={QUERY_KEY}\nauditor:query={OTHER_KEY}\n"),
    )
    .unwrap();
    let api_port = free_port();
    let mut args: Vec<String> = vec![
        "--sink".into(),
        format!("store:{}{store_options}", mesh.path("store").display()),
        "--query-api".into(),
        format!("127.0.0.1:{api_port}"),
        "--query-api-keys".into(),
        keys.display().to_string(),
    ];
    args.extend_from_slice(extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (receiver, keeper, port) = mesh
        .receiver_and_participant(("keeper", KEEPER), &refs, &[], (RECEIVER, CHANNEL))
        .await;
    Kept {
        receiver,
        keeper,
        port,
        api: format!("http://127.0.0.1:{api_port}"),
        args,
    }
}

/// The keeping participant started again with the same arguments (and so the same data).
fn keeper_again(mesh: &Mesh, args: &[String]) -> Proc {
    let args: Vec<&str> = PARTICIPANT_ROLE
        .iter()
        .copied()
        .chain(args.iter().map(String::as_str))
        .collect();
    mesh.node("keeper-again", KEEPER, &args)
}

/// `n` spans from `first` on, starting at `time(i)`, with span ids from `first`.
fn spans(first: u64, n: u64, time: impl Fn(u64) -> u64) -> Vec<u8> {
    let spans: Vec<Value> = (first..first + n)
        .map(|i| {
            json!({
                "traceId": format!("{:032x}", 1 + i / 100),
                "spanId": format!("{:016x}", i + 1),
                "name": format!("span {i}"),
                "kind": 1,
                "startTimeUnixNano": time(i).to_string(),
                "endTimeUnixNano": (time(i) + 5).to_string(),
            })
        })
        .collect();
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "history"}}]},
        "scopeSpans": [{"scope": {"name": "e2e"}, "spans": spans}]
    }]}))
    .unwrap()
}

/// One fetch with the key; returns the status and the JSON body. A fetch that gets no
/// answer, a 5xx or a body cut short is tried again for [`READ_TIMEOUT`], then fails; 4xx
/// answers are returned (tests check them).
async fn fetch(api: &str, signal: &str, body: Value, key: Option<&str>) -> (u16, Value) {
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    loop {
        let mut call = reqwest::Client::new()
            .post(format!("{api}/api/{signal}/fetch"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            call = call.bearer_auth(key);
        }
        let failed = match call.send().await {
            Ok(r) if r.status().is_server_error() => {
                format!("{}: {}", r.status(), r.text().await.unwrap_or_default())
            }
            Ok(r) => {
                let status = r.status().as_u16();
                match r.text().await {
                    Ok(text) => {
                        let json = serde_json::from_str(&text)
                            .unwrap_or_else(|_| panic!("not JSON: {text}"));
                        return (status, json);
                    }
                    Err(e) => format!("reading the answer: {e}"),
                }
            }
            Err(e) => e.to_string(),
        };
        assert!(
            std::time::Instant::now() < deadline,
            "the query API did not answer {signal}/fetch: {failed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `(startTimeUnixNano, spanId)` of every span of a page, in order.
fn spans_of(page: &Value) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for rs in page["resourceSpans"].as_array().expect("resourceSpans") {
        for ss in rs["scopeSpans"].as_array().unwrap() {
            for span in ss["spans"].as_array().unwrap() {
                out.push((
                    span["startTimeUnixNano"].as_str().unwrap().parse().unwrap(),
                    span["spanId"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// Pages `body`'s query from `cursor` until `hasMore` is false; returns the spans and the
/// last cursor.
async fn page_all(
    api: &str,
    body: &Value,
    limit: u64,
    cursor: Option<String>,
) -> (Vec<(u64, String)>, String) {
    let mut out = Vec::new();
    let mut cursor = cursor;
    loop {
        let mut query = body.clone();
        query["limit"] = json!(limit);
        if let Some(c) = &cursor {
            query["cursor"] = json!(c);
        }
        let (status, page) = fetch(api, "traces", query, Some(QUERY_KEY)).await;
        assert_eq!(status, 200, "{page}");
        let got = spans_of(&page);
        assert!(got.len() as u64 <= limit);
        out.extend(got);
        cursor = Some(page["nextCursor"].as_str().expect("nextCursor").to_string());
        if !page["hasMore"].as_bool().expect("hasMore") {
            return (out, cursor.unwrap());
        }
    }
}

/// The query API's `/health` as a key holder sees it, once `done` holds.
async fn wait_health(what: &str, kept: &Kept, done: impl Fn(&Value) -> bool) -> Value {
    wait_health_of(what, &kept.api, &kept.keeper, done).await
}

async fn wait_health_of(
    what: &str,
    api: &str,
    node: &Proc,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let client = reqwest::Client::new();
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT * 2;
    while std::time::Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("{api}/health"))
            .bearer_auth(QUERY_KEY)
            .send()
            .await
        {
            last = r.json().await.unwrap_or(Value::Null);
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "timed out waiting for {what}: {last}; log:\n{}",
        node.stderr_text()
    );
}

/// Waits until the store holds `n` items of `signal`.
async fn wait_stored(api: &str, signal: &str, n: u64, node: &Proc) -> Value {
    wait_health_of(&format!("{n} {signal} stored"), api, node, |h| {
        h["store"][signal].as_u64() == Some(n)
    })
    .await
}

async fn post_spans(port: u16, body: Vec<u8>) {
    let r = post(port, "/v1/traces", "application/json", body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_returns_every_span_once_in_time_order_with_start_inclusive_and_end_exclusive() {
    let mesh = Mesh::start();
    let kept = mesh_keeping(&mesh, "", &[]).await;
    // 10,000 spans over 2,500 distinct start times (four spans share each), sent out of order.
    let base = now_ns() - 600_000_000_000;
    let time = move |i: u64| base + ((i * 7919) % 2500) * 1_000_000;
    for batch in 0..100 {
        post_spans(kept.port, spans(batch * 100, 100, time)).await;
    }
    wait_stored(&kept.api, "traces", 10_000, &kept.keeper).await;

    let query = json!({"startTimeUnixNano": base.to_string()});
    let first = fetch(
        &kept.api,
        "traces",
        json!({"startTimeUnixNano": base, "limit": 777}),
        Some(QUERY_KEY),
    )
    .await
    .1;
    assert_eq!(spans_of(&first).len(), 777);
    assert_eq!(first["hasMore"], true);
    // 500 more arrive while paging: some before the position reached, some after it.
    post_spans(
        kept.port,
        spans(10_000, 500, |i| base + (i % 2500) * 1_000_000 + 1),
    )
    .await;
    wait_stored(&kept.api, "traces", 10_500, &kept.keeper).await;
    let cursor = first["nextCursor"].as_str().unwrap().to_string();
    let (rest, later) = page_all(&kept.api, &query, 777, Some(cursor)).await;
    let mut paged = spans_of(&first);
    paged.extend(rest);
    assert_eq!(
        paged.len(),
        10_000,
        "the pages hold what was stored when paging began"
    );
    let ids: BTreeSet<&String> = paged.iter().map(|(_, id)| id).collect();
    eprintln!(
        "paged {} spans in pages of 777 (500 more arrived meanwhile), {} distinct",
        paged.len(),
        ids.len()
    );
    assert_eq!(ids.len(), 10_000, "no span twice");
    assert!(paged.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
    // The last cursor brings what arrived meanwhile, each once.
    let (arrived, _) = page_all(&kept.api, &query, 300, Some(later)).await;
    eprintln!("the last cursor brought {} more", arrived.len());
    assert_eq!(arrived.len(), 500);
    let all: BTreeSet<&String> = paged.iter().chain(&arrived).map(|(_, id)| id).collect();
    assert_eq!(all.len(), 10_500);

    // [start, end): spans at start are in, spans at end are out.
    let (start, end) = (base + 10 * 1_000_000, base + 20 * 1_000_000);
    let range = json!({"startTimeUnixNano": start, "endTimeUnixNano": end.to_string()});
    let (edged, _) = page_all(&kept.api, &range, 1000, None).await;
    let expected = (0..10_000u64)
        .filter(|i| (start..end).contains(&time(*i)))
        .count()
        + (10_000..10_500u64)
            .filter(|i| (start..end).contains(&(base + (i % 2500) * 1_000_000 + 1)))
            .count();
    eprintln!(
        "[start, end) holds {} spans, {expected} expected",
        edged.len()
    );
    assert_eq!(edged.len(), expected);
    assert!(
        edged.iter().any(|(t, _)| *t == start),
        "spans at the start are in"
    );
    assert!(
        (0..10_000).any(|i| time(i) == end),
        "spans at the end exist (and are out)"
    );
    assert!(edged.iter().all(|(t, _)| (start..end).contains(t)));

    // The same page in protobuf, asked for and answered as `application/x-protobuf`.
    let request = slim_node::history::query::FetchRequestProto {
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        limit: 5,
        cursor: String::new(),
    };
    let response = reqwest::Client::new()
        .post(format!("{}/api/traces/fetch", kept.api))
        .header("content-type", "application/x-protobuf")
        .header("accept", "application/x-protobuf")
        .bearer_auth(QUERY_KEY)
        .body(prost::Message::encode_to_vec(&request))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let body = response.bytes().await.unwrap();
    let page = slim_node::history::query::read_protobuf(otlp::Signal::Traces, &body).unwrap();
    assert_eq!(page.request.summary().items, 5);
    assert!(page.has_more && !page.next_cursor.is_empty());
    drop(kept.receiver);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_api_refuses_missing_and_wrong_keys_bad_limits_and_tampered_cursors() {
    let mesh = Mesh::start();
    let kept = mesh_keeping(&mesh, "", &[]).await;
    post_spans(kept.port, spans(0, 10, |i| now_ns() - 1_000_000_000 + i)).await;
    wait_stored(&kept.api, "traces", 10, &kept.keeper).await;
    let since = json!({"startTimeUnixNano": 0, "limit": 3});

    let (status, body) = fetch(&kept.api, "traces", since.clone(), None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = fetch(
        &kept.api,
        "traces",
        since.clone(),
        Some("query-key-0123456789abcdeX"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // An ingest token is not a query key.
    let (status, _) = fetch(&kept.api, "traces", since.clone(), Some(TOKENS[0].1)).await;
    assert_eq!(status, 403);
    for limit in [json!(-1), json!(10_001), json!(1.5)] {
        let (status, body) = fetch(
            &kept.api,
            "traces",
            json!({"limit": limit}),
            Some(QUERY_KEY),
        )
        .await;
        assert_eq!(status, 400, "limit {limit}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("limit must be"),
            "{body}"
        );
    }

    let (status, page) = fetch(&kept.api, "traces", since.clone(), Some(QUERY_KEY)).await;
    assert_eq!(status, 200);
    let cursor = page["nextCursor"].as_str().unwrap().to_string();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let raw = b64.decode(&cursor).unwrap();
    let mut flipped = raw.clone();
    flipped[raw.len() / 2] ^= 0x01;
    let bad_cursors = [
        b64.encode(&flipped),
        b64.encode(&raw[..raw.len() - 1]),
        cursor[..cursor.len() / 2].to_string(),
        "bm90IGEgY3Vyc29y".to_string(),
    ];
    for bad in &bad_cursors {
        let (status, body) =
            fetch(&kept.api, "traces", json!({"cursor": bad}), Some(QUERY_KEY)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("cursor is not valid"),
            "{body}"
        );
    }
    // A traces cursor does not page logs.
    let (status, _) = fetch(
        &kept.api,
        "logs",
        json!({"cursor": cursor}),
        Some(QUERY_KEY),
    )
    .await;
    assert_eq!(status, 400);
    // The untouched cursor still pages on.
    let (status, next) = fetch(
        &kept.api,
        "traces",
        json!({"cursor": cursor, "limit": 100}),
        Some(QUERY_KEY),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(spans_of(&page).len() + spans_of(&next).len(), 10);

    // Health: the store's totals for a key holder, the status for anyone.
    let open: Value = reqwest::get(format!("{}/health", kept.api))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open, json!({"status": "ok"}));
    let text = format!(
        "{}{}",
        kept.keeper.stderr_text(),
        kept.receiver.stderr_text()
    );
    assert!(
        !text.contains(QUERY_KEY) && !text.contains(OTHER_KEY),
        "a query key is in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_sends_every_signal_again_to_a_second_receiver() {
    let mesh = Mesh::start();
    let kept = mesh_keeping(&mesh, "", &[]).await;
    let now = now_ns();
    post_spans(
        kept.port,
        spans(0, 300, |i| now - 60_000_000_000 + i * 1000),
    )
    .await;
    let metrics = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"requests","sum":{{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{}]}}}}]}}]}}]}}"#,
        (0..40)
            .map(|i| format!(
                r#"{{"asInt":"{i}","timeUnixNano":"{}"}}"#,
                now - 30_000_000_000 + i
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        post(
            kept.port,
            "/v1/metrics",
            "application/json",
            metrics.into_bytes()
        )
        .await
        .status(),
        200
    );
    let logs = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        (0..25)
            .map(|i| format!(
                r#"{{"timeUnixNano":"{}","body":{{"stringValue":"record {i}"}}}}"#,
                now - 20_000_000_000 + i
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        post(kept.port, "/v1/logs", "application/json", logs.into_bytes())
            .await
            .status(),
        200
    );
    // Old data (outside --since 10m) is not replayed.
    post_spans(kept.port, spans(5000, 7, |i| now - 3_600_000_000_000 + i)).await;
    wait_stored(&kept.api, "traces", 307, &kept.keeper).await;
    wait_stored(&kept.api, "logs", 25, &kept.keeper).await;
    wait_stored(&kept.api, "metrics", 40, &kept.keeper).await;

    // The second receiver, with a participant writing what it gets.
    let (far, far_out) = mesh.sink_node("far", "e2e/history/far", PARTICIPANT_ROLE);
    let far_args = moderator("e2e/history/second", &["e2e/history/far"]);
    let (second, second_port) = mesh.receiver("second", "e2e/history/second-receiver", &far_args);
    wait_state(second_port, "active", &second).await;

    let to = format!("http://127.0.0.1:{second_port}");
    let mut replay = Proc::spawn_with_env(
        mesh.dir.path(),
        "replay",
        &[
            "replay", "--api", &kept.api, "--since", "10m", "--to", &to, "--limit", "64",
        ],
        &[("SLIM_NODE_API_KEY", QUERY_KEY)],
    );
    assert_eq!(
        replay.wait_exit(FORM_TIMEOUT),
        Some(0),
        "{}",
        replay.stderr_text()
    );
    let said = replay.stderr_text();
    assert!(said.contains("replayed 300 spans"), "{said}");
    assert!(
        said.contains("replayed 40 data points") && said.contains("replayed 25 log records"),
        "{said}"
    );

    let mut got_spans = BTreeSet::new();
    let (mut points, mut records) = (0, 0);
    wait_for("the replayed items at the far end", &far, || {
        got_spans.clear();
        (points, records) = (0, 0);
        for line in jsonl(&far_out) {
            let p = &line["payload"];
            for rs in p["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        got_spans.insert(s["spanId"].as_str().unwrap().to_string());
                    }
                }
            }
            for rm in p["resourceMetrics"].as_array().into_iter().flatten() {
                for sm in rm["scopeMetrics"].as_array().unwrap() {
                    for m in sm["metrics"].as_array().unwrap() {
                        points += m["sum"]["dataPoints"].as_array().unwrap().len();
                    }
                }
            }
            for rl in p["resourceLogs"].as_array().into_iter().flatten() {
                for sl in rl["scopeLogs"].as_array().unwrap() {
                    records += sl["logRecords"].as_array().unwrap().len();
                }
            }
        }
        got_spans.len() == 300 && points == 40 && records == 25
    })
    .await;
    let expected: BTreeSet<String> = (0..300u64).map(|i| format!("{:016x}", i + 1)).collect();
    assert_eq!(got_spans, expected);
    drop(kept);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_node_keeps_its_store_and_cursors_and_fetch_prints_and_follows_it() {
    let mesh = Mesh::start();
    let kept = mesh_keeping(&mesh, "", &[]).await;
    let now = now_ns();
    post_spans(kept.port, spans(0, 20, |i| now - 5_000_000_000 + i)).await;
    wait_stored(&kept.api, "traces", 20, &kept.keeper).await;
    let (_, first) = fetch(
        &kept.api,
        "traces",
        json!({"startTimeUnixNano": 0, "limit": 8}),
        Some(QUERY_KEY),
    )
    .await;
    let cursor = first["nextCursor"].as_str().unwrap().to_string();

    assert_eq!(kept.keeper.terminate(), Some(0));
    let keeper = keeper_again(&mesh, &kept.args);
    wait_stored(&kept.api, "traces", 20, &keeper).await;
    let (status, rest) = fetch(
        &kept.api,
        "traces",
        json!({"cursor": cursor, "limit": 100}),
        Some(QUERY_KEY),
    )
    .await;
    assert_eq!(status, 200, "the cursor still opens: {rest}");
    let before: BTreeSet<String> = spans_of(&first).into_iter().map(|(_, id)| id).collect();
    let after: BTreeSet<String> = spans_of(&rest).into_iter().map(|(_, id)| id).collect();
    assert_eq!(
        (before.len(), after.len()),
        (8, 12),
        "the cursor goes on where it stopped"
    );
    assert!(before.is_disjoint(&after));

    // `slim-node fetch` prints the same spans as OTLP/JSON, one export request per line.
    let key_file = mesh.path("reader.key");
    std::fs::write(&key_file, QUERY_KEY).unwrap();
    let key_arg = key_file.display().to_string();
    let fetch_traces = |label: &str, more: &[&str]| {
        let mut args = vec![
            "fetch",
            "--api",
            &kept.api,
            "--api-key-file",
            &key_arg,
            "--signal",
            "traces",
            "--since",
            "1h",
        ];
        args.extend_from_slice(more);
        Proc::spawn(mesh.dir.path(), label, &args)
    };
    let mut printed = fetch_traces("fetch", &["--limit", "7"]);
    assert_eq!(
        printed.wait_exit(FORM_TIMEOUT),
        Some(0),
        "{}",
        printed.stderr_text()
    );
    let lines: Vec<Value> = std::fs::read_to_string(&printed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a line of OTLP/JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "20 spans in pages of 7");
    assert_eq!(lines.iter().map(|l| spans_of(l).len()).sum::<usize>(), 20);
    assert!(
        lines.iter().all(|l| l.get("nextCursor").is_none()),
        "plain export requests"
    );

    // --follow prints what arrives later: items timed before its last poll (late ones), and
    // items timed ahead, once their time comes.
    let follow = fetch_traces("follow", &["--follow", "--poll-interval", "0.2"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    post_spans(kept.port, spans(100, 3, |i| now_ns() - 1_000_000_000 + i)).await;
    let soon = now_ns() + 1_500_000_000;
    post_spans(kept.port, spans(200, 2, |i| soon + i)).await;
    wait_for("the followed spans", &follow, || {
        let text = std::fs::read_to_string(&follow.stdout).unwrap_or_default();
        let n: usize = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|l| spans_of(&l).len())
            .sum();
        n == 25
    })
    .await;
    drop(kept.receiver);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_size_removes_what_was_stored_first() {
    let mesh = Mesh::start();
    // A stored log record is about 90 bytes with its index: room for about twenty.
    let kept = mesh_keeping(&mesh, ";max-bytes=2000", &[]).await;
    // Stored in this order, timed the other way round: retention goes by the order stored.
    let sent: Vec<String> = (0..30).map(|i| format!("record {i:02}")).collect();
    let base = now_ns();
    for (i, body) in sent.iter().enumerate() {
        let request = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{}","body":{{"stringValue":"{body}"}}}}]}}]}}]}}"#,
            base - i as u64 * 1_000
        );
        let r = post(
            kept.port,
            "/v1/logs",
            "application/json",
            request.into_bytes(),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let health = wait_health("30 records stored or expired", &kept, |h| {
        h["store"]["logs"].as_u64().unwrap_or(0) + h["store"]["expired"].as_u64().unwrap_or(0) == 30
    })
    .await;
    let kept_n = health["store"]["logs"].as_u64().unwrap() as usize;
    eprintln!(
        "max-bytes=2000 keeps {kept_n} of 30 records: {}",
        health["store"]
    );
    assert!((1..30).contains(&kept_n), "{health}");
    assert!(
        health["store"]["bytes"].as_u64().unwrap() <= 2000,
        "{health}"
    );
    let (_, page) = fetch(
        &kept.api,
        "logs",
        json!({"startTimeUnixNano": 0}),
        Some(QUERY_KEY),
    )
    .await;
    let bodies: Vec<String> = page["resourceLogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rl| {
            rl["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut newest: Vec<String> = sent[30 - kept_n..].to_vec();
    newest.reverse();
    assert_eq!(bodies, newest, "the last stored are kept, in time order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_killed_mid_stream_keeps_every_record_answered_200_once() {
    let mesh = Mesh::start();
    let kept = mesh_keeping(&mesh, "", &[]).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let load = stream(kept.port, "kept", "crash", stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    kept.keeper.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let keeper = keeper_again(&mesh, &kept.args);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let accepted = load.await.unwrap();
    let health = wait_health_of(
        "every record answered 200 stored",
        &kept.api,
        &keeper,
        |h| h["store"]["logs"].as_u64() == Some(accepted.len() as u64),
    )
    .await;
    let mut bodies = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = json!({"startTimeUnixNano": 0, "limit": 500});
        if let Some(c) = &cursor {
            query["cursor"] = json!(c);
        }
        let (status, page) = fetch(&kept.api, "logs", query, Some(QUERY_KEY)).await;
        assert_eq!(status, 200, "{page}");
        bodies.extend(page["resourceLogs"].as_array().unwrap().iter().map(|rl| {
            rl["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"]
                .as_str()
                .unwrap()
                .to_string()
        }));
        cursor = page["nextCursor"].as_str().map(str::to_string);
        if page["hasMore"] != true {
            break;
        }
    }
    eprintln!(
        "answered 200: {}; stored: {} ({} distinct); delivered again and not stored twice: {}",
        accepted.len(),
        bodies.len(),
        bodies.iter().collect::<BTreeSet<_>>().len(),
        health["store"]["duplicates"]
    );
    let stored: BTreeSet<&String> = bodies.iter().collect();
    assert_eq!(stored.len(), bodies.len(), "no record twice");
    assert_eq!(
        stored,
        accepted.iter().collect::<BTreeSet<_>>(),
        "every record answered 200"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_api_takes_the_receivers_tls_and_fetch_brings_its_ca_and_client_certificate() {
    let mesh = Mesh::start();
    let certs = crate::certs::Certs::generate(mesh.dir.path());
    let kept = mesh_keeping(&mesh, "", &certs.receiver_mtls_args()).await;
    post_spans(kept.port, spans(0, 5, |i| now_ns() - 1_000_000 + i)).await;
    let api = kept.api.replace("http://", "https://");
    let path = |p: &std::path::PathBuf| p.display().to_string();
    let (ca, cert, key) = (
        path(&certs.ca),
        path(&certs.client_cert),
        path(&certs.client_key),
    );
    let fetch_with = |label: &str, more: &[&str]| {
        let mut args = vec![
            "fetch", "--api", &api, "--signal", "traces", "--since", "1h", "--api-ca", &ca,
        ];
        args.extend_from_slice(more);
        Proc::spawn_with_env(
            mesh.dir.path(),
            label,
            &args,
            &[("SLIM_NODE_API_KEY", QUERY_KEY)],
        )
    };
    let mut printed = 0;
    for attempt in 0..60 {
        let mut fetch = fetch_with(
            &format!("fetch-{attempt}"),
            &["--api-client-cert", &cert, "--api-client-key", &key],
        );
        assert_eq!(
            fetch.wait_exit(DELIVERY_TIMEOUT),
            Some(0),
            "{}",
            fetch.stderr_text()
        );
        printed = std::fs::read_to_string(&fetch.stdout)
            .unwrap()
            .lines()
            .map(|l| spans_of(&serde_json::from_str(l).unwrap()).len())
            .sum::<usize>();
        if printed == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(printed, 5, "the spans over https");
    // Without a client certificate the TLS handshake is refused.
    let mut refused = fetch_with("fetch-no-cert", &[]);
    assert_ne!(refused.wait_exit(DELIVERY_TIMEOUT), Some(0));
    assert!(
        refused.stderr_text().contains("cannot reach the query API"),
        "{}",
        refused.stderr_text()
    );
}

/// Peak resident memory of process `pid` (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024
}

/// The bound the keeper's peak memory stays under while the API is flooded.
const FLOODED_RSS_MIB: u64 = 300;

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_fetches_leave_ingest_answering_200_and_the_node_under_its_memory_bound(
) {
    let mesh = Mesh::start();
    // No rate per key: the threads and the waiting room alone must hold.
    let kept = mesh_keeping(&mesh, "", &["--query-api-rate".into(), "0".into()]).await;
    let endpoint = format!("http://127.0.0.1:{}", kept.port);
    // A history worth reading: 40,000 spans.
    let (code, report, err) = crate::bench::run_loadgen(
        &mesh,
        &endpoint,
        &["--items", "400", "--requests", "100", "--duration", "120"],
    );
    assert_eq!(
        (code, report["ok"].as_u64()),
        (Some(0), Some(100)),
        "{report}\n{err}"
    );
    wait_stored(&kept.api, "traces", 40_000, &kept.keeper).await;
    let before = peak_rss_mib(kept.keeper.pid());

    // A steady ingest: 300 requests at 50 a second, in another process.
    let mut ingest = Proc::spawn(
        mesh.dir.path(),
        "steady",
        &[
            "loadgen",
            "--endpoint",
            &endpoint,
            "--json",
            "--items",
            "10",
            "--requests",
            "300",
            "--rate",
            "50",
            "--duration",
            "120",
        ],
    );
    // 1,000 clients fetching JSON pages of 10,000 spans over four HTTP/2 connections, each
    // again at once after an answer, after Retry-After after a refusal, until ingest is done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connections: Vec<reqwest::Client> = (0..4)
        .map(|_| {
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap()
        })
        .collect();
    let mut flood = Vec::new();
    for i in 0..1000 {
        let (client, stop, api) = (connections[i % 4].clone(), stop.clone(), kept.api.clone());
        flood.push(tokio::spawn(async move {
            let mut answers: Vec<u16> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let Ok(r) = client
                    .post(format!("{api}/api/traces/fetch"))
                    .bearer_auth(QUERY_KEY)
                    .header("content-type", "application/json")
                    .body(r#"{"limit":10000}"#)
                    .send()
                    .await
                else {
                    answers.push(0);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let status = r.status().as_u16();
                let retry: Option<u64> = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                let _ = r.bytes().await;
                answers.push(status);
                if status != 200 {
                    assert!(retry.is_some(), "a {status} without Retry-After");
                    tokio::time::sleep(Duration::from_secs(retry.unwrap_or(1))).await;
                }
            }
            answers
        }));
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = ingest.wait_exit(Duration::from_secs(180));
        (code, ingest)
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut answers = std::collections::BTreeMap::<u16, u64>::new();
    for task in flood {
        for status in task.await.unwrap() {
            *answers.entry(status).or_default() += 1;
        }
    }
    let (code, ingest) = code;
    let report: Value =
        serde_json::from_str(std::fs::read_to_string(&ingest.stdout).unwrap().trim()).unwrap();
    let peak = peak_rss_mib(kept.keeper.pid());
    eprintln!(
        "fetch answers {answers:?}; ingest {}; keeper peak RSS {before} MiB before the flood, {peak} MiB after",
        report["answers"]
    );
    assert_eq!(
        (code, report["ok"].as_u64()),
        (Some(0), Some(300)),
        "{report}"
    );
    assert_eq!(
        report["answers"]["200"], 300,
        "ingest answered 200 throughout: {report}"
    );
    assert!(answers.get(&200).copied().unwrap_or(0) > 0, "{answers:?}");
    assert!(
        answers.keys().all(|s| [200, 503].contains(s)),
        "every fetch was served or refused with 503: {answers:?}"
    );
    assert!(
        peak < FLOODED_RSS_MIB,
        "the keeper's peak RSS was {peak} MiB (bound {FLOODED_RSS_MIB} MiB)"
    );
    wait_stored(&kept.api, "traces", 43_000, &kept.keeper).await;
}
