//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the
//! second factor most authenticator apps speak, and how their secrets are kept at rest.
//!
//! Secrets are encrypted with XChaCha20-Poly1305 under a key derived from the master
//! secret, so a copy of the database alone does not yield working codes. A code is accepted
//! for the current step and one step either side (clock drift), and each step only once.

use hmac::{Hmac, Mac};
use humanproof_protocol::MasterSecret;
use qrcode::QrCode;
use qrcode::render::svg;
use sha1::Sha1;

/// Seconds per code.
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of now.
const DRIFT_STEPS: i64 = 1;

/// A new random 160-bit secret (RFC 4226's recommended length).
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    getrandom::fill(&mut secret).expect("the OS provides randomness");
    secret
}

/// The time step of a Unix-ms instant.
pub fn step_at(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000 * STEP_SECONDS)
}

/// The 6-digit code for a step.
pub fn code(secret: &[u8], step: i64) -> String {
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

/// The step a typed code matches, if it is valid now and newer than `last_step`.
pub fn verify(secret: &[u8], typed: &str, now_ms: i64, last_step: Option<i64>) -> Option<i64> {
    let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != 6 || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(now_ms);
    (now - DRIFT_STEPS..=now + DRIFT_STEPS)
        .filter(|step| last_step.is_none_or(|last| *step > last))
        .find(|step| {
            subtle::ConstantTimeEq::ct_eq(code(secret, *step).as_bytes(), typed.as_bytes()).into()
        })
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://` URI an authenticator app imports.
pub fn otpauth_uri(email: &str, secret: &[u8]) -> String {
    let label: String = format!("HumanProof:{email}")
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b':' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "otpauth://totp/{label}?secret={}&issuer=HumanProof&algorithm=SHA1&digits=6&period=30",
        base32(secret)
    )
}

/// The `otpauth://` URI as a QR code for an authenticator app to scan off the screen: an
/// SVG of rects and one path, no inline style, so the dashboard's CSP lets it render inline.
pub fn qr_code_svg(uri: &str) -> String {
    // Emails are at most 254 bytes, so the URI stays far below a QR code's ~2,900.
    let code = QrCode::new(uri).expect("an otpauth URI fits in a QR code");
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    // Inline in HTML, the XML declaration would only be noise.
    svg.find("<svg")
        .map_or(svg.clone(), |start| svg[start..].to_owned())
}

/// What sealed TOTP secrets are sealed for.
const SEALED_FOR: &str = "humanproof/totp-secret/v1";

/// Encrypts a secret for storage ([`crate::secrets::seal`]).
pub fn seal(master: &MasterSecret, secret: &[u8]) -> String {
    crate::secrets::seal(master, SEALED_FOR, secret)
}

/// Decrypts a stored secret; `None` if it was tampered with or the master secret changed.
pub fn open(master: &MasterSecret, stored: &str) -> Option<Vec<u8>> {
    crate::secrets::open(master, SEALED_FOR, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows, last six digits.
    #[test]
    fn matches_the_rfc_test_vectors() {
        let secret = b"12345678901234567890";
        for (unix_seconds, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(
                code(secret, step_at(unix_seconds * 1000)),
                expected,
                "T = {unix_seconds}"
            );
        }
    }

    #[test]
    fn accepts_neighbouring_steps_once() {
        let secret = new_secret();
        let now = 1_773_576_000_000;
        let current = code(&secret, step_at(now));
        assert_eq!(verify(&secret, &current, now, None), Some(step_at(now)));
        assert_eq!(
            verify(&secret, &current, now + 30_000, None),
            Some(step_at(now)),
            "one step of drift"
        );
        assert_eq!(
            verify(&secret, &current, now + 61_000, None),
            None,
            "two steps is too late"
        );
        assert_eq!(
            verify(&secret, &current, now, Some(step_at(now))),
            None,
            "each step works once"
        );
        assert_eq!(verify(&secret, "12345", now, None), None);
    }

    #[test]
    fn base32_and_sealing_round_trip() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let master = MasterSecret::new("test-master-secret-that-is-long-enough").unwrap();
        let secret = new_secret();
        let stored = seal(&master, &secret);
        assert_eq!(open(&master, &stored), Some(secret));
        let other = MasterSecret::new("another-master-secret-that-is-long-enough").unwrap();
        assert_eq!(open(&other, &stored), None);
    }

    #[test]
    fn the_qr_code_is_bare_svg_the_dashboard_csp_allows() {
        let longest_email = format!("{}@{}.example", "a".repeat(64), "b".repeat(180));
        let svg = qr_code_svg(&otpauth_uri(&longest_email, &new_secret()));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(
            !svg.contains("style"),
            "style-src 'self' would block inline styles: {svg}"
        );
    }
}
