// The widget's JavaScript proof of work against the vectors pinned in protocol/src/pow.rs:
// the Rust edge and the JavaScript widget must expand and check challenges identically.
import { test } from "node:test";
import assert from "node:assert/strict";
import { prng, searchJs, sha256Hex, subChallenges } from "../../widget/src/pow.js";

test("prng matches the protocol's vectors", () => {
  const vectors = [
    ["seed", 32, "1dd9a7c40d0759d42188f38ac0cc22b6"],
    ["hello world", 16, "fd8f5598f0b79ec6"],
    ["token1", 5, "85395"],
    ["token1d", 4, "4bb7"],
    ["ünïcødé€", 12, "f4f9a7a1c1b1"],
    ["", 8, "4622a677"],
    ["x".repeat(40) + "7", 3, "b9f"],
    ["a", 8, "441aaeb8"],
  ];
  for (const [seed, length, expected] of vectors) assert.equal(prng(seed, length), expected, seed);
});

test("sub-challenges and smallest nonces match the protocol's vectors", () => {
  const jobs = subChallenges("vector-token", { c: 3, s: 32, d: 3 });
  assert.deepEqual(jobs, [
    ["ce531f461acabafbff2a7a11bd684685", "e2b"],
    ["450d181327ee6994b14f03ba76350fe6", "32d"],
    ["7e93b1291e643b32b944c1d30ea89cec", "7ef"],
  ]);
  assert.deepEqual(jobs.map(([salt, target]) => searchJs(salt, target, 0, 1e6)), [5805, 17, 1984]);
  assert.equal(searchJs("ce531f461acabafbff2a7a11bd684685", "e2b", 5806, 37), -1);
  assert.equal(searchJs("ce531f461acabafbff2a7a11bd684685", "e2b", 5806, 38), 5843);
});

test("the fallback SHA-256 matches known digests", () => {
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(sha256Hex("a".repeat(55)), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  assert.equal(sha256Hex("a".repeat(56)), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
});
