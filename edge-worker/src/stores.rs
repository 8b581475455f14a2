//! What the edge logic needs from its platform, as four small traits.
//!
//! On Cloudflare they are KV, two Durable Object classes and a Queue; in the local server and tests
//! they live in memory. The futures carry no `Send` bound because wasm32 futures are not
//! `Send`; native callers with concrete store types still get `Send` futures.
#![allow(async_fn_in_trait)]

use humanproof_protocol::preset::StartLimits;
use humanproof_protocol::{SiteSnapshot, TelemetryEvent};

use crate::visitor::{VisitorEvent, VisitorHistory};

/// A store did not answer; the request fails with `unavailable` and can be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// How long a claim outlives its challenge. A redeem is accepted until the token's `exp` as
/// the clock of the edge location that receives it reads it, while a store that forgets by
/// timer (the claim object's alarm) counts on another clock; clocks across locations are not
/// exactly in step. A claim forgotten while any edge would still accept its token would let
/// the challenge be redeemed again, so claims are kept an hour past expiry: far beyond any
/// real skew, for one small record per challenge.
pub const CLAIM_RETENTION_AFTER_EXPIRY_MS: i64 = 60 * 60 * 1000;

/// Strongly consistent, expiring single-use claims: the redeem-once guarantee.
pub trait ClaimStore {
    /// Claims `id`, the id of a challenge that expires at `expires_at_ms`, and keeps the claim
    /// for at least [`claim_retention_ms`] from `now_ms`. `Ok(true)` for the first claim,
    /// `Ok(false)` after.
    async fn claim(&self, id: &str, now_ms: i64, expires_at_ms: i64) -> Result<bool, StoreError>;
}

/// How long from `now_ms` a claim on a challenge that expires at `expires_at_ms` must be
/// kept: until [`CLAIM_RETENTION_AFTER_EXPIRY_MS`] past the expiry, and at least 1 ms (an
/// alarm is set in the future). Saturating, so no pair of times overflows.
pub fn claim_retention_ms(now_ms: i64, expires_at_ms: i64) -> i64 {
    expires_at_ms
        .saturating_add(CLAIM_RETENTION_AFTER_EXPIRY_MS)
        .saturating_sub(now_ms)
        .max(1)
}

/// Strongly consistent, expiring abuse state per visitor (the salted hash of its network): the
/// rules are [`crate::visitor::VisitorState`]'s, the store only keeps one state per visitor.
pub trait VisitorStore {
    /// Decides a challenge start on `project` under its start-rate `limits` and returns the
    /// visitor's history.
    async fn start(
        &self,
        visitor: &str,
        project: &str,
        limits: StartLimits,
        now_ms: i64,
    ) -> Result<VisitorHistory, StoreError>;
    /// Remembers a failed redeem or a high-risk start.
    async fn record(
        &self,
        visitor: &str,
        project: &str,
        event: VisitorEvent,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Where telemetry goes. Delivery is the sink's business: the request never waits on the
/// control plane and never fails because telemetry could not be queued.
pub trait TelemetrySink {
    /// Hands `event` over for at-least-once delivery.
    async fn emit(&self, event: TelemetryEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_MS: i64 = 60 * 1000;

    #[test]
    fn claims_outlive_their_challenge_by_an_hour_whichever_clock_claims() {
        let expires_at = 1_773_576_000_000;
        // Claimed as soon as it was issued, with ten minutes to go.
        assert_eq!(
            claim_retention_ms(expires_at - 10 * MINUTE_MS, expires_at),
            70 * MINUTE_MS
        );
        // Claimed by an edge whose clock runs 30 minutes ahead of the others, at what it
        // reads as the last moment: kept until half an hour past expiry on the others' clock,
        // when none of them accepts the token any more.
        let fast_clock_now = expires_at - 1;
        let real_now = fast_clock_now - 30 * MINUTE_MS;
        let kept_until = real_now + claim_retention_ms(fast_clock_now, expires_at);
        assert_eq!(kept_until, expires_at + 30 * MINUTE_MS);
        // Claimed by a clock that already reads past the margin: still kept, briefly.
        let far_ahead = expires_at + 2 * CLAIM_RETENTION_AFTER_EXPIRY_MS;
        assert_eq!(claim_retention_ms(far_ahead, expires_at), 1);
    }

    #[test]
    fn extreme_times_saturate() {
        assert_eq!(claim_retention_ms(0, i64::MAX), i64::MAX);
        assert_eq!(claim_retention_ms(i64::MIN, i64::MAX), i64::MAX);
        assert_eq!(claim_retention_ms(i64::MAX, i64::MIN), 1);
    }
}
