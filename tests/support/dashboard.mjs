// `humanproof dev` for the dashboard's browser tests, and the steps they all start with.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnUntil, stopProcess } from "./control-plane.mjs";

export class LocalPlatform {
  /** Starts `humanproof dev` on free ports and a throwaway data folder. */
  static async start() {
    const dataDir = mkdtempSync(join(tmpdir(), "humanproof-dashboard-"));
    const args = ["dev", "--data-dir", dataDir, "--control-listen", "127.0.0.1:0", "--edge-listen", "127.0.0.1:0", "--demo-listen", "127.0.0.1:0"];
    const { child, output } = await spawnUntil(args, { ...process.env, RUST_LOG: "warn" }, /Press Ctrl-C/);
    return new LocalPlatform(child, output);
  }

  constructor(child, output) {
    this.child = child;
    this.dashboard = output.match(/dashboard\s+(\S+)/)[1];
    this.siteverify = output.match(/siteverify\s+(\S+)/)[1];
  }

  /**
   * Follows the newest emailed confirmation link to `email` from the dev outbox: it confirms
   * the address and signs the new account in.
   */
  async confirmFromOutbox(page, email) {
    await page.goto(`${this.dashboard}/dev/outbox`);
    const message = page.locator("article").filter({ hasText: `To: ${email}` }).first();
    await message.locator('a[href*="/verify-email?token="]').click();
  }

  /** Signs up through the form in English, then confirms the address from the outbox. */
  async signUp(page, email) {
    await page.goto(`${this.dashboard}/sign-up`);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("a long enough passphrase");
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByRole("heading", { name: "Check your email" }).waitFor();
    await this.confirmFromOutbox(page, email);
    await page.getByRole("heading", { name: "Email confirmed" }).waitFor();
  }

  async stop() {
    await stopProcess(this.child);
  }
}
