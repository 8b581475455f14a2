//! Telemetry the edge sends to the control plane, and how a batch is authenticated.
//!
//! Every event carries a random id so the control plane can store it idempotently: the
//! queue delivers at least once, and a batch retried after a timeout must count once.
//! A batch is signed with a key derived from the master secret, over a timestamp and the
//! exact body, so nobody without the secret can post or replay-and-alter events.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::risk::RiskAssessment;
use crate::token::MasterSecret;
use crate::wire::Reason;

/// Header carrying `t=<unix ms>,v1=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "x-humanproof-signature";
/// How far a batch's timestamp may be from the receiver's clock.
pub const SIGNATURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;
/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 500;

/// What happened at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelemetryKind {
    /// A challenge was issued.
    ChallengeIssued,
    /// A challenge start was refused by a gate.
    ChallengeRefused,
    /// A solved challenge was redeemed for a verification token.
    RedeemSucceeded,
    /// A redeem of a genuine challenge token failed after claiming the challenge: wrong
    /// solutions or a wrong environment-check answer. Redeems refused before the claim (bad
    /// bodies, forged, expired or foreign tokens, replays) are no event at all.
    RedeemFailed,
    /// A challenge start was blocked for its risk score (enforce mode).
    ChallengeBlocked,
}

impl TelemetryKind {
    /// Whether the event counts towards the project's monthly usage. Only work the
    /// platform did to protect the site counts: a redeemed challenge, solved or failed, or a
    /// start blocked for its risk. The edge records a redeem only once it has claimed the
    /// challenge of a genuine token for the site, so each issued challenge counts at most
    /// once, and requests anyone can send with the public site key alone never count.
    pub fn is_protected_attempt(self) -> bool {
        matches!(
            self,
            Self::RedeemSucceeded | Self::RedeemFailed | Self::ChallengeBlocked
        )
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChallengeIssued => "challenge_issued",
            Self::ChallengeRefused => "challenge_refused",
            Self::RedeemSucceeded => "redeem_succeeded",
            Self::RedeemFailed => "redeem_failed",
            Self::ChallengeBlocked => "challenge_blocked",
        }
    }
}

/// One edge event. IPs and user agents appear only as salted hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryEvent {
    /// Random id (32 hex digits); the idempotency key.
    pub id: String,
    /// What happened.
    pub kind: TelemetryKind,
    /// When, Unix ms.
    pub at: i64,
    /// Project the site key belongs to.
    pub project_id: String,
    /// The public site key used.
    pub site_key: String,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The challenge concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// Hostname of the requesting page, when the origin parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Difficulty of the challenge concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub difficulty: Option<u32>,
    /// Salted SHA-256 of the client IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_hash: Option<String>,
    /// Salted SHA-256 of the user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ua_hash: Option<String>,
    /// The risk assessment of the challenge start this event concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskAssessment>,
    /// The client's country (ISO 3166-1 alpha-2) and network, when the platform knows them.
    /// In transit only: the control plane folds them into per-project counters and never
    /// stores them with the event. (Nested, not flattened: a flattened struct serializes as
    /// a map, which the Workers queue binding turns into a JavaScript `Map` that JSON drops.)
    #[serde(default, skip_serializing_if = "Network::is_unknown")]
    pub network: Network,
}

/// Where a request came from, as coarse as the platform reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
}

impl Network {
    /// Whether neither is known.
    pub fn is_unknown(&self) -> bool {
        self.country.is_none() && self.asn.is_none()
    }
}

/// The body the queue consumer posts to the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryBatch {
    /// Events in any order; duplicates are fine.
    pub events: Vec<TelemetryEvent>,
}

fn batch_mac(master: &MasterSecret, timestamp_ms: i64, body: &[u8]) -> Hmac<Sha256> {
    let key = master.derive("humanproof/telemetry/v1");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `now_ms`.
pub fn sign_batch(master: &MasterSecret, now_ms: i64, body: &[u8]) -> String {
    let tag = batch_mac(master, now_ms, body).finalize().into_bytes();
    format!("t={now_ms},v1={}", hex::encode(tag))
}

/// Why a batch signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchSignatureError {
    /// Missing parts or not hex.
    #[error("malformed signature header")]
    Malformed,
    /// Timestamp outside [`SIGNATURE_TOLERANCE_MS`].
    #[error("signature timestamp out of tolerance")]
    Stale,
    /// MAC mismatch.
    #[error("signature mismatch")]
    Mismatch,
}

/// Checks a [`SIGNATURE_HEADER`] value against `body`.
pub fn verify_batch(
    master: &MasterSecret,
    header: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<(), BatchSignatureError> {
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => tag = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(tag)) = (timestamp, tag) else {
        return Err(BatchSignatureError::Malformed);
    };
    // The timestamp is the sender's: `now_ms - timestamp` overflows for one near i64::MIN or
    // i64::MAX, while the distance between the two fits a u64 whatever they are.
    if now_ms.abs_diff(timestamp) > SIGNATURE_TOLERANCE_MS.unsigned_abs() {
        return Err(BatchSignatureError::Stale);
    }
    batch_mac(master, timestamp, body)
        .verify_slice(&tag)
        .map_err(|_| BatchSignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_body_time_and_secret() {
        let master = MasterSecret::new("test-master-secret-that-is-long-enough").unwrap();
        let header = sign_batch(&master, 1_000_000, b"{}");
        assert_eq!(verify_batch(&master, &header, b"{}", 1_000_000), Ok(()));
        assert_eq!(
            verify_batch(&master, &header, b"{ }", 1_000_000),
            Err(BatchSignatureError::Mismatch)
        );
        let later = 1_000_000 + SIGNATURE_TOLERANCE_MS + 1;
        assert_eq!(
            verify_batch(&master, &header, b"{}", later),
            Err(BatchSignatureError::Stale)
        );
        let other = MasterSecret::new("another-master-secret-also-long-enough").unwrap();
        assert_eq!(
            verify_batch(&other, &header, b"{}", 1_000_000),
            Err(BatchSignatureError::Mismatch)
        );
        assert_eq!(
            verify_batch(&master, "v1=zz", b"{}", 0),
            Err(BatchSignatureError::Malformed)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        let master = MasterSecret::new("test-master-secret-that-is-long-enough").unwrap();
        let far_apart = [
            (i64::MIN, 0),
            (i64::MAX, 0),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
        ];
        for (sent, now) in far_apart {
            let header = sign_batch(&master, sent, b"{}");
            let verified = verify_batch(&master, &header, b"{}", now);
            assert_eq!(
                verified,
                Err(BatchSignatureError::Stale),
                "t={sent} at {now}"
            );
        }
        let forged = format!("t={},v1={}", i64::MIN, "00".repeat(32));
        assert_eq!(
            verify_batch(&master, &forged, b"{}", 0),
            Err(BatchSignatureError::Stale)
        );
        // At the extremes themselves a signature still checks out.
        let header = sign_batch(&master, i64::MIN, b"{}");
        let now = i64::MIN + SIGNATURE_TOLERANCE_MS;
        assert_eq!(verify_batch(&master, &header, b"{}", now), Ok(()));
    }
}
