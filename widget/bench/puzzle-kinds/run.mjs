// The candidates for a second puzzle kind, browser ÷ native on this machine (issue 17): each
// kind of work natively on one core and in a Chromium worker, the two taking turns twice;
// prints milliseconds (medians of five) and the ratio native ÷ browser (1.0: a browser
// costs a visitor what the best native code costs an attacker, per core).
// Run: node widget/bench/puzzle-kinds/run.mjs (builds what it needs; needs gcc and libgmp-dev).
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { ROOT } from "../../../tests/support/control-plane.mjs";
import { launchChromium } from "../../../tests/support/browser.mjs";

const HERE = join(ROOT, "widget/bench/puzzle-kinds");
const OUT = join(ROOT, "target/puzzle-kinds");
const T = 75_000;
// Balanced's squarings, as a Custom preset with the RSW puzzle starts from.
const BALANCED_T = 100_000;

const run = (command, args, env = {}) => execFileSync(command, args, { encoding: "utf8", env: { ...process.env, ...env } }).trim();
const cargo = (flags, targetDir, ...args) =>
  run("cargo", ["build", "--quiet", "--release", "--manifest-path", join(HERE, "Cargo.toml"), "--target-dir", targetDir, ...args], { RUSTFLAGS: flags });
cargo("-C target-cpu=native", OUT, "--bin", "native", "--features", "edge");
// The candidates with SIMD, as the widget's solver is built; the edge's RSW steps without,
// as the Worker is built (worker-build's defaults), into pkg/ and edge-pkg/.
for (const [flags, features, dir, pkg] of [["-C target-feature=+simd128", [], "wasm-simd", "pkg"], ["", ["--features", "edge"], "wasm-edge", "edge-pkg"]]) {
  const targetDir = join(OUT, dir);
  cargo(flags, targetDir, "--lib", "--target", "wasm32-unknown-unknown", ...features);
  run(join(ROOT, ".tools/bin/wasm-bindgen"), ["--target", "web", "--no-typescript", "--out-dir", join(OUT, pkg), join(targetDir, "wasm32-unknown-unknown/release/puzzle_kinds.wasm")]);
  run(join(ROOT, "node_modules/.bin/wasm-opt"), ["-O3", "--enable-simd", "--enable-bulk-memory", "--enable-sign-ext", "--enable-mutable-globals", "--enable-nontrapping-float-to-int", join(OUT, `${pkg}/puzzle_kinds_bg.wasm`), "-o", join(OUT, `${pkg}/puzzle_kinds_bg.wasm`)]);
}
run("gcc", ["-O2", "-o", join(OUT, "gmp"), join(HERE, "gmp.c"), "-lgmp"]);

// A 2048-bit RSW modulus with its factors (the issuer's trapdoor) and a base below it.
const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
const big = (b64) => BigInt(`0x${Buffer.from(b64, "base64url").toString("hex")}`);
const powMod = (base, exponent, modulus) => {
  let result = 1n;
  for (base %= modulus; exponent > 0n; exponent >>= 1n, base = (base * base) % modulus) {
    if (exponent & 1n) result = (result * base) % modulus;
  }
  return result;
};
const [n, p, q] = [big(jwk.n), big(jwk.p), big(jwk.q)];
const hex = (x, bits) => x.toString(16).padStart(bits / 4, "0");
const key = {
  n: hex(n, 2048),
  x: randomBytes(255).toString("hex").padStart(512, "0"),
  p: hex(p, 1024),
  q: hex(q, 1024),
  ep: hex(powMod(2n, BigInt(T), p - 1n), 1024),
  eq: hex(powMod(2n, BigInt(T), q - 1n), 1024),
};

const JOBS = [
  { what: "Argon2id, 4 MiB, 3 passes", native: ["argon2id", "4096", "3"], kind: "argon2id", args: [4096, 3] },
  { what: "Argon2id, 16 MiB, 1 pass", native: ["argon2id", "16384", "1"], kind: "argon2id", args: [16384, 1] },
  { what: "Argon2id, 64 MiB, 1 pass", native: ["argon2id", "65536", "1"], kind: "argon2id", args: [65536, 1] },
  { what: `RSW, 2048-bit, t=${T}: wasm (crypto-bigint) vs GMP`, gmp: true, kind: "rsw", args: [T] },
  { what: `RSW, 2048-bit, t=${T}: JavaScript BigInt vs GMP`, gmp: true, kind: "rsw-bigint", args: [T] },
  { what: "RSW issuer with the factors (CRT, 2×1024-bit), per challenge", native: ["rsw-issuer", key.p, key.q, key.x, key.ep, key.eq], kind: "rsw-issuer", args: [] },
  { what: `RSW, 2048-bit, t=${BALANCED_T} (Balanced): JavaScript BigInt vs GMP`, gmp: true, kind: "rsw-bigint", args: [BALANCED_T] },
  // The kind chosen, as the edge runs it (humanproof_protocol::rsw; 128-bit r, CRT): native
  // here, and wasm in V8 as in the Worker.
  ...["size", "start", "redeem"].map((step) => ({
    what: `RSW at the edge as shipped, per ${{ size: "puzzle size (h = g^(2^t), once per t)", start: "start (x = g^r)", redeem: "redeem (check y against h^r)" }[step]}`,
    native: ["rsw-edge", step, `${key.p}:${key.q}`, String(BALANCED_T)],
    kind: "rsw-edge",
    args: [step, BALANCED_T],
  })),
];

const server = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/") return res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>puzzle kinds</title>");
  const file = path === "/worker.js" ? join(HERE, "worker.js") : join(OUT, path);
  try {
    const body = readFileSync(file);
    res.writeHead(200, { "content-type": path.endsWith(".wasm") ? "application/wasm" : "text/javascript" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const browser = await launchChromium();
const page = await browser.newPage();
await page.goto(`http://127.0.0.1:${server.address().port}/`);

const native = JOBS.map(() => []);
const inBrowser = JOBS.map(() => []);
for (let turn = 0; turn < 2; turn++) {
  JOBS.forEach((job, i) => {
    const ms = job.gmp ? run(join(OUT, "gmp"), [key.n, key.x, String(job.args[0])]) : run(join(OUT, "release/native"), job.native);
    native[i].push(Number(ms));
  });
  const times = await page.evaluate(
    (message) =>
      new Promise((resolve) => {
        const worker = new Worker("/worker.js", { type: "module" });
        worker.onmessage = ({ data }) => resolve(data);
        worker.postMessage(message);
      }),
    { jobs: JOBS.map(({ kind, args }) => ({ kind, args })), key },
  );
  times.forEach((ms, i) => inBrowser[i].push(ms));
}
await browser.close();
server.close();

const range = (xs) => xs.map((x) => x.toFixed(1)).join(" / ");
console.log("| work | native ms (turn 1 / 2) | Chromium worker ms (turn 1 / 2) | native ÷ browser |");
console.log("| --- | --- | --- | --- |");
JOBS.forEach((job, i) => {
  const ratios = native[i].map((ms, turn) => (ms / inBrowser[i][turn]).toFixed(2)).join(" / ");
  console.log(`| ${job.what} | ${range(native[i])} | ${range(inBrowser[i])} | ${ratios} |`);
});
