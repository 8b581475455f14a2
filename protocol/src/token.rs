//! Stateless, HMAC-SHA256-signed tokens and the keys that sign them.
//!
//! A token is `<kind>.<base64url(JSON claims)>.<base64url(MAC)>`, where the MAC covers
//! `<kind>.<payload>`: a challenge token can never pass as a verification token or the other
//! way round. Keys are derived per project from the operator's master secret, which the edge
//! holds as a Worker secret and the control plane in its configuration; nothing secret is
//! published in the KV snapshot and nothing secret reaches a browser.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::preset::Obfuscation;
use crate::risk::RiskAssessment;

type HmacSha256 = Hmac<Sha256>;

/// Longest token we parse; anything longer is refused before any work is done.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The operator's master secret, from which every other key is derived.
#[derive(Clone)]
pub struct MasterSecret(Vec<u8>);

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(..)")
    }
}

/// The master secret is too short to be safe.
#[derive(Debug, thiserror::Error)]
#[error("the master secret must be at least 32 characters long")]
pub struct WeakSecret;

impl MasterSecret {
    /// Wraps the configured secret; refuses short ones so a typo cannot weaken every key.
    pub fn new(secret: &str) -> Result<Self, WeakSecret> {
        if secret.len() < 32 {
            return Err(WeakSecret);
        }
        Ok(Self(secret.as_bytes().to_vec()))
    }

    /// HMAC-SHA256(master, label): one derivation for every purpose, separated by label.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The key that signs one project's challenge and verification tokens. Bumping
    /// `key_version` in the snapshot invalidates every token issued under the old version.
    pub fn project_key(&self, project_id: &str, key_version: u32) -> ProjectKey {
        ProjectKey(self.derive(&format!(
            "humanproof/project-key/v1/{project_id}/{key_version}"
        )))
    }
}

/// A project's internal challenge key.
#[derive(Clone)]
pub struct ProjectKey([u8; 32]);

impl std::fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProjectKey(..)")
    }
}

/// Claims that can travel in a signed token.
pub trait Claims: Serialize + DeserializeOwned {
    /// Token prefix; part of what is signed.
    const KIND: &'static str;
    /// Expiry, Unix milliseconds.
    fn expires_at(&self) -> i64;
}

/// What a challenge token carries: enough to check a redeem anywhere, with no shared state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeClaims {
    /// Site key the challenge was issued for.
    pub sk: String,
    /// Random challenge id; what the single-redeem claim is keyed on.
    pub jti: String,
    /// Sub-challenge count.
    pub c: u32,
    /// Salt length.
    pub s: u32,
    /// Difficulty.
    pub d: u32,
    /// Squarings of the RSW puzzle the challenge is instead of SHA-256 work; `c` is then 1
    /// and `d` 0. The puzzle's secret scalar comes from the project key and `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsw: Option<u32>,
    /// Issued at, Unix ms.
    pub iat: i64,
    /// Expires at, Unix ms.
    pub exp: i64,
    /// Hostname of the page that asked for the challenge.
    pub host: String,
    /// Widget action, echoed by siteverify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<String>,
    /// Customer data, echoed by siteverify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cd: Option<String>,
    /// The edge's risk assessment of the start, carried to the redeem and on to siteverify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskAssessment>,
    /// The obfuscation level of the environment check sent with the challenge; the redeem
    /// must answer it. `None` when no check was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ins: Option<Obfuscation>,
    /// The check leaves out its canvas half, because the widget said its browser's workers
    /// have no `OffscreenCanvas` (Safari before 16.4).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ins_without_canvas: bool,
}

impl ChallengeClaims {
    /// The SHA-256 work the token stands for, as the challenge response sent it.
    pub fn params(&self) -> crate::pow::ChallengeParams {
        crate::pow::ChallengeParams {
            c: self.c,
            s: self.s,
            d: self.d,
        }
    }
}

impl Claims for ChallengeClaims {
    const KIND: &'static str = "hpc1";
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

/// What a verification token carries to the site backend's siteverify call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationClaims {
    /// Site key the challenge was solved for.
    pub sk: String,
    /// Random token id; siteverify's single-use claim is keyed on it.
    pub jti: String,
    /// The redeemed challenge's id.
    pub cid: String,
    /// When the challenge was solved (redeemed), Unix ms.
    pub iat: i64,
    /// Expires at, Unix ms.
    pub exp: i64,
    /// Hostname of the page the widget ran on.
    pub host: String,
    /// Difficulty that was solved.
    pub d: u32,
    /// Sub-challenges that were solved.
    pub c: u32,
    /// Squarings of the RSW puzzle solved instead of SHA-256 work (`c` 1 and `d` 0 then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rsw: Option<u32>,
    /// Widget action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<String>,
    /// Customer data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cd: Option<String>,
    /// The risk assessment of the challenge start, for siteverify's extras.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskAssessment>,
}

impl Claims for VerificationClaims {
    const KIND: &'static str = "hpv1";
    fn expires_at(&self) -> i64 {
        self.exp
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of the expected kind and shape.
    #[error("the token is malformed")]
    Malformed,
    /// The MAC does not match: forged, tampered with, or signed for another project.
    #[error("the token signature is invalid")]
    BadSignature,
    /// Genuine but past its expiry.
    #[error("the token has expired")]
    Expired,
}

impl ProjectKey {
    fn mac(&self, signed: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(signed.as_bytes());
        mac
    }

    /// The secret scalar of challenge `jti`'s RSW puzzle: derived, so the token need not
    /// carry it (tokens are signed, not encrypted) and the redeem can recompute the answer.
    pub fn rsw_scalar(&self, jti: &str) -> crate::rsw::Scalar {
        let tag = self
            .mac(&format!("humanproof/rsw-scalar/v1/{jti}"))
            .finalize();
        tag.into_bytes()[..16]
            .try_into()
            .expect("a MAC is 32 bytes")
    }

    /// Signs `claims` into a token string.
    pub fn sign<T: Claims>(&self, claims: &T) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signed = format!("{}.{payload}", T::KIND);
        let tag = B64.encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// Checks the signature first, then the expiry against `now_ms`.
    pub fn open<T: Claims>(&self, token: &str, now_ms: i64) -> Result<T, TokenError> {
        let (signed, payload, tag) = split::<T>(token)?;
        self.mac(signed)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: T = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.expires_at() <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Reads the claims without checking the signature: only to learn which project a token
/// says it belongs to, so a mismatch can be reported precisely. Never trust the result.
pub fn peek_unverified<T: Claims>(token: &str) -> Result<T, TokenError> {
    let (_, payload, _) = split::<T>(token)?;
    serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
}

fn split<T: Claims>(token: &str) -> Result<(&str, Vec<u8>, Vec<u8>), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (kind, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    if kind != T::KIND {
        return Err(TokenError::Malformed);
    }
    let payload = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
    let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
    if tag.len() != 32 {
        return Err(TokenError::Malformed);
    }
    Ok((signed, payload, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterSecret {
        MasterSecret::new("test-master-secret-that-is-long-enough").unwrap()
    }

    fn claims(exp: i64) -> ChallengeClaims {
        ChallengeClaims {
            sk: "hp_site_a".into(),
            jti: "00ff".into(),
            c: 2,
            s: 32,
            d: 1,
            rsw: None,
            iat: 0,
            exp,
            host: "example.com".into(),
            act: Some("login".into()),
            cd: None,
            risk: None,
            ins: None,
            ins_without_canvas: false,
        }
    }

    #[test]
    fn round_trip() {
        let key = master().project_key("p1", 1);
        let token = key.sign(&claims(1000));
        assert!(token.starts_with("hpc1."));
        assert_eq!(key.open::<ChallengeClaims>(&token, 999), Ok(claims(1000)));
    }

    #[test]
    fn expiry_is_checked_after_the_signature() {
        let key = master().project_key("p1", 1);
        let token = key.sign(&claims(1000));
        assert_eq!(
            key.open::<ChallengeClaims>(&token, 1000),
            Err(TokenError::Expired)
        );
        let other = master().project_key("p2", 1);
        assert_eq!(
            other.open::<ChallengeClaims>(&token, 1000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn keys_differ_per_project_version_and_master() {
        let token = master().project_key("p1", 1).sign(&claims(1000));
        assert!(
            master()
                .project_key("p1", 2)
                .open::<ChallengeClaims>(&token, 0)
                .is_err()
        );
        assert!(
            master()
                .project_key("p2", 1)
                .open::<ChallengeClaims>(&token, 0)
                .is_err()
        );
        let other_master = MasterSecret::new("another-master-secret-also-long-enough").unwrap();
        assert!(
            other_master
                .project_key("p1", 1)
                .open::<ChallengeClaims>(&token, 0)
                .is_err()
        );
    }

    #[test]
    fn tampered_payloads_and_wrong_kinds_are_refused() {
        let key = master().project_key("p1", 1);
        let token = key.sign(&claims(1000));
        let (signed, tag) = token.rsplit_once('.').unwrap();
        let forged_payload = B64.encode(serde_json::to_vec(&claims(i64::MAX)).unwrap());
        let forged = format!("hpc1.{forged_payload}.{tag}");
        assert_eq!(
            key.open::<ChallengeClaims>(&forged, 0),
            Err(TokenError::BadSignature)
        );
        // The same bytes under the verification prefix are a different, unsigned token.
        let relabelled = format!("hpv1{}.{tag}", &signed[4..]);
        assert_eq!(
            key.open::<VerificationClaims>(&relabelled, 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            key.open::<VerificationClaims>(&token, 0),
            Err(TokenError::Malformed)
        );
        for junk in [
            "",
            ".",
            "hpc1..",
            "hpc1.!!.!!",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                key.open::<ChallengeClaims>(junk, 0),
                Err(TokenError::Malformed),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn short_master_secrets_are_refused() {
        assert!(MasterSecret::new("short").is_err());
    }
}
