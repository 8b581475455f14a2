// Solver benchmark in headless Chromium: hashes per second per worker (HumanProof's wasm
// SIMD solver next to Cap's wasm solver and HumanProof's JavaScript fallback, 1 and N
// workers at once), and the median time for the widget to start, solve and redeem a
// Balanced challenge against `humanproof dev`, as is and with Chromium's CPU throttling at
// 4× and 6×, with the work each run was given and the longest wait between progress updates;
// and the same for an RSW project (the second puzzle kind), with Cap's widget solving its
// challenges too. Prints figures; asserts nothing. Run: ./dev bench
//
// Cap's solver is the newest `@cap.js/wasm` on the npm registry unless CAP_WASM_DIR names a
// folder with another build of it (`cap_wasm.js` and `cap_wasm_bg.wasm` from wasm-pack's or
// wasm-bindgen's `--target web`), such as one built from Cap's repository.
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { BINARY, ROOT, spawnUntil, stopProcess } from "../../tests/support/control-plane.mjs";
import { launchChromium } from "../../tests/support/browser.mjs";
import Cap from "@cap.js/server";

const RUNS = 9;
const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const FILES = {
  "/pkg/": join(ROOT, "widget/pkg/"),
  "/cap/": process.env.CAP_WASM_DIR ? `${process.env.CAP_WASM_DIR}/` : join(ROOT, "node_modules/@cap.js/wasm/browser/"),
  "/bench/": join(ROOT, "widget/bench/"),
  "/src/": join(ROOT, "widget/src/"),
  "/capwidget/": join(ROOT, "node_modules/@cap.js/widget/"),
};

// Cap's side of the end-to-end comparison: `@cap.js/server` in this process, in memory,
// asking what our equal-work project is given (d=4, c=80).
const cap = new Cap({ noFSState: true });
const CAP_WORK = { c: 80, d: 4 };
const CAP_API = {
  "/capapi/challenge": () => cap.createChallenge({ challengeCount: CAP_WORK.c, challengeDifficulty: CAP_WORK.d, challengeSize: 32 }),
  "/capapi/redeem": (body) => cap.redeemChallenge(JSON.parse(body)),
};

let solvePage = "";
const server = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/") return res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>bench</title>");
  if (path === "/solve") return res.writeHead(200, { "content-type": "text/html" }).end(solvePage);
  if (CAP_API[path]) {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      const answer = await CAP_API[path](Buffer.concat(chunks).toString());
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    });
    return;
  }
  const prefix = Object.keys(FILES).find((p) => path.startsWith(p));
  try {
    const body = readFileSync(join(FILES[prefix], path.slice(prefix.length)));
    res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://localhost:${server.address().port}`;

const browser = await launchChromium();
const page = await browser.newPage();
await page.goto(origin);
const threads = await page.evaluate(() => navigator.hardwareConcurrency);
const mhs = (x) => `${(x / 1e6).toFixed(2)} MH/s`;
const capName = process.env.CAP_WASM_DIR ? `Cap (${process.env.CAP_WASM_DIR})` : "Cap (@cap.js/wasm)";
for (const workers of [...new Set([1, threads])]) {
  const rates = await page.evaluate(
    (count) =>
      Promise.all(
        Array.from({ length: count }, (_, i) => {
          const worker = new Worker("/bench/worker.js", { type: "module" });
          return new Promise((resolve) => {
            worker.onmessage = ({ data }) => resolve(data);
            worker.postMessage({ seed: `bench${i}` });
          });
        }),
      ),
    workers,
  );
  const avg = (key) => rates.reduce((sum, r) => sum + r[key], 0) / rates.length;
  console.log(
    `Chromium, ${workers} worker(s) at once: HumanProof ${mhs(avg("ours"))} per worker, ${capName} ${mhs(avg("cap"))} per worker, ` +
      `HumanProof's JavaScript fallback (no wasm) ${mhs(avg("fallback"))} per worker`,
  );
}

// End to end: the widget against the local server with a Balanced project.
const dataDir = mkdtempSync(join(tmpdir(), "humanproof-bench-"));
const env = { ...process.env, RUST_LOG: "warn", HUMANPROOF_DATABASE_URL: `sqlite://${join(dataDir, "humanproof.db")}?mode=rwc` };
const createProject = (...args) =>
  JSON.parse(execFileSync(BINARY, ["project", "create", "--testing-domain", "localhost", ...args], { env, encoding: "utf8" }));
const project = createProject("--name", "bench", "--preset", "balanced");
// Equal work with Cap's widget: d=4 and c=40, which the edge scales to c=80 for a start
// without interaction signals (its risk score reaches the block threshold, which doubles
// the count). The runs print the c they were given.
const equalWork = createProject("--name", "equal work", "--preset", "custom", "--difficulty", "4", "--challenge-count", "40");
// The second puzzle kind: an RSW project at Balanced's squarings (100,000 before risk scaling).
const timeLock = createProject("--name", "time-lock", "--preset", "custom", "--puzzle", "rsw", "--squarings", "100000");
const args = ["dev", "--data-dir", dataDir, "--control-listen", "127.0.0.1:0", "--edge-listen", "127.0.0.1:0", "--demo-listen", "127.0.0.1:0"];
const { child, output } = await spawnUntil(args, env, /Press Ctrl-C/);
const edge = output.match(/edge\s+(\S+)/)[1];
solvePage = `<!doctype html><form><humanproof-widget data-sitekey="${project.site_key}" data-edge="${edge}" data-variant="invisible"></humanproof-widget></form>
<form><humanproof-widget id="equal" data-sitekey="${equalWork.site_key}" data-edge="${edge}" data-variant="invisible"></humanproof-widget></form>
<form><humanproof-widget id="rsw" data-sitekey="${timeLock.site_key}" data-edge="${edge}" data-variant="invisible"></humanproof-widget></form>
<script>
  // The squarings each RSW start was given, for the figures (verification tokens do not say).
  const seenFetch = window.fetch;
  window.fetch = async (...args) => {
    const response = await seenFetch(...args);
    if (String(args[0]).endsWith("/challenge")) response.clone().json().then((body) => (window.lastSquarings = body.challenges?.[0]?.payload?.t));
    return response;
  };
</script>
<script src="${edge}/widget.js"></script>
<script>window.CAP_CUSTOM_WASM_URL = "/cap/cap_wasm_bg.wasm";</script><script src="/capwidget/cap.min.js"></script>`;
await page.goto(`${origin}/solve`);
await page.waitForFunction(() => window.humanproof && customElements.get("cap-widget"));

/** One click to token of our widget (`id`: which one, else the Balanced one): the time, the
 *  work the edge gave (from the token), when the first progress update came and the longest
 *  wait between updates after it. */
function ours(id) {
  return page.evaluate(async (id) => {
    const widget = id ? document.getElementById(id) : document.querySelector("humanproof-widget");
    widget.reset();
    const marks = [performance.now()];
    const mark = () => marks.push(performance.now());
    document.addEventListener("progress", mark);
    const token = await widget.execute();
    mark();
    document.removeEventListener("progress", mark);
    const { c, d } = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { marks, c, d, t: id === "rsw" ? window.lastSquarings : undefined };
  }, id).then(figures);
}

/** The same for Cap's widget, a new one each time (so nothing is solved ahead): `solve()`
 *  from the first request to the token, with Cap's server giving [`CAP_WORK`]. */
function capsWidget(endpoint = "/capapi/") {
  return page.evaluate(async ({ workers, endpoint }) => {
    const widget = document.createElement("cap-widget");
    widget.setAttribute("data-cap-api-endpoint", endpoint);
    widget.setAttribute("data-cap-worker-count", String(workers));
    document.body.append(widget);
    const marks = [performance.now()];
    const mark = () => marks.push(performance.now());
    widget.addEventListener("progress", mark);
    const { token } = await widget.solve();
    mark();
    widget.remove();
    if (!token) throw new Error("Cap's widget returned no token");
    return { marks, t: endpoint === "/capapi/" ? undefined : window.lastSquarings };
  }, { workers: threads, endpoint }).then(({ marks, t }) => figures(t ? { marks, t } : { marks, ...CAP_WORK }));
}

/** A run's figures from its marks (the start, each progress update, the token): the time,
 *  when the first update came and the longest wait between updates after it. */
function figures({ marks, c, d, t }) {
  const gaps = marks.slice(1).map((at, i) => at - marks[i]);
  const work = t ? `RSW t=${t}` : `d=${d} c=${c}`;
  return { ms: marks.at(-1) - marks[0], work, t, firstUpdate: gaps[0], longestGapAfter: Math.max(...gaps.slice(1)) };
}

/** Median and range of `results`, the work they solved, and the progress updates. */
function summary(results) {
  const sorted = (key) => results.map((r) => r[key]).sort((a, b) => a - b);
  const ms = sorted("ms");
  const middle = results.length >> 1;
  const work = [...new Set(results.map((r) => r.work))].join(", ");
  const perSquaring = results[0].t ? `; ${((ms[middle] * 1000) / results[middle].t).toFixed(2)} µs per squaring end to end` : "";
  return {
    median: ms[middle],
    text:
      `median ${Math.round(ms[middle])} ms over ${results.length} runs (min ${Math.round(ms[0])}, max ${Math.round(ms.at(-1))}); ` +
      `work solved: ${work}; first progress update after ${Math.round(sorted("firstUpdate")[middle])} ms, ` +
      `then at most ${Math.round(sorted("longestGapAfter")[middle])} ms apart (medians)${perSquaring}`,
  };
}

/** `runs` clicks to tokens of our Balanced widget (`id`: or another), one after another. */
async function endToEnd(runs, id) {
  const results = [];
  for (let run = 0; run < runs; run++) results.push(await ours(id));
  return summary(results).text;
}

console.log(`Chromium, widget end to end, Balanced (asks d=4, c=80 before risk scaling), ${threads} workers: ${await endToEnd(RUNS)}`);
// Equal work, ours and Cap's taking turns.
const turns = { ours: [], cap: [] };
for (let run = 0; run < RUNS; run++) {
  turns.ours.push(await ours("equal"));
  turns.cap.push(await capsWidget());
}
const [oursEqual, capEqual] = [summary(turns.ours), summary(turns.cap)];
console.log(`Chromium, equal work, ${threads} workers, taking turns: HumanProof's widget ${oursEqual.text}`);
console.log(`Chromium, equal work, ${threads} workers, taking turns: Cap's widget (@cap.js/widget 0.1.57, ${capName}) ${capEqual.text}`);
console.log(`HumanProof's click to token ÷ Cap's: ${(oursEqual.median / capEqual.median).toFixed(2)}`);
// The second puzzle kind: an RSW project (Custom, 100,000 squarings before risk scaling), our
// widget and Cap's own widget taking turns against our edge. Each prints the t it was given:
// our widget's signal-less execute() and Cap's widget score differently, so the work differs.
const rswTurns = { ours: [], cap: [] };
for (let run = 0; run < RUNS; run++) {
  rswTurns.ours.push(await ours("rsw"));
  rswTurns.cap.push(await capsWidget(`${edge}/${timeLock.site_key}/`));
}
console.log(`Chromium, RSW project (100,000 squarings before risk scaling), taking turns: HumanProof's widget ${summary(rswTurns.ours).text}`);
console.log(`Chromium, RSW project, taking turns: Cap's widget (@cap.js/widget 0.1.57) against our edge ${summary(rswTurns.cap).text}`);
// Slow devices. Chromium's CPU throttling (DevTools' 4× and 6× slowdown) slows the page's
// main thread but not its workers, where the solving happens; so the widget also runs with
// every process of the browser held to 1/4 and 1/6 of each core by a CPU quota: a device
// with as many cores as this machine, each 4× or 6× slower.
const devtools = await page.context().newCDPSession(page);
for (const rate of [4, 6]) {
  await devtools.send("Emulation.setCPUThrottlingRate", { rate });
  console.log(`Chromium's ${rate}× CPU throttling (main thread only), widget end to end, Balanced, ${threads} workers: ${await endToEnd(5)}`);
}
await devtools.send("Emulation.setCPUThrottlingRate", { rate: 1 });
for (const rate of [4, 6]) {
  const lift = holdToQuota(browserProcesses(), threads / rate);
  if (!lift) {
    console.log("CPU quota: skipped (needs root and a writable cgroup cpu controller)");
    break;
  }
  try {
    console.log(`Browser held to 1/${rate} of each core, widget end to end, Balanced, ${threads} workers: ${await endToEnd(5)}`);
    console.log(`Browser held to 1/${rate} of each core, widget end to end, RSW project: ${await endToEnd(3, "rsw")}`);
  } finally {
    lift();
  }
}

await browser.close();
await stopProcess(child);
server.close();

/** Chromium's processes: this script's descendants outside the `humanproof dev` tree. */
function browserProcesses() {
  const children = new Map();
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      // The parent pid is the second field after the parenthesised command name.
      const parent = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(pid)]);
    } catch {
      // Gone since the listing.
    }
  }
  const found = [];
  const visit = (pid) => {
    for (const next of children.get(pid) ?? []) {
      if (next === child.pid) continue;
      found.push(next);
      visit(next);
    }
  };
  visit(process.pid);
  return found;
}

/** Moves `pids` into a new cgroup allowed `cpus` CPUs' worth of time per 10 ms (cgroup v2's
 *  cpu.max, or v1's CFS quota); processes they start later inherit it. Returns a function
 *  that moves them back and removes the group, or null where no group can be made. */
function holdToQuota(pids, cpus) {
  const period = 10_000;
  const quota = Math.round(cpus * period);
  const v2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
  const root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/cpu";
  const group = join(root, `humanproof-bench-${process.pid}`);
  try {
    mkdirSync(group);
    if (v2) {
      writeFileSync(join(group, "cpu.max"), `${quota} ${period}`);
    } else {
      writeFileSync(join(group, "cpu.cfs_period_us"), String(period));
      writeFileSync(join(group, "cpu.cfs_quota_us"), String(quota));
    }
  } catch {
    return null;
  }
  const move = (pid, to) => {
    try {
      writeFileSync(join(to, "cgroup.procs"), String(pid));
    } catch {
      // Gone, or a thread of a process already moved.
    }
  };
  for (const pid of pids) move(pid, group);
  return () => {
    for (const pid of readFileSync(join(group, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) move(pid, root);
    rmdirSync(group);
  };
}
