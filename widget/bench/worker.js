// Benchmark worker: hashes per second of HumanProof's solver and of Cap's published wasm
// solver (@cap.js/wasm), in the same browser, one worker each.
import initOurs, { solve } from "/pkg/solver.js";
import initCap, { solve_pow } from "/cap/cap_wasm.js";

const SECONDS = 3;

self.onmessage = async ({ data }) => {
  await initOurs({ module_or_path: "/pkg/solver_bg.wasm" });
  await initCap({ module_or_path: "/cap/cap_wasm_bg.wasm" });
  const salt = (i) => `${data.seed}${i}`.padStart(32, "0").slice(-32);

  // Ours: a target that almost never matches, so every nonce given is hashed.
  let hashed = 0;
  let started = performance.now();
  while (performance.now() - started < SECONDS * 1000) {
    solve(salt(0), "ffffffff", hashed, 1 << 16);
    hashed += 1 << 16;
  }
  const ours = hashed / ((performance.now() - started) / 1000);

  // Cap: it returns the smallest solving nonce, so a solve of nonce n hashed n + 1 times.
  hashed = 0;
  started = performance.now();
  for (let i = 0; performance.now() - started < SECONDS * 1000; i++) {
    hashed += Number(solve_pow(salt(i), "0000")) + 1;
  }
  const cap = hashed / ((performance.now() - started) / 1000);
  self.postMessage({ ours, cap });
};
