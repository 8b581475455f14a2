// The dashboard's pages as people with other needs meet them, in real headless Chromium against
// `humanproof dev`: axe-core's WCAG 2.1 AA and best-practice rules, light and dark, no page
// wider than a phone's screen, and screenshots at 1280 and 390 px in target/test-output/pages/
// for a person to look over. A file of its own, so that its 19 pages, each shot four times,
// have the file's whole time limit.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { launchChromium } from "../support/browser.mjs";
import { LocalPlatform } from "../support/dashboard.mjs";

let platform;
let browser;

before(async () => {
  platform = await LocalPlatform.start();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await platform?.stop();
});

test("accessibility: axe-core finds nothing on the main pages, light and dark, and screenshots at 1280 and 390 px", async () => {
  const { dashboard } = platform;
  const axeSource = readFileSync(join(process.cwd(), "node_modules", "axe-core", "axe.min.js"), "utf8");
  const output = join(process.cwd(), "target", "test-output", "pages");
  mkdirSync(output, { recursive: true });
  // One organisation with a project, a key and traffic, so every page has something on it.
  const setup = await browser.newContext();
  const owner = await setup.newPage();
  await platform.signUp(owner, "inspector@shop.example");
  await owner.goto(dashboard);
  const projects = owner.url();
  const org = projects.match(/\/orgs\/([0-9a-f]+)\//)[1];
  await owner.getByRole("link", { name: "New project" }).click();
  await owner.getByLabel("Name", { exact: true }).fill("Inspected");
  await owner.getByLabel("Testing domains").fill("localhost");
  await owner.getByRole("button", { name: "Create project" }).click();
  await owner.locator("#secret").waitFor();
  const project = owner.url();
  await owner.goto(`${project}/usage`);
  await owner.getByRole("button", { name: "Add a week of made-up traffic (local server only)" }).click();
  await owner.goto(`${dashboard}/orgs/${org}/api-keys`);
  await owner.locator('input[name="name"]').fill("ci");
  await owner.getByLabel("projects:read").check();
  await owner.getByRole("button", { name: "Create key" }).click();
  await owner.getByText("API key created.").waitFor();
  const cookies = await setup.cookies();
  await setup.close();

  const pages = {
    "sign-in": "/sign-in", "sign-up": "/sign-up", projects: `/orgs/${org}/projects`, settings: new URL(project).pathname,
    integration: `${new URL(project).pathname}/integration`, usage: `${new URL(project).pathname}/usage`,
    risk: `${new URL(project).pathname}/risk`, members: `/orgs/${org}/members`, "api-keys": `/orgs/${org}/api-keys`,
    audit: `/orgs/${org}/audit`, billing: `/orgs/${org}/billing`, account: "/account", contact: "/contact",
    privacy: "/privacy", "how-it-works": "/how-it-works", dpa: "/dpa", "api-reference": "/api-reference",
    docs: "/docs", "new-organisation": "/orgs/new",
  };
  const found = [];
  for (const colorScheme of ["light", "dark"]) {
    for (const width of [1280, 390]) {
      const context = await browser.newContext({ colorScheme, viewport: { width, height: 900 } });
      await context.addCookies(cookies);
      const page = await context.newPage();
      for (const [name, path] of Object.entries(pages)) {
        await page.goto(`${dashboard}${path}`);
        // The signed-out pages are looked at signed in too: the same frame, more in it. The docs
        // page (the whole README) is shot to the screen's height: full length, its four shots
        // took most of a minute, and axe and the width check still read all of it.
        await page.screenshot({ path: join(output, `${name}-${width}-${colorScheme}.png`), fullPage: name !== "docs" });
        if (width !== 1280) continue;
        // Injected through the DevTools protocol, which the pages' script policy does not govern.
        await page.evaluate(axeSource);
        const result = await page.evaluate(() => window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }));
        for (const violation of result.violations) {
          found.push(`${name} (${colorScheme}): ${violation.id} — ${violation.nodes.slice(0, 3).map((node) => node.target.join(" ")).join(", ")}`);
        }
      }
      // Nothing important starts off-screen on a phone: no page is wider than the screen.
      if (width === 390) {
        for (const [name, path] of Object.entries(pages)) {
          await page.goto(`${dashboard}${path}`);
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          if (overflow > 0) found.push(`${name} (${colorScheme}, 390 px): ${overflow} px wider than the screen`);
        }
      }
      await context.close();
    }
  }
  assert.deepEqual(found, []);
});
