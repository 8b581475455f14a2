// Runs the real control plane binary: the CLI for setup, `serve` for siteverify and
// telemetry ingestion, on a throwaway SQLite file.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";

export const ROOT = new URL("../../../", import.meta.url).pathname;
const BINARY = process.env.HUMANPROOF_BIN ?? join(ROOT, "target/debug/humanproof");

export class ControlPlane {
  constructor(masterSecret) {
    this.dir = mkdtempSync(join(tmpdir(), "humanproof-workerd-"));
    this.env = {
      ...process.env,
      HUMANPROOF_DATABASE_URL: `sqlite://${join(this.dir, "control.db")}?mode=rwc`,
      HUMANPROOF_MASTER_SECRET: masterSecret,
      RUST_LOG: "warn",
    };
  }

  cli(...args) {
    return execFileSync(BINARY, args, { env: this.env, encoding: "utf8" });
  }

  createProject(name, ...flags) {
    return JSON.parse(this.cli("project", "create", "--name", name, ...flags));
  }

  /** The snapshot as `wrangler kv bulk put` input, from the control plane's own builder. */
  snapshotPairs() {
    return JSON.parse(this.cli("snapshot"));
  }

  usage(projectId) {
    return JSON.parse(this.cli("usage", "--project-id", projectId)).usage;
  }

  /** Starts `humanproof serve` on `listen` (default: any free port) and waits until it listens. */
  async start(listen = "127.0.0.1:0") {
    this.process = spawn(BINARY, ["serve", "--listen", listen], { env: this.env, stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    for await (const chunk of this.process.stdout) {
      output += chunk;
      const match = output.match(/listening on (http:\/\/\S+)/);
      if (match) {
        this.url = match[1];
        return this.url;
      }
    }
    throw new Error(`control plane exited before listening: ${output}`);
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = once(this.process, "exit");
    this.process.kill("SIGTERM");
    await exited;
  }
}
