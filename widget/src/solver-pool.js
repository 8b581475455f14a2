// Runs a challenge's sub-challenges across Web Workers (one per hardware thread, capped),
// with the wasm module compiled once on the main thread and posted to each worker.
import { subChallenges } from "./pow.js";
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
 * fraction; rejects with an AbortError when `signal` aborts, and with reason
 * `workers_unavailable` when the page lets no worker start.
 *
 * There is no solving on the page's own thread: the environment check every start from the
 * widget gets runs in a worker too, so without workers the redeem would be refused anyway,
 * spending the challenge and counting as the visitor's failure.
 */
export async function solveChallenge({ token, challenge, wasmUrl, onProgress, signal, maxWorkers }) {
  const jobs = subChallenges(token, challenge);
  const module = await compileSolver(wasmUrl);
  let workers = [];
  try {
    const wanted = Math.min(maxWorkers ?? MAX_WORKERS, navigator.hardwareConcurrency || 2, jobs.length);
    for (let i = 0; i < Math.max(1, wanted); i++) workers.push(startWorker());
    return await solveInWorkers(workers, jobs, module, onProgress, signal);
  } catch (error) {
    // Some browsers throw from `new Worker` when the page's CSP forbids it; Chromium starts
    // the worker and fires `error` at it before it says it is ready.
    if (error.name === "AbortError" || error.reason) throw error;
    throw workersUnavailable();
  } finally {
    for (const worker of workers) worker.terminate();
  }
}

const workersUnavailable = () =>
  Object.assign(new Error("no solver worker could start: the page's Content-Security-Policy must allow worker-src blob:"), {
    reason: "workers_unavailable",
  });

function solveInWorkers(workers, jobs, module, onProgress, signal) {
  const solutions = new Array(jobs.length);
  return new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    let engine = "js";
    let started = false;
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
      worker.onerror = (event) => {
        event.preventDefault();
        if (!started) return reject(workersUnavailable());
        reject(Object.assign(new Error(event.message || "solver worker failed"), { reason: "solver_failed" }));
      };
      worker.onmessage = ({ data }) => {
        if (data.type === "ready") {
          started = true;
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
}
