//! Challenge and verification tokens as the edge and siteverify read them: arbitrary strings
//! opened and peeked as both kinds, and arbitrary claims behind a genuine signature, so the
//! claims parser and the expiry check run too, not only the MAC check.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use humanproof_fuzz::{NOW_MS, master};
use humanproof_protocol::token::{Claims, peek_unverified};
use humanproof_protocol::{ChallengeClaims, ProjectKey, VerificationClaims};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const PROJECT_ID: &str = "fuzz-project";
const KEY_VERSION: u32 = 1;

/// Opens and peeks `token` as a token of kind `T`; a genuine signature must open to the
/// same claims a peek reads.
fn read<T: Claims + PartialEq + std::fmt::Debug>(key: &ProjectKey, token: &str) {
    let opened = key.open::<T>(token, NOW_MS);
    let peeked = peek_unverified::<T>(token);
    if let Ok(claims) = opened {
        assert_eq!(peeked.ok(), Some(claims));
    }
}

/// `payload` signed as a token of kind `kind` with the project key: the format the README
/// documents, built by hand so that any payload, not only claims that serialize, is signed.
fn sign_raw(kind: &str, payload: &[u8]) -> String {
    let key = master().derive(&format!(
        "humanproof/project-key/v1/{PROJECT_ID}/{KEY_VERSION}"
    ));
    let signed = format!("{kind}.{}", B64.encode(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let key = master().project_key(PROJECT_ID, KEY_VERSION);
    // The first byte picks: a raw token string, or a signed payload of either kind.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            read::<ChallengeClaims>(&key, token);
            read::<VerificationClaims>(&key, token);
        }
        1 => read::<ChallengeClaims>(&key, &sign_raw(ChallengeClaims::KIND, rest)),
        _ => read::<VerificationClaims>(&key, &sign_raw(VerificationClaims::KIND, rest)),
    }
});
