// The solver worker: solves one puzzle at a time. A SHA-256 sub-challenge goes to the wasm
// SIMD solver when the page could compile it, else to the JavaScript fallback; an RSW puzzle
// to BigInt squaring, reporting progress as it goes. Bundled into widget.js as a string and
// started from a blob: URL, so it runs whatever origin serves the widget.
import { initSync, solve as solveWasm } from "../pkg/solver.js";
import { findNonce, searchJs } from "./pow.js";
import { solveRsw } from "./rsw.js";

// Nonces per call to the solver, which searches a range at a time.
const CHUNK = 1 << 16;
let search = searchJs;

self.onmessage = ({ data }) => {
  if (data.type === "init") {
    if (data.module) {
      try {
        initSync({ module: data.module });
        search = solveWasm;
      } catch {
        search = searchJs;
      }
    }
    self.postMessage({ type: "ready", engine: search === searchJs ? "js" : "wasm" });
  } else if (data.type === "solve") {
    const { index, job } = data;
    const solution =
      job.protocol === "rsw"
        ? { y: solveRsw(job.payload, (done) => self.postMessage({ type: "progress", index, fraction: done / job.payload.t })) }
        : findNonce(search, job.salt, job.target, CHUNK);
    self.postMessage({ type: "solved", index, solution });
  }
};
