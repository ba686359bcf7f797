// The dashboard: hash routes over /api/v1, kept up to date by one EventSource on /api/v1/stream.
// No build step, nothing fetched from another origin.
import {api} from "./lib.js";
import {functionsView} from "./functions.js";
import {runsView} from "./runs.js";
import {runView} from "./run.js";
import {buffersView, eventsView, sendView, waitsView} from "./views.js";

const root = document.getElementById("view");
const liveBadge = document.getElementById("live");

// -- the live stream ---------------------------------------------------------------

const STREAM_EVENTS = ["run", "detail", "new", "counts", "waits", "events"];

/** One EventSource at a time, opened with the parameters of what is on screen. EventSource reconnects by
 * itself after a network error; after a refusal (it then closes) it is reopened here, a little later. */
class Live {
  constructor() { this.source = null; this.previous = null; this.query = null; this.handlers = {}; this.retry = null; }

  /** Show the stream of `query`; a view reopening its own stream keeps the old one until the new one is open. */
  set(query, handlers) {
    const same = handlers === this.handlers;
    this.handlers = handlers;
    if (query === this.query && this.source && this.source.readyState !== EventSource.CLOSED) return;
    this.open(query, same);
  }

  mute() { this.handlers = {}; }

  open(query, overlap = false) {
    clearTimeout(this.retry);
    this.previous?.close();
    this.previous = overlap ? this.source : null;
    if (!overlap) this.source?.close();
    this.query = query;
    const source = new EventSource(`/api/v1/stream${query ? `?${query}` : ""}`);
    this.source = source;
    const heard = () => source === this.source || source === this.previous;
    source.addEventListener("open", () => {
      if (source !== this.source) return;
      this.previous?.close();
      this.previous = null;
      this.state("live");
      this.handlers.open?.();
    });
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      this.previous?.close();
      this.previous = null;
      this.state("reconnecting");
      this.handlers.error?.();
      if (source.readyState === EventSource.CLOSED) {  // refused (not a lost connection): try again later
        clearTimeout(this.retry);
        this.retry = setTimeout(async () => {
          if (source !== this.source) return;
          try { await api("/api/v1/functions?limit=1"); } catch { /* a 401 reloads to the sign-in page */ }
          if (source === this.source) this.open(this.query);
        }, 3000);
      }
    });
    for (const type of STREAM_EVENTS) {
      source.addEventListener(type, (message) => {
        if (!heard()) return;
        let data;
        try { data = JSON.parse(message.data); } catch { return; }
        this.handlers[type]?.(data);
      });
    }
  }

  state(name) {
    if (liveBadge.dataset.state === name) return;
    liveBadge.dataset.state = name;
    liveBadge.textContent = name === "live" ? "live" : "reconnecting…";
    liveBadge.title = name === "live" ? "updates arrive as they happen" : "the server does not answer: the data shown is the last received";
  }
}

const live = new Live();

// -- the confirmation dialog ------------------------------------------------------

const dialog = document.getElementById("confirm");

/** Ask `text` in the modal dialog; resolves true for yes. `yes` labels the button (null: no yes button). */
export function confirm(text, {yes = "Yes", detail = ""} = {}) {
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-detail").textContent = detail;
  const yesButton = document.getElementById("confirm-yes");
  yesButton.hidden = yes === null;
  yesButton.textContent = yes || "";
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.removeEventListener("close", onClose);
      resolve(answer);
    };
    const onClose = () => done(dialog.returnValue === "yes");
    dialog.returnValue = "";
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    (yes === null ? document.getElementById("confirm-no") : yesButton).focus();
  });
}

dialog.addEventListener("keydown", (e) => {  // Tab and Shift-Tab go round the dialog's buttons
  if (e.key !== "Tab") return;
  const stops = [...dialog.querySelectorAll("button, [href], input, select, textarea")].filter((el) => !el.hidden && !el.disabled);
  if (!stops.length) return;
  const at = stops.indexOf(document.activeElement);
  const next = e.shiftKey ? (at <= 0 ? stops.length - 1 : at - 1) : (at === stops.length - 1 ? 0 : at + 1);
  e.preventDefault();
  stops[next].focus();
});

// -- routing --------------------------------------------------------------------

const VIEWS = {functions: functionsView, runs: runsView, run: runView, events: eventsView, waits: waitsView,
               buffers: buffersView, send: sendView};
let current = null;

export function parseHash() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const decoded = (part) => { try { return decodeURIComponent(part); } catch { return part; } };  // a bad % stays as typed
  const parts = path.split("/").filter(Boolean).map(decoded);
  const name = parts[0] === "runs" && parts[1] ? "run" : (parts[0] || "runs");
  return {name: Object.hasOwn(VIEWS, name) ? name : "runs", id: parts[1], params: new URLSearchParams(query || "")};
}

/** Change the hash's query without a navigation (the view already shows it). */
export function replaceQuery(path, params) {
  const query = params.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}#${path}${query ? `?${query}` : ""}`);
}

function route() {
  const {name, id, params} = parseHash();
  document.querySelectorAll("nav a[data-nav]").forEach((a) => {
    const on = a.dataset.nav === (name === "run" ? "runs" : name);
    a.classList.toggle("active", on);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  current?.destroy?.();
  live.mute();
  root.replaceChildren();
  window.scrollTo(0, 0);
  const context = {
    root, id, params,
    stream: (query, handlers) => { if (current === view) live.set(query, handlers); },
    alive: () => current === view,
  };
  const view = VIEWS[name](context);
  current = view;
  view.start?.();
}

window.addEventListener("hashchange", route);
route();
