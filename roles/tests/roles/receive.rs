//! Receiving: each message another member published is handed on once, with an [`Ack`] that
//! acknowledges it to its publisher; copies of what was taken are dropped and acknowledged
//! again; a message whose ticket was dropped counts as never received.
//!
//! [`Ack`]: slim_roles::Ack

use crate::support::{message, serial, Mesh};

#[tokio::test(flavor = "multi_thread")]
async fn a_message_reaches_the_other_member_once_and_its_ack_empties_the_publishers_outbox() {
    let _one = serial().await;
    let mesh = Mesh::start("receive-once").await;
    let (moderator, mut participant) = mesh.group().await;

    moderator.publish(vec![message("m-1", "hello")]).await;

    let got = participant.recv().await;
    assert_eq!(got.from, moderator.name);
    assert_eq!(got.payload_type, "test");
    assert_eq!(got.payload, &b"hello"[..]);
    let ack = got.ack.expect("a message with an id comes with an Ack");
    assert_eq!(ack.id(), "m-1");
    // Acknowledged only once the consumer took it.
    assert_eq!(moderator.node.publisher().outbox().messages, 1);

    ack.done();

    moderator.wait_outbox_empty().await;
    assert!(
        participant.rx.try_recv().is_err(),
        "the message was handed on more than once"
    );

    mesh.stop(vec![moderator, participant]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_that_shared_a_slim_message_are_handed_on_as_slices_of_it_not_copies() {
    let _one = serial().await;
    let mesh = Mesh::start("receive-slices").await;
    let (moderator, mut participant) = mesh.group().await;

    // Published together: one SLIM message carries both.
    moderator
        .publish(vec![message("m-1", "hello"), message("m-2", "wide world")])
        .await;

    let first = participant.recv().await;
    let second = participant.recv().await;
    assert_eq!(first.payload, &b"hello"[..]);
    assert_eq!(second.payload, &b"wide world"[..]);
    // Back to back in memory, as they lay in the frame: no copy of either was made.
    assert_eq!(
        second.payload.as_ptr(),
        first.payload.as_ptr().wrapping_add(first.payload.len()),
        "the second message is not the bytes after the first in one buffer"
    );
    for msg in [first, second] {
        msg.ack
            .expect("a message with an id comes with an Ack")
            .done();
    }
    moderator.wait_outbox_empty().await;

    mesh.stop(vec![moderator, participant]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_whose_ack_is_dropped_stays_unacknowledged_and_its_copy_is_taken() {
    let _one = serial().await;
    let mesh = Mesh::start("receive-dropped-ack").await;
    let (moderator, mut participant) = mesh.group().await;
    moderator.publish(vec![message("m-1", "hello")]).await;

    let first = participant.recv().await;
    // The consumer could not take it.
    drop(first);

    // The publisher sends it again, and the copy is handed on as the message it is.
    let again = participant.recv().await;
    assert_eq!(again.payload, &b"hello"[..]);
    let ack = again.ack.expect("the copy comes with an Ack");
    assert_eq!(ack.id(), "m-1");
    assert_eq!(moderator.node.publisher().outbox().messages, 1);
    assert!(moderator.node.publisher().outbox().resent >= 1);

    ack.done();
    moderator.wait_outbox_empty().await;

    mesh.stop(vec![moderator, participant]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_of_a_message_already_taken_is_acknowledged_again_and_not_handed_on() {
    let _one = serial().await;
    let mesh = Mesh::start("receive-copy").await;
    let (moderator, mut participant) = mesh.group().await;
    moderator.publish(vec![message("m-1", "hello")]).await;
    participant
        .recv()
        .await
        .ack
        .expect("a message with an id comes with an Ack")
        .done();
    moderator.wait_outbox_empty().await;

    // The same message again: a re-send whose first acknowledgement was lost looks like this.
    moderator.publish(vec![message("m-1", "hello")]).await;

    // Acknowledged by the receiving node itself: nobody calls `done` on a copy.
    moderator.wait_outbox_empty().await;
    assert!(participant.rx.try_recv().is_err(), "the copy was handed on");

    mesh.stop(vec![moderator, participant]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_message_of_a_shared_slim_message_is_handed_on_with_its_own_ack() {
    let _one = serial().await;
    let mesh = Mesh::start("receive-frame").await;
    let (moderator, mut participant) = mesh.group().await;
    let ids: Vec<String> = (0..5).map(|i| format!("m-{i}")).collect();

    moderator
        .publish(ids.iter().map(|id| message(id, id)).collect())
        .await;

    for id in &ids {
        let got = participant.recv().await;
        assert_eq!(got.payload, id.as_bytes());
        let ack = got.ack.expect("each message comes with its own Ack");
        assert_eq!(ack.id(), id);
        ack.done();
    }
    moderator.wait_outbox_empty().await;
    let stats = moderator.node.publisher().outbox();
    assert_eq!(
        stats.sent,
        5 * stats.slim_messages,
        "the five messages taken together did not travel together: {stats:?}"
    );

    mesh.stop(vec![moderator, participant]).await;
}
