//! The ids contexts are kept under: given in the order contexts are first seen, so that a new
//! context is an insert at the end of the `contexts` table, not at a random place in it.
//!
//! Ids used to be a digest of the context. When every request brings a context of its own (a
//! resource with a per-process or per-request attribute), each request then rewrote a leaf of
//! the table somewhere else and the branch pages above it: 13 % of a storing participant's
//! CPU (BENCHMARKS.md, profile note 21). The digest is still how a context seen before is
//! recognised, in memory: the contexts seen most recently map to their ids. One seen longer
//! ago, or before a restart, gets a new id and is stored once more (its items read the same);
//! stores written before keep their digest ids, which the rows that use them name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The ids given here: the top bit set, a counter below. A digest id (an older store's) lands
/// in this range with a chance of 2^-64, and then only makes the counter start above it.
pub(super) const GIVEN: u128 = 1 << 127;

/// Contexts recognised at once: the ones seen in the last one to two generations of this
/// many new ones.
const GENERATION: usize = 16_384;

/// Ids for contexts, by digest.
pub(super) struct ContextIds {
    next: AtomicU64,
    seen: Mutex<Generations>,
}

/// The digests seen recently, newest generation first.
#[derive(Default)]
struct Generations {
    current: HashMap<u128, u128>,
    previous: HashMap<u128, u128>,
}

impl ContextIds {
    /// Ids from just above `highest`, the highest id stored in the range given here (`None`:
    /// none stored).
    pub(super) fn after(highest: Option<u128>) -> ContextIds {
        let next = highest.map_or(1, |id| ((id & !GIVEN) as u64).saturating_add(1));
        ContextIds {
            next: AtomicU64::new(next),
            seen: Mutex::new(Generations::default()),
        }
    }

    /// The id of the context whose digest is `digest`: the one it was given when seen
    /// recently, else a new one.
    pub(super) fn id_of(&self, digest: u128) -> u128 {
        let mut seen = crate::lock(&self.seen);
        if let Some(&id) = seen.current.get(&digest) {
            return id;
        }
        let id = match seen.previous.remove(&digest) {
            Some(id) => id,
            None => GIVEN | u128::from(self.next.fetch_add(1, Ordering::Relaxed)),
        };
        if seen.current.len() >= GENERATION {
            seen.previous = std::mem::take(&mut seen.current);
        }
        seen.current.insert(digest, id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_contexts_get_ascending_ids_and_one_seen_again_keeps_its_own() {
        let ids = ContextIds::after(None);
        let (a, b) = (ids.id_of(7), ids.id_of(3));
        assert_eq!((a, b), (GIVEN | 1, GIVEN | 2));
        assert_eq!(ids.id_of(7), a);
    }

    #[test]
    fn ids_start_above_the_highest_stored() {
        let ids = ContextIds::after(Some(GIVEN | 41));
        assert_eq!(ids.id_of(1), GIVEN | 42);
    }

    #[test]
    fn a_context_seen_in_the_previous_generation_is_still_recognised() {
        let ids = ContextIds::after(None);
        let first = ids.id_of(u128::MAX);
        // A whole generation of new ones after it.
        for digest in 0..GENERATION as u128 {
            ids.id_of(digest);
        }
        assert_eq!(ids.id_of(u128::MAX), first);
    }

    #[test]
    fn a_context_not_seen_for_two_generations_gets_a_new_id() {
        let ids = ContextIds::after(None);
        let first = ids.id_of(u128::MAX);
        for digest in 0..(2 * GENERATION + 1) as u128 {
            ids.id_of(digest);
        }
        assert_ne!(ids.id_of(u128::MAX), first);
    }
}
