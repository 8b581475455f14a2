// The environment check in real Chromium: for each obfuscation level, sample scripts from
// `humanproof instrumentation` run in a dedicated worker from a blob: URL, under a strict CSP
// with no eval, and must post the answer the edge expects. Outside a browser (Node's worker
// threads, which lack FileReaderSync and OffscreenCanvas) the same scripts give no answer.
// A worker without OffscreenCanvas (older Safari) answers only the check without a canvas.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { Worker } from "node:worker_threads";
import { BINARY } from "../support/control-plane.mjs";
import { launchChromium } from "../support/browser.mjs";

const SAMPLES_PER_LEVEL = 3;
let browser;
let server;
let origin;

before(async () => {
  // A blank page under the policy the README documents for embedding the widget.
  server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html", "content-security-policy": "default-src 'self'; script-src 'self'; worker-src blob:" });
    res.end("<!doctype html><title>check</title>");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

function sample(level, ...flags) {
  return JSON.parse(execFileSync(BINARY, ["instrumentation", "--level", level, ...flags], { encoding: "utf8" }));
}

/** Runs `source` in a dedicated worker from a blob: URL in `page`, and returns what it posts. */
function runInWorker(page, source) {
  return page.evaluate(
    (code) =>
      new Promise((resolve) => {
        const worker = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
        worker.onmessage = (event) => resolve(event.data);
        worker.onerror = (event) => resolve({ error: event.message });
      }),
    source,
  );
}

for (const level of ["lighter", "default", "stronger"]) {
  test(`${level}: Chromium computes the edge's answer, Node cannot`, async () => {
    const page = await browser.newPage();
    const violations = [];
    page.on("console", (message) => violations.push(message.text()));
    await page.goto(origin);
    for (let i = 0; i < SAMPLES_PER_LEVEL; i++) {
      const { script, answer } = sample(level);
      assert.doesNotMatch(script, /\beval\b|Function\(/);
      assert.deepEqual(await runInWorker(page, script), { answer }, `sample ${i}`);

      const inNode = await new Promise((resolve) => {
        const worker = new Worker(script, { eval: true });
        worker.once("message", resolve);
        worker.once("error", (error) => resolve({ error: error.message }));
      });
      assert.ok(!("answer" in inNode), `Node answered ${JSON.stringify(inNode)}`);
    }
    assert.deepEqual(violations.filter((text) => /Content Security Policy/i.test(text)), []);
    await page.close();
  });
}

test("a browser without OffscreenCanvas fails the full check and passes the one without a canvas", async () => {
  const page = await browser.newPage();
  await page.goto(origin);
  // Safari before 16.4, as far as the check can tell: its workers have no OffscreenCanvas.
  const olderBrowser = (script) => `delete self.OffscreenCanvas;${script}`;
  for (const level of ["lighter", "stronger"]) {
    const full = sample(level);
    assert.ok("error" in (await runInWorker(page, olderBrowser(full.script))), `${level}: the full check needs a canvas`);
    const partial = sample(level, "--without-canvas");
    assert.doesNotMatch(partial.script, /OffscreenCanvas/);
    assert.deepEqual(await runInWorker(page, olderBrowser(partial.script)), { answer: partial.answer }, level);
  }
  await page.close();
});
