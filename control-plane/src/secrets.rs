//! Public site keys, backend secrets, and the rule that secrets are stored only as hashes.
//!
//! Backend secrets are 256 random bits, so a plain SHA-256 is a sound storage hash (no
//! dictionary to attack); it also allows the indexed lookup siteverify needs.

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

/// How a backend secret is stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
