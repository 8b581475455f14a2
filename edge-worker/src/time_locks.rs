//! The edge's RSW puzzles: the operator's key, and per puzzle size the precomputation that
//! makes issuing and checking a puzzle cheap ([`humanproof_protocol::rsw`]).
//!
//! The key is built on the first RSW start or redeem, not before: building it takes a few
//! milliseconds of wasm that settings reads and SHA-256 projects should not pay. Sizes vary
//! with the project's squarings and the start's risk score, so each size's precomputation
//! (a few milliseconds) is kept for the next start of that size; the set is bounded, and the
//! size used least recently goes first.

use std::sync::{Arc, LazyLock, Mutex};

use humanproof_protocol::rsw::{RswKey, RswKeyError, TimeLock};

/// Puzzle sizes kept at once (about 130 KiB each): several projects' squarings, each at the
/// seven risk steps that [`crate::risk::scaled_squarings`] rounds to.
const KEPT_SIZES: usize = 32;

/// The operator's RSW key with its precomputed puzzle sizes.
#[derive(Debug)]
pub struct TimeLocks {
    /// The key: given, or built from the secret on first use.
    key: LazyLock<RswKey, Box<dyn FnOnce() -> RswKey + Send>>,
    /// Least recently used first.
    sizes: Mutex<Vec<Arc<TimeLock>>>,
}

impl TimeLocks {
    /// Puzzles under the key in `secret` (`<p hex>:<q hex>`, as `humanproof rsw-key` prints
    /// it). Its shape is checked now, the key built when first needed.
    pub fn from_secret(secret: String) -> Result<Self, RswKeyError> {
        RswKey::check_unchecked(&secret)?;
        Ok(Self::with_key(Box::new(move || {
            RswKey::parse_unchecked(&secret).expect("its shape was checked in from_secret")
        })))
    }

    /// Puzzles under `key`, already read.
    pub fn new(key: RswKey) -> Self {
        Self::with_key(Box::new(move || key))
    }

    fn with_key(key: Box<dyn FnOnce() -> RswKey + Send>) -> Self {
        Self {
            key: LazyLock::new(key),
            sizes: Mutex::new(Vec::new()),
        }
    }

    /// Puzzles of `t` squarings.
    pub fn of_size(&self, t: u32) -> Arc<TimeLock> {
        let key = &*self.key;
        let kept = |sizes: &mut Vec<Arc<TimeLock>>| {
            let at = sizes.iter().position(|lock| lock.squarings() == t)?;
            let lock = sizes.remove(at);
            sizes.push(lock.clone());
            Some(lock)
        };
        if let Some(lock) = kept(&mut self.sizes.lock().expect("not poisoned")) {
            return lock;
        }
        // Computed outside the lock: two starts of a new size may both compute it, which
        // costs less than making every other start wait.
        let lock = Arc::new(key.time_lock(t));
        let mut sizes = self.sizes.lock().expect("not poisoned");
        if let Some(kept) = kept(&mut sizes) {
            return kept;
        }
        if sizes.len() == KEPT_SIZES {
            sizes.remove(0);
        }
        sizes.push(lock.clone());
        lock
    }
}
