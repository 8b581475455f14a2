//! In-process stores for the local all-in-one server and native tests.
//!
//! A std `Mutex` is enough: no lock is held across an `.await`, and the critical sections
//! are a map lookup or insert.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use humanproof_protocol::SiteSnapshot;
use humanproof_protocol::preset::StartLimits;

use crate::stores::{ClaimStore, SnapshotStore, StoreError, VisitorStore, claim_retention_ms};
use crate::visitor::{VisitorEvent, VisitorHistory, VisitorState};

/// The local stand-in for the KV namespace: the control plane publishes into it directly.
#[derive(Debug, Default)]
pub struct MemorySnapshots {
    sites: RwLock<HashMap<String, SiteSnapshot>>,
}

impl MemorySnapshots {
    /// Replaces every entry with `sites`, as a full republish does.
    pub fn replace_all(&self, sites: impl IntoIterator<Item = SiteSnapshot>) {
        let sites = sites
            .into_iter()
            .map(|site| (site.site_key.clone(), site))
            .collect();
        *self
            .sites
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = sites;
    }

    /// Inserts or replaces one entry.
    pub fn put(&self, site: SiteSnapshot) {
        self.sites
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(site.site_key.clone(), site);
    }

    /// Removes one entry, as deleting a project does.
    pub fn remove(&self, site_key: &str) {
        self.sites
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(site_key);
    }
}

impl SnapshotStore for MemorySnapshots {
    async fn site(&self, site_key: &str) -> Result<Option<SiteSnapshot>, StoreError> {
        Ok(self
            .sites
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(site_key)
            .cloned())
    }
}

/// Single-use claims in a map; claims past their retention are swept as new ones arrive.
#[derive(Debug, Default)]
pub struct MemoryClaims {
    /// Until when each claim is kept, Unix ms.
    claims: Mutex<HashMap<String, i64>>,
}

/// Sweep once the map holds this many claims, so memory stays bounded by the claims still kept.
const SWEEP_THRESHOLD: usize = 10_000;

impl ClaimStore for MemoryClaims {
    async fn claim(&self, id: &str, now_ms: i64, expires_at_ms: i64) -> Result<bool, StoreError> {
        let mut claims = self
            .claims
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if claims.len() >= SWEEP_THRESHOLD {
            claims.retain(|_, kept_until| *kept_until > now_ms);
        }
        if claims
            .get(id)
            .is_some_and(|kept_until| *kept_until > now_ms)
        {
            return Ok(false);
        }
        let kept_until = now_ms.saturating_add(claim_retention_ms(now_ms, expires_at_ms));
        claims.insert(id.to_owned(), kept_until);
        Ok(true)
    }
}

/// Visitors' abuse state in a map; states whose every part has expired are swept as the map
/// grows, so memory stays bounded by recently active visitors.
#[derive(Debug, Default)]
pub struct MemoryVisitors {
    states: Mutex<HashMap<String, VisitorState>>,
}

impl MemoryVisitors {
    fn with_state<R>(
        &self,
        visitor: &str,
        now_ms: i64,
        change: impl FnOnce(&mut VisitorState) -> R,
    ) -> R {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if states.len() >= SWEEP_THRESHOLD {
            states.retain(|_, state| state.expires_at().is_some_and(|expiry| expiry > now_ms));
        }
        change(states.entry(visitor.to_owned()).or_default())
    }
}

impl VisitorStore for MemoryVisitors {
    async fn start(
        &self,
        visitor: &str,
        project: &str,
        limits: StartLimits,
        now_ms: i64,
    ) -> Result<VisitorHistory, StoreError> {
        Ok(self.with_state(visitor, now_ms, |state| {
            state.start(project, limits, now_ms)
        }))
    }

    async fn record(
        &self,
        visitor: &str,
        project: &str,
        event: VisitorEvent,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.with_state(visitor, now_ms, |state| {
            state.record(project, event, now_ms)
        });
        Ok(())
    }
}
