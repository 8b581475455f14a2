//! Public site keys, backend secrets, the rule that secrets are stored only as hashes, and
//! sealing what must be kept secret but read back (TOTP keys, the dashboard's flash).
//!
//! Backend secrets are 256 random bits, so a plain SHA-256 is a sound storage hash (no
//! dictionary to attack); it also allows the indexed lookup siteverify needs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use humanproof_protocol::MasterSecret;
use sha2::{Digest, Sha256};

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS provides randomness");
    hex::encode(buf)
}

/// A new public site key (`hp_site_` + 96 random bits).
pub fn new_site_key() -> String {
    format!("hp_site_{}", random_token(12))
}

/// A new backend secret (`hp_secret_` + 256 random bits), shown to its owner once.
pub fn new_backend_secret() -> String {
    format!("hp_secret_{}", random_token(32))
}

/// A new random token (256 bits, hex): session cookies, email links, CSRF tokens, API keys.
pub fn new_token() -> String {
    random_token(32)
}

/// A new internal id.
pub fn new_id() -> String {
    random_token(16)
}

/// A new internal id that sorts by `at_ms` (Unix ms, 12 hex digits) and then by 80 random
/// bits, for rows written in time order many times a second: each lands at the end of its
/// table's id index, in a page just written, where a random id would dirty a page anywhere in
/// the index for every row.
pub fn new_id_at(at_ms: i64) -> String {
    format!(
        "{:012x}{}",
        u64::try_from(at_ms).unwrap_or(0),
        random_token(10)
    )
}

/// Encrypts `plain` with XChaCha20-Poly1305 under a key derived from the master secret for
/// `purpose` (so what is sealed for one use never opens for another): base64(nonce ‖
/// ciphertext).
pub fn seal(master: &MasterSecret, purpose: &str, plain: &[u8]) -> String {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).expect("the OS provides randomness");
    let sealed = cipher(master, purpose)
        .encrypt(XNonce::from_slice(&nonce), plain)
        .expect("encryption of a short value cannot fail");
    STANDARD_NO_PAD.encode([nonce.as_slice(), &sealed].concat())
}

/// Decrypts what [`seal`] sealed for `purpose`; `None` if it was tampered with, sealed for
/// another purpose, or the master secret changed.
pub fn open(master: &MasterSecret, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 24 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(24);
    cipher(master, purpose)
        .decrypt(XNonce::from_slice(nonce), ciphertext)
        .ok()
}

fn cipher(master: &MasterSecret, purpose: &str) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&master.derive(purpose).into())
}

/// How a backend secret is stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
