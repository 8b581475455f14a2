// A Cap client for the Node tests: the widget's own implementation of Cap's challenge
// expansion (checked against the Rust vectors by the tests that use it), with a solver on
// Node's native SHA-256 so tests spend no time hashing in JavaScript.
import { createHash } from "node:crypto";
import { subChallenges } from "../../widget/src/pow.js";

export { prng, subChallenges } from "../../widget/src/pow.js";

/** Smallest nonce whose SHA-256(salt + nonce) hex starts with target. */
export function solveOne(salt, target) {
  for (let n = 0; ; n++) {
    if (createHash("sha256").update(salt + n).digest("hex").startsWith(target)) return n;
  }
}

export function solve(token, challenge) {
  return subChallenges(token, challenge).map(([salt, target]) => solveOne(salt, target));
}
