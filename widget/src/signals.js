// Lightweight interaction signals, counted locally from the moment the widget connects and
// sent only with the challenge start. Counts and timings only: no keystrokes, no
// coordinates, and no form field is read except a normal email field's value.

export const SIGNAL_VERSION = 1;

export class SignalCollector {
  #started = performance.now();
  #counts = { focus: 0, blur: 0, keys: 0, pointer_moves: 0, pointer_downs: 0 };
  #wasHidden = document.visibilityState === "hidden";
  #abort = new AbortController();

  /** Watches `scope` (the enclosing form, else the document). */
  constructor(scope) {
    const options = { signal: this.#abort.signal, passive: true, capture: true };
    const count = (name) => () => this.#counts[name]++;
    scope.addEventListener("focusin", count("focus"), options);
    scope.addEventListener("focusout", count("blur"), options);
    scope.addEventListener("keydown", count("keys"), options);
    scope.addEventListener("pointermove", count("pointer_moves"), options);
    scope.addEventListener("pointerdown", count("pointer_downs"), options);
    document.addEventListener(
      "visibilitychange",
      () => {
        if (document.visibilityState === "hidden") this.#wasHidden = true;
      },
      { signal: this.#abort.signal },
    );
  }

  snapshot() {
    const c = this.#counts;
    return {
      elapsed_ms: Math.round(performance.now() - this.#started),
      focus_count: c.focus,
      blur_count: c.blur,
      key_count: c.keys,
      pointer_moves: c.pointer_moves,
      pointer_downs: c.pointer_downs,
      interactions: c.focus + c.keys + c.pointer_downs,
      visibility: document.visibilityState,
      was_hidden: this.#wasHidden,
    };
  }

  stop() {
    this.#abort.abort();
  }
}

/** What the challenge start says about the form; never other fields' values. */
export function formContext(form) {
  const context = { page_path: location.pathname };
  if (!form) return context;
  context.method = (form.getAttribute("method") || "get").toLowerCase();
  const action = new URL(form.getAttribute("action") || location.href, location.href);
  if (action.origin === location.origin) context.action_path = action.pathname;
  const email = form.querySelector('input[type="email"]');
  if (email && email.value && email.value.length <= 254) context.email = email.value;
  return context;
}
