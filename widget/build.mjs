// Builds widget/dist: widget.js (one classic script with the worker, translations and
// styles inlined) and solver.wasm. Expects widget/pkg from wasm-bindgen (./dev builds it).
// On Cloudflare, widget/dist is the edge Worker's static assets (wrangler.toml), so it also
// gets the `_headers` those are served with.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
mkdirSync(dist, { recursive: true });

// The worker becomes a string the widget starts from a blob: URL.
const worker = await build({
  entryPoints: [join(here, "src/worker.js")],
  bundle: true,
  format: "iife",
  minify: true,
  write: false,
  target: "es2020",
  // wasm-bindgen's glue only reads import.meta.url when no module is passed; we always pass one.
  define: { "import.meta.url": "undefined" },
  logLevel: "warning",
});

const workerSource = {
  name: "worker-source",
  setup(builder) {
    builder.onResolve({ filter: /^worker-source$/ }, () => ({ path: "worker-source", namespace: "inline" }));
    builder.onLoad({ filter: /.*/, namespace: "inline" }, () => ({
      contents: `export default ${JSON.stringify(worker.outputFiles[0].text)};`,
      loader: "js",
    }));
  },
};

await build({
  entryPoints: [join(here, "src/widget.js")],
  bundle: true,
  format: "iife",
  minify: true,
  sourcemap: false,
  target: "es2020",
  loader: { ".css": "text" },
  plugins: [workerSource],
  outfile: join(dist, "widget.js"),
  logLevel: "warning",
});
copyFileSync(join(here, "pkg/solver_bg.wasm"), join(dist, "solver.wasm"));
// Any site may load the widget, and its blob worker fetches solver.wasm cross-origin. Short
// freshness so a release reaches visitors within minutes; revalidation keeps it cheap.
writeFileSync(
  join(dist, "_headers"),
  ["/widget.js", "/solver.wasm"]
    .map((path) => `${path}\n  Access-Control-Allow-Origin: *\n  Cache-Control: public, max-age=300, stale-while-revalidate=86400\n`)
    .join(""),
);
console.log("widget/dist: widget.js, solver.wasm, _headers");
