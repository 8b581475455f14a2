// The solver worker: solves one sub-challenge at a time with the wasm SIMD solver when the
// page could compile it, else with the JavaScript fallback. Bundled into widget.js as a
// string and started from a blob: URL, so it runs whatever origin serves the widget.
import { initSync, solve as solveWasm } from "../pkg/solver.js";
import { findNonce, searchJs } from "./pow.js";

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
    const { index, salt, target } = data;
    const nonce = findNonce(search, salt, target, CHUNK);
    self.postMessage({ type: "solved", index, nonce });
  }
};
