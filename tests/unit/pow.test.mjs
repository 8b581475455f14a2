// The widget's JavaScript proof of work against the vectors pinned in protocol/src/pow.rs:
// the Rust edge and the JavaScript widget must expand and check challenges identically.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { generate } from "../../widget/gen-first-word.mjs";
import { prng, searchJs, sha256Hex, subChallenges } from "../../widget/src/pow.js";

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

/** The first solving nonce by node's SHA-256, one nonce at a time. */
function reference(salt, target, start, count) {
  for (let nonce = start; nonce < start + count; nonce++) {
    if (sha256(salt + nonce).startsWith(target)) return nonce;
  }
  return -1;
}

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

test("the fallback SHA-256 matches node's for every length around the block edges and for UTF-8", () => {
  for (let length = 0; length <= 200; length++) {
    const text = Array.from({ length }, (_, i) => String.fromCharCode(33 + ((i * 7) % 90))).join("");
    assert.equal(sha256Hex(text), sha256(text), `length ${length}`);
  }
  assert.equal(sha256Hex("ünïcødé€"), sha256("ünïcødé€"));
});

test("the fast search finds the nonce node's SHA-256 finds, whatever the salt, target and start", () => {
  const cases = [];
  for (const saltLength of [0, 1, 7, 8, 16, 31, 32, 33, 39, 40, 63, 64, 65, 96, 100, 103, 104, 130]) {
    for (const targetLength of [0, 1, 2, 3]) {
      const salt = prng(`salt-${saltLength}-${targetLength}`, saltLength);
      const target = prng(`target-${saltLength}-${targetLength}`, targetLength);
      cases.push([salt, target]);
    }
  }
  // Starts that cross a change in the number of digits, and nonces near 2^53.
  const starts = [0, 5, 95, 990, 99_990, 9_999_999_990, 2 ** 53 - 5000];
  for (const [index, [salt, target]] of cases.entries()) {
    const start = starts[index % starts.length];
    const count = 6000;
    assert.equal(searchJs(salt, target, start, count), reference(salt, target, start, count), `${salt} ${target} ${start}`);
  }
});

test("the search asks for every nonce of its range, one chunk after another, and no more", () => {
  const salt = prng("chunks", 32);
  const target = "abc";
  const first = reference(salt, target, 0, 1e5);
  assert.ok(first > 0);
  for (const chunk of [1, 7, 10, 1000]) {
    let found = -1;
    for (let start = 0; found < 0; start += chunk) found = searchJs(salt, target, start, chunk);
    assert.equal(found, first, `chunk ${chunk}`);
  }
  assert.equal(searchJs(salt, target, 0, first), -1);
  assert.equal(searchJs(salt, target, first, 1), first);
  assert.equal(searchJs(salt, target, first + 1, 0), -1);
});

test("targets the fast path cannot take still get the reference check", () => {
  // Longer than one digest word, upper case, not hex, and a salt that is not ASCII.
  for (const [salt, target] of [
    ["0123456789abcdef", "000000000"],
    ["0123456789abcdef", "A"],
    ["0123456789abcdef", "g"],
    ["sälz", "a"],
  ]) {
    assert.equal(searchJs(salt, target, 0, 300), reference(salt, target, 0, 300), `${salt} ${target}`);
  }
  assert.equal(searchJs("sälz", "", 7, 3), 7);
});

test("the unrolled rounds are what widget/gen-first-word.mjs writes", () => {
  const committed = readFileSync(new URL("../../widget/src/first-word.js", import.meta.url), "utf8");
  assert.equal(committed, generate(), "run: node widget/gen-first-word.mjs");
});
