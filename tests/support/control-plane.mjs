// Runs the real control plane binary: the CLI for setup, `serve` for siteverify and
// telemetry ingestion, on a throwaway SQLite file.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const BINARY = process.env.HUMANPROOF_BIN ?? join(ROOT, "target/debug/humanproof");

/** Spawns the binary and resolves once its stdout matches `ready`, with what it printed.
 *  Keeps reading stdout afterwards, so the process never writes into a closed pipe. */
export function spawnUntil(args, env, ready) {
  const child = spawn(BINARY, args, { env, stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (chunk) => {
      output += chunk;
      if (ready.test(output)) resolve({ child, output });
    });
    child.on("exit", (code) => reject(new Error(`humanproof ${args[0]} exited (${code}) before it was ready: ${output}`)));
  });
}

/** Stops a spawned process with SIGTERM and waits for it to exit. */
export async function stopProcess(child) {
  if (!child || child.exitCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await exited;
}

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

  /** This month's starts per country and per network (AS number). */
  networks(projectId) {
    const { countries, networks } = JSON.parse(this.cli("usage", "--project-id", projectId));
    return { countries, networks };
  }

  /** Starts `humanproof serve` on `listen` (default: any free port) and waits until it listens. */
  async start(listen = "127.0.0.1:0") {
    const ready = /listening on (http:\/\/\S+)\n/;
    const { child, output } = await spawnUntil(["serve", "--listen", listen], this.env, ready);
    this.process = child;
    this.url = output.match(ready)[1];
    return this.url;
  }

  stop() {
    return stopProcess(this.process);
  }
}
