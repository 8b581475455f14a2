// Solver benchmark in headless Chromium: hashes per second per worker (HumanProof's wasm
// SIMD solver next to Cap's wasm solver and HumanProof's JavaScript fallback, 1 and N
// workers at once), and the median time for the widget to start, solve and redeem a
// Balanced challenge (d=4, c=80) against `humanproof dev`. Prints figures; asserts nothing. Run: ./dev bench
//
// Cap's solver is the newest `@cap.js/wasm` on the npm registry unless CAP_WASM_DIR names a
// folder with another build of it (`cap_wasm.js` and `cap_wasm_bg.wasm` from wasm-pack's or
// wasm-bindgen's `--target web`), such as one built from Cap's repository.
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { BINARY, ROOT, spawnUntil, stopProcess } from "../../tests/support/control-plane.mjs";
import { launchChromium } from "../../tests/support/browser.mjs";

const RUNS = 9;
const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
const FILES = {
  "/pkg/": join(ROOT, "widget/pkg/"),
  "/cap/": process.env.CAP_WASM_DIR ? `${process.env.CAP_WASM_DIR}/` : join(ROOT, "node_modules/@cap.js/wasm/browser/"),
  "/bench/": join(ROOT, "widget/bench/"),
  "/src/": join(ROOT, "widget/src/"),
};

let solvePage = "";
const server = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/") return res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>bench</title>");
  if (path === "/solve") return res.writeHead(200, { "content-type": "text/html" }).end(solvePage);
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
const project = JSON.parse(
  execFileSync(BINARY, ["project", "create", "--name", "bench", "--preset", "balanced", "--testing-domain", "localhost"], { env, encoding: "utf8" }),
);
const args = ["dev", "--data-dir", dataDir, "--control-listen", "127.0.0.1:0", "--edge-listen", "127.0.0.1:0", "--demo-listen", "127.0.0.1:0"];
const { child, output } = await spawnUntil(args, env, /Press Ctrl-C/);
const edge = output.match(/edge\s+(\S+)/)[1];
solvePage = `<!doctype html><form><humanproof-widget data-sitekey="${project.site_key}" data-edge="${edge}" data-variant="invisible"></humanproof-widget></form><script src="${edge}/widget.js"></script>`;
await page.goto(`${origin}/solve`);
await page.waitForFunction(() => window.humanproof);
const times = [];
for (let run = 0; run < RUNS; run++) {
  times.push(
    await page.evaluate(async () => {
      window.humanproof.reset();
      const started = performance.now();
      await window.humanproof.execute();
      return performance.now() - started;
    }),
  );
}
times.sort((a, b) => a - b);
console.log(`Chromium, widget end to end, Balanced (d=4, c=80), ${threads} workers: median ${Math.round(times[RUNS >> 1])} ms over ${RUNS} runs (min ${Math.round(times[0])}, max ${Math.round(times[RUNS - 1])})`);

await browser.close();
await stopProcess(child);
server.close();
