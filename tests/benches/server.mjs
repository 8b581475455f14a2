// `./dev bench server`: siteverify over HTTP, the production binary (`humanproof serve`,
// release build) on SQLite and on PostgreSQL, next to Cap's `@cap.js/server` (in memory, behind
// the smallest Node HTTP front), driven by autocannon at the same concurrency with the same
// request mix, taking turns, three rounds; prints medians with min and max, and the ratios.
//
// Each request is one of: a fresh token (verified once, must succeed), a duplicate of a token
// sent earlier in the run (possibly still in flight: must fail), or garbage (must fail). The
// run fails loudly if any answer is not what its request deserves, or on any error or 5xx.
//
// Then telemetry ingestion: signed batches of 100 events (the edge queue's batch size) posted
// by 4 senders to `POST /internal/telemetry`, next to the same rows written straight into the
// same database as one multi-row INSERT per batch, each in its own transaction (psql or the
// sqlite3 shell, one connection): what storing them costs without the HTTP hop, signature,
// idempotency and usage counters. Taking turns, three rounds.
import autocannon from "autocannon";
import { createHash, randomBytes } from "node:crypto";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { cpus, totalmem } from "node:os";
import { ControlPlane, ROOT, stopProcess } from "../support/control-plane.mjs";
import { projectKey, sign, signBatch } from "../support/tokens.mjs";
import { median, percentile } from "../support/stats.mjs";

const CONNECTIONS = 10;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20000);
const ROUNDS = 3;
const MASTER_SECRET = randomBytes(32).toString("hex");

/** What the i-th request of a run is: 85 % fresh, 10 % a repeat of the request 5 before, 5 % garbage. */
function kindOf(i) {
  if (i % 20 === 7) return "garbage";
  if (i % 10 === 5 && i >= 5) return "duplicate";
  return "fresh";
}
const expectedSuccesses = Array.from({ length: REQUESTS }, (_, i) => kindOf(i)).filter((k) => k === "fresh").length;

/** Drives `url` with `bodies[i]` as the i-th request; returns figures and the outcome counts. */
async function drive(url, bodies) {
  let next = 0;
  let successes = 0;
  let serverErrors = 0;
  const latencies = new Float64Array(bodies.length + CONNECTIONS);
  let answered = 0;
  let first = 0n;
  let last = 0n;
  const instance = autocannon({
    url,
    connections: CONNECTIONS,
    amount: bodies.length,
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    requests: [
      {
        setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
        onResponse: (status, body) => {
          if (status >= 500) serverErrors++;
          if (status === 200 && body.includes('"success":true')) successes++;
        },
      },
    ],
  });
  instance.on("start", () => (first = process.hrtime.bigint()));
  // autocannon's own percentiles are whole milliseconds; these are exact.
  instance.on("response", (_client, _status, _bytes, ms) => {
    last = process.hrtime.bigint();
    if (answered < latencies.length) latencies[answered++] = ms;
  });
  const result = await instance;
  const answeredLatencies = latencies.subarray(0, answered);
  return {
    perSecond: answered / (Number(last - first) / 1e9),
    p50: percentile(answeredLatencies, 50),
    p99: percentile(answeredLatencies, 99),
    errors: result.errors + result.timeouts + serverErrors,
    successes,
  };
}

/** The request bodies of one run against our siteverify: tokens minted with the master secret. */
function ourBodies(project) {
  const key = projectKey(MASTER_SECRET, project.project_id, 1);
  const now = Date.now();
  const tokens = [];
  return Array.from({ length: REQUESTS }, (_, i) => {
    let token;
    switch (kindOf(i)) {
      case "garbage":
        token = `hpv1.${randomBytes(24).toString("base64url")}.${randomBytes(32).toString("base64url")}`;
        break;
      case "duplicate":
        token = tokens[i - 5];
        break;
      default:
        token = sign(key, "hpv1", {
          sk: project.site_key, jti: randomBytes(16).toString("hex"), cid: randomBytes(16).toString("hex"),
          iat: now, exp: now + 3_600_000, host: "shop.example", d: 4, c: 40,
        });
    }
    tokens[i] = token;
    return new URLSearchParams({ secret: project.secret, response: token }).toString();
  });
}

/** Cap's token for request `i` of run `run`: `<id>:<verification>`, derived so that the Cap
 *  process can seed exactly the tokens this process will send. */
function capToken(run, i) {
  const digest = createHash("sha256").update(`${run}/${i}`).digest("hex");
  return `${digest.slice(0, 16)}:${digest.slice(16, 46)}`;
}

/** Cap's siteverify in a process of its own, as ours runs in its own: `@cap.js/server` in
 *  memory (no state file), every token of every run seeded as its redeem stores them, and
 *  `validateToken` (single use) behind a minimal HTTP front. */
async function startCap() {
  const secret = "cap-bench-secret";
  const program = `
    import Cap from "@cap.js/server";
    import { createHash } from "node:crypto";
    import { createServer } from "node:http";
    const cap = new Cap({ noFSState: true, disableAutoCleanup: true });
    const expires = Date.now() + 3_600_000;
    ${capToken.toString()}
    for (let run = 0; run < ${ROUNDS}; run++) {
      for (let i = 0; i < ${REQUESTS}; i++) {
        const [id, verification] = capToken(run, i).split(":");
        cap.config.state.tokensList[id + ":" + createHash("sha256").update(verification).digest("hex")] = expires;
      }
    }
    const server = createServer((req, res) => {
      const chunks = [];
      req.on("data", (chunk) => chunks.push(chunk));
      req.on("end", async () => {
        const body = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
        if (body.secret !== "${secret}") return res.writeHead(401).end('{"success":false}');
        const { success } = await cap.validateToken(body.response);
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ success }));
      });
    });
    server.listen(0, "127.0.0.1", () => console.log("listening " + server.address().port));
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", program], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const exited = once(child, "exit").then(([code]) => Promise.reject(new Error(`Cap's server exited (${code})`)));
  const [line] = await Promise.race([once(child.stdout, "data"), exited]);
  exited.catch(() => {}); // stopping it later is not a failure
  const port = String(line).match(/listening (\d+)/)[1];
  let run = 0;
  const bodies = () => {
    const tokens = [];
    const thisRun = run++;
    return Array.from({ length: REQUESTS }, (_, i) => {
      let token;
      switch (kindOf(i)) {
        case "garbage":
          token = `${randomBytes(8).toString("hex")}:${randomBytes(15).toString("hex")}`;
          break;
        case "duplicate":
          token = tokens[i - 5];
          break;
        default:
          token = capToken(thisRun, i);
      }
      tokens[i] = token;
      return new URLSearchParams({ secret, response: token }).toString();
    });
  };
  return { url: `http://127.0.0.1:${port}/siteverify`, bodies, stop: () => stopProcess(child) };
}

async function startOurs(databaseUrl) {
  const control = new ControlPlane(MASTER_SECRET);
  if (databaseUrl) control.env.HUMANPROOF_DATABASE_URL = databaseUrl;
  const project = control.createProject("bench", "--production-domain", "shop.example");
  const base = await control.start();
  return {
    url: `${base}/siteverify`,
    bodies: () => ourBodies(project),
    stop: () => control.stop(),
    telemetry: { base, project, databaseUrl: control.env.HUMANPROOF_DATABASE_URL },
  };
}

const TELEMETRY_BATCH = 100;
const TELEMETRY_BATCHES = Number(process.env.BENCH_TELEMETRY_BATCHES ?? 200);
const TELEMETRY_SENDERS = 4;
const KINDS = ["challenge_issued", "redeem_succeeded", "challenge_issued", "redeem_failed", "challenge_blocked"];

/** A run's events, in batches, as the edge sends them: hashed visitor, page, network. */
function telemetryBatches(project) {
  const now = Date.now();
  return Array.from({ length: TELEMETRY_BATCHES }, () =>
    Array.from({ length: TELEMETRY_BATCH }, (_, i) => ({
      id: randomBytes(16).toString("hex"),
      kind: KINDS[i % KINDS.length],
      at: now,
      project_id: project.project_id,
      site_key: project.site_key,
      challenge_id: randomBytes(16).toString("hex"),
      hostname: "shop.example",
      difficulty: 4,
      ip_hash: randomBytes(32).toString("hex"),
      ua_hash: randomBytes(32).toString("hex"),
      network: { country: "DE", asn: 3320 },
    })),
  );
}

/** Posts every batch, signed, from `TELEMETRY_SENDERS` senders; events stored per second. */
async function ingestOverHttp({ base }, batches) {
  let next = 0;
  const started = process.hrtime.bigint();
  const sender = async () => {
    while (next < batches.length) {
      const body = JSON.stringify({ events: batches[next++] });
      const answer = await fetch(`${base}/internal/telemetry`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-humanproof-signature": signBatch(MASTER_SECRET, Date.now(), body) },
        body,
      });
      const outcome = await answer.json();
      if (answer.status !== 200 || outcome.stored !== TELEMETRY_BATCH) throw new Error(`ingest: ${answer.status} ${JSON.stringify(outcome)}`);
    }
  };
  await Promise.all(Array.from({ length: TELEMETRY_SENDERS }, sender));
  return (batches.length * TELEMETRY_BATCH) / (Number(process.hrtime.bigint() - started) / 1e9);
}

/** The same rows straight into the database: a multi-row INSERT per batch, a transaction
 *  each, through one connection of the database's own shell; events stored per second. */
function rawInsert({ databaseUrl }, batches) {
  const text = (value) => `'${value}'`;
  const script = batches
    .map((batch) => {
      const rows = batch.map((e) =>
        `(${[text(e.id), text(e.project_id), text(e.kind), "NULL", e.at, text(e.challenge_id), text(e.hostname), e.difficulty, text(e.ip_hash), text(e.ua_hash), e.at].join(", ")})`,
      );
      return `BEGIN;\nINSERT INTO telemetry_events (id, project_id, kind, reason, at, challenge_id, hostname, difficulty, ip_hash, ua_hash, received_at) VALUES ${rows.join(", ")};\nCOMMIT;\n`;
    })
    .join("");
  const started = process.hrtime.bigint();
  if (databaseUrl.startsWith("sqlite:")) {
    const path = databaseUrl.replace(/^sqlite:\/\//, "").replace(/\?.*$/, "");
    // As `serve` opens it: WAL (kept in the file) and synchronous=NORMAL.
    execFileSync("sqlite3", [path], { input: `.timeout 5000\nPRAGMA synchronous=NORMAL;\n${script}` });
  } else {
    execFileSync(process.env.PSQL ?? "psql", [databaseUrl, "-q", "-v", "ON_ERROR_STOP=1"], { input: script });
  }
  return (batches.length * TELEMETRY_BATCH) / (Number(process.hrtime.bigint() - started) / 1e9);
}

function freshPostgresDatabase(adminUrl) {
  const name = `hp_bench_${randomBytes(4).toString("hex")}`;
  execFileSync(process.env.PSQL ?? "psql", [adminUrl, "-q", "-c", `CREATE DATABASE ${name}`]);
  return adminUrl.replace(/\/[^/]*$/, `/${name}`);
}

const spread = (values, digits) =>
  `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;

const servers = { "ours, SQLite": await startOurs() };
const postgres = process.env.HUMANPROOF_BENCH_POSTGRES_URL;
if (postgres) servers["ours, PostgreSQL"] = await startOurs(freshPostgresDatabase(postgres));
servers["Cap 4.0.5, in memory"] = await startCap();

console.log(`siteverify over HTTP: ${cpus().length} × ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB`);
console.log(`autocannon, ${CONNECTIONS} connections, ${REQUESTS} requests a run (${expectedSuccesses} fresh tokens, the rest duplicates and garbage), ${ROUNDS} rounds taking turns`);
const figures = Object.fromEntries(Object.keys(servers).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, server] of Object.entries(servers)) {
    const run = await drive(server.url, server.bodies());
    if (run.successes !== expectedSuccesses || run.errors !== 0) {
      throw new Error(`${name}: ${run.successes} successes (expected ${expectedSuccesses}), ${run.errors} errors`);
    }
    figures[name].push(run);
  }
}

const ingestion = {};
for (const [name, server] of Object.entries(servers)) {
  if (!server.telemetry) continue;
  ingestion[name] = { ingest: [], raw: [] };
  for (let round = 0; round < ROUNDS; round++) {
    ingestion[name].ingest.push(await ingestOverHttp(server.telemetry, telemetryBatches(server.telemetry.project)));
    ingestion[name].raw.push(rawInsert(server.telemetry, telemetryBatches(server.telemetry.project)));
  }
}
for (const server of Object.values(servers)) await server.stop();

const capRate = median(figures["Cap 4.0.5, in memory"].map((run) => run.perSecond));
console.log("\n| server | req/s | p50 ms | p99 ms | errors | ÷ Cap |\n| --- | --- | --- | --- | --- | --- |");
for (const [name, runs] of Object.entries(figures)) {
  const rates = runs.map((run) => run.perSecond);
  console.log(
    `| ${name} | ${spread(rates, 0)} | ${spread(runs.map((run) => run.p50), 2)} | ${spread(runs.map((run) => run.p99), 2)} | ${runs.reduce((sum, run) => sum + run.errors, 0)} | ${(median(rates) / capRate).toFixed(2)}× |`,
  );
}

console.log(
  `\ntelemetry ingestion: ${TELEMETRY_BATCHES} batches of ${TELEMETRY_BATCH} events a run, ${TELEMETRY_SENDERS} senders over HTTP, next to the same rows INSERTed straight (one transaction a batch), ${ROUNDS} rounds taking turns`,
);
console.log("\n| database | ingest over HTTP, events/s | raw INSERT, events/s | ingest ÷ raw |\n| --- | --- | --- | --- |");
for (const [name, { ingest, raw }] of Object.entries(ingestion)) {
  console.log(`| ${name} | ${spread(ingest, 0)} | ${spread(raw, 0)} | ${(median(ingest) / median(raw)).toFixed(2)}× |`);
}
