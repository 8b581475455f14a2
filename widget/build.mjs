// Builds widget/dist: widget.js (one classic script with the worker, translations and
// styles inlined) and solver.wasm. Expects widget/pkg from wasm-bindgen (./dev builds it).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
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
console.log("widget/dist: widget.js, solver.wasm");
