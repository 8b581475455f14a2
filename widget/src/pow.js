// Proof-of-work in plain JavaScript: Cap's seeded generator, which turns a challenge token
// into sub-challenges, and the SHA-256 solver for browsers without WebAssembly (a CSP without
// 'wasm-unsafe-eval', or a wasm module that fails to compile).
import { firstWord } from "./first-word.js";
import { K } from "./sha256-constants.js";

const INITIAL = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

/** Expands a block's 16 message words (`w[0..16)`) to the 64 the rounds take. */
function expand(w) {
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15];
    const y = w[t - 2];
    w[t] = (rotr(y, 17) ^ rotr(y, 19) ^ (y >>> 10)) + w[t - 7] + (rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)) + w[t - 16];
  }
}

/** Runs rounds `from` to `to` - 1 over the expanded words `w` on the working variables `v`. */
function rounds(v, w, from, to) {
  let [a, b, c, d, e, f, g, h] = v;
  for (let t = from; t < to; t++) {
    const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + (g ^ (e & (f ^ g))) + K[t] + w[t]) | 0;
    const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) | (c & (a | b)))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  v.set([a, b, c, d, e, f, g, h]);
}

/** Adds the block whose 16 words start `w` (64 long; expanded in place) into `state`. */
function compress(state, w) {
  expand(w);
  const v = state.slice();
  rounds(v, w, 0, 64);
  for (let i = 0; i < 8; i++) state[i] = (state[i] + v[i]) | 0;
}

/** Reads `words[from..16)` big endian from the 64 bytes of `bytes` that start at `offset`. */
function readWords(bytes, offset, words, from) {
  for (let j = from; j < 16; j++) {
    const i = offset + 4 * j;
    words[j] = (bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3];
  }
}

/** Writes a message length in bits, big endian, into the last 8 bytes of `block`. */
function writeLength(block, bytes) {
  const bits = bytes * 8;
  const view = new DataView(block.buffer, block.byteOffset + block.length - 8, 8);
  view.setUint32(0, Math.floor(bits / 0x1_0000_0000));
  view.setUint32(4, bits >>> 0);
}

/** SHA-256 of a string's UTF-8 bytes, as lowercase hex: the reference the search is checked
 *  against, and what it falls back to where its fast path does not apply. */
export function sha256Hex(text) {
  const bytes = new TextEncoder().encode(text);
  const padded = new Uint8Array((((bytes.length + 8) >> 6) + 1) * 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  writeLength(padded, bytes.length);
  const state = INITIAL.slice();
  const w = new Int32Array(64);
  for (let offset = 0; offset < padded.length; offset += 64) {
    readWords(padded, offset, w, 0);
    compress(state, w);
  }
  return Array.from(state, (x) => (x >>> 0).toString(16).padStart(8, "0")).join("");
}

/** Cap's seeded generator (FNV-1a seed, xorshift32). */
export function prng(seed, length) {
  let hash = 2166136261;
  for (let i = 0; i < seed.length; i++) {
    hash ^= seed.charCodeAt(i);
    hash += (hash << 1) + (hash << 4) + (hash << 7) + (hash << 8) + (hash << 24);
  }
  let state = hash >>> 0;
  let out = "";
  while (out.length < length) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out += (state >>> 0).toString(16).padStart(8, "0");
  }
  return out.substring(0, length);
}

/** The (salt, target) of each sub-challenge, i = 1..c. */
export function subChallenges(token, { c, s, d }) {
  return Array.from({ length: c }, (_, k) => [prng(`${token}${k + 1}`, s), prng(`${token}${k + 1}d`, d)]);
}

/** Digits of the longest nonce the fast search writes (Number.MAX_SAFE_INTEGER's). */
const MAX_DIGITS = 16;

/**
 * What searching one sub-challenge needs that no nonce changes: the state after the salt's
 * whole blocks, the final block with the rest of the salt in place (bytes and words), the
 * working variables after the rounds over its salt-only words, and the target as a mask on
 * the first digest word. Null where only the reference check applies: a target past 8
 * lowercase hex digits, a salt that is not ASCII, or one that leaves its final block no room
 * for a nonce.
 */
function planFor(salt, target) {
  if (target.length > 8 || !/^[0-9a-f]*$/.test(target) || !/^[\x00-\x7f]*$/.test(salt)) return null;
  const prefix = salt.length - (salt.length % 64);
  const tail = salt.length - prefix;
  if (tail + MAX_DIGITS + 9 > 64) return null;
  const bytes = new Uint8Array(prefix + 64);
  for (let i = 0; i < salt.length; i++) bytes[i] = salt.charCodeAt(i);
  const state = INITIAL.slice();
  const w = new Int32Array(64);
  for (let offset = 0; offset < prefix; offset += 64) {
    readWords(bytes, offset, w, 0);
    compress(state, w);
  }
  const block = bytes.subarray(prefix);
  const words = new Int32Array(16);
  readWords(block, 0, words, 0);
  const from = tail >> 2;
  const pre = state.slice();
  rounds(pre, words, 0, from);
  const bits = 4 * target.length;
  return {
    prefix,
    tail,
    block,
    words,
    from,
    pre,
    h0: state[0],
    mask: bits ? -1 << (32 - bits) : 0,
    value: bits ? parseInt(target, 16) << (32 - bits) : 0,
  };
}

/** Writes `nonce`'s digits, the padding and the message's length into the plan's final
 *  block and its words; returns the index of the last digit. */
function place(plan, nonce) {
  const { block, tail } = plan;
  const digits = String(nonce);
  block.fill(0, tail);
  for (let i = 0; i < digits.length; i++) block[tail + i] = digits.charCodeAt(i);
  const end = tail + digits.length;
  block[end] = 0x80;
  writeLength(block, plan.prefix + end);
  readWords(block, 0, plan.words, plan.from);
  return end - 1;
}

// The last sub-challenge's plan: the worker asks for chunk after chunk of the same one.
let planned = { salt: null, target: null, plan: null };

/** The first nonce at or after `start`, among `count`, solving (salt, target); -1 if none. */
export function searchJs(salt, target, start, count) {
  if (planned.salt !== salt || planned.target !== target) {
    planned = { salt, target, plan: planFor(salt, target) };
  }
  const { plan } = planned;
  const end = start + count;
  if (plan === null || !Number.isSafeInteger(start) || !Number.isSafeInteger(end)) {
    for (let nonce = start; nonce < end; nonce++) {
      if (sha256Hex(salt + nonce).startsWith(target)) return nonce;
    }
    return -1;
  }
  const { block, words, pre, h0, from, mask, value } = plan;
  let last = place(plan, start);
  for (let nonce = start; nonce < end; nonce++) {
    if ((firstWord(pre, h0, words, from) & mask) === value) return nonce;
    if (block[last] < 0x39) {
      // No carry: only the last digit's byte and the word holding it go up by one.
      block[last]++;
      words[last >> 2] += 1 << (24 - 8 * (last & 3));
    } else {
      last = place(plan, nonce + 1);
    }
  }
  return -1;
}

/** Runs `search` over chunk after chunk of nonces until one solves (salt, target). */
export function findNonce(search, salt, target, chunk) {
  for (let start = 0; ; start += chunk) {
    const nonce = search(salt, target, start, chunk);
    if (nonce >= 0) return nonce;
  }
}
