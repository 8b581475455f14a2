// The widget's RSW solver against the vectors the edge's issuer checks too
// (tests/vectors/rsw.json, read by protocol/src/rsw.rs): the same N, x and t give the same y.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { isRswPuzzle, solveRsw } from "../../widget/src/rsw.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/rsw.json", import.meta.url), "utf8"));

test("the BigInt solver answers the shared vectors as Cap's widget would", () => {
  for (const { t, x, y } of vectors.cases) {
    const answer = solveRsw({ N: vectors.N, x, t });
    // Lowercase without leading zeros, as Cap's widget sends `y.toString(16)`; the edge
    // reads it as a number.
    assert.equal(answer, y.replace(/^0+/, ""), `t=${t}`);
  }
});

test("progress is reported as the squarings go, ending at t", () => {
  const { x, t } = vectors.cases.find((c) => c.t === 10_000);
  const reports = [];
  solveRsw({ N: vectors.N, x, t }, (done) => reports.push(done));
  assert.ok(reports.length >= 5, `${reports.length} reports`);
  assert.deepEqual(reports, [...reports].sort((a, b) => a - b));
  assert.equal(reports.at(-1), t);
});

test("only well-formed RSW puzzles are taken", () => {
  const good = { protocol: "rsw", payload: { N: vectors.N, x: vectors.cases[0].x, t: 5 } };
  assert.ok(isRswPuzzle(good));
  for (const bad of [
    null,
    { protocol: "sha256-pow", payload: { salt: "ab", target: "0" } },
    { protocol: "rsw", payload: { ...good.payload, N: "0x12" } },
    { protocol: "rsw", payload: { ...good.payload, N: "0" } },
    { protocol: "rsw", payload: { ...good.payload, N: "001" } },
    { protocol: "rsw", payload: { ...good.payload, x: "f".repeat(513) } },
    { protocol: "rsw", payload: { ...good.payload, t: -1 } },
    { protocol: "rsw", payload: { ...good.payload, t: 2 ** 60 } },
    { protocol: "rsw", payload: { ...good.payload, t: "5" } },
  ]) {
    assert.equal(isRswPuzzle(bad), false, JSON.stringify(bad)?.slice(0, 80));
  }
});
