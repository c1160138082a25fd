//! The moderator: it creates the group, invites its members until they joined, and changes the
//! members when an administrator asks.

use slim_roles::State;

use crate::support::{serial, Mesh};

#[tokio::test(flavor = "multi_thread")]
async fn a_moderator_invites_each_configured_participant_and_becomes_active_with_them_joined() {
    let _one = serial().await;
    let mesh = Mesh::start("moderator-invites").await;
    let p1 = mesh.participant("p1").await;
    let p2 = mesh.participant("p2").await;
    let moderator = mesh.moderator("m", "ch", &["p1", "p2"]).await;

    moderator
        .wait_active_with(&[&mesh.name("p1"), &mesh.name("p2")])
        .await;
    p1.wait_joined().await;
    p2.wait_joined().await;

    mesh.stop(vec![moderator, p1, p2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_an_administrator_invites_at_runtime_is_invited_and_joins() {
    let _one = serial().await;
    let mesh = Mesh::start("moderator-admin-invite").await;
    let moderator = mesh.moderator("m", "ch", &[]).await;
    moderator.wait_active_with(&[]).await;
    let participant = mesh.participant("p").await;

    let added = moderator
        .node
        .admin()
        .invite(mesh.name("p").parse().expect("a valid name"))
        .expect("a moderator takes invitees");

    assert!(added, "the name was not an invitee before");
    assert_eq!(moderator.node.admin().invitees(), vec![mesh.name("p")]);
    moderator.wait_active_with(&[&mesh.name("p")]).await;
    participant.wait_joined().await;

    mesh.stop(vec![moderator, participant]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_an_administrator_removes_leaves_the_group() {
    let _one = serial().await;
    let mesh = Mesh::start("moderator-admin-remove").await;
    let (moderator, participant) = mesh.group().await;

    let removed = moderator
        .node
        .admin()
        .remove(mesh.name("p").parse().expect("a valid name"))
        .expect("a moderator removes members");

    assert!(removed, "the name was a member");
    assert!(moderator.node.admin().invitees().is_empty());
    moderator.wait_active_with(&[]).await;
    assert!(
        moderator.member(&mesh.name("p")).is_none(),
        "the moderator still counts the removed member: {:?}",
        moderator.health().members
    );
    // Out of the session, it waits for an invitation that does not come.
    participant
        .wait_state("awaiting an invitation", |s| *s == State::AwaitingInvite)
        .await;

    mesh.stop(vec![moderator, participant]).await;
}
