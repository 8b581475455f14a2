//! What the edge logic needs from its platform, as four small traits.
//!
//! On Cloudflare they are KV, two Durable Object classes and a Queue; in the local server and tests
//! they live in memory. The futures carry no `Send` bound because wasm32 futures are not
//! `Send`; native callers with concrete store types still get `Send` futures.
#![allow(async_fn_in_trait)]

use humanproof_protocol::{SiteSnapshot, TelemetryEvent};

use crate::visitor::{VisitorEvent, VisitorHistory};

/// A store did not answer; the request fails with `unavailable` and can be retried.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Read access to the replicated snapshot.
pub trait SnapshotStore {
    /// The snapshot entry for `site_key`, if a project has it.
    async fn site(&self, site_key: &str) -> Result<Option<SiteSnapshot>, StoreError>;
}

/// Strongly consistent, expiring single-use claims: the redeem-once guarantee.
pub trait ClaimStore {
    /// Claims `id` until `expires_at_ms` (after which the token it guards is refused anyway,
    /// so the claim may be forgotten). `Ok(true)` for the first claim, `Ok(false)` after.
    async fn claim(&self, id: &str, now_ms: i64, expires_at_ms: i64) -> Result<bool, StoreError>;
}

/// Strongly consistent, expiring abuse state per visitor (the salted hash of its network): the
/// rules are [`crate::visitor::VisitorState`]'s, the store only keeps one state per visitor.
pub trait VisitorStore {
    /// Counts a challenge start on `project` and returns the visitor's history.
    async fn start(&self, visitor: &str, project: &str, now_ms: i64) -> Result<VisitorHistory, StoreError>;
    /// Remembers a failed redeem or a high-risk start.
    async fn record(&self, visitor: &str, project: &str, event: VisitorEvent, now_ms: i64) -> Result<(), StoreError>;
}

/// Where telemetry goes. Delivery is the sink's business: the request never waits on the
/// control plane and never fails because telemetry could not be queued.
pub trait TelemetrySink {
    /// Hands `event` over for at-least-once delivery.
    async fn emit(&self, event: TelemetryEvent);
}
