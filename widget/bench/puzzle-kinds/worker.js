// Times each kind of work in this worker: the wasm build of src/lib.rs, and RSW also with
// JavaScript's BigInt (what our widget and Cap's solve format 2 with).
import init, { argon2id, rsw, rsw_issuer } from "/pkg/puzzle_kinds.js";
import initEdge, { rsw_edge } from "/edge-pkg/puzzle_kinds.js";

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
  await initEdge({ module_or_path: "/edge-pkg/puzzle_kinds_bg.wasm" });
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
    // The first call of a size precomputes it outside the timing, as the edge keeps sizes.
    "rsw-edge": ([step, t]) => (rsw_edge("size", `${key.p}:${key.q}`, t, 0), median((i) => rsw_edge(step, `${key.p}:${key.q}`, t, i))),
  };
  self.postMessage(jobs.map(({ kind, args }) => run[kind](args)));
};
