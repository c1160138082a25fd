//! The supervisor: it keeps a node connected and its role running, through a restart of the
//! SLIM server too.

use std::time::Duration;

use slim_roles::{LinkState, State};

use crate::support::{message, serial, wait_until, Mesh};

/// The longest wait for the group to deliver again after the server is back (it took 5–10 s).
const RECOVERY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn after_a_short_server_outage_the_group_forms_again_and_delivers() {
    let _one = serial().await;
    let mut mesh = Mesh::start("supervisor-restart").await;
    let (moderator, mut participant) = mesh.group().await;

    mesh.stop_server().await;
    wait_until("the moderator's link down", || {
        let link = moderator.health().link;
        (link.state != LinkState::Connected)
            .then_some(())
            .ok_or(link)
    })
    .await;
    mesh.restart_server().await;
    moderator
        .publish(vec![message("after-restart", "still here")])
        .await;

    // Reconnecting (SLIM's client first, then the supervisor's own), finding the members
    // offline and inviting them into a fresh group take seconds each.
    let got = participant.recv_within(RECOVERY).await;
    assert_eq!(got.payload, &b"still here"[..]);
    got.ack
        .expect("a message with an id comes with an Ack")
        .done();
    moderator.wait_outbox_empty().await;
    moderator.wait_active_with(&[&participant.name]).await;
    participant.wait_joined().await;
    assert_eq!(moderator.health().link.state, LinkState::Connected);
    assert_eq!(participant.health().link.state, LinkState::Connected);

    mesh.stop(vec![moderator, participant]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_slims_client_gives_up_reconnecting_the_supervisor_connects_again() {
    let _one = serial().await;
    let mut mesh = Mesh::start("supervisor-reconnect").await;
    let (moderator, mut participant) = mesh.group().await;

    mesh.stop_server().await;
    // SLIM's client retries a few times (`connect_attempts`), then drops the connection: the
    // supervisor sees it gone and starts over.
    for member in [&moderator, &participant] {
        member
            .wait_state("connecting again", |s| *s == State::Connecting)
            .await;
    }
    wait_until("a failed attempt to connect again", || {
        let link = moderator.health().link;
        (link.attempts > 0).then_some(()).ok_or(link)
    })
    .await;
    mesh.restart_server().await;
    moderator
        .publish(vec![message("after-reconnect", "still here")])
        .await;

    let got = participant.recv_within(RECOVERY).await;
    assert_eq!(got.payload, &b"still here"[..]);
    got.ack
        .expect("a message with an id comes with an Ack")
        .done();
    moderator.wait_outbox_empty().await;
    moderator.wait_active_with(&[&participant.name]).await;
    participant.wait_joined().await;

    mesh.stop(vec![moderator, participant]).await;
}
