//! The participant: it waits for an invitation, joins, and learns the channel from it.

use slim_roles::State;

use crate::support::{message, serial, Mesh};

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_waits_for_an_invitation_then_joins_and_learns_the_channel() {
    let _one = serial().await;
    let mesh = Mesh::start("participant-joins").await;
    let participant = mesh.participant("p").await;
    participant
        .wait_state("awaiting an invitation", |s| *s == State::AwaitingInvite)
        .await;
    assert_eq!(participant.node.publisher().status().channel, None);

    let moderator = mesh.moderator("m", "ch", &["p"]).await;

    participant.wait_joined().await;
    assert_eq!(
        participant.node.publisher().status().channel,
        Some(mesh.name("ch"))
    );

    mesh.stop(vec![moderator, participant]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_participant_publishes_to_its_moderator() {
    let _one = serial().await;
    let mesh = Mesh::start("participant-publishes").await;
    let (mut moderator, participant) = mesh.group().await;

    participant
        .publish(vec![message("p-1", "from the participant")])
        .await;

    let got = moderator.recv().await;
    assert_eq!(got.from, participant.name);
    assert_eq!(got.payload, &b"from the participant"[..]);
    got.ack
        .expect("a message with an id is acknowledged")
        .done();
    participant.wait_outbox_empty().await;

    mesh.stop(vec![moderator, participant]).await;
}
