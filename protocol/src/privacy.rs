//! Salted hashing of IPs and user agents: the only form in which either is ever kept.
//!
//! The salt is derived from the master secret and the UTC day, so a hash cannot be reversed
//! by brute-forcing the IPv4 space without the secret, and hashes of one visitor cannot be
//! linked across days.

use sha2::{Digest, Sha256};

use crate::token::MasterSecret;

const DAY_MS: i64 = 86_400_000;

/// `hex(SHA-256(salt_of_the_day || value))` for a value such as an IP or a user agent.
pub fn salted_hash(master: &MasterSecret, kind: &str, value: &str, now_ms: i64) -> String {
    let day = now_ms.div_euclid(DAY_MS);
    let salt = master.derive(&format!("humanproof/{kind}-salt/{day}"));
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(value.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_per_day_and_kind() {
        let master = MasterSecret::new("test-master-secret-that-is-long-enough").unwrap();
        let a = salted_hash(&master, "ip", "203.0.113.7", 0);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("203"));
        assert_eq!(a, salted_hash(&master, "ip", "203.0.113.7", DAY_MS - 1));
        assert_ne!(a, salted_hash(&master, "ip", "203.0.113.7", DAY_MS));
        assert_ne!(a, salted_hash(&master, "ua", "203.0.113.7", 0));
        let plain = hex::encode(Sha256::digest(b"203.0.113.7"));
        assert_ne!(a, plain);
    }
}
