//! The edge's RSW puzzles: the operator's key, and per puzzle size the precomputation that
//! makes issuing and checking a puzzle cheap ([`humanproof_protocol::rsw`]).
//!
//! The key is read on the first RSW start or redeem, not before: building it takes a few
//! milliseconds of wasm that settings reads and SHA-256 projects should not pay. Sizes vary
//! with the project's squarings and the start's risk score, so each size's precomputation
//! (a few milliseconds) is kept for the next start of that size; the set is bounded, and the
//! size used least recently goes first.

use std::sync::{Arc, Mutex, OnceLock};

use humanproof_protocol::rsw::{RswKey, TimeLock};

/// Puzzle sizes kept at once (about 130 KiB each): several projects' squarings, each at the
/// seven risk steps that [`crate::risk::scaled_squarings`] rounds to.
const KEPT_SIZES: usize = 32;

/// The operator's RSW key with its precomputed puzzle sizes.
#[derive(Debug)]
pub struct TimeLocks {
    secret: String,
    key: OnceLock<Option<RswKey>>,
    /// Least recently used first.
    sizes: Mutex<Vec<Arc<TimeLock>>>,
}

impl TimeLocks {
    /// Puzzles under the key in `secret` (`<p hex>:<q hex>`, as `humanproof rsw-key` prints
    /// it), read when first needed. A secret that is not a key leaves RSW projects on their
    /// SHA-256 work, as a missing one does.
    pub fn from_secret(secret: String) -> Self {
        Self {
            secret,
            key: OnceLock::new(),
            sizes: Mutex::new(Vec::new()),
        }
    }

    /// Puzzles under `key`, already read.
    pub fn new(key: RswKey) -> Self {
        Self {
            secret: key.to_secret_string(),
            key: OnceLock::from(Some(key)),
            sizes: Mutex::new(Vec::new()),
        }
    }

    /// The secret these puzzles were made from.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Puzzles of `t` squarings; `None` when the secret is not a key.
    pub fn of_size(&self, t: u32) -> Option<Arc<TimeLock>> {
        let key = self
            .key
            .get_or_init(|| RswKey::parse_unchecked(&self.secret).ok())
            .as_ref()?;
        let kept = |sizes: &mut Vec<Arc<TimeLock>>| {
            let at = sizes.iter().position(|lock| lock.squarings() == t)?;
            let lock = sizes.remove(at);
            sizes.push(lock.clone());
            Some(lock)
        };
        if let Some(lock) = kept(&mut self.sizes.lock().expect("not poisoned")) {
            return Some(lock);
        }
        // Computed outside the lock: two starts of a new size may both compute it, which
        // costs less than making every other start wait.
        let lock = Arc::new(key.time_lock(t));
        let mut sizes = self.sizes.lock().expect("not poisoned");
        if let Some(kept) = kept(&mut sizes) {
            return Some(kept);
        }
        if sizes.len() == KEPT_SIZES {
            sizes.remove(0);
        }
        sizes.push(lock.clone());
        Some(lock)
    }
}
