//! SHA-256 pieces: the scalar compression (midstates, checks, the slow path) and the lane
//! kernel, which starts from rounds already run over the constant salt words.

use crate::lanes::U32x4;

pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

pub(crate) const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Big-endian words of a 64-byte block.
pub(crate) fn words(block: &[u8; 64]) -> [u32; 16] {
    core::array::from_fn(|i| {
        u32::from_be_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ])
    })
}

/// Runs rounds `from..to` of one compression on working variables `v` (a..h).
pub(crate) fn rounds(v: &mut [u32; 8], w: &[u32; 64], from: usize, to: usize) {
    for t in from..to {
        let [a, b, c, d, e, f, g, h] = *v;
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = g ^ (e & (f ^ g));
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[t])
            .wrapping_add(w[t]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) | (c & (a | b));
        *v = [
            t1.wrapping_add(s0).wrapping_add(maj),
            a,
            b,
            c,
            d.wrapping_add(t1),
            e,
            f,
            g,
        ];
    }
}

/// The 64-word message schedule of a block.
pub(crate) fn schedule(block: &[u32; 16]) -> [u32; 64] {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for t in 16..64 {
        let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
        let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16]
            .wrapping_add(s0)
            .wrapping_add(w[t - 7])
            .wrapping_add(s1);
    }
    w
}

/// One full compression.
pub(crate) fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut v = *state;
    rounds(&mut v, &schedule(&words(block)), 0, 64);
    for (s, x) in state.iter_mut().zip(v) {
        *s = s.wrapping_add(x);
    }
}

/// SHA-256 of `message`.
pub fn digest(message: &[u8]) -> [u8; 32] {
    let mut state = INITIAL;
    let mut chunks = message.chunks_exact(64);
    for chunk in &mut chunks {
        compress(&mut state, chunk.try_into().expect("64-byte chunk"));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let blocks = if rest.len() + 9 > 64 { 2 } else { 1 };
    tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&(message.len() as u64 * 8).to_be_bytes());
    for block in tail[..blocks * 64].chunks_exact(64) {
        compress(&mut state, block.try_into().expect("64-byte block"));
    }
    let mut out = [0u8; 32];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// The first digest word of `lanes` final blocks at once, starting from the working
/// variables `pre` after rounds `0..first` (whose words are the same in every lane).
#[inline(always)]
pub(crate) fn first_word_x4(
    midstate0: u32,
    pre: &[u32; 8],
    first: usize,
    w: &mut [U32x4; 64],
) -> U32x4 {
    for t in 16..64 {
        let x = w[t - 15];
        let s0 = x.rotr(7).xor(x.rotr(18)).xor(x.shr(3));
        let y = w[t - 2];
        let s1 = y.rotr(17).xor(y.rotr(19)).xor(y.shr(10));
        w[t] = w[t - 16].add(s0).add(w[t - 7]).add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = pre.map(U32x4::splat);
    for t in first..64 {
        let s1 = e.rotr(6).xor(e.rotr(11)).xor(e.rotr(25));
        let ch = g.xor(e.and(f.xor(g)));
        let t1 = h.add(s1).add(ch).add(U32x4::splat(K[t])).add(w[t]);
        let s0 = a.rotr(2).xor(a.rotr(13)).xor(a.rotr(22));
        let maj = a.and(b).or(c.and(a.or(b)));
        h = g;
        g = f;
        f = e;
        e = d.add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.add(s0).add(maj);
    }
    a.add(U32x4::splat(midstate0))
}
