// Cap's challenge algorithm in plain JavaScript: an independent implementation the Rust
// protocol crate is checked against, and the solver the workerd tests use as a Cap client.
import { createHash } from "node:crypto";

export function prng(seed, length) {
  let hash = 2166136261;
  for (let i = 0; i < seed.length; i++) {
    hash ^= seed.charCodeAt(i);
    hash += (hash << 1) + (hash << 4) + (hash << 7) + (hash << 8) + (hash << 24);
  }
  let state = hash >>> 0;
  let result = "";
  while (result.length < length) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    result += (state >>> 0).toString(16).padStart(8, "0");
  }
  return result.substring(0, length);
}

/** The (salt, target) pairs of a challenge, i = 1..=c. */
export function subChallenges(token, { c, s, d }) {
  const out = [];
  for (let i = 1; i <= c; i++) {
    out.push([prng(`${token}${i}`, s), prng(`${token}${i}d`, d)]);
  }
  return out;
}

/** Smallest nonce whose SHA-256(salt + nonce) hex starts with target. */
export function solveOne(salt, target) {
  for (let n = 0; ; n++) {
    const hex = createHash("sha256").update(salt + n).digest("hex");
    if (hex.startsWith(target)) return n;
  }
}

export function solve(token, challenge) {
  return subChallenges(token, challenge).map(([salt, target]) => solveOne(salt, target));
}
