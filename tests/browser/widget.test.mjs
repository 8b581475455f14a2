// The widget in real headless Chromium (Debian's, driven by playwright-core) against the
// local all-in-one server: the demo form end to end, the challenge payload, the invisible
// variant (submit and execute()), reset and expiry, strict CSP (with and without constructable
// stylesheets), reduced motion, the JavaScript fallback without WebAssembly, the error
// state when the edge refuses, the dashboard's widget settings read from the edge (and
// overridden by attributes where the plan allows), a paused project, a person's low risk
// score reaching the backend, and no raw user agent left in the database.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:http";
import { BINARY, spawnUntil, stopProcess } from "../support/control-plane.mjs";
import { launchChromium } from "../support/browser.mjs";

const SITE_KEY = "hp_site_browsertests01";
// A desktop Chrome's user agent, for the person: headless Chromium names itself
// HeadlessChrome, which the edge rightly scores as automation.
const DESKTOP_CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
let server;
let browser;
let urls;
let dataDir;
let rateLimitedSiteKey;
let freeSiteKey;
let styledSiteKey;
let pausedSiteKey;
let rswProject;
// Customer pages under test, served from 127.0.0.1 (reached as localhost, which the demo
// project lists) and from 127.0.0.2 (another loopback address it does not list).
const pages = new Map();
const pageServers = [];
let TEST_ORIGIN;
let FOREIGN_ORIGIN;

async function startPageServer(host) {
  const pageServer = createServer((req, res) => {
    const page = pages.get(new URL(req.url, "http://x").pathname);
    if (!page) return res.writeHead(404).end();
    const headers = { "content-type": page.type ?? "text/html; charset=utf-8" };
    if (page.csp) headers["content-security-policy"] = page.csp;
    res.writeHead(200, headers).end(page.html);
  });
  await new Promise((resolve) => pageServer.listen(0, host, resolve));
  pageServers.push(pageServer);
  return pageServer.address().port;
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "humanproof-browser-"));
  // A second project whose visitors may start one challenge in two minutes; `dev` publishes
  // every stored project to its edge when it starts.
  const databaseUrl = `sqlite://${join(dataDir, "humanproof.db")}?mode=rwc`;
  const create = ["project", "create", "--database-url", databaseUrl, "--name", "One start", "--testing-domain", "localhost", "--preset", "custom", "--rate-limit", "1"];
  rateLimitedSiteKey = JSON.parse(execFileSync(BINARY, create, { encoding: "utf8" })).site_key;
  // And one on the free plan, whose widget must show full branding (the demo project is on
  // Business, so that it shows every look).
  const createFree = ["project", "create", "--database-url", databaseUrl, "--name", "Free", "--testing-domain", "localhost", "--plan", "free"];
  freeSiteKey = JSON.parse(execFileSync(BINARY, createFree, { encoding: "utf8" })).site_key;
  // One whose look is set in the dashboard only (its pages carry no attributes), and one paused.
  const createStyled = [...createFree.slice(0, 5), "Styled", "--testing-domain", "localhost", "--plan", "business", "--widget-variant", "floating", "--widget-theme", "dark", "--widget-language", "de", "--widget-size", "compact", "--widget-branding", "minimal"];
  styledSiteKey = JSON.parse(execFileSync(BINARY, createStyled, { encoding: "utf8" })).site_key;
  const createPaused = [...createFree.slice(0, 5), "Paused", "--testing-domain", "localhost", "--paused"];
  pausedSiteKey = JSON.parse(execFileSync(BINARY, createPaused, { encoding: "utf8" })).site_key;
  // One whose Custom preset asks for RSW time-lock puzzles (the second puzzle kind).
  const createRsw = [...createFree.slice(0, 5), "Time-lock", "--testing-domain", "localhost", "--preset", "custom", "--puzzle", "rsw", "--squarings", "60000"];
  rswProject = JSON.parse(execFileSync(BINARY, createRsw, { encoding: "utf8" }));
  const args = ["dev", "--data-dir", dataDir, "--control-listen", "127.0.0.1:0", "--edge-listen", "127.0.0.1:0", "--demo-listen", "127.0.0.1:0"];
  const env = { ...process.env, RUST_LOG: "warn", HUMANPROOF_DEMO_SITE_KEY: SITE_KEY, HUMANPROOF_DEMO_SECRET: "hp_secret_browser-tests" };
  const { child, output } = await spawnUntil(args, env, /Press Ctrl-C/);
  const field = (name) => output.match(new RegExp(`${name}\\s+(\\S+)`))[1];
  server = child;
  urls = { demo: field("demo site"), edge: field("edge"), siteverify: field("siteverify") };
  browser = await launchChromium();
  TEST_ORIGIN = `http://localhost:${await startPageServer("127.0.0.1")}`;
  FOREIGN_ORIGIN = `http://127.0.0.2:${await startPageServer("127.0.0.2")}`;
});

after(async () => {
  await browser?.close();
  await stopProcess(server);
  for (const pageServer of pageServers) pageServer.close();
});

/** A page that records CSP violations and page errors. */
async function newPage(context = browser) {
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (error) => page.problems.push(`pageerror: ${error.message}`));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  page.on("console", (message) => {
    if (message.text().startsWith("CSP violation")) page.problems.push(message.text());
  });
  return page;
}

/** Serves `html` at `path` with the strict CSP the README documents (or `csp`). */
function servePage(path, html, csp) {
  const edge = urls.edge;
  csp ??= `default-src 'self'; script-src ${edge} 'wasm-unsafe-eval'; worker-src blob:; connect-src ${edge}; form-action ${urls.demo}`;
  pages.set(path, { html, csp });
}

const formPage = (widgetAttributes, siteKey = SITE_KEY) => `<!doctype html><html lang="en"><body>
<form method="post" action="${urls.demo}/submit">
<input id="email" name="email" type="email" value="grace@example.com">
<humanproof-widget data-sitekey="${siteKey}" data-edge="${urls.edge}" ${widgetAttributes}></humanproof-widget>
<button id="send" type="submit">Send</button>
</form>
<script src="${urls.edge}/widget.js" async defer></script>
</body></html>`;

/** What the local server's siteverify answers a backend holding `secret`. */
const siteverify = (secret, response) =>
  fetch(urls.siteverify, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ secret, response }),
  }).then((answer) => answer.json());

const solved = (page) =>
  page.evaluate(
    () => new Promise((resolve) => document.addEventListener("solve", (event) => resolve(event.detail), { once: true })),
  );

test("the demo form: tick, solve with wasm workers, submit, and the backend's siteverify succeeds", async () => {
  const page = await newPage();
  await page.goto(urls.demo);
  await page.fill("#email", "ada@example.com");
  await page.locator("#message").pressSequentially("a private message the widget must never read");
  const challengeBodies = [];
  page.on("request", (request) => {
    if (request.url().endsWith("/challenge")) challengeBodies.push(request.postData());
  });
  const detail = solved(page);
  await page.locator("humanproof-widget .box").click();
  const { engine, token } = await detail;
  assert.equal(engine, "wasm");
  assert.equal(await page.inputValue('input[name="humanproof-token"]'), token);
  assert.equal(await page.locator("humanproof-widget .box").getAttribute("aria-checked"), "true");
  await page.click("button[type=submit]");
  await page.waitForSelector("#result");
  assert.equal(await page.getAttribute("#result", "data-accepted"), "true");

  // The challenge start carried the signals and context, and nothing it must not.
  assert.equal(challengeBodies.length, 1);
  const body = JSON.parse(challengeBodies[0]);
  assert.deepEqual(body.widget, { variant: "checkbox", trigger: "click", branding: "full", signal_version: 1, offscreen_canvas: true });
  assert.deepEqual(body.form, { page_path: "/", method: "post", action_path: "/submit", email: "ada@example.com" });
  assert.ok(body.signals.elapsed_ms > 0);
  assert.ok(body.signals.key_count > 0 && body.signals.pointer_downs > 0 && body.signals.focus_count > 0, JSON.stringify(body.signals));
  assert.equal(body.signals.visibility, "visible");
  assert.doesNotMatch(challengeBodies[0], /private message/);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("a person filling in the demo form scores low, pays less work, and the backend sees why", async () => {
  const context = await browser.newContext({ userAgent: DESKTOP_CHROME, locale: "en-GB" });
  const page = await newPage(context);
  await page.goto(urls.demo);
  // Read the page, move towards the form, type like a person.
  await page.mouse.move(120, 80, { steps: 8 });
  await page.mouse.move(300, 260, { steps: 12 });
  await page.click("#email");
  await page.keyboard.type("lovelace@example.com", { delay: 40 });
  await page.click("#message");
  await page.keyboard.type("Hello, I would like to know more.", { delay: 35 });
  await page.waitForTimeout(1500);
  const detail = solved(page);
  await page.locator("humanproof-widget .box").click();
  await detail;
  await page.click("button[type=submit]");
  await page.waitForSelector("#result");
  assert.equal(await page.getAttribute("#result", "data-accepted"), "true");
  const verdict = JSON.parse(await page.textContent("#siteverify"));
  const risk = verdict.humanproof.risk;
  assert.deepEqual([risk.score, risk.decision, risk.factors], [0, "allow", []], JSON.stringify(risk));
  // The demo project is Relaxed (60 sub-challenges); a clean start solves half.
  assert.equal(verdict.humanproof.challenge_count, 30);
  await context.close();
});

test("invisible variant: starts on submit, then submits the form itself", async () => {
  const page = await newPage();
  servePage("/invisible", formPage('data-variant="invisible"'));
  await page.goto(`${TEST_ORIGIN}/invisible`);
  assert.equal(await page.locator("humanproof-widget").isHidden(), true);
  await page.click("#send");
  await page.waitForURL(`${urls.demo}/submit`);
  assert.equal(await page.getAttribute("#result", "data-accepted"), "true");
  await page.close();
});

test("invisible variant: execute() resolves to a token; reset() clears it", async () => {
  const page = await newPage();
  servePage("/execute", formPage('data-variant="invisible"'));
  await page.goto(`${TEST_ORIGIN}/execute`);
  await page.waitForFunction(() => window.humanproof);
  const token = await page.evaluate(() => window.humanproof.execute());
  assert.match(token, /^hpv1\./);
  assert.equal(await page.evaluate(() => window.humanproof.getResponse()), token);
  // Listened for on the widget: browsers stop `reset` events at the enclosing form.
  const resetFired = page.evaluate(
    () => new Promise((resolve) => document.querySelector("humanproof-widget").addEventListener("reset", () => resolve(true), { once: true })),
  );
  await page.evaluate(() => window.humanproof.reset());
  assert.equal(await resetFired, true);
  assert.equal(await page.evaluate(() => window.humanproof.getResponse()), "");
  assert.equal(await page.inputValue('input[name="humanproof-token"]'), "");
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("humanproof.render() renders into a container and reports through callbacks", async () => {
  const page = await newPage();
  servePage("/render", `<!doctype html><html><body><form><div id="slot"></div></form>
    <script src="${urls.edge}/widget.js"></script></body></html>`);
  await page.goto(`${TEST_ORIGIN}/render`);
  const token = await page.evaluate(
    ({ siteKey, edge }) =>
      new Promise((resolve) => {
        window.humanproof.render("#slot", { sitekey: siteKey, edge, variant: "checkbox", language: "de", callback: resolve });
        document.querySelector("humanproof-widget").shadowRoot.querySelector(".box").click();
      }),
    { siteKey: SITE_KEY, edge: urls.edge },
  );
  assert.match(token, /^hpv1\./);
  assert.equal(await page.locator("humanproof-widget .label").textContent(), "Verifiziert");
  await page.close();
});

test("an expired token is cleared and the widget says so", async () => {
  const page = await newPage();
  await page.clock.install();
  await page.goto(urls.demo);
  const detail = solved(page);
  await page.locator("humanproof-widget .box").click();
  await detail;
  const expired = page.evaluate(() => new Promise((resolve) => document.addEventListener("expired", () => resolve(true), { once: true })));
  await page.clock.fastForward("05:00");
  assert.equal(await expired, true);
  assert.equal(await page.inputValue('input[name="humanproof-token"]'), "");
  assert.match(await page.locator("humanproof-widget .label").textContent(), /expired/);
  await page.close();
});

test("an RSW project's puzzle is solved with BigInt, with progress, with and without WebAssembly", async () => {
  const csps = {
    "/rsw": undefined,
    // No 'wasm-unsafe-eval': the SHA-256 solver would fall back to JavaScript; RSW never used wasm.
    "/rsw-no-wasm": `default-src 'self'; script-src ${urls.edge}; worker-src blob:; connect-src ${urls.edge}; form-action ${urls.demo}`,
  };
  for (const [path, csp] of Object.entries(csps)) {
    servePage(path, formPage("", rswProject.site_key), csp);
    const page = await newPage();
    const starts = [];
    page.on("response", async (response) => {
      if (response.url().endsWith("/challenge")) starts.push(await response.json());
    });
    await page.goto(`${TEST_ORIGIN}${path}`);
    const progress = page.evaluate(
      () =>
        new Promise((resolve) => {
          const seen = [];
          document.addEventListener("progress", (event) => seen.push(event.detail.progress));
          document.addEventListener("solve", () => resolve(seen), { once: true });
        }),
    );
    const detail = solved(page);
    await page.locator("humanproof-widget .box").click();
    const { engine, token } = await detail;
    assert.equal(engine, "bigint", path);
    // Cap's format 2, one puzzle; a headless start without a person's signals scores above
    // zero, so it pays more than half the preset's 60,000 squarings.
    assert.equal(starts[0].format, 2);
    assert.equal(starts[0].challenges[0].protocol, "rsw");
    assert.ok(starts[0].challenges[0].payload.t >= 30_000, JSON.stringify(starts[0].challenges[0].payload.t));
    // Progress climbs through the puzzle, not only at its end.
    const seen = await progress;
    assert.ok(seen.filter((p) => p > 0 && p < 100).length >= 5, `progress ${seen}`);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), `progress ${seen}`);
    assert.equal(seen.at(-1), 100);
    // The backend verifies the token as any other.
    const verified = await siteverify(rswProject.secret, token);
    assert.equal(verified.success, true, JSON.stringify(verified));
    assert.equal(verified.humanproof.squarings, starts[0].challenges[0].payload.t);
    assert.deepEqual(page.problems, [], path);
    await page.close();
  }
});

test("Cap's own widget solves an RSW project's challenge from our edge (Cap's format 2)", async () => {
  const capWidget = readFileSync(new URL("../../node_modules/@cap.js/widget/cap.min.js", import.meta.url), "utf8");
  pages.set("/cap.min.js", { html: capWidget, type: "text/javascript" });
  const html = `<!doctype html><html><body><cap-widget id="cap" data-cap-api-endpoint="${urls.edge}/${rswProject.site_key}/"></cap-widget>
<script>window.CAP_CUSTOM_WASM_URL = "/no-wasm-needed-for-rsw.wasm";</script><script src="/cap.min.js"></script></body></html>`;
  pages.set("/cap-widget", { html, csp: "default-src 'self' 'unsafe-inline' blob: data:; connect-src 'self' " + urls.edge });
  const page = await browser.newPage();
  const redeems = [];
  page.on("request", (request) => {
    if (request.url().endsWith("/redeem")) redeems.push(JSON.parse(request.postData()));
  });
  await page.goto(`${TEST_ORIGIN}/cap-widget`);
  await page.waitForFunction(() => customElements.get("cap-widget"));
  const { token } = await page.evaluate(() => document.getElementById("cap").solve());
  assert.match(token ?? "", /^hpv1\./);
  // It answered the puzzle as Cap's widget does: `{"y": hex}`.
  assert.match(redeems[0].solutions[0].y, /^[0-9a-f]+$/);
  const verified = await siteverify(rswProject.secret, token);
  assert.equal(verified.success, true, JSON.stringify(verified));
  await page.close();
});

test("without WebAssembly the JavaScript fallback solves", async () => {
  // A browser without WebAssembly at all…
  const page = await newPage();
  await page.addInitScript(() => delete globalThis.WebAssembly);
  await page.goto(urls.demo);
  assert.equal(await page.evaluate(() => typeof WebAssembly), "undefined");
  let detail = solved(page);
  await page.locator("humanproof-widget .box").click();
  assert.equal((await detail).engine, "js");
  await page.fill("#email", "ada@example.com");
  await page.fill("#message", "hi");
  await page.click("button[type=submit]");
  await page.waitForSelector("#result");
  assert.equal(await page.getAttribute("#result", "data-accepted"), "true");
  await page.close();

  // …and one whose page policy forbids compiling it (no 'wasm-unsafe-eval').
  const edge = urls.edge;
  servePage("/no-wasm", formPage(""), `default-src 'self'; script-src ${edge}; worker-src blob:; connect-src ${edge}; form-action ${urls.demo}`);
  const strict = await browser.newPage();
  await strict.goto(`${TEST_ORIGIN}/no-wasm`);
  detail = solved(strict);
  await strict.locator("humanproof-widget .box").click();
  assert.equal((await detail).engine, "js");
  await strict.close();

  // One that forbids workers as well cannot run the environment check either: the widget
  // stops before it would redeem, with a reason the site's developer can act on.
  servePage("/no-workers", formPage(""), `default-src 'self'; script-src ${edge}; worker-src 'none'; connect-src ${edge}; form-action ${urls.demo}`);
  const bare = await browser.newPage();
  const redeems = [];
  bare.on("request", (request) => request.url().endsWith("/redeem") && redeems.push(request.url()));
  await bare.goto(`${TEST_ORIGIN}/no-workers`);
  const failed = bare.evaluate(() => new Promise((resolve) => document.addEventListener("error", (event) => resolve(event.detail), { once: true })));
  await bare.locator("humanproof-widget .box").click();
  const { reason, message } = await failed;
  assert.equal(reason, "workers_unavailable");
  assert.match(message, /worker-src blob:/);
  assert.deepEqual(redeems, []);
  await bare.close();
});

test("an edge refusal shows the error state with a retry", async () => {
  const errorOf = (page) =>
    page.evaluate(() => new Promise((resolve) => document.addEventListener("error", (event) => resolve(event.detail), { once: true })));

  // A refusal the page may read (its origin is allowed): the edge's code comes through.
  servePage("/bad-action", formPage('data-action="not allowed!"'));
  const page = await newPage();
  await page.goto(`${TEST_ORIGIN}/bad-action`);
  let failed = errorOf(page);
  await page.locator("humanproof-widget .box").click();
  assert.equal((await failed).reason, "invalid_action");
  const retry = page.locator("humanproof-widget .retry");
  assert.equal(await retry.isVisible(), true);
  assert.equal(await page.locator("humanproof-widget .live").textContent(), "Verification failed");
  failed = errorOf(page);
  await retry.click();
  assert.equal((await failed).reason, "invalid_action");
  await page.close();

  // The free plan requires full branding: the page's "none" is ignored, not sent and refused.
  servePage("/unbranded", formPage('data-branding="none"', freeSiteKey));
  const unbranded = await newPage();
  const warnings = [];
  unbranded.on("console", (message) => message.type() === "warning" && warnings.push(message.text()));
  await unbranded.goto(`${TEST_ORIGIN}/unbranded`);
  await unbranded.waitForFunction(() => document.querySelector("humanproof-widget").shadowRoot.querySelector(".brand").textContent === "Protected by HumanProof");
  const unbrandedSolved = solved(unbranded);
  await unbranded.locator("humanproof-widget .box").click();
  await unbrandedSolved;
  assert.match(warnings.join("\n"), /data-branding="none" is not in this site's plan/);
  await unbranded.close();

  // An origin the project does not list gets no CORS headers, so the browser hides the
  // refusal from the page: the widget still lands in the error state, as a network error.
  servePage("/foreign", formPage(""));
  const foreign = await newPage();
  await foreign.goto(`${FOREIGN_ORIGIN}/foreign`);
  failed = errorOf(foreign);
  await foreign.locator("humanproof-widget .box").click();
  assert.equal((await failed).reason, "network_error");
  assert.equal(await foreign.locator("humanproof-widget .retry").isVisible(), true);
  await foreign.close();
});

test("the dashboard's widget settings apply to a page without attributes; attributes override them", async () => {
  const looks = (page) =>
    page.evaluate(() => {
      const root = document.querySelector("humanproof-widget").shadowRoot;
      const widget = root.querySelector(".widget");
      return { ...widget.dataset, label: root.querySelector(".label").textContent, brand: root.querySelector(".brand").textContent };
    });
  // Nothing on the page but the site key: floating, dark, compact, German, minimal branding.
  servePage("/styled", formPage("", styledSiteKey));
  const page = await newPage();
  const starts = [];
  page.on("request", (request) => request.url().endsWith("/challenge") && starts.push(JSON.parse(request.postData())));
  await page.goto(`${TEST_ORIGIN}/styled`);
  await page.waitForFunction(() => document.querySelector("humanproof-widget").shadowRoot.querySelector(".widget").dataset.variant === "floating");
  assert.deepEqual(await looks(page), { theme: "dark", size: "compact", variant: "floating", state: "idle", label: "Ich bin ein Mensch", brand: "HumanProof" });
  // Floating waits for the submit; the start says what the visitor saw.
  const detail = solved(page);
  await page.evaluate(() => humanproof.execute());
  await detail;
  assert.deepEqual([starts[0].widget.variant, starts[0].widget.branding], ["floating", "minimal"]);
  assert.equal((await looks(page)).label, "Verifiziert");
  assert.deepEqual(page.problems, []);
  await page.close();

  // The page's attributes win where the plan allows.
  servePage("/restyled", formPage('data-variant="checkbox" data-theme="light" data-branding="full"', styledSiteKey));
  const restyled = await newPage();
  await restyled.goto(`${TEST_ORIGIN}/restyled`);
  await restyled.waitForFunction(() => document.querySelector("humanproof-widget").shadowRoot.querySelector(".label").textContent === "Ich bin ein Mensch");
  assert.deepEqual(await looks(restyled), { theme: "light", size: "compact", variant: "checkbox", state: "idle", label: "Ich bin ein Mensch", brand: "Geschützt durch HumanProof" });
  await restyled.close();
});

test("a paused project's widget says verification is paused and starts nothing", async () => {
  servePage("/paused", formPage("", pausedSiteKey));
  const page = await newPage();
  const starts = [];
  page.on("request", (request) => request.url().endsWith("/challenge") && starts.push(request.url()));
  await page.goto(`${TEST_ORIGIN}/paused`);
  const label = page.locator("humanproof-widget .label");
  await page.waitForFunction(() => document.querySelector("humanproof-widget").shadowRoot.querySelector(".widget").dataset.state === "paused");
  assert.equal(await label.textContent(), "Verification is paused on this site.");
  assert.equal(await page.locator("humanproof-widget .box").isDisabled(), true);
  assert.equal(await page.locator("humanproof-widget .retry").isVisible(), false);
  const reason = await page.evaluate(() => humanproof.execute().then(() => "solved", (error) => error.reason));
  assert.equal(reason, "project_paused");
  assert.equal(await label.textContent(), "Verification is paused on this site.");
  assert.deepEqual(starts, []);
  await page.close();
});

test("a rate-limited visitor is told how long to wait, in the widget's language", async () => {
  servePage("/one-start", formPage('data-language="de"', rateLimitedSiteKey));
  const page = await newPage();
  await page.goto(`${TEST_ORIGIN}/one-start`);
  const errorOf = () =>
    page.evaluate(() => new Promise((resolve) => document.addEventListener("error", (event) => resolve(event.detail), { once: true })));
  await page.locator("humanproof-widget .box").click();
  await page.waitForFunction(() => document.querySelector('input[name="humanproof-token"]')?.value);

  // The project allows one start per visitor in two minutes: a second verification is refused.
  await page.evaluate(() => document.querySelector("humanproof-widget").reset());
  const failed = errorOf();
  await page.locator("humanproof-widget .box").click();
  const detail = await failed;
  assert.equal(detail.reason, "rate_limited");
  assert.ok(detail.retryAfter > 0 && detail.retryAfter <= 120, `retryAfter ${detail.retryAfter}`);
  assert.equal(
    await page.locator("humanproof-widget .live").textContent(),
    `Zu viele Versuche. Bitte in ${detail.retryAfter}\u00a0s erneut versuchen.`,
  );
  assert.equal(await page.locator("humanproof-widget .retry").isVisible(), true);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("floating variant: hidden until form interaction starts the work, then shows progress and result", async () => {
  servePage("/floating", formPage('data-variant="floating" data-trigger="interaction"'));
  const page = await newPage();
  await page.goto(`${TEST_ORIGIN}/floating`);
  await page.waitForFunction(() => window.humanproof);
  // The badge itself (the host has no box of its own: the badge is position: fixed).
  const widget = page.locator("humanproof-widget .widget");
  assert.equal(await widget.isHidden(), true);
  const detail = solved(page);
  await page.focus("#email");
  await detail;
  assert.equal(await widget.isVisible(), true);
  assert.equal(await page.locator("humanproof-widget .label").textContent(), "Verified");
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("humanproof-widget").shadowRoot.querySelector(".widget")).position), "fixed");
  await page.close();
});

test("load trigger: an invisible widget verifies as soon as the page loads", async () => {
  servePage("/on-load", formPage('data-variant="invisible" data-trigger="load"'));
  const page = await newPage();
  await page.goto(`${TEST_ORIGIN}/on-load`);
  await page.waitForFunction(() => document.querySelector('input[name="humanproof-token"]')?.value.startsWith("hpv1."));
  await page.close();
});

test("keyboard: Tab to the checkbox and press Space", async () => {
  const page = await newPage();
  await page.goto(urls.demo);
  await page.focus("#message");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.tagName), "HUMANPROOF-WIDGET");
  const detail = solved(page);
  await page.keyboard.press("Space");
  await detail;
  assert.equal(await page.locator("humanproof-widget .box").getAttribute("aria-checked"), "true");
  await page.close();
});

test("language from the attribute, else the page; dark theme", async () => {
  servePage("/french", formPage('data-theme="dark"').replace('<html lang="en">', '<html lang="fr-CA">'));
  servePage("/german", formPage('data-language="de"').replace('<html lang="en">', '<html lang="fr">'));
  const page = await newPage();
  await page.goto(`${TEST_ORIGIN}/french`);
  await page.waitForFunction(() => window.humanproof);
  assert.equal(await page.locator("humanproof-widget .label").textContent(), "Je suis humain");
  const background = await page.evaluate(() => getComputedStyle(document.querySelector("humanproof-widget").shadowRoot.querySelector(".widget")).backgroundColor);
  assert.equal(background, "rgb(13, 17, 23)");
  await page.goto(`${TEST_ORIGIN}/german`);
  await page.waitForFunction(() => window.humanproof);
  assert.equal(await page.locator("humanproof-widget .label").textContent(), "Ich bin ein Mensch");
  await page.close();
});

test("reduced motion: the verifying spinner stands still", async () => {
  servePage("/motion", formPage(""));
  const spinnerWhileVerifying = async (reducedMotion) => {
    const page = await newPage();
    await page.emulateMedia({ reducedMotion });
    await page.goto(`${TEST_ORIGIN}/motion`);
    await page.waitForFunction(() => window.humanproof);
    const animation = page.evaluate(
      () =>
        new Promise((resolve) => {
          const widget = document.querySelector("humanproof-widget");
          widget.addEventListener("progress", () => resolve(getComputedStyle(widget.shadowRoot.querySelector(".mark")).animationName), { once: true });
        }),
    );
    await page.locator("humanproof-widget .box").click();
    const name = await animation;
    await page.close();
    return name;
  };
  assert.equal(await spinnerWhileVerifying("no-preference"), "spin");
  assert.equal(await spinnerWhileVerifying("reduce"), "none");
});

test("without constructable stylesheets the widget inlines its style with the page's nonce", async () => {
  const edge = urls.edge;
  const csp = `default-src 'self'; script-src ${edge} 'wasm-unsafe-eval'; style-src 'nonce-r4nd0m'; worker-src blob:; connect-src ${edge}; form-action ${urls.demo}`;
  servePage("/nonce", formPage('data-nonce="r4nd0m"'), csp);
  servePage("/no-nonce", formPage(""), csp);
  const styleOf = async (path) => {
    const page = await newPage();
    await page.addInitScript(() => delete ShadowRoot.prototype.adoptedStyleSheets);
    await page.goto(`${TEST_ORIGIN}${path}`);
    await page.waitForFunction(() => window.humanproof);
    const style = await page.evaluate(() => {
      const root = document.querySelector("humanproof-widget").shadowRoot;
      return { nonce: root.querySelector("style")?.nonce, liveRegionWidth: getComputedStyle(root.querySelector(".live")).width };
    });
    style.problems = page.problems;
    await page.close();
    return style;
  };

  const withNonce = await styleOf("/nonce");
  assert.equal(withNonce.nonce, "r4nd0m");
  assert.equal(withNonce.liveRegionWidth, "1px", "the inlined style applies");
  assert.deepEqual(withNonce.problems, []);

  // Without the nonce the page's policy blocks the style, and says so.
  const withoutNonce = await styleOf("/no-nonce");
  assert.notEqual(withoutNonce.liveRegionWidth, "1px");
  assert.ok(withoutNonce.problems.some((problem) => problem.startsWith("CSP violation: style-src")), withoutNonce.problems.join("\n"));
});

test("after the browser sessions, the database holds their telemetry but no raw user agent", async () => {
  // Last in the file, so every other test's requests have been made.
  const database = join(dataDir, "humanproof.db");
  const env = { ...process.env, HUMANPROOF_DATABASE_URL: `sqlite://${database}?mode=rwc` };
  const entry = JSON.parse(execFileSync(BINARY, ["snapshot"], { env, encoding: "utf8" })).find((pair) => pair.key === `site:${SITE_KEY}`);
  const projectId = JSON.parse(entry.value).project_id;
  const usage = () => JSON.parse(execFileSync(BINARY, ["usage", "--project-id", projectId], { env, encoding: "utf8" })).usage;
  const deadline = Date.now() + 10000;
  while (usage().protected_attempts < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(usage().protected_attempts >= 5, JSON.stringify(usage()));
  const stored = [database, `${database}-wal`].filter(existsSync).map((file) => readFileSync(file).toString("latin1")).join("");
  for (const raw of ["HeadlessChrome/", DESKTOP_CHROME]) {
    assert.ok(!stored.includes(raw), `${raw} is stored`);
  }
});
