//! HumanProof's proof-of-work solver, compiled to wasm (SIMD128) for the widget's Web Workers.
//!
//! A sub-challenge asks for a nonce `n` with `hex(SHA-256(salt + decimal(n)))` starting with
//! a target of `d` hex digits. With Cap's 32-digit salts every candidate is one SHA-256
//! block, so the solver:
//! - hashes 8 nonces per step in two interleaved groups of 4 SIMD lanes (the interleaving
//!   keeps the engine's pipelines busy while one group waits on the other's results),
//! - runs the rounds over the constant salt words once per sub-challenge, not per nonce
//!   (8 of the 64 rounds for a 32-byte salt),
//! - keeps nonces as decimal digit strings that it increments in place, and rewrites only
//!   the message words whose digits changed: no formatting, no allocation, no block built
//!   again per nonce,
//! - compares only the first digest word against the target (d ≤ 8) and stops at the
//!   first hit, which is the smallest nonce at or above the start.
//!
//! Layout: [`lanes`] (the 4-lane type), [`sha256`] (scalar compression and the lane
//! kernel), and here the search plan and the wasm export.

#![deny(missing_docs)]

mod lanes;
pub mod sha256;

use lanes::U32x4;

/// Interleaved groups of 4 lanes per step.
const GROUPS: usize = 2;
/// Nonces hashed per step.
pub const LANES: usize = 4 * GROUPS;
/// Longest decimal nonce (u64::MAX has 20 digits).
const MAX_DIGITS: usize = 20;

/// A target prefix as a mask and value on the first digest word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WordTarget {
    mask: u32,
    value: u32,
}

impl WordTarget {
    /// `None` for targets the fast path cannot express (longer than 8 or not lowercase hex).
    fn parse(target: &str) -> Option<Self> {
        if target.len() > 8
            || !target
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        if target.is_empty() {
            return Some(Self { mask: 0, value: 0 });
        }
        let bits = 4 * target.len() as u32;
        let value = u32::from_str_radix(target, 16).ok()? << (32 - bits);
        Some(Self {
            mask: u32::MAX << (32 - bits),
            value,
        })
    }
}

/// A decimal nonce kept as ASCII digits, right-aligned in a fixed buffer.
#[derive(Clone, Copy)]
struct Decimal {
    digits: [u8; MAX_DIGITS],
    start: usize,
}

impl Decimal {
    fn new(mut n: u64) -> Self {
        let mut digits = [b'0'; MAX_DIGITS];
        let mut start = MAX_DIGITS;
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break Self { digits, start };
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }

    /// Adds `k` (at most 9) with carry; returns the position in [`Self::as_bytes`] of the
    /// first digit that changed (0 when the number grew a digit).
    fn add(&mut self, k: u8) -> usize {
        let mut i = MAX_DIGITS - 1;
        let mut carry = k;
        loop {
            let sum = self.digits[i] - b'0' + carry;
            self.digits[i] = b'0' + sum % 10;
            carry = sum / 10;
            if carry == 0 {
                break i - self.start;
            }
            if i == self.start {
                self.start -= 1;
                self.digits[self.start] = b'0';
            }
            i -= 1;
        }
    }
}

/// Everything about a sub-challenge that does not depend on the nonce.
pub struct Plan {
    salt: Vec<u8>,
    target: String,
    fast: Option<FastPlan>,
}

/// One lane's nonce, with its final block as bytes and as words.
struct Lane {
    nonce: Decimal,
    block: [u8; 64],
    words: [u32; 16],
}

struct FastPlan {
    target: WordTarget,
    midstate: [u32; 8],
    /// The final block with the salt's tail in place and zeros after it.
    template: [u8; 64],
    /// The template as words; its first `constant_words` are the same for every nonce.
    template_words: [u32; 16],
    tail_len: usize,
    /// Bytes hashed into the midstate before the final block.
    prefix_len: usize,
    /// Leading final-block words made only of salt bytes, and the working variables after
    /// the rounds over them.
    constant_words: usize,
    pre: [u32; 8],
}

impl Plan {
    /// Prepares the search for `salt` and `target`.
    pub fn new(salt: &[u8], target: &str) -> Self {
        let fast = WordTarget::parse(target).and_then(|target| FastPlan::new(salt, target));
        Self {
            salt: salt.to_vec(),
            target: target.to_owned(),
            fast,
        }
    }

    /// The first nonce at or after `start` that solves the sub-challenge, looking at
    /// `count` nonces (rounded up to a whole step).
    pub fn search(&self, start: u64, count: u64) -> Option<u64> {
        match &self.fast {
            Some(fast) => fast.search(start, count),
            None => (start..start.saturating_add(count)).find(|&n| self.is_solution(n)),
        }
    }

    /// The reference check, byte for byte as the edge does it.
    pub fn is_solution(&self, nonce: u64) -> bool {
        let mut message = self.salt.clone();
        message.extend_from_slice(Decimal::new(nonce).as_bytes());
        let digest = sha256::digest(&message);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hex.starts_with(&self.target)
    }
}

impl FastPlan {
    fn new(salt: &[u8], target: WordTarget) -> Option<Self> {
        let prefix_len = salt.len() / 64 * 64;
        let tail = &salt[prefix_len..];
        // One final block must hold the tail, the longest nonce, 0x80 and the length.
        if tail.len() + MAX_DIGITS + 9 > 64 {
            return None;
        }
        let mut midstate = sha256::INITIAL;
        for block in salt[..prefix_len].chunks_exact(64) {
            sha256::compress(&mut midstate, block.try_into().expect("64-byte block"));
        }
        let mut template = [0u8; 64];
        template[..tail.len()].copy_from_slice(tail);
        let template_words = sha256::words(&template);
        let constant_words = tail.len() / 4;
        let mut w = [0u32; 64];
        w[..16].copy_from_slice(&template_words);
        let mut pre = midstate;
        sha256::rounds(&mut pre, &w, 0, constant_words);
        Some(Self {
            target,
            midstate,
            template,
            template_words,
            tail_len: tail.len(),
            prefix_len,
            constant_words,
            pre,
        })
    }

    /// A lane at `nonce`, its final block written out in full.
    fn lane(&self, nonce: Decimal) -> Lane {
        let digits = nonce.as_bytes();
        let mut block = self.template;
        let end = self.tail_len + digits.len();
        block[self.tail_len..end].copy_from_slice(digits);
        block[end] = 0x80;
        let bits = ((self.prefix_len + end) as u64) * 8;
        block[56..].copy_from_slice(&bits.to_be_bytes());
        Lane {
            nonce,
            block,
            words: sha256::words(&block),
        }
    }

    /// Moves `lane` on by `k` nonces. Mostly only the last digit changes, so only the bytes
    /// of the digits that changed and the words holding them are written again; a nonce
    /// that grows a digit moves the padding and the length, and gets its block anew.
    fn advance(&self, lane: &mut Lane, k: u8) {
        let digits_before = lane.nonce.as_bytes().len();
        let changed = lane.nonce.add(k);
        let digits = lane.nonce.as_bytes();
        if digits.len() != digits_before {
            *lane = self.lane(lane.nonce);
            return;
        }
        let from = self.tail_len + changed;
        let to = self.tail_len + digits.len();
        lane.block[from..to].copy_from_slice(&digits[changed..]);
        for j in from / 4..=(to - 1) / 4 {
            let bytes = &lane.block[4 * j..4 * j + 4];
            lane.words[j] = u32::from_be_bytes(bytes.try_into().expect("4 bytes"));
        }
    }

    fn search(&self, start: u64, count: u64) -> Option<u64> {
        let mask = U32x4::splat(self.target.mask);
        let value = U32x4::splat(self.target.value);
        let mut lanes: [Lane; LANES] =
            core::array::from_fn(|lane| self.lane(Decimal::new(start + lane as u64)));
        let mut w = [[U32x4::splat(0); 64]; GROUPS];
        for j in 0..self.constant_words {
            let word = U32x4::splat(self.template_words[j]);
            for group in &mut w {
                group[j] = word;
            }
        }
        let steps = count.div_ceil(LANES as u64);
        for step in 0..steps {
            let mut hits = false;
            let mut firsts = [U32x4::splat(0); GROUPS];
            for ((first, group_w), group_lanes) in
                firsts.iter_mut().zip(&mut w).zip(lanes.chunks_exact(4))
            {
                for (j, word) in group_w[..16]
                    .iter_mut()
                    .enumerate()
                    .skip(self.constant_words)
                {
                    *word = U32x4::new(core::array::from_fn(|k| group_lanes[k].words[j]));
                }
                *first = sha256::first_word_x4(
                    self.midstate[0],
                    &self.pre,
                    self.constant_words,
                    group_w,
                );
                hits |= first.any_masked_eq(mask, value);
            }
            if hits {
                let lanes = firsts.iter().flat_map(|first| first.to_array());
                for (lane, word) in lanes.enumerate() {
                    if word & self.target.mask == self.target.value {
                        return Some(start + step * LANES as u64 + lane as u64);
                    }
                }
            }
            for lane in &mut lanes {
                self.advance(lane, LANES as u8);
            }
        }
        None
    }
}

/// The wasm entry point: the first solving nonce at or after `start` among about `count`,
/// or -1. Nonces travel as JavaScript numbers (exact below 2^53).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn solve(salt: &str, target: &str, start: f64, count: f64) -> f64 {
    Plan::new(salt.as_bytes(), target)
        .search(start as u64, count as u64)
        .map_or(-1.0, |n| n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use humanproof_protocol::pow::{self, ChallengeParams};

    #[test]
    fn decimal_counter_matches_formatting() {
        let mut n = Decimal::new(0);
        for expected in (0u64..2000).step_by(7) {
            assert_eq!(n.as_bytes(), expected.to_string().as_bytes());
            n.add(7);
        }
        let mut big = Decimal::new(9_999_999_999);
        big.add(9);
        assert_eq!(big.as_bytes(), b"10000000008");
    }

    #[test]
    fn digest_matches_sha2() {
        use sha2::Digest as _;
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 200] {
            let message: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(
                sha256::digest(&message).as_slice(),
                sha2::Sha256::digest(&message).as_slice(),
                "{len}"
            );
        }
    }

    #[test]
    fn targets_become_word_masks() {
        assert_eq!(
            WordTarget::parse("a"),
            Some(WordTarget {
                mask: 0xf000_0000,
                value: 0xa000_0000
            })
        );
        assert_eq!(
            WordTarget::parse("0123abcd"),
            Some(WordTarget {
                mask: u32::MAX,
                value: 0x0123_abcd
            })
        );
        assert_eq!(WordTarget::parse("123456789"), None);
        assert_eq!(WordTarget::parse("ABC"), None);
    }

    /// The protocol's vectors: the solver finds the same smallest nonces as the reference.
    #[test]
    fn finds_the_smallest_nonces_of_the_protocol_vectors() {
        for (params, expected) in [
            (
                ChallengeParams { c: 3, s: 32, d: 3 },
                vec![5805u64, 17, 1984],
            ),
            (ChallengeParams { c: 2, s: 16, d: 1 }, vec![58, 9]),
        ] {
            let found: Vec<u64> = (1..=params.c)
                .map(|i| {
                    let (salt, target) = pow::sub_challenge("vector-token", i, params);
                    Plan::new(salt.as_bytes(), &target)
                        .search(0, 1 << 20)
                        .unwrap()
                })
                .collect();
            assert_eq!(found, expected);
        }
    }

    #[test]
    fn agrees_with_the_reference_on_many_salts_targets_and_starts() {
        for seed in 0..24u32 {
            let params = ChallengeParams {
                c: 1,
                s: [8, 16, 32, 40, 64, 70][seed as usize % 6],
                d: 1 + seed % 3,
            };
            let (salt, target) = pow::sub_challenge(&format!("token-{seed}"), 1, params);
            let plan = Plan::new(salt.as_bytes(), &target);
            let start = u64::from(seed) * 997 + 95;
            let expected = (start..)
                .find(|&n| pow::is_solution(&salt, &target, n))
                .unwrap();
            assert_eq!(
                plan.search(start, 1 << 24),
                Some(expected),
                "salt {salt} target {target} start {start}"
            );
        }
        // Targets past the fast path fall back to the reference check.
        let plan = Plan::new(b"abc", "0000000000");
        assert!(plan.fast.is_none());
        assert_eq!(plan.search(0, 100), None);
    }
}
