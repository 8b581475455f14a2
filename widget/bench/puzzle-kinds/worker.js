// Times each kind of work in this worker: the wasm build of src/lib.rs, and RSW also with
// JavaScript's BigInt (what Cap's widget solves its format 2 with).
import init, { argon2id, rsw, rsw_issuer } from "/pkg/puzzle_kinds.js";

const median = (run) => {
  const ms = [];
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    run(i);
    ms.push(performance.now() - started);
  }
  return ms.sort((a, b) => a - b)[2];
};

self.onmessage = async ({ data: { jobs, key } }) => {
  await init({ module_or_path: "/pkg/puzzle_kinds_bg.wasm" });
  const n = BigInt(`0x${key.n}`);
  const run = {
    argon2id: ([m, t]) => median((i) => argon2id(m, t, i)),
    rsw: ([t]) => median(() => rsw(key.n, key.x, t)),
    "rsw-bigint": ([t]) =>
      median(() => {
        let y = BigInt(`0x${key.x}`);
        for (let i = 0; i < t; i++) y = (y * y) % n;
        return y;
      }),
    "rsw-issuer": () => median(() => rsw_issuer(key.p, key.q, key.x, key.ep, key.eq)),
  };
  self.postMessage(jobs.map(({ kind, args }) => run[kind](args)));
};
