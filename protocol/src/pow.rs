//! Proof-of-work: challenge parameters, the check the edge runs on redeem, and a
//! reference solver for tests, benchmarks and non-browser clients.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::prng::prng;

/// Salt length in hex digits; Cap's default, long enough that salts never repeat.
pub const SALT_LEN: u32 = 32;

/// The Cap challenge object: `c` sub-challenges, salts of `s` hex digits, targets of `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeParams {
    /// Number of sub-challenges.
    pub c: u32,
    /// Salt length in hex digits.
    pub s: u32,
    /// Difficulty: target prefix length in hex digits.
    pub d: u32,
}

/// Salt and target of sub-challenge `i` (1-based) of the challenge whose token is `token`.
pub fn sub_challenge(token: &str, i: u32, params: ChallengeParams) -> (String, String) {
    (
        prng(&format!("{token}{i}"), params.s as usize),
        prng(&format!("{token}{i}d"), params.d as usize),
    )
}

/// Whether `hex(SHA-256(salt + decimal(nonce)))` starts with `target`.
pub fn is_solution(salt: &str, target: &str, nonce: u64) -> bool {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(nonce.to_string().as_bytes());
    hex_prefix_matches(&hasher.finalize(), target)
}

/// Compares the hex form of `digest` with `target` without formatting the whole digest.
fn hex_prefix_matches(digest: &[u8], target: &str) -> bool {
    let target = target.as_bytes();
    if target.len() > digest.len() * 2 {
        return false;
    }
    target.iter().enumerate().all(|(i, &want)| {
        let byte = digest[i / 2];
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        b"0123456789abcdef"[nibble as usize] == want
    })
}

/// Checks a full set of solutions; on failure says which sub-challenge (1-based) was wrong.
pub fn verify_solutions(
    token: &str,
    params: ChallengeParams,
    solutions: &[u64],
) -> Result<(), SolutionError> {
    if solutions.len() != params.c as usize {
        return Err(SolutionError::WrongCount {
            expected: params.c,
            got: solutions.len(),
        });
    }
    for (i, &nonce) in (1..=params.c).zip(solutions) {
        let (salt, target) = sub_challenge(token, i, params);
        if !is_solution(&salt, &target, nonce) {
            return Err(SolutionError::Wrong { index: i });
        }
    }
    Ok(())
}

/// Why a set of solutions was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SolutionError {
    /// The client sent a different number of solutions than there are sub-challenges.
    #[error("expected {expected} solutions, got {got}")]
    WrongCount {
        /// Sub-challenges in the challenge.
        expected: u32,
        /// Solutions received.
        got: usize,
    },
    /// A solution does not hash to its target.
    #[error("solution {index} does not meet its target")]
    Wrong {
        /// 1-based index of the first wrong solution.
        index: u32,
    },
}

/// Reference solver: the smallest nonce for each sub-challenge. Scalar and simple on purpose;
/// the widget's SIMD solver is the fast one.
pub fn solve(token: &str, params: ChallengeParams) -> Vec<u64> {
    (1..=params.c)
        .map(|i| {
            let (salt, target) = sub_challenge(token, i, params);
            (0u64..)
                .find(|&n| is_solution(&salt, &target, n))
                .expect("a u64 nonce space always holds a solution for targets of at most 8 digits")
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `(seed, len, prng(seed, len))` from Cap's JavaScript implementation.
    pub(crate) const PRNG_VECTORS: &[(&str, usize, &str)] = &[
        ("seed", 32, "1dd9a7c40d0759d42188f38ac0cc22b6"),
        ("hello world", 16, "fd8f5598f0b79ec6"),
        ("token1", 5, "85395"),
        ("token1d", 4, "4bb7"),
        ("ünïcødé€", 12, "f4f9a7a1c1b1"),
        ("", 8, "4622a677"),
        ("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx7", 3, "b9f"),
        ("a", 8, "441aaeb8"),
    ];

    const TOKEN: &str = "vector-token";

    #[test]
    fn sub_challenges_match_cap() {
        let params = ChallengeParams { c: 3, s: 32, d: 3 };
        let expected = [
            ("ce531f461acabafbff2a7a11bd684685", "e2b"),
            ("450d181327ee6994b14f03ba76350fe6", "32d"),
            ("7e93b1291e643b32b944c1d30ea89cec", "7ef"),
        ];
        for (i, (salt, target)) in (1..).zip(expected) {
            assert_eq!(
                sub_challenge(TOKEN, i, params),
                (salt.into(), target.into())
            );
        }
    }

    #[test]
    fn solutions_match_cap_smallest_nonces() {
        // Odd difficulty (3) exercises the half-byte comparison.
        let params = ChallengeParams { c: 3, s: 32, d: 3 };
        assert_eq!(solve(TOKEN, params), vec![5805, 17, 1984]);
        assert_eq!(verify_solutions(TOKEN, params, &[5805, 17, 1984]), Ok(()));

        let params = ChallengeParams { c: 2, s: 16, d: 1 };
        assert_eq!(solve(TOKEN, params), vec![58, 9]);
    }

    #[test]
    fn wrong_or_missing_solutions_are_refused() {
        let params = ChallengeParams { c: 3, s: 32, d: 3 };
        assert_eq!(
            verify_solutions(TOKEN, params, &[5805, 18, 1984]),
            Err(SolutionError::Wrong { index: 2 })
        );
        assert_eq!(
            verify_solutions(TOKEN, params, &[5805, 17]),
            Err(SolutionError::WrongCount {
                expected: 3,
                got: 2
            })
        );
        // The same nonces do not carry over to another token.
        assert!(verify_solutions("other-token", params, &[5805, 17, 1984]).is_err());
    }

    #[test]
    fn hex_prefix_comparison() {
        let digest = [0xab, 0xcd, 0xef];
        assert!(hex_prefix_matches(&digest, ""));
        assert!(hex_prefix_matches(&digest, "a"));
        assert!(hex_prefix_matches(&digest, "abc"));
        assert!(hex_prefix_matches(&digest, "abcdef"));
        assert!(!hex_prefix_matches(&digest, "abd"));
        assert!(!hex_prefix_matches(&digest, "ABC"));
        assert!(!hex_prefix_matches(&digest, "abcdef0"));
    }
}
