// Runs the edge's environment check: a script generated for each challenge, in a dedicated
// worker of its own started from a blob: URL. No eval is needed, and the script cannot reach
// the page, its form or its cookies. Resolves to the check's answer, or null when it fails,
// takes too long or the run is aborted (the edge then refuses the redeem).

const CHECK_TIMEOUT_MS = 5000;

export function runInstrumentation(script, signal) {
  return new Promise((resolve) => {
    let worker;
    let url;
    const finish = (answer) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      worker?.terminate();
      if (url) URL.revokeObjectURL(url);
      resolve(answer);
    };
    const abort = () => finish(null);
    const timer = setTimeout(abort, CHECK_TIMEOUT_MS);
    signal?.addEventListener("abort", abort, { once: true });
    try {
      url = URL.createObjectURL(new Blob([script], { type: "text/javascript" }));
      worker = new Worker(url);
    } catch {
      // Workers forbidden (a CSP without worker-src blob:): the check cannot run.
      finish(null);
      return;
    }
    worker.onmessage = (event) => finish(typeof event.data?.answer === "string" ? event.data.answer : null);
    worker.onerror = abort;
  });
}
