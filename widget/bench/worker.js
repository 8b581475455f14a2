// Benchmark worker: hashes per second of HumanProof's wasm solver, of its JavaScript
// fallback (what runs where a page's CSP forbids WebAssembly) and of Cap's wasm solver (the
// build run.mjs serves under /cap/), in the same browser, one worker each. They take turns in
// short rounds and each reports its median round, so a burst of load from the rest of a shared
// machine lands on all of them rather than on whichever ran at the time.
import initOurs, { solve } from "/pkg/solver.js";
import initCap, { solve_pow } from "/cap/cap_wasm.js";
import { searchJs } from "/src/pow.js";

const ROUNDS = 7;
const ROUND_MS = 600;

const salt = (seed, i) => `${seed}${i}`.padStart(32, "0").slice(-32);

// Ours (`search` is the wasm solver or the fallback): a target that almost never matches,
// so every nonce given is hashed.
function oursRound(search, seed) {
  let hashed = 0;
  const started = performance.now();
  while (performance.now() - started < ROUND_MS) {
    search(salt(seed, 0), "ffffffff", hashed, 1 << 15);
    hashed += 1 << 15;
  }
  return hashed / ((performance.now() - started) / 1000);
}

// Cap: it returns the smallest solving nonce, so a solve of nonce n hashed n + 1 times.
function capRound(seed, round) {
  let hashed = 0;
  const started = performance.now();
  for (let i = 0; performance.now() - started < ROUND_MS; i++) {
    hashed += Number(solve_pow(salt(seed, `${round}-${i}`), "0000")) + 1;
  }
  return hashed / ((performance.now() - started) / 1000);
}

const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];

self.onmessage = async ({ data }) => {
  await initOurs({ module_or_path: "/pkg/solver_bg.wasm" });
  await initCap({ module_or_path: "/cap/cap_wasm_bg.wasm" });
  const ours = [];
  const fallback = [];
  const cap = [];
  for (let round = 0; round < ROUNDS; round++) {
    ours.push(oursRound(solve, data.seed));
    fallback.push(oursRound(searchJs, data.seed));
    cap.push(capRound(data.seed, round));
  }
  self.postMessage({ ours: median(ours), fallback: median(fallback), cap: median(cap) });
};
