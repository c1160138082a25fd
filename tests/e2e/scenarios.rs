//! The seed scenarios: OTLP in at one node, out at the others' sinks, field by field.

use serde_json::Value;

use crate::harness::*;

const RECEIVER: &str = "e2e/otel/receiver";
const PARTICIPANT: &str = "e2e/otel/participant";
const CHANNEL: &str = "e2e/otel/telemetry";

fn seed_body() -> Vec<u8> {
    br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"test-service"}}]}}]}"#.to_vec()
}

/// One span named `name`, from service test-service.
fn span_body(name: &str) -> Vec<u8> {
    format!(r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"test-service"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"{name}","kind":1,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"}}]}}]}}]}}"#)
        .into_bytes()
}

/// The names of the spans in a jsonl line's payload.
fn span_names(line: &Value) -> Vec<String> {
    line["payload"]["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
        .filter_map(|span| span["name"].as_str().map(str::to_string))
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// One export: path, content type, body as sent, content encoding, and the OTLP/JSON the
/// sink must hold.
struct Case {
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    encoding: Option<&'static str>,
    expected: Value,
}

fn case(
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    encoding: Option<&'static str>,
    expected: &str,
) -> Case {
    Case {
        path,
        content_type,
        body,
        encoding,
        expected: json(&example(expected)),
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn moderator_receiver_delivers_every_signal_and_encoding_to_the_participant() {
    let mesh = Mesh::start();
    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    let health = wait_state(port, "active", &receiver).await;
    assert_eq!(health["node"]["joined"][0], PARTICIPANT);
    assert_eq!(health["node"]["channel"], CHANNEL);

    let mut cases = vec![Case {
        path: "/v1/traces",
        content_type: "application/json",
        body: seed_body(),
        encoding: None,
        expected: json(&seed_body()),
    }];
    cases.extend([
        case(
            "/v1/traces",
            "application/json; charset=utf-8",
            example("traces.json"),
            None,
            "traces.json",
        ),
        case(
            "/v1/metrics",
            "application/json",
            gzip(&example("metrics.json")),
            Some("gzip"),
            "metrics.json",
        ),
        case(
            "/v1/logs",
            "application/x-protobuf",
            example("logs.pb"),
            None,
            "logs.json",
        ),
        case(
            "/v1/traces",
            "application/x-protobuf",
            gzip(&example("traces.pb")),
            Some("gzip"),
            "traces.json",
        ),
        case(
            "/v1/metrics",
            "application/x-protobuf",
            example("metrics.pb"),
            None,
            "metrics.json",
        ),
        case(
            "/v1/logs",
            "application/json",
            example("logs.json"),
            None,
            "logs.json",
        ),
    ]);
    for c in &cases {
        let mut headers = vec![("content-type", c.content_type)];
        if let Some(enc) = c.encoding {
            headers.push(("content-encoding", enc));
        }
        let resp = post_with(port, c.path, &headers, c.body.clone()).await;
        assert_eq!(
            resp.status(),
            200,
            "{} {}: {:?}",
            c.path,
            c.content_type,
            resp.text().await
        );
        let resp_ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            c.content_type.starts_with(&resp_ct),
            "response content type {resp_ct} for request {}",
            c.content_type
        );
    }

    // No more and no fewer messages than accepted, and no late copy. Order is not compared:
    // what SLIM lost on the way (on a loaded machine) arrives when it is sent again.
    let lines = wait_jsonl_exactly(&out, cases.len(), &participant).await;
    for line in &lines {
        assert_eq!(line["from"], RECEIVER);
        assert!(
            line["id"].as_str().is_some_and(|id| id.len() == 36),
            "a uuid message id"
        );
    }
    let mut unmatched: Vec<&Value> = lines.iter().collect();
    for c in &cases {
        let signal = c.path.trim_start_matches("/v1/");
        let found = unmatched.iter().position(|line| {
            line["signal"] == signal
                && otlp_json_difference(&c.expected, &line["payload"], "payload").is_none()
        });
        let Some(found) = found else {
            panic!(
                "nothing delivered matches {} {} {:?}; the lines not matched yet: {unmatched:?}",
                c.path, c.content_type, c.encoding
            );
        };
        unmatched.remove(found);
    }
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread")]
async fn participant_receiver_delivers_to_the_printing_moderator() {
    let mesh = Mesh::start();
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, PARTICIPANT_ROLE);
    let mut args = moderator(CHANNEL, &[RECEIVER]);
    args.extend(["--sink", "stdout"]);
    let (moderator, out) = mesh.sink_node("moderator", "e2e/otel/moderator", &args);
    let health = wait_state(port, "joined", &receiver).await;
    assert_eq!(health["node"]["channel"], CHANNEL);
    let resp = post(port, "/v1/traces", "application/json", seed_body()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        "{}",
        "success leaves partial_success unset"
    );

    let lines = wait_jsonl(&out, 1, &moderator).await;
    assert_eq!(lines[0]["from"], RECEIVER);
    // MLS verified the sender: its identity is its name and the id SLIM gave its app.
    let verified = lines[0]["verified_sender"].as_str().unwrap_or_default();
    assert!(verified.starts_with(RECEIVER), "{}", lines[0]);
    assert_otlp_json_contains(&json(&seed_body()), &lines[0]["payload"], "payload");
    let printed = std::fs::read_to_string(&moderator.stdout).unwrap();
    assert!(
        printed.contains(&format!(
            "from={RECEIVER} verified={verified} signal=traces services=test-service resources=1 spans=0"
        )),
        "stdout sink line: {printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn moderator_started_before_its_invitee_keeps_inviting_until_it_joins() {
    let mesh = Mesh::start();
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    let health = wait_state(port, "inviting", &receiver).await;
    assert_eq!(health["node"]["pending"][0], PARTICIPANT);
    // Let at least one invite fail before the participant exists.
    wait_until(
        FORM_TIMEOUT,
        || receiver.stderr_text().contains("invite not accepted yet"),
        || receiver.stderr_text(),
    );
    let refused = post(
        port,
        "/v1/traces",
        "application/json",
        span_body("refused before anyone joined"),
    )
    .await;
    assert_eq!(
        refused.status(),
        503,
        "nobody joined yet: nothing may be taken"
    );

    let (participant, out) = mesh.sink_node("participant", PARTICIPANT, PARTICIPANT_ROLE);
    wait_state(port, "active", &receiver).await;
    let resp = post(
        port,
        "/v1/traces",
        "application/json",
        span_body("accepted after the join"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // The accepted request arrives, once; the refused one never does, not even late.
    let lines = wait_jsonl_exactly(&out, 1, &participant).await;
    assert_eq!(
        span_names(&lines[0]),
        ["accepted after the join"],
        "the one delivered is the accepted request, not the refused one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_participants_both_receive_every_message() {
    let mesh = Mesh::start();
    let (p1, out1) = mesh.sink_node("p1", "e2e/otel/p1", PARTICIPANT_ROLE);
    let (p2, out2) = mesh.sink_node("p2", "e2e/otel/p2", PARTICIPANT_ROLE);
    let invites = moderator(CHANNEL, &["e2e/otel/p1", "e2e/otel/p2"]);
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, &invites);
    wait_state(port, "active", &receiver).await;
    const N: usize = 20;
    for i in 0..N {
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"message {i}"}}}}]}}]}}]}}"#
        );
        let resp = post(port, "/v1/logs", "application/json", body.into_bytes()).await;
        assert_eq!(resp.status(), 200);
    }
    for (out, node) in [(&out1, &p1), (&out2, &p2)] {
        let lines = wait_jsonl_exactly(out, N, node).await;
        let bodies: Vec<String> = lines
            .iter()
            .map(|l| {
                l["payload"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]
                    ["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let expected: Vec<String> = (0..N).map(|i| format!("message {i}")).collect();
        assert_eq!(bodies, expected, "every message, once, in order");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn receiver_without_a_session_answers_503_with_retry_after() {
    let mesh = Mesh::start();
    let (receiver, port) = mesh.receiver("receiver", RECEIVER, PARTICIPANT_ROLE);
    wait_state(port, "awaiting_invite", &receiver).await;
    let resp = post(
        port,
        "/v1/traces",
        "application/x-protobuf",
        example("traces.pb"),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert!(
        resp.headers().get("retry-after").is_some(),
        "503 must say when to retry"
    );
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let body = resp.bytes().await.unwrap();
    let status = <tonic_types::pb::Status as prost::Message>::decode(body.as_ref()).unwrap();
    assert_eq!(status.code, 14, "UNAVAILABLE");
    assert!(
        status.message.contains("awaiting_invite"),
        "{}",
        status.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_can_change_role_while_its_previous_node_is_still_leaving() {
    // Scenario 1, then scenario 2 on the same server, as a user switching between them does.
    let mesh = Mesh::start();
    let (first_participant, _) = mesh.sink_node("p1", PARTICIPANT, PARTICIPANT_ROLE);
    let (first_receiver, port) = mesh.receiver("r1", RECEIVER, &moderator(CHANNEL, &[PARTICIPANT]));
    wait_state(port, "active", &first_receiver).await;
    // Both leave at once: the moderator's goodbye to a vanished participant takes seconds.
    first_participant.signal_term();
    first_receiver.signal_term();

    let (receiver, port2) = mesh.receiver("r2", RECEIVER, PARTICIPANT_ROLE);
    let (moderator_node, out) =
        mesh.sink_node("m2", "e2e/otel/moderator", &moderator(CHANNEL, &[RECEIVER]));
    wait_state(port2, "joined", &receiver).await;
    let resp = post(port2, "/v1/traces", "application/json", seed_body()).await;
    assert_eq!(resp.status(), 200);
    let lines = wait_jsonl(&out, 1, &moderator_node).await;
    assert_eq!(lines[0]["from"], RECEIVER);
    drop((first_participant, first_receiver, port));
}
