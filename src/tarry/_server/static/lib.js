// What every view shares: the API client, formatting (durations, dates, JSON), and `morph`, which patches
// the DOM in place so live updates never reset what the user is typing, selecting or scrolling.

export const secured = document.body.dataset.mode === "serve";  // signed in by its session cookie
const csrf = document.querySelector('meta[name="tarry-csrf"]')?.content || "";  // sent on every POST
export const STATUSES = ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"];
export const FINISHED = new Set(["completed", "failed", "cancelled"]);

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export async function api(path, options = {}) {
  const method = (options.method || "GET").toUpperCase();
  const headers = {...(options.headers || {})};
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-Tarry-CSRF"] = csrf;
  let response;
  try {
    response = await fetch(path, {...options, method, headers, credentials: "same-origin"});
  } catch {
    throw new ApiError("the server does not answer", 0);
  }
  if (response.status === 401 && secured) {
    location.reload();  // the session ended: the server answers the sign-in page
    throw new ApiError("signed out: reloading to sign in", 401);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(body.error || `HTTP ${response.status}`, response.status);
  return body;
}

export const post = (path, body) => api(path, {method: "POST", body: body === undefined ? undefined : JSON.stringify(body)});

// -- formatting ----------------------------------------------------------------

const ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
export const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ENTITIES[c]);
export const enc = encodeURIComponent;
export const number = (n) => Number(n || 0).toLocaleString("en-US");
export const plural = (n, one, many = `${one}s`) => `${number(n)} ${n === 1 ? one : many}`;
export const NONE = '<span class="muted">—</span>';

/** A readable duration: "850 ms", "4.2 s", "12 s", "5 min 54 s", "2 h 3 min", "3 d 4 h". */
export function duration(ms) {
  if (ms == null || !Number.isFinite(ms)) return "";
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${(Math.floor(s * 10) / 10).toFixed(1).replace(/\.0$/, "")} s`;
  const total = Math.floor(s);
  const pair = (big, bigUnit, small, smallUnit) => small ? `${big} ${bigUnit} ${small} ${smallUnit}` : `${big} ${bigUnit}`;
  if (total < 60) return `${total} s`;
  if (total < 3600) return pair(Math.floor(total / 60), "min", total % 60, "s");
  if (total < 86400) return pair(Math.floor(total / 3600), "h", Math.floor((total % 3600) / 60), "min");
  return pair(Math.floor(total / 86400), "d", Math.floor((total % 86400) / 3600), "h");
}

export const ms = (iso) => iso ? Date.parse(iso) : null;
export const between = (a, b) => (a && b) ? duration(ms(b) - ms(a)) : "";

const timeOnly = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit", second: "2-digit"});
const dayAndTime = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});
const fullDate = new Intl.DateTimeFormat(undefined, {year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit"});

/** A short local date (the time alone today), the ISO time in its title. */
export function when(iso) {
  if (!iso) return NONE;
  const d = new Date(iso);
  const now = new Date();
  const text = d.toDateString() === now.toDateString() ? timeOnly.format(d)
    : d.getFullYear() === now.getFullYear() ? dayAndTime.format(d) : fullDate.format(d);
  return `<time datetime="${esc(iso)}" title="${esc(iso)}">${esc(text)}</time>`;
}

/** "in 5 min 54 s" or "3 min ago". */
export function relative(iso) {
  const delta = ms(iso) - Date.now();
  return delta >= 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`;
}

export const json = (v) => v === undefined || v === null ? NONE : `<pre class="json">${esc(JSON.stringify(v, null, 2))}</pre>`;
export const inline = (v, max = 120) => {
  const text = JSON.stringify(v);
  return `<code class="inline-json" title="${esc(text.length > max ? text.slice(0, 2000) : "")}">${esc(text.length > max ? text.slice(0, max) + "…" : text)}</code>`;
};
export const status = (s) => `<span class="status s-${esc(s)}">${esc(s)}</span>`;
export const shortId = (id) => esc(id.length > 14 ? `${id.slice(0, 6)}…${id.slice(-6)}` : id);

export const REASONS = {concurrency: "held by its concurrency limit", throttle: "held by its throttle window"};
export const SKIPS = {
  rate_limit: "its rate limit was reached", idempotency: "the same idempotency value already ran",
  singleton: "a run of its partition is unfinished",
};

/** `<input type=datetime-local>` value (local time) → ISO with offset; and back. */
export function localToIso(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}
export function isoToLocal(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// -- morph: patch the DOM in place ----------------------------------------------

const FORM_FIELDS = new Set(["INPUT", "SELECT", "TEXTAREA"]);
const KEPT_ATTRIBUTES = new Set(["open"]);  // what the user toggles (a <details>) stays as the user left it
const keyOf = (node) => node.nodeType === 1 ? node.getAttribute("data-key") : null;

/** Make `target`'s children those of `html`, reusing the nodes that are already there: elements with a
 * `data-key` are matched by key (moved, never re-created), others by position and tag. A form field
 * (input, select, textarea) that exists is never touched, nor anything marked `data-keep`. */
export function morph(target, html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  morphChildren(target, template.content);
}

function morphChildren(from, to) {
  const keyed = new Map();
  for (const child of from.childNodes) {
    const key = keyOf(child);
    if (key !== null) keyed.set(key, child);
  }
  let cursor = from.firstChild;
  for (const next of [...to.childNodes]) {
    const key = keyOf(next);
    let match = null;
    if (key !== null) {
      match = keyed.get(key) || null;
      keyed.delete(key);
    } else if (cursor && keyOf(cursor) === null && cursor.nodeType === next.nodeType && cursor.nodeName === next.nodeName) {
      match = cursor;
    }
    if (match) {
      if (match === cursor) cursor = cursor.nextSibling;
      else from.insertBefore(match, cursor);
      morphNode(match, next);
    } else {
      from.insertBefore(next, cursor);
    }
  }
  while (cursor) {
    const following = cursor.nextSibling;
    from.removeChild(cursor);
    cursor = following;
  }
}

function morphNode(from, to) {
  if (from.nodeType !== 1) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  if (FORM_FIELDS.has(from.nodeName) || from.hasAttribute("data-keep")) return;
  for (const {name} of [...from.attributes]) {
    if (!to.hasAttribute(name) && !KEPT_ATTRIBUTES.has(name)) from.removeAttribute(name);
  }
  for (const {name, value} of to.attributes) {
    if (from.getAttribute(name) !== value && !KEPT_ATTRIBUTES.has(name)) from.setAttribute(name, value);
  }
  if (from.nodeName === "BUTTON") from.disabled = to.hasAttribute("disabled");
  morphChildren(from, to);
}

/** Every page of a list (`key`: its array's name), at most `cap` items. */
export async function all(path, key, cap = 5000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const body = await api(`${path}${sep}limit=1000${cursor ? `&cursor=${enc(cursor)}` : ""}`);
    items.push(...body[key]);
    cursor = body.next_cursor;
  } while (cursor && items.length < cap);
  return items;
}
