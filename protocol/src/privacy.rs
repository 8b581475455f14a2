//! Salted hashing of IPs and user agents: the only form in which either is ever kept.
//!
//! The salt is derived from the master secret and the UTC day, so a hash cannot be reversed
//! by brute-forcing the IPv4 space without the secret, and hashes of one visitor cannot be
//! linked across days.
//!
//! Rate limits and abuse state are keyed on [`client_network`], not the raw address: one
//! IPv6 subscriber is handed a whole /64 and can pick a fresh address from it for every
//! request, so a full IPv6 address identifies nobody.

use std::borrow::Cow;
use std::net::IpAddr;

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

/// What per-client limits count against: an IPv4 address as it is, an IPv6 address as its
/// /64 (`2001:db8:1:2::/64`), the IPv4 address inside an IPv4-mapped IPv6 one. Anything that
/// does not parse as an IP is returned unchanged, so a platform's odd value still keys
/// something instead of nothing.
pub fn client_network(ip: &str) -> Cow<'_, str> {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Cow::Borrowed(ip.trim()),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Cow::Owned(v4.to_string()),
            None => {
                let s = v6.segments();
                Cow::Owned(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
        Err(_) => Cow::Borrowed(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_on_their_64() {
        assert_eq!(client_network("203.0.113.7"), "203.0.113.7");
        assert_eq!(
            client_network("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_network("2001:db8:1:2::1"),
            client_network("2001:0db8:0001:0002:ffff::9")
        );
        assert_ne!(
            client_network("2001:db8:1:2::1"),
            client_network("2001:db8:1:3::1")
        );
        assert_eq!(client_network("::ffff:198.51.100.4"), "198.51.100.4");
        assert_eq!(client_network("not an ip"), "not an ip");
    }

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
