//! Whether each member is live: when it was last heard from (any message, acknowledgement or
//! ping), judged against fixed thresholds. SLIM itself lists a crashed member Offline only
//! after its own retransmissions gave up (~6 s) and tells nobody; so every node pings the
//! group every [`PING_EVERY`], members acknowledge pings like data, and a member that has not
//! answered for [`OFFLINE_AFTER`] is offline even on a quiet channel.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often a node pings its group.
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// Silence after which a member is shown as lagging.
pub const LAGGING_AFTER: Duration = Duration::from_secs(2);
/// Silence after which a member is offline: a moderator removes it and invites it again.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(4);

/// How a member is doing, from what was heard of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Heard from within [`LAGGING_AFTER`].
    Live,
    /// Silent for longer than [`LAGGING_AFTER`].
    Lagging,
    /// Silent for [`OFFLINE_AFTER`], listed offline by SLIM, or unreachable (the node's own
    /// link is down).
    Offline,
}

impl Liveness {
    /// The liveness of a member silent for `silence`.
    pub fn after(silence: Duration) -> Liveness {
        if silence >= OFFLINE_AFTER {
            Liveness::Offline
        } else if silence >= LAGGING_AFTER {
            Liveness::Lagging
        } else {
            Liveness::Live
        }
    }
}

/// When each member was last heard from.
#[derive(Default)]
pub(crate) struct LastHeard {
    at: Mutex<HashMap<String, Instant>>,
}

impl LastHeard {
    /// Something arrived from `name` at `now`.
    pub(crate) fn heard(&self, name: &str, now: Instant) {
        let mut at = crate::sync::lock(&self.at);
        match at.get_mut(name) {
            Some(t) => *t = now,
            None => {
                at.insert(name.to_string(), now);
            }
        }
    }

    /// Counts joining as being heard from, unless something newer is known.
    pub(crate) fn joined(&self, name: &str, now: Instant) {
        let mut at = crate::sync::lock(&self.at);
        let t = at.entry(name.to_string()).or_insert(now);
        *t = (*t).max(now);
    }

    /// When `name` was last heard from.
    pub(crate) fn get(&self, name: &str) -> Option<Instant> {
        crate::sync::lock(&self.at).get(name).copied()
    }

    /// When anyone was last heard from.
    pub(crate) fn latest(&self) -> Option<Instant> {
        crate::sync::lock(&self.at).values().max().copied()
    }

    /// How long `name` has been silent at `now`; never heard of counts as silent for ever.
    pub(crate) fn silence(&self, name: &str, now: Instant) -> Duration {
        self.get(name)
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_turns_a_member_lagging_then_offline() {
        assert_eq!(Liveness::after(Duration::from_millis(900)), Liveness::Live);
        assert_eq!(Liveness::after(LAGGING_AFTER), Liveness::Lagging);
        assert_eq!(Liveness::after(OFFLINE_AFTER), Liveness::Offline);
    }

    #[test]
    fn hearing_from_a_member_makes_it_live_again() {
        let heard = LastHeard::default();
        let t0 = Instant::now();
        heard.joined("a/b/c", t0);
        let later = t0 + OFFLINE_AFTER;
        assert_eq!(
            Liveness::after(heard.silence("a/b/c", later)),
            Liveness::Offline
        );
        heard.heard("a/b/c", later);
        assert_eq!(
            Liveness::after(heard.silence("a/b/c", later)),
            Liveness::Live
        );
        assert_eq!(heard.silence("x/y/z", later), Duration::MAX);
    }

    #[test]
    fn joining_again_does_not_hide_a_newer_message() {
        let heard = LastHeard::default();
        let t0 = Instant::now();
        heard.heard("a/b/c", t0 + Duration::from_secs(3));
        heard.joined("a/b/c", t0);
        assert_eq!(heard.get("a/b/c"), Some(t0 + Duration::from_secs(3)));
    }
}
