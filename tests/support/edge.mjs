// The built wasm edge worker in workerd through Miniflare, with the bindings declared in the
// repository's wrangler.toml: what the workerd tests and the edge benchmark both run.
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { ROOT } from "./control-plane.mjs";

/** What `worker-build` makes (`./dev test` and `./dev bench edge` build it first). */
export const EDGE_BUNDLE = join(ROOT, "edge-worker/build/worker/shim.mjs");

/** A new workerd running the bundle, its queue consumers posting to `controlPlaneUrl`.
 *  `queueBatchTimeout` (seconds), when given, replaces wrangler.toml's batching window;
 *  `telemetryRetry` ({ minSeconds, maxSeconds, maxRetries }, each optional) replaces its
 *  waits between delivery tries and the telemetry queue's tries before the dead-letter queue,
 *  so a test can outlast them in seconds on the same code path; `inspectorPort` opens V8's
 *  inspector (the edge benchmark's CPU profile); `rswKey` is the `HUMANPROOF_RSW_KEY` secret;
 *  `handleRuntimeStdio(stdout, stderr)` takes workerd's output (the Worker's console). */
export function newEdge({ controlPlaneUrl, masterSecret, rswKey, queueBatchTimeout, telemetryRetry = {}, inspectorPort, handleRuntimeStdio }) {
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"));
  for (const consumer of Object.values(workerOptions.queueConsumers)) {
    if (queueBatchTimeout !== undefined) consumer.maxBatchTimeout = queueBatchTimeout;
    if (telemetryRetry.maxRetries !== undefined && consumer.deadLetterQueue) consumer.maxRetries = telemetryRetry.maxRetries;
  }
  const retryVars = {
    ...(telemetryRetry.minSeconds !== undefined && { TELEMETRY_RETRY_MIN_SECONDS: String(telemetryRetry.minSeconds) }),
    ...(telemetryRetry.maxSeconds !== undefined && { TELEMETRY_RETRY_MAX_SECONDS: String(telemetryRetry.maxSeconds) }),
  };
  return new Miniflare({
    ...workerOptions,
    modules: true,
    modulesRoot: ROOT,
    scriptPath: EDGE_BUNDLE,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    bindings: {
      ...workerOptions.bindings,
      ...retryVars,
      ...(rswKey && { HUMANPROOF_RSW_KEY: rswKey }),
      CONTROL_PLANE_URL: controlPlaneUrl,
      HUMANPROOF_MASTER_SECRET: masterSecret,
    },
    host: "127.0.0.1",
    inspectorPort,
    handleRuntimeStdio,
  });
}

/** Puts the control plane's snapshot into the edge's KV, as `wrangler kv bulk put` does. */
export async function seedSnapshot(mf, control) {
  const kv = await mf.getKVNamespace("SNAPSHOT");
  for (const { key, value } of control.snapshotPairs()) await kv.put(key, value);
}
