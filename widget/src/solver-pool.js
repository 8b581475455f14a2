// Runs a challenge's sub-challenges across Web Workers (one per hardware thread, capped),
// with the wasm module compiled once on the main thread and posted to each worker.
import { findNonce, searchJs, subChallenges } from "./pow.js";
import WORKER_SOURCE from "worker-source";

const MAX_WORKERS = 8;
let workerUrl;
const modules = new Map();

/** The compiled solver, or null where WebAssembly is unavailable or forbidden (CSP). */
function compileSolver(wasmUrl) {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.compile !== "function") return Promise.resolve(null);
  if (!modules.has(wasmUrl)) {
    const compiled = fetch(wasmUrl, { mode: "cors", credentials: "omit" })
      .then((response) => {
        if (!response.ok) throw new Error(`solver: HTTP ${response.status}`);
        return response.arrayBuffer();
      })
      .then((bytes) => WebAssembly.compile(bytes))
      .catch(() => null);
    modules.set(wasmUrl, compiled);
  }
  return modules.get(wasmUrl);
}

function startWorker() {
  workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  return new Worker(workerUrl);
}

/**
 * Solves `challenge` for `token`. Resolves to `{ solutions, engine }`; reports progress as a
 * fraction; rejects with an AbortError when `signal` aborts.
 */
export async function solveChallenge({ token, challenge, wasmUrl, onProgress, signal, maxWorkers }) {
  const jobs = subChallenges(token, challenge);
  const module = await compileSolver(wasmUrl);
  const solutions = new Array(jobs.length);
  let workers;
  try {
    const wanted = Math.min(maxWorkers ?? MAX_WORKERS, navigator.hardwareConcurrency || 2, jobs.length);
    workers = Array.from({ length: Math.max(1, wanted) }, startWorker);
  } catch {
    // Workers forbidden (e.g. a CSP without worker-src blob:): solve here, in slices.
    return { solutions: await solveOnMainThread(jobs, onProgress, signal), engine: "js-main-thread" };
  }
  try {
    return await new Promise((resolve, reject) => {
      let next = 0;
      let done = 0;
      let engine = "js";
      const abort = () => reject(new DOMException("verification aborted", "AbortError"));
      if (signal?.aborted) return abort();
      signal?.addEventListener("abort", abort, { once: true });
      const feed = (worker) => {
        if (next < jobs.length) {
          const index = next++;
          worker.postMessage({ type: "solve", index, salt: jobs[index][0], target: jobs[index][1] });
        }
      };
      for (const worker of workers) {
        worker.onerror = (event) => reject(new Error(event.message || "solver worker failed"));
        worker.onmessage = ({ data }) => {
          if (data.type === "ready") {
            engine = data.engine;
            feed(worker);
          } else if (data.type === "solved") {
            solutions[data.index] = data.nonce;
            done++;
            onProgress?.(done / jobs.length);
            if (done === jobs.length) resolve({ solutions, engine });
            else feed(worker);
          }
        };
        worker.postMessage({ type: "init", module });
      }
    });
  } finally {
    for (const worker of workers) worker.terminate();
  }
}

async function solveOnMainThread(jobs, onProgress, signal) {
  const solutions = [];
  for (const [salt, target] of jobs) {
    // Small chunks, yielding between them, keep the page responsive and abortable.
    const nonce = await findNonce(searchJs, salt, target, 5000, async () => {
      if (signal?.aborted) throw new DOMException("verification aborted", "AbortError");
      await new Promise((resolve) => setTimeout(resolve));
    });
    solutions.push(nonce);
    onProgress?.(solutions.length / jobs.length);
  }
  return solutions;
}
