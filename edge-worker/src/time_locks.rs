//! The edge's RSW puzzles: the operator's key, and per puzzle size the precomputation that
//! makes issuing and checking a puzzle cheap ([`humanproof_protocol::rsw`]).
//!
//! Sizes vary with the project's squarings and the start's risk score, so each size's
//! precomputation (a few milliseconds) is kept for the next start of that size; the set is
//! bounded, and the oldest size goes first.

use std::sync::{Arc, Mutex};

use humanproof_protocol::rsw::{RswKey, TimeLock};

/// Puzzle sizes kept at once (128 KiB each): several projects' squarings, each at the seven
/// risk steps that [`crate::risk::scaled_squarings`] rounds to.
const KEPT_SIZES: usize = 32;

/// The operator's RSW key with its precomputed puzzle sizes.
#[derive(Debug)]
pub struct TimeLocks {
    key: RswKey,
    modulus_hex: String,
    sizes: Mutex<Vec<Arc<TimeLock>>>,
}

impl TimeLocks {
    /// Puzzles under `key`.
    pub fn new(key: RswKey) -> Self {
        Self {
            modulus_hex: key.modulus_hex(),
            key,
            sizes: Mutex::new(Vec::new()),
        }
    }

    /// The public modulus, as puzzles carry it.
    pub fn modulus_hex(&self) -> &str {
        &self.modulus_hex
    }

    /// Puzzles of `t` squarings.
    pub fn of_size(&self, t: u32) -> Arc<TimeLock> {
        let kept =
            |sizes: &Vec<Arc<TimeLock>>| sizes.iter().find(|lock| lock.squarings() == t).cloned();
        if let Some(lock) = kept(&self.sizes.lock().expect("not poisoned")) {
            return lock;
        }
        // Computed outside the lock: two starts of a new size may both compute it, which
        // costs less than making every other start wait.
        let lock = Arc::new(self.key.time_lock(t));
        let mut sizes = self.sizes.lock().expect("not poisoned");
        if let Some(kept) = kept(&sizes) {
            return kept;
        }
        if sizes.len() == KEPT_SIZES {
            sizes.remove(0);
        }
        sizes.push(lock.clone());
        lock
    }
}
