import autocannon from "autocannon";
import { randomBytes } from "node:crypto";
import { ControlPlane } from "../support/control-plane.mjs";
import { projectKey, sign } from "../support/tokens.mjs";
const MASTER_SECRET = randomBytes(32).toString("hex");
const REQUESTS = Number(process.env.N ?? 40000);
const control = new ControlPlane(MASTER_SECRET);
if (process.env.DBURL) control.env.HUMANPROOF_DATABASE_URL = process.env.DBURL;
const project = control.createProject("bench", "--production-domain", "shop.example");
const base = await control.start();
console.log("pid", control.process.pid);
const key = projectKey(MASTER_SECRET, project.project_id, 1);
for (let round = 0; round < Number(process.env.ROUNDS ?? 3); round++) {
  const now = Date.now();
  const bodies = Array.from({ length: REQUESTS }, () => new URLSearchParams({ secret: project.secret, response: sign(key, "hpv1", {
    sk: project.site_key, jti: randomBytes(16).toString("hex"), cid: randomBytes(16).toString("hex"),
    iat: now, exp: now + 3_600_000, host: "shop.example", d: 4, c: 40 }) }).toString());
  let next = 0;
  const t0 = process.hrtime.bigint();
  let first = 0n, last = 0n, n = 0;
  const inst = autocannon({ url: `${base}/siteverify`, connections: Number(process.env.C ?? 10), amount: REQUESTS, method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++] }) }] });
  inst.on("response", () => { last = process.hrtime.bigint(); if (!n++) first = last; });
  const r = await inst;
  console.log("round", round, Math.round(n / (Number(last - first) / 1e9)), "req/s; non2xx", r.non2xx, "errors", r.errors, "p99", r.latency.p99);
}
await control.stop();
