//! The sender: besides publishing what the outbox says is due, it pings the group, so that
//! every member is heard from on a quiet channel too.

use std::time::{Duration, Instant};

use slim_roles::Verdict;

use crate::support::{serial, wait_until, Mesh};

/// Longer than a ping interval (1 s) and than the silence after which a member is
/// lagging (2 s).
const QUIET: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn members_of_a_quiet_group_keep_hearing_from_each_other_through_pings() {
    let _one = serial().await;
    let mesh = Mesh::start("sender-pings").await;
    let (moderator, participant) = mesh.group().await;
    let formed = Instant::now();

    for (node, other) in [(&moderator, &participant), (&participant, &moderator)] {
        wait_until(
            &format!(
                "{} hearing from {} on a quiet channel",
                node.name, other.name
            ),
            || {
                let member = node.member(&other.name);
                match member.as_ref().and_then(|m| m.last_heard_ms) {
                    // Heard from `QUIET` after the group formed.
                    Some(ms)
                        if formed.elapsed().saturating_sub(Duration::from_millis(ms)) >= QUIET =>
                    {
                        Ok(())
                    }
                    _ => Err(member),
                }
            },
        )
        .await;
        let health = node.health();
        assert_eq!(health.outbox.sent, 0, "something was published: {health:?}");
        assert_eq!(health.status, Verdict::Ok, "{health:?}");
    }

    mesh.stop(vec![moderator, participant]).await;
}
