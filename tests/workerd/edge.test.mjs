// The built wasm edge worker, run in workerd through Miniflare with the bindings declared
// in the repository's wrangler.toml, against the real control plane binary:
// challenge, redeem, gates, CORS, single redeem (Durable Object), risk scoring with the
// visitor-state Durable Object (blocks, repeat failures, rate limits), queue telemetry
// delivery (including redelivery after a lost acknowledgement) and usage accounting, and
// the widget's files served as the Worker's static assets.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, request as httpRequest } from "node:http";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { solve } from "../support/cap.mjs";
import { ControlPlane, ROOT } from "../support/control-plane.mjs";
import { peek, projectKey, sign } from "../support/tokens.mjs";

const MASTER_SECRET = "workerd-test-master-secret-0123456789abcdef";
const ORIGIN = "http://localhost:3000";
const QUICK = ["--preset", "custom", "--difficulty", "1", "--challenge-count", "3", "--testing-domain", "localhost"];
// What a page's fetch() from a desktop browser sends; requests override parts of it.
const BROWSER_HEADERS = {
  "cf-connecting-ip": "198.51.100.23",
  "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
  "accept-language": "en-GB,en;q=0.9",
  "sec-fetch-site": "cross-site",
  "sec-fetch-mode": "cors",
  "sec-fetch-dest": "empty",
};
// A command-line client on another network: no browser headers at all.
const SCRIPT_HEADERS = { "cf-connecting-ip": "203.0.113.77", "user-agent": "curl/8.5.0" };
// A person's signals after filling in a form for nine seconds. Without the widget's own
// context, so the edge sends no environment check: Node cannot run one (the browser tests do).
const HUMAN_START = JSON.stringify({
  signals: { elapsed_ms: 9000, focus_count: 3, blur_count: 2, key_count: 41, pointer_moves: 88, pointer_downs: 2, interactions: 46, visibility: "visible", was_hidden: false },
  form: { page_path: "/signup", method: "post", action_path: "/signup", email: "ada@example.com" },
});

let mf;
let control;
let flakyProxy;
const projects = {};

/** Forwards to the control plane, but answers 503 after forwarding while `dropAcks` > 0. */
function startFlakyProxy(target) {
  const proxy = { dropAcks: 0, forwarded: 0 };
  proxy.server = createServer((req, res) => {
    const upstream = new URL(req.url, target);
    const forward = httpRequest(upstream, { method: req.method, headers: req.headers }, (up) => {
      const chunks = [];
      up.on("data", (c) => chunks.push(c));
      up.on("end", () => {
        proxy.forwarded++;
        if (proxy.dropAcks > 0) {
          proxy.dropAcks--;
          res.writeHead(503).end("acknowledgement lost");
        } else {
          res.writeHead(up.statusCode, up.headers).end(Buffer.concat(chunks));
        }
      });
    });
    req.pipe(forward);
  });
  return new Promise((resolve) =>
    proxy.server.listen(0, "127.0.0.1", () => {
      proxy.url = `http://127.0.0.1:${proxy.server.address().port}`;
      resolve(proxy);
    }),
  );
}

async function edge(path, { method = "POST", origin = ORIGIN, body, headers = BROWSER_HEADERS, cf } = {}) {
  const response = await mf.dispatchFetch(`http://edge.test${path}`, {
    method,
    ...(cf ? { cf } : {}),
    headers: {
      ...(origin ? { origin } : {}),
      "content-type": "application/json",
      ...headers,
    },
    body,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : null };
}

async function startChallenge(siteKey, body = "{}") {
  const started = await edge(`/${siteKey}/challenge`, { body });
  assert.equal(started.status, 200, JSON.stringify(started.json));
  return started.json;
}

async function redeem(siteKey, token, solutions, origin = ORIGIN) {
  return edge(`/${siteKey}/redeem`, { origin, body: JSON.stringify({ token, solutions }) });
}

async function siteverify(secret, response) {
  const answer = await fetch(`${control.url}/siteverify`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ secret, response }),
  });
  return { status: answer.status, json: await answer.json() };
}

async function seedSnapshot() {
  const kv = await mf.getKVNamespace("SNAPSHOT");
  for (const { key, value } of control.snapshotPairs()) await kv.put(key, value);
}

async function waitFor(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

before(async () => {
  const bundle = join(ROOT, "edge-worker/build/worker/shim.mjs");
  assert.ok(existsSync(bundle), "build the worker first (./dev test does)");
  control = new ControlPlane(MASTER_SECRET);
  projects.open = control.createProject("open", ...QUICK);
  projects.usage = control.createProject("usage", ...QUICK, "--monthly-limit", "2");
  projects.paused = control.createProject("paused", ...QUICK, "--paused");
  projects.unpaid = control.createProject("unpaid", ...QUICK, "--billing-status", "past-due");
  projects.other = control.createProject("other", ...QUICK);
  projects.enforcing = control.createProject("enforcing", ...QUICK, "--risk-mode", "enforce");
  projects.tight = control.createProject("tight", ...QUICK, "--rate-limit", "3");
  await control.start();
  flakyProxy = await startFlakyProxy(control.url);

  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"));
  // Deliver telemetry within a second instead of the production batching window.
  for (const consumer of Object.values(workerOptions.queueConsumers)) consumer.maxBatchTimeout = 1;
  mf = new Miniflare({
    ...workerOptions,
    modules: true,
    modulesRoot: ROOT,
    scriptPath: bundle,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    bindings: { ...workerOptions.bindings, CONTROL_PLANE_URL: flakyProxy.url, HUMANPROOF_MASTER_SECRET: MASTER_SECRET },
    host: "127.0.0.1",
  });
  await mf.ready;
  await seedSnapshot();
});

after(async () => {
  await mf?.dispose();
  await control?.stop();
  flakyProxy?.server.close();
});

describe("challenge and redeem in workerd", () => {
  test("a Cap-style client solves, redeems, and the backend verifies", async () => {
    const { challenge, token, expires } = await startChallenge(projects.open.site_key, undefined);
    // No widget signals (3.0 of Balanced's 6.0): 3 × (0.5 + 1.5 × 3/6) = 3.75 sub-challenges, rounded down.
    assert.deepEqual(challenge, { c: 3, s: 32, d: 1 });
    assert.deepEqual(peek(token).risk.factors.map((f) => f.reason), ["no_signals"]);
    assert.ok(expires > Date.now());
    const redeemed = await redeem(projects.open.site_key, token, solve(token, challenge));
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.json));
    assert.equal(redeemed.json.success, true);
    assert.equal(redeemed.headers.get("access-control-allow-origin"), ORIGIN);

    const verified = await siteverify(projects.open.secret, redeemed.json.token);
    assert.equal(verified.json.success, true, JSON.stringify(verified.json));
    assert.equal(verified.json.hostname, "localhost");
    const again = await siteverify(projects.open.secret, redeemed.json.token);
    assert.deepEqual(again.json["error-codes"], ["timeout-or-duplicate"]);
    const elsewhere = await siteverify(projects.other.secret, redeemed.json.token);
    assert.deepEqual(elsewhere.json["error-codes"], ["invalid-input-response"]);
  });

  test("action and cdata travel to siteverify", async () => {
    const { challenge, token } = await startChallenge(projects.open.site_key, JSON.stringify({ action: "signup", cdata: "abc" }));
    const redeemed = await redeem(projects.open.site_key, token, solve(token, challenge));
    const verified = await siteverify(projects.open.secret, redeemed.json.token);
    assert.equal(verified.json.action, "signup");
    assert.equal(verified.json.cdata, "abc");
  });

  test("a challenge is redeemed once, even by concurrent requests (Durable Object claim)", async () => {
    const { challenge, token } = await startChallenge(projects.open.site_key);
    const solutions = solve(token, challenge);
    const answers = await Promise.all(Array.from({ length: 6 }, () => redeem(projects.open.site_key, token, solutions)));
    assert.equal(answers.filter((a) => a.status === 200).length, 1);
    for (const refused of answers.filter((a) => a.status !== 200)) {
      assert.deepEqual([refused.status, refused.json.reason], [409, "already_redeemed"]);
    }
  });

  test("expired, forged and tampered tokens are refused", async () => {
    const { challenge, token } = await startChallenge(projects.open.site_key);
    const claims = peek(token);
    const key = projectKey(MASTER_SECRET, projects.open.project_id, 1);
    const expired = sign(key, "hpc1", { ...claims, exp: Date.now() - 1 });
    let answer = await redeem(projects.open.site_key, expired, solve(expired, challenge));
    assert.deepEqual([answer.status, answer.json.reason], [400, "expired"]);

    const forged = sign(projectKey("not-the-master-secret-not-the-master", projects.open.project_id, 1), "hpc1", claims);
    answer = await redeem(projects.open.site_key, forged, solve(forged, challenge));
    assert.deepEqual([answer.status, answer.json.reason], [400, "invalid_token"]);

    const tampered = token.replace(/.$/, (c) => (c === "A" ? "B" : "A"));
    answer = await redeem(projects.open.site_key, tampered, solve(token, challenge));
    assert.deepEqual([answer.status, answer.json.reason], [400, "invalid_token"]);

    answer = await redeem(projects.other.site_key, token, solve(token, challenge));
    assert.deepEqual([answer.status, answer.json.reason], [400, "invalid_token"]);

    answer = await redeem(projects.open.site_key, token, solve(token, challenge), "http://127.0.0.2");
    assert.deepEqual([answer.status, answer.json.reason], [403, "origin_not_allowed"]);
  });

  test("each gate refuses with its code", async () => {
    const cases = [
      ["hp_site_unknown", ORIGIN, 404, "unknown_site_key"],
      [projects.paused.site_key, ORIGIN, 403, "project_paused"],
      [projects.unpaid.site_key, ORIGIN, 402, "billing_inactive"],
      [projects.open.site_key, "https://evil.example", 403, "origin_not_allowed"],
      [projects.open.site_key, null, 403, "origin_not_allowed"],
    ];
    for (const [siteKey, origin, status, reason] of cases) {
      const answer = await edge(`/${siteKey}/challenge`, { origin });
      assert.deepEqual([answer.status, answer.json.reason], [status, reason], `${siteKey} from ${origin}`);
      assert.equal(answer.json.success, false);
    }
  });

  test("CORS: preflight for allowed origins only", async () => {
    const allowed = await edge(`/${projects.open.site_key}/challenge`, { method: "OPTIONS" });
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get("access-control-allow-origin"), ORIGIN);
    const refused = await edge(`/${projects.open.site_key}/challenge`, { method: "OPTIONS", origin: "https://evil.example" });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get("access-control-allow-origin"), null);
  });

  test("malformed and oversized bodies get 4xx codes, never 5xx", async () => {
    const path = `/${projects.open.site_key}`;
    const cases = [
      [`${path}/challenge`, "{nope", 400, "bad_request"],
      [`${path}/challenge`, JSON.stringify({ cdata: "x".repeat(300) }), 400, "invalid_cdata"],
      [`${path}/challenge`, "x".repeat(70 * 1024), 413, "body_too_large"],
      [`${path}/redeem`, "", 400, "bad_request"],
      [`${path}/redeem`, JSON.stringify({ token: 1, solutions: "no" }), 400, "bad_request"],
      [`${path}/redeem`, "[".repeat(70 * 1024), 413, "body_too_large"],
      ["/nothing-here", "", 404, "not_found"],
    ];
    for (const [target, body, status, reason] of cases) {
      const answer = await edge(target, { body });
      assert.deepEqual([answer.status, answer.json.reason], [status, reason], `${target} ${body.slice(0, 20)}`);
    }
  });
});

describe("the widget's files as the Worker's static assets", () => {
  test("widget.js and solver.wasm are served with CORS and caching; the edge's routes still reach the code", async () => {
    const script = await mf.dispatchFetch("http://edge.test/widget.js");
    assert.equal(script.status, 200);
    assert.match(script.headers.get("content-type"), /javascript/);
    assert.equal(script.headers.get("access-control-allow-origin"), "*");
    assert.match(script.headers.get("cache-control"), /max-age=300/);
    assert.ok((await script.text()).includes("humanproof-widget"));

    const solver = await mf.dispatchFetch("http://edge.test/solver.wasm");
    assert.equal(solver.status, 200);
    assert.equal(solver.headers.get("content-type"), "application/wasm");
    assert.equal(solver.headers.get("access-control-allow-origin"), "*");
    assert.ok(WebAssembly.validate(new Uint8Array(await solver.arrayBuffer())));

    const rules = await mf.dispatchFetch("http://edge.test/_headers");
    assert.ok(!(await rules.text()).includes("Access-Control-Allow-Origin"), "the rules file itself is not served");
    await startChallenge(projects.open.site_key);
  });
});

describe("risk scoring in workerd", () => {
  test("a script is blocked in enforce mode and only recorded in observe mode", async () => {
    const cf = { country: "NL", asn: 64500 };
    const blocked = await edge(`/${projects.enforcing.site_key}/challenge`, { headers: SCRIPT_HEADERS, cf });
    assert.deepEqual([blocked.status, blocked.json.reason], [403, "risk_blocked"]);
    const observed = await edge(`/${projects.open.site_key}/challenge`, { headers: SCRIPT_HEADERS });
    assert.equal(observed.status, 200);
    const risk = peek(observed.json.token).risk;
    assert.deepEqual(
      [risk.score, risk.decision, risk.mode, risk.factors.map((f) => f.reason)],
      [9, "block", "observe", ["no_signals", "automated_user_agent", "missing_accept_language", "unusual_fetch_context"]],
    );
    // A person passes the enforcing project with less work, and siteverify says why.
    const person = { ...BROWSER_HEADERS, "cf-connecting-ip": "198.51.100.49" };
    const started = await edge(`/${projects.enforcing.site_key}/challenge`, { body: HUMAN_START, headers: person });
    const { challenge, token } = started.json;
    assert.equal(challenge.c, 1, "half of 3, rounded down");
    const redeemed = await edge(`/${projects.enforcing.site_key}/redeem`, { headers: person, body: JSON.stringify({ token, solutions: solve(token, challenge) }) });
    const verified = await siteverify(projects.enforcing.secret, redeemed.json.token);
    assert.deepEqual(verified.json.humanproof.risk, { score: 0, factors: [], decision: "allow", preset: "custom", mode: "enforce" });
    // The blocked start reaches the control plane as a protected attempt, and its country
    // and network (from request.cf) only as per-project counters.
    await waitFor("the blocked start's telemetry", () => control.usage(projects.enforcing.project_id).risk_blocked === 1);
    // (Miniflare gives requests without a `cf` of their own a default one from elsewhere.)
    const { countries, networks } = control.networks(projects.enforcing.project_id);
    assert.deepEqual(countries.find((c) => c.value === "NL"), { value: "NL", starts: 1, blocked: 1 });
    assert.deepEqual(networks.find((n) => n.value === "64500"), { value: "64500", starts: 1, blocked: 1 });
  });

  test("failed redeems raise the same visitor's later scores (visitor Durable Object)", async () => {
    const visitor = { ...BROWSER_HEADERS, "cf-connecting-ip": "198.51.100.50" };
    const start = () => edge(`/${projects.other.site_key}/challenge`, { body: HUMAN_START, headers: visitor });
    assert.equal(peek((await start()).json.token).risk.score, 0);
    for (let i = 0; i < 2; i++) {
      const { token } = (await start()).json;
      const wrong = await edge(`/${projects.other.site_key}/redeem`, { headers: visitor, body: JSON.stringify({ token, solutions: [0, 0, 0] }) });
      assert.equal(wrong.json.reason, "invalid_solution");
    }
    const after = peek((await start()).json.token).risk;
    assert.deepEqual([after.score, after.factors.map((f) => f.reason)], [2, ["repeat_failures"]]);
  });

  test("a widget's start carries an environment check the redeem must answer", async () => {
    const visitor = { ...BROWSER_HEADERS, "cf-connecting-ip": "198.51.100.53" };
    const body = JSON.stringify({ ...JSON.parse(HUMAN_START), widget: { variant: "checkbox", trigger: "click" } });
    const started = await edge(`/${projects.open.site_key}/challenge`, { body, headers: visitor });
    assert.match(started.json.instrumentation.script, /postMessage|t\[/);
    assert.equal(peek(started.json.token).ins, "default");
    const { challenge, token } = started.json;
    const unanswered = await edge(`/${projects.open.site_key}/redeem`, { headers: visitor, body: JSON.stringify({ token, solutions: solve(token, challenge) }) });
    assert.deepEqual([unanswered.status, unanswered.json.reason], [400, "instrumentation_failed"]);
  });

  test("the rate limit refuses a visitor's fourth start in two minutes, with Retry-After", async () => {
    const visitor = { ...BROWSER_HEADERS, "cf-connecting-ip": "198.51.100.51" };
    const start = (headers) => edge(`/${projects.tight.site_key}/challenge`, { body: HUMAN_START, headers });
    for (let i = 0; i < 3; i++) assert.equal((await start(visitor)).status, 200);
    const limited = await start(visitor);
    assert.deepEqual([limited.status, limited.json.reason], [429, "rate_limited"]);
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(retryAfter > 0 && retryAfter <= 120, `retry-after ${retryAfter}`);
    // Recovery after the window runs on the same rules natively (tests/tests/risk.rs), where
    // the clock can be moved; here another visitor shows the limit is per visitor.
    assert.equal((await start({ ...visitor, "cf-connecting-ip": "198.51.100.52" })).status, 200);
  });
});

describe("telemetry and usage through the queue", () => {
  test("events reach the control plane once, even when a delivery is retried", async () => {
    const siteKey = projects.usage.site_key;
    const before = control.usage(projects.usage.project_id);
    assert.equal(before.protected_attempts, 0);
    // The first delivery is stored but its acknowledgement is lost: the queue redelivers.
    flakyProxy.dropAcks = 1;
    const { challenge, token } = await startChallenge(siteKey);
    const redeemed = await redeem(siteKey, token, solve(token, challenge));
    assert.equal(redeemed.status, 200);
    const failed = await redeem(siteKey, "garbage", [1]);
    assert.equal(failed.status, 400);

    const usage = await waitFor("usage to arrive", () => {
      const current = control.usage(projects.usage.project_id);
      return current.protected_attempts >= 2 && current;
    });
    await waitFor("the retried delivery", () => flakyProxy.dropAcks === 0 && flakyProxy.forwarded >= 2);
    // Give any further redelivery time to land before checking it counted once.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.deepEqual(control.usage(projects.usage.project_id), { ...usage, protected_attempts: 2, challenges_issued: 1, risk_blocked: 0 });

    // The limit (2) is spent: once the control plane republishes, the edge refuses.
    await seedSnapshot();
    const refused = await edge(`/${siteKey}/challenge`);
    assert.deepEqual([refused.status, refused.json.reason], [429, "usage_exhausted"]);
  });
});
