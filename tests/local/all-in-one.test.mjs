// The README's run command, `humanproof dev`, as a newcomer meets it: the demo site's form
// is protected end to end (cross-origin edge calls, siteverify from the demo backend), the
// demo keys can be fixed from the environment and survive restarts, and usage is counted.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { solve } from "../support/cap.mjs";
import { BINARY, spawnUntil, stopProcess } from "../support/control-plane.mjs";

const SITE_KEY = "hp_site_localdemo0001";
const SECRET = "hp_secret_local-demo-secret-for-tests";
const dataDir = mkdtempSync(join(tmpdir(), "humanproof-dev-"));
let server;
let urls;

async function startDev(env = {}) {
  const args = ["dev", "--data-dir", dataDir, "--control-listen", "127.0.0.1:0", "--edge-listen", "127.0.0.1:0", "--demo-listen", "127.0.0.1:0"];
  const { child, output } = await spawnUntil(args, { ...process.env, RUST_LOG: "warn", ...env }, /Press Ctrl-C/);
  const field = (name) => output.match(new RegExp(`${name}\\s+(\\S+)`))[1];
  return { child, demo: field("demo site"), edge: field("edge"), siteKey: field("demo site key"), secret: field("demo secret") };
}

async function getVerificationToken(siteKey, origin) {
  const post = async (path, body) => {
    const response = await fetch(`${urls.edge}/${siteKey}/${path}`, {
      method: "POST",
      headers: { origin, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(response.headers.get("access-control-allow-origin"), origin);
    return { status: response.status, json: await response.json() };
  };
  const started = await post("challenge", {});
  assert.equal(started.status, 200, JSON.stringify(started.json));
  const redeemed = await post("redeem", { token: started.json.token, solutions: solve(started.json.token, started.json.challenge) });
  assert.equal(redeemed.status, 200, JSON.stringify(redeemed.json));
  return redeemed.json.token;
}

async function submitDemoForm(token) {
  const response = await fetch(`${urls.demo}/submit`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ email: "ada@example.com", message: "hello", "humanproof-token": token }),
  });
  const html = await response.text();
  return html.match(/data-accepted="(true|false)"/)[1] === "true";
}

before(async () => {
  server = await startDev({ HUMANPROOF_DEMO_SITE_KEY: SITE_KEY, HUMANPROOF_DEMO_SECRET: SECRET });
  urls = server;
});

after(() => stopProcess(server?.child));

test("the demo page embeds the widget with the demo site key, under a strict CSP", async () => {
  assert.equal(server.siteKey, SITE_KEY);
  assert.equal(server.secret, SECRET);
  const response = await fetch(urls.demo);
  const html = await response.text();
  assert.match(html, new RegExp(`<humanproof-widget data-sitekey="${SITE_KEY}" data-edge="${urls.edge}"`));
  assert.match(html, new RegExp(`<script src="${urls.edge}/widget.js" async defer>`));
  const csp = response.headers.get("content-security-policy");
  assert.match(csp, new RegExp(`script-src 'self' ${urls.edge} 'wasm-unsafe-eval'; worker-src blob:; connect-src ${urls.edge};`));
  for (const [file, type] of [["widget.js", "text/javascript"], ["solver.wasm", "application/wasm"]]) {
    const asset = await fetch(`${urls.edge}/${file}`);
    assert.equal(asset.status, 200, `${file}: build the widget first`);
    assert.match(asset.headers.get("content-type"), new RegExp(type));
    assert.equal(asset.headers.get("access-control-allow-origin"), "*");
  }
});

test("the demo form is protected: a solved token passes once, a missing or reused one fails", async () => {
  const token = await getVerificationToken(SITE_KEY, urls.demo);
  assert.equal(await submitDemoForm(token), true);
  assert.equal(await submitDemoForm(token), false, "tokens are single use");
  assert.equal(await submitDemoForm(""), false);
});

test("the local edge refuses origins the demo project does not list", async () => {
  const response = await fetch(`${urls.edge}/${SITE_KEY}/challenge`, { method: "POST", headers: { origin: "http://evil.test" } });
  assert.equal(response.status, 403);
  assert.equal((await response.json()).reason, "origin_not_allowed");
});

test("telemetry reaches the database and counts usage", async () => {
  const env = { ...process.env, HUMANPROOF_DATABASE_URL: `sqlite://${join(dataDir, "humanproof.db")}?mode=rwc` };
  const entry = JSON.parse(execFileSync(BINARY, ["snapshot"], { env, encoding: "utf8" })).find((pair) => pair.key === `site:${SITE_KEY}`);
  const projectId = JSON.parse(entry.value).project_id;
  const deadline = Date.now() + 10000;
  let usage;
  do {
    usage = JSON.parse(execFileSync(BINARY, ["usage", "--project-id", projectId], { env, encoding: "utf8" })).usage;
    if (usage.protected_attempts >= 1) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  } while (Date.now() < deadline);
  // One solved challenge; two siteverify calls that named a token (accepted, then reused),
  // counted as analytics and not as protected attempts; one refused origin.
  assert.deepEqual(usage, { protected_attempts: 1, challenges_issued: 1, refusals: 1, verifications: 2, risk_blocked: 0 });
});

test("keys persist across restarts and secrets stay private to their owner", async () => {
  await stopProcess(server.child);
  server = await startDev();
  urls = server;
  assert.equal(server.siteKey, SITE_KEY);
  assert.equal(server.secret, SECRET);
  assert.equal(statSync(join(dataDir, "master-secret")).mode & 0o077, 0);
  assert.equal(statSync(join(dataDir, "demo-site.json")).mode & 0o077, 0);
  const token = await getVerificationToken(SITE_KEY, urls.demo);
  assert.equal(await submitDemoForm(token), true);
});
