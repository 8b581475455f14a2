// `./dev bench edge`: the built wasm edge worker in workerd (Miniflare, the bindings of
// wrangler.toml), timed from Node per request, warm isolate:
// - challenge starts on Balanced (d=4, c=80 before risk scaling; the c each start actually
//   got is printed), from a browser's headers and a widget's signals, each from its own
//   address so no rate limit is reached;
// - redeems of the same number of sub-challenges as those starts (Custom with Balanced's c,
//   risk-scaled the same way, solved at d=1 here: the edge checks one hash per sub-challenge
//   whatever the difficulty, which only changes the solver's work);
// - `GET /{siteKey}/settings`, a KV read and nothing else: the floor that Miniflare's hop
//   between Node and workerd puts under every figure;
// then the CPU each kind costs: workerd's own (all its threads, from /proc, which includes
// Miniflare's KV, Durable Object and queue stand-ins and its routing worker, all on workerd's
// one thread), and the part V8's sampling profiler finds running the Worker's own wasm;
// then the wasm bundle's size gzipped, and the cold start (a new workerd until its first
// answer), three times. Medians with min and max, and p99; figures only.
import { readFileSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { cpus, totalmem } from "node:os";
import { solve } from "../support/cap.mjs";
import { ControlPlane, ROOT } from "../support/control-plane.mjs";
import { newEdge, seedSnapshot } from "../support/edge.mjs";
import { answerEnvironmentCheck } from "../support/environment-check.mjs";
import { median, percentile } from "../support/stats.mjs";
import WebSocket from "ws";

const MASTER_SECRET = "edge-bench-master-secret-0123456789abcdef";
const ORIGIN = "http://localhost:3000";
const REQUESTS = Number(process.env.BENCH_EDGE_REQUESTS ?? 300);
const COLD_STARTS = 3;
const INSPECTOR_PORT = 9329;
const HUMAN_START = JSON.stringify({
  widget: { variant: "checkbox", trigger: "click" },
  signals: { elapsed_ms: 9000, focus_count: 3, blur_count: 2, key_count: 41, pointer_moves: 88, pointer_downs: 2, interactions: 46, visibility: "visible", was_hidden: false },
  form: { page_path: "/signup", method: "post", action_path: "/signup", email: "ada@example.com" },
});
const browser = (i) => ({
  "cf-connecting-ip": `198.51.${(i >> 8) & 255}.${i & 255}`,
  "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
  "accept-language": "en-GB,en;q=0.9",
  "sec-fetch-site": "cross-site",
  "sec-fetch-mode": "cors",
  "sec-fetch-dest": "empty",
  origin: ORIGIN,
  "content-type": "application/json",
});

const control = new ControlPlane(MASTER_SECRET);
const balanced = control.createProject("balanced", "--testing-domain", "localhost");
const redeems = control.createProject("redeems", "--preset", "custom", "--difficulty", "1", "--challenge-count", "80", "--rate-limit", "1000", "--testing-domain", "localhost");
const controlUrl = await control.start();

const edge = (inspectorPort) => newEdge({ controlPlaneUrl: controlUrl, masterSecret: MASTER_SECRET, inspectorPort });

/** Wall time of one request (ms) and its parsed answer. */
async function timed(mf, path, init) {
  const started = performance.now();
  const response = await mf.dispatchFetch(`http://edge.test${path}`, init);
  const text = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`${path}: ${response.status} ${text}`);
  return { ms, json: JSON.parse(text) };
}

const row = (name, values, note = "") =>
  console.log(`| ${name} | ${median(values).toFixed(2)} (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}) | ${percentile(values, 99).toFixed(2)} | ${values.length} | ${note} |`);

/** The process id of the workerd this process started (Miniflare runs it as a child). */
function childWorkerd() {
  const parentOf = (pid) => {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  };
  return readdirSync("/proc").find((pid) => /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("workerd") && parentOf(pid) === process.pid);
}

/** CPU time (ms) workerd `pid` has used so far, all threads. */
const cpuMs = (pid) =>
  readdirSync(`/proc/${pid}/task`).reduce((sum, thread) => sum + Number(readFileSync(`/proc/${pid}/task/${thread}/schedstat`, "utf8").split(" ")[0]) / 1e6, 0);

/** Milliseconds a request that `requests` sent, one at a time, spent running the Worker's own
 *  wasm: V8's sampling profiler on the Worker's isolate (Miniflare names it `core:user:`),
 *  counting the samples that were executing inside the wasm module. Everything else on
 *  workerd's thread (its JavaScript glue, the runtime's calls, Miniflare's stand-ins and
 *  routing) is left out, since the profiler charges the isolate's last stack for time the
 *  thread spends elsewhere. */
async function wasmCpuPerRequest(requests) {
  const inspector = new WebSocket(`ws://127.0.0.1:${INSPECTOR_PORT}/core:user:`);
  await new Promise((resolve, reject) => inspector.once("open", resolve).once("error", reject));
  let lastId = 0;
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      const id = ++lastId;
      const answer = (message) => {
        const parsed = JSON.parse(message);
        if (parsed.id !== id) return;
        inspector.off("message", answer);
        resolve(parsed.result);
      };
      inspector.on("message", answer);
      inspector.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 100 });
  await call("Profiler.start");
  for (const request of requests) await request();
  const { profile } = await call("Profiler.stop");
  inspector.close();
  const inWasm = new Set(profile.nodes.filter((node) => node.callFrame.url.includes(".wasm")).map((node) => node.id));
  const microseconds = profile.samples.reduce((sum, node, i) => sum + (inWasm.has(node) ? profile.timeDeltas[i] : 0), 0);
  return microseconds / 1000 / requests.length;
}

const mf = edge(INSPECTOR_PORT);
await mf.ready;
const workerd = childWorkerd();
await seedSnapshot(mf, control);
// Warm up the isolate and its Durable Objects.
for (let i = 0; i < 20; i++) {
  await timed(mf, `/${balanced.site_key}/challenge`, { method: "POST", headers: browser(60000 + i), body: HUMAN_START });
}

/** Each kind's wall times, and workerd's CPU per request while they ran. */
const cpu = {};
async function timedLoop(kind, count, request) {
  const times = [];
  const before = cpuMs(workerd);
  for (let i = 0; i < count; i++) times.push(await request(i));
  cpu[kind] = (cpuMs(workerd) - before) / count;
  return times;
}

const settings = await timedLoop("settings", REQUESTS, async () => (await timed(mf, `/${balanced.site_key}/settings`, { method: "GET" })).ms);
const counts = new Map();
const starts = await timedLoop("start", REQUESTS, async (i) => {
  const started = await timed(mf, `/${balanced.site_key}/challenge`, { method: "POST", headers: browser(i), body: HUMAN_START });
  const { c, d } = started.json.challenge;
  counts.set(`c=${c} d=${d}`, (counts.get(`c=${c} d=${d}`) ?? 0) + 1);
  return started.ms;
});

/** `count` solved challenges of the redeems' project, from addresses numbered from `first`. */
async function solvedChallenges(first, count) {
  const solved = [];
  for (let i = first; i < first + count; i++) {
    const started = await timed(mf, `/${redeems.site_key}/challenge`, { method: "POST", headers: browser(i), body: HUMAN_START });
    const { challenge, token, instrumentation } = started.json;
    solved.push({
      headers: browser(i),
      body: JSON.stringify({ token, solutions: solve(token, challenge), instrumentation: instrumentation && answerEnvironmentCheck(instrumentation.script) }),
      c: challenge.c,
    });
  }
  return solved;
}
const redeem = async ({ headers, body }) => {
  const redeemed = await timed(mf, `/${redeems.site_key}/redeem`, { method: "POST", headers, body });
  if (!redeemed.json.success) throw new Error(JSON.stringify(redeemed.json));
  return redeemed.ms;
};

// Starts and solutions first, so the timed loop holds redeems only.
const ready = await solvedChallenges(30000, REQUESTS);
const redeemTimes = await timedLoop("redeem", REQUESTS, (i) => redeem(ready[i]));

// The profiler slows what it samples, so it gets requests of its own, after the timed ones.
const profiled = Math.min(REQUESTS, 100);
const wasmCpu = {
  settings: await wasmCpuPerRequest(Array.from({ length: profiled }, () => () => timed(mf, `/${balanced.site_key}/settings`, { method: "GET" }))),
  start: await wasmCpuPerRequest(Array.from({ length: profiled }, (_, i) => () => timed(mf, `/${balanced.site_key}/challenge`, { method: "POST", headers: browser(20000 + i), body: HUMAN_START }))),
  redeem: await wasmCpuPerRequest((await solvedChallenges(40000, profiled)).map((solved) => () => redeem(solved))),
};
await mf.dispose();

const cold = [];
for (let i = 0; i < COLD_STARTS; i++) {
  const started = performance.now();
  const fresh = edge();
  await fresh.ready;
  const response = await fresh.dispatchFetch(`http://edge.test/${balanced.site_key}/settings`);
  await response.text();
  cold.push(performance.now() - started);
  await fresh.dispose();
}
await control.stop();

const wasm = readFileSync(join(ROOT, "edge-worker/build/index_bg.wasm"));
const redeemCounts = [...new Set(ready.map((r) => r.c))].join(", ");
console.log(`the edge in workerd (Miniflare): ${cpus().length} × ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${REQUESTS} requests each, one at a time`);
console.log("\n| request | median ms (min–max) | p99 ms | n | workerd CPU ms/request | in the Worker's wasm, ms/request | work |\n| --- | --- | --- | --- | --- | --- | --- |");
const cpuColumns = (kind) => `${cpu[kind].toFixed(2)} | ${wasmCpu[kind].toFixed(3)} (${profiled} profiled)`;
row("GET settings (KV read only: the Node↔workerd floor)", settings, cpuColumns("settings"));
row("POST challenge, Balanced", starts, `${cpuColumns("start")} | ${[...counts].map(([work, n]) => `${work} ×${n}`).join(", ")}`);
row("POST redeem, Balanced's sub-challenges", redeemTimes, `${cpuColumns("redeem")} | c=${redeemCounts} (d=1)`);
row("cold start: new workerd to first answer", cold, " | |");
console.log(`\nwasm bundle: ${(wasm.length / 1024).toFixed(0)} KiB, ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB gzipped`);
