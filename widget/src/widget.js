// <humanproof-widget>: sits in a form, asks the edge for a challenge, solves it in Web
// Workers (wasm SIMD, JavaScript fallback), redeems it, and puts the verification token
// into a hidden field of the form. Also exposes window.humanproof for explicit rendering.
import { pickLanguage, translate } from "./i18n.js";
import { runInstrumentation } from "./instrumentation.js";
import { SIGNAL_VERSION, SignalCollector, formContext } from "./signals.js";
import { solveChallenge } from "./solver-pool.js";
import STYLES from "./styles.css";

const TAG = "humanproof-widget";
const VARIANTS = ["checkbox", "invisible", "floating"];
const TRIGGERS = ["click", "interaction", "load", "submit"];
const BRANDINGS = ["full", "minimal", "none"];
// The script's own URL: the edge and the solver are found next to it unless configured.
const SCRIPT_URL = document.currentScript?.src || location.href;

const oneOf = (value, allowed, fallback) => (allowed.includes(value) ? value : fallback);

// The project's dashboard settings, fetched once per edge and site key on a page, however
// many widgets it has: a promise of `{active, widget, allowed}`, or of null when the edge
// could not say (the widget then goes by its attributes, and a start reports any refusal).
const settingsBySite = new Map();
function siteSettings(edge, siteKey) {
  const url = `${edge}/${encodeURIComponent(siteKey)}/settings`;
  if (!settingsBySite.has(url)) {
    // A page must not wait on an edge that does not answer: after 5 s the attributes decide.
    const loaded = fetch(url, { credentials: "omit", signal: AbortSignal.timeout?.(5000) })
      .then((response) => (response.ok ? response.json() : null))
      .catch(() => null);
    settingsBySite.set(url, loaded);
  }
  return settingsBySite.get(url);
}

let styleSheet;
/** One constructable stylesheet shared by every widget on the page, or null where the
 *  browser lacks them (the widget then inlines a <style>, honouring data-nonce). */
function sharedStyleSheet(root) {
  if (typeof CSSStyleSheet !== "function" || !("adoptedStyleSheets" in root)) return null;
  if (!styleSheet) {
    styleSheet = new CSSStyleSheet();
    styleSheet.replaceSync(STYLES);
  }
  return styleSheet;
}

class HumanProofWidget extends HTMLElement {
  static formAssociated = true;
  static observedAttributes = ["data-theme", "data-language", "data-size"];

  #internals = this.attachInternals?.();
  #root = this.attachShadow({ mode: "open" });
  #state = "idle";
  #token = "";
  #listeners = null;
  #signals = null;
  #run = null;
  #expiryTimer = 0;
  #language = "en";
  #options = {};
  // The dashboard's settings once the edge answered: what the widget shows unless the page
  // says otherwise (where the plan allows).
  #settings = null;
  #settingsLoaded = null;
  #settingsSettled = false;

  /** Options from `humanproof.render()`, merged over the data attributes. */
  configure(options) {
    this.#options = { ...this.#options, ...options };
  }

  #option(name, attribute) {
    return this.#options[name] ?? this.getAttribute(`data-${attribute ?? name}`) ?? undefined;
  }

  /** A look the plan limits (variant, branding): the page's choice where the plan includes
   *  it, else the dashboard's, else the first the plan includes. */
  #limited(name, known, allowedList) {
    const allowed = this.#settings?.allowed?.[allowedList] ?? known;
    const pick = [this.#option(name), this.#settings?.widget?.[name]].find((value) => known.includes(value) && allowed.includes(value));
    return pick ?? allowed.find((value) => known.includes(value)) ?? known[0];
  }

  /** A look any plan may change (theme, size, language): the page's, else the dashboard's. */
  #look(name, known, fallback) {
    return oneOf(this.#option(name), known, oneOf(this.#settings?.widget?.[name], known, fallback));
  }

  get variant() {
    return this.#limited("variant", VARIANTS, "variants");
  }

  /** Whether the dashboard says the project is paused. */
  get paused() {
    return this.#settings?.active === false;
  }

  get trigger() {
    const fallback = this.variant === "checkbox" ? "click" : "submit";
    return oneOf(this.#option("trigger"), TRIGGERS, fallback);
  }

  get branding() {
    return this.#limited("branding", BRANDINGS, "branding");
  }

  get fieldName() {
    return this.#option("fieldName", "field-name") || "humanproof-token";
  }

  get form() {
    return this.closest("form");
  }

  connectedCallback() {
    this.#listeners = new AbortController();
    this.#signals = new SignalCollector(this.form ?? document);
    this.#render();
    this.#loadSettings();
    const { signal } = this.#listeners;
    const form = this.form;
    // Whether a submit waits for verification depends on the variant, which the dashboard's
    // settings may still change: the listener decides when the form is submitted.
    if (form) form.addEventListener("submit", (event) => this.#onSubmit(event), { signal, capture: true });
    if (this.trigger === "interaction") {
      const start = () => this.execute();
      (form ?? document).addEventListener("focusin", start, { signal, once: true });
      (form ?? document).addEventListener("input", start, { signal, once: true });
    }
    if (this.trigger === "load") queueMicrotask(() => this.execute());
    this.#setValidity();
  }

  /** Fetches the dashboard's settings and shows them; a start waits for them. */
  #loadSettings() {
    const siteKey = this.#option("sitekey");
    if (!siteKey) {
      this.#settingsSettled = true;
      return;
    }
    this.#settingsLoaded = siteSettings(this.#edgeUrl(), siteKey).then((settings) => {
      this.#settingsSettled = true;
      if (!settings || !this.isConnected) return;
      this.#settings = settings;
      for (const [name, known] of [["variant", VARIANTS], ["branding", BRANDINGS]]) {
        const asked = this.#option(name);
        if (asked && known.includes(asked) && this[name] !== asked) {
          console.warn(`humanproof: data-${name}="${asked}" is not in this site's plan; showing "${this[name]}"`);
        }
      }
      this.#render();
      if (this.paused && this.#state !== "verified") this.#setState("paused");
    });
  }

  disconnectedCallback() {
    this.#listeners?.abort();
    this.#signals?.stop();
    this.#run?.abort();
    clearTimeout(this.#expiryTimer);
  }

  attributeChangedCallback() {
    if (this.isConnected) this.#render();
  }

  /** The current verification token, or "". */
  getResponse() {
    return this.#token;
  }

  /** Starts verification unless it is running or done; resolves to the token. */
  execute() {
    if (this.#state === "verified") return Promise.resolve(this.#token);
    if (this.#state === "verifying") return this.#pending;
    this.#pending = this.#verify();
    return this.#pending;
  }

  #pending = null;

  /** Forgets the token and returns to idle. */
  reset() {
    this.#run?.abort();
    clearTimeout(this.#expiryTimer);
    this.#setToken("");
    this.#setState("idle");
    this.#emit("reset", {});
  }

  async #verify() {
    this.#run?.abort();
    const run = new AbortController();
    this.#run = run;
    this.#setState("verifying", { progress: 0 });
    try {
      const edge = this.#edgeUrl();
      const siteKey = this.#option("sitekey", "sitekey");
      if (!siteKey) throw Object.assign(new Error("missing site key"), { reason: "missing_site_key" });
      // The start states the variant and branding, which come from the settings.
      await this.#settingsLoaded;
      if (this.paused) throw Object.assign(new Error("verification is paused on this site"), { reason: "project_paused" });
      const started = await this.#post(`${edge}/${encodeURIComponent(siteKey)}/challenge`, this.#challengeBody(), run.signal);
      // The environment check runs beside the solver; the redeem carries its answer.
      const check = started.instrumentation ? runInstrumentation(started.instrumentation.script, run.signal) : null;
      const { solutions, engine } = await solveChallenge({
        started,
        wasmUrl: this.#option("solverUrl", "solver-url") || new URL("solver.wasm", SCRIPT_URL).href,
        maxWorkers: Number(this.#option("workers")) || undefined,
        signal: run.signal,
        onProgress: (fraction) => {
          const progress = Math.round(fraction * 100);
          this.#setState("verifying", { progress });
          this.#emit("progress", { progress });
        },
      });
      const redeemed = await this.#post(
        `${edge}/${encodeURIComponent(siteKey)}/redeem`,
        { token: started.token, solutions, instrumentation: (await check) ?? undefined },
        run.signal,
      );
      this.#setToken(redeemed.token);
      this.#setState("verified");
      this.#scheduleExpiry(redeemed.expires);
      this.#emit("solve", { token: redeemed.token, expires: redeemed.expires, engine });
      this.#options.callback?.(redeemed.token);
      return redeemed.token;
    } catch (error) {
      if (error.name === "AbortError") throw error;
      const failure = { reason: error.reason || "network_error", retryAfter: error.retryAfter };
      this.#setState(failure.reason === "project_paused" ? "paused" : "error", failure);
      this.#emit("error", { ...failure, message: error.message });
      this.#options.errorCallback?.(failure.reason);
      throw error;
    } finally {
      if (this.#run === run) this.#run = null;
    }
  }

  #edgeUrl() {
    const configured = this.#option("edge", "edge");
    return (configured || new URL(".", SCRIPT_URL).href).replace(/\/$/, "");
  }

  #challengeBody() {
    const body = {
      widget: {
        variant: this.variant,
        trigger: this.trigger,
        branding: this.branding,
        signal_version: SIGNAL_VERSION,
        // Older browsers (Safari before 16.4) get the environment check without its canvas half.
        offscreen_canvas: typeof OffscreenCanvas === "function",
      },
      signals: this.#signals.snapshot(),
      form: formContext(this.form),
    };
    const action = this.#option("action");
    const cdata = this.#option("cdata");
    if (action) body.action = String(action).slice(0, 32);
    if (cdata) body.cdata = String(cdata).slice(0, 255);
    return body;
  }

  async #post(url, body, signal) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      signal,
    });
    let json = null;
    try {
      json = await response.json();
    } catch {
      // A body that is not JSON is reported by status below.
    }
    if (!response.ok || !json) {
      throw Object.assign(new Error(json?.error || `HTTP ${response.status}`), {
        reason: json?.reason || `http_${response.status}`,
        retryAfter: Number(response.headers.get("retry-after")) || undefined,
      });
    }
    return json;
  }

  #scheduleExpiry(expires) {
    clearTimeout(this.#expiryTimer);
    // Refresh a little before the edge's expiry so a submit never races it.
    const delay = Math.max(0, expires - Date.now() - 10_000);
    this.#expiryTimer = setTimeout(() => {
      this.#setToken("");
      this.#setState("expired");
      this.#emit("expired", {});
      this.#options.expiredCallback?.();
      if (this.variant !== "checkbox") this.execute().catch(() => {});
    }, delay);
  }

  async #onSubmit(event) {
    if (this.#token) return;
    if (!this.#settingsSettled) {
      // Whether this submit must wait depends on settings still on their way: hold it until
      // they are here, then submit again.
      event.preventDefault();
      event.stopImmediatePropagation();
      await this.#settingsLoaded;
      event.target.requestSubmit(event.submitter ?? undefined);
      return;
    }
    if (this.variant === "checkbox" && this.trigger !== "submit") return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const form = event.target;
    try {
      await this.execute();
      form.requestSubmit(event.submitter ?? undefined);
    } catch {
      // The error state is shown; the visitor can retry.
    }
  }

  #setToken(token) {
    this.#token = token;
    const form = this.form;
    if (form) {
      let field = form.querySelector(`input[type="hidden"][name="${CSS.escape(this.fieldName)}"]`);
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = this.fieldName;
        form.append(field);
      }
      field.value = token;
    }
    this.#internals?.setFormValue?.(token || null);
    this.#setValidity();
  }

  #setValidity() {
    if (!this.#internals?.setValidity) return;
    if (this.hasAttribute("required") && !this.#token) {
      this.#internals.setValidity({ valueMissing: true }, this.#t("label"));
    } else {
      this.#internals.setValidity({});
    }
  }

  #emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { bubbles: true, composed: true, detail }));
  }

  #t(key, params) {
    return translate(this.#language, key, params);
  }

  // The edge's refusals a visitor can act on get their own words; the rest stay generic.
  #errorText() {
    const { reason, retryAfter } = this.#details;
    if (reason === "rate_limited" && retryAfter) return this.#t("rate_limited", { seconds: retryAfter });
    if (reason === "risk_blocked" || reason === "instrumentation_failed") return this.#t("refused");
    return this.#t("error");
  }

  #setState(state, details = {}) {
    this.#state = state;
    this.#details = details;
    this.#update();
  }

  #details = {};

  #render() {
    this.#language = pickLanguage(this.#option("language") ?? this.#settings?.widget?.language, document.documentElement.lang);
    const theme = this.#look("theme", ["light", "dark", "auto"], "auto");
    const size = this.#look("size", ["normal", "compact"], "normal");
    const sheet = sharedStyleSheet(this.#root);
    if (sheet) this.#root.adoptedStyleSheets = [sheet];
    const nonce = String(this.#option("nonce") ?? "").replace(/[^A-Za-z0-9+/=_-]/g, "");
    this.#root.innerHTML = `${sheet ? "" : `<style${nonce ? ` nonce="${nonce}"` : ""}>${STYLES}</style>`}
      <div part="widget" class="widget" role="group" data-theme="${theme}" data-size="${size}" data-variant="${this.variant}">
        <button part="checkbox" class="box" type="button" role="checkbox" aria-checked="false">
          <span class="mark" aria-hidden="true"></span>
          <span class="label" part="label"></span>
        </button>
        <button part="retry" class="retry" type="button" hidden></button>
        <span class="brand" part="branding"></span>
        <span class="live" role="status" aria-live="polite"></span>
      </div>`;
    const box = this.#root.querySelector(".box");
    box.addEventListener("click", () => {
      if (this.#state === "idle" || this.#state === "expired" || this.#state === "error") this.execute().catch(() => {});
    });
    this.#root.querySelector(".retry").addEventListener("click", () => this.execute().catch(() => {}));
    this.#update();
  }

  #update() {
    const root = this.#root.querySelector(".widget");
    if (!root) return;
    root.dataset.state = this.#state;
    root.setAttribute("aria-label", this.#t("widget_name"));
    const box = root.querySelector(".box");
    const label = root.querySelector(".label");
    const retry = root.querySelector(".retry");
    const live = root.querySelector(".live");
    const brand = root.querySelector(".brand");
    const texts = {
      idle: this.#t("label"),
      verifying: this.#details.progress ? this.#t("progress", { percent: this.#details.progress }) : this.#t("verifying"),
      verified: this.#t("verified"),
      error: this.#errorText(),
      expired: this.#t("expired"),
      paused: this.#t("paused"),
    };
    label.textContent = texts[this.#state];
    box.setAttribute("aria-checked", this.#state === "verified" ? "true" : this.#state === "verifying" ? "mixed" : "false");
    box.disabled = this.#state === "verifying" || this.#state === "verified" || this.#state === "paused";
    retry.hidden = this.#state !== "error";
    retry.textContent = this.#t("retry");
    brand.textContent = this.branding === "none" ? "" : this.branding === "minimal" ? "HumanProof" : this.#t("protected_by");
    // Announce state changes, not every progress step.
    const announcement = this.#state === "verifying" ? this.#t("verifying") : texts[this.#state];
    if (live.textContent !== announcement && this.#state !== "idle") live.textContent = announcement;
    // Invisible widgets show nothing but a pause (which explains why the form waits);
    // floating ones appear while work runs, on error, or paused.
    this.hidden =
      (this.variant === "invisible" && this.#state !== "paused") || (this.variant === "floating" && this.#state === "idle");
  }
}

if (!customElements.get(TAG)) customElements.define(TAG, HumanProofWidget);

// The explicit API: humanproof.render(el, options) → id; reset/execute/getResponse/remove(id).
const rendered = new Map();
let nextId = 0;
const byId = (id) => {
  const widget = rendered.get(id) ?? (id === undefined ? [...rendered.values()][0] ?? document.querySelector(TAG) : null);
  if (!widget) throw new Error(`humanproof: no widget ${id}`);
  return widget;
};

window.humanproof ??= {
  render(container, options = {}) {
    const host = typeof container === "string" ? document.querySelector(container) : container;
    if (!host) throw new Error("humanproof.render: container not found");
    const widget = document.createElement(TAG);
    widget.configure(options);
    host.append(widget);
    const id = `hp-${nextId++}`;
    rendered.set(id, widget);
    return id;
  },
  reset: (id) => byId(id).reset(),
  execute: (id) => byId(id).execute(),
  getResponse: (id) => byId(id).getResponse(),
  remove(id) {
    byId(id).remove();
    rendered.delete(id);
  },
};
