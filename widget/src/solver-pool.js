// Runs a challenge's puzzles across Web Workers (one per hardware thread, capped), with the
// wasm module compiled once on the main thread and posted to each worker.
import { subChallenges } from "./pow.js";
import { isRswPuzzle } from "./rsw.js";
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
 * The jobs of a challenge response: Cap's first format (`challenge: {c, s, d}`, SHA-256
 * sub-challenges from the token), or format 2 (`challenges: [{protocol, payload}]`).
 */
function jobsOf(started) {
  if (started.format !== undefined) {
    const puzzles = started.format === 2 && Array.isArray(started.challenges) ? started.challenges : [];
    if (puzzles.length === 0 || !puzzles.every(isRswPuzzle)) {
      throw Object.assign(new Error("the edge sent a puzzle this widget cannot solve: update the widget"), { reason: "unsupported_challenge" });
    }
    return puzzles;
  }
  return subChallenges(started.token, started.challenge).map(([salt, target]) => ({ salt, target }));
}

/**
 * Solves the challenge in `started` (the edge's challenge response). Resolves to
 * `{ solutions, engine }`; reports progress as a fraction; rejects with an AbortError when
 * `signal` aborts, with reason `workers_unavailable` when the page lets no worker start,
 * and with `unsupported_challenge` for puzzles of a kind it does not know.
 *
 * There is no solving on the page's own thread: the environment check every start from the
 * widget gets runs in a worker too, so without workers the redeem would be refused anyway,
 * spending the challenge and counting as the visitor's failure.
 */
export async function solveChallenge({ started, wasmUrl, onProgress, signal, maxWorkers }) {
  const jobs = jobsOf(started);
  // RSW puzzles are BigInt work: no solver to fetch for them.
  const rsw = jobs[0].protocol === "rsw";
  const module = rsw ? null : await compileSolver(wasmUrl);
  let workers = [];
  try {
    const wanted = Math.min(maxWorkers ?? MAX_WORKERS, navigator.hardwareConcurrency || 2, jobs.length);
    for (let i = 0; i < Math.max(1, wanted); i++) workers.push(startWorker());
    const solved = await solveInWorkers(workers, jobs, module, onProgress, signal);
    return rsw ? { ...solved, engine: "bigint" } : solved;
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
    // Progress within the puzzles being solved: an RSW puzzle is one long job.
    const partial = new Map();
    const abort = () => reject(new DOMException("verification aborted", "AbortError"));
    if (signal?.aborted) return abort();
    signal?.addEventListener("abort", abort, { once: true });
    const feed = (worker) => {
      if (next < jobs.length) {
        const index = next++;
        worker.postMessage({ type: "solve", index, job: jobs[index] });
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
        } else if (data.type === "progress") {
          partial.set(data.index, data.fraction);
          let inFlight = 0;
          for (const fraction of partial.values()) inFlight += fraction;
          onProgress?.((done + inFlight) / jobs.length);
        } else if (data.type === "solved") {
          solutions[data.index] = data.solution;
          partial.delete(data.index);
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
