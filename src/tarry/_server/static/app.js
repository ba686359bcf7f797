// The dashboard: a few views over /api/v1, re-rendered every two seconds. No build, no CDN.
"use strict";
const view = document.getElementById("view");
const secured = document.body.dataset.mode === "serve";  // signed in by its session cookie
const csrf = document.querySelector('meta[name="tarry-csrf"]')?.content || "";  // sent on every POST
let timer = null;
let generation = 0;

const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const json = (v) => v === undefined || v === null ? '<span class="muted">—</span>' : `<pre>${esc(JSON.stringify(v, null, 1))}</pre>`;
const when = (iso) => iso ? new Date(iso).toLocaleString() : '<span class="muted">—</span>';
const status = (s) => `<span class="status ${esc(s)}">${esc(s)}</span>`;
const reasons = {concurrency: "held by its concurrency limit", throttle: "held by its throttle window"};
const skips = {rate_limit: "rate limit reached", idempotency: "same idempotency value already ran", singleton: "a run of its partition is unfinished"};
const queuedWhy = (r) => r.status === "queued" && r.queued_reason
  ? ` <span class="reason" data-queued-reason="${esc(r.queued_reason)}" title="${esc(reasons[r.queued_reason] || "")}">${esc(r.queued_reason)}</span>` : "";
const skipList = (list) => list.map((s) => `<span class="skip" data-skip="${esc(s.function_id)}" title="${esc(skips[s.reason] || "")}">${esc(s.function_id)}: ${esc(s.reason)}</span>`).join(" ");
const duration = (a, b) => (a && b) ? `${Math.max(0, new Date(b) - new Date(a))} ms` : "";

async function api(path, options = {}) {
  const headers = {"Content-Type": "application/json", ...(options.headers || {})};
  if ((options.method || "GET").toUpperCase() !== "GET") headers["X-Tarry-CSRF"] = csrf;
  const response = await fetch(path, {...options, headers, credentials: "same-origin"});
  if (response.status === 401 && secured) { location.reload(); throw new Error("signed out: reloading to sign in"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

const views = {
  async runs(params) {
    const q = new URLSearchParams();
    if (params.get("status")) q.set("status", params.get("status"));
    if (params.get("function")) q.set("function_id", params.get("function"));
    const {runs} = await api(`/api/v1/runs?${q}`);
    const options = ["", "queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"]
      .map((s) => `<option ${params.get("status") === s ? "selected" : ""}>${s}</option>`).join("");
    return `<h1>Runs</h1>
      <form class="filters" id="run-filters">
        <label>Status <select name="status">${options}</select></label>
        <label>Function <input name="function" value="${esc(params.get("function") || "")}" placeholder="function id"></label>
      </form>
      <table id="runs"><thead><tr><th>Run</th><th>Function</th><th>Status</th><th>Event</th><th>Started</th><th>Ended</th></tr></thead><tbody>
      ${runs.map((r) => `<tr data-run-id="${esc(r.id)}" data-status="${esc(r.status)}">
        <td><a href="#/runs/${esc(r.id)}"><code>${esc(r.id)}</code></a></td><td>${esc(r.function_id)}</td>
        <td>${status(r.status)}${queuedWhy(r)}</td><td><code>${esc(r.event.name)}</code>${r.event_count > 1 ? ` <span class="muted">+${r.event_count - 1} more</span>` : ""}</td>
        <td>${when(r.created_at)}</td><td>${when(r.ended_at)}</td></tr>`).join("") || '<tr><td colspan=6 class="muted">No runs yet.</td></tr>'}
      </tbody></table>`;
  },

  async run(params, id) {
    const [run, {waits}] = await Promise.all([api(`/api/v1/runs/${encodeURIComponent(id)}`),
                                              api(`/api/v1/waits?run_id=${encodeURIComponent(id)}`)]);
    const finished = ["completed", "failed", "cancelled"].includes(run.status);
    const why = run.status === "queued" && run.queued_reason
      ? `<dt>Queued</dt><dd id="queued-reason" data-queued-reason="${esc(run.queued_reason)}">${esc(reasons[run.queued_reason] || run.queued_reason)} (<code>${esc(run.queued_reason)}</code>)</dd>` : "";
    const gathered = run.events.length > 1
      ? `<dt>Events</dt><dd id="run-events">${run.events.length} gathered (a batch or a debounce burst): ${run.events.map((e) => `<a href="#/events?id=${esc(e.id)}">${esc(e.id)}</a>`).join(", ")}</dd>` : "";
    return `<h1>Run <code>${esc(run.id)}</code> ${status(run.status)}${queuedWhy(run)}</h1>
      <dl><dt>Function</dt><dd>${esc(run.function_id)}</dd>${why}
          <dt>Event</dt><dd><code>${esc(run.event.name)}</code> <a href="#/events?id=${esc(run.event.id)}">${esc(run.event.id)}</a>${json(run.event.data)}</dd>
${gathered}
          <dt>Started</dt><dd>${when(run.created_at)}</dd><dt>Ended</dt><dd>${when(run.ended_at)}</dd>
          <dt>Output</dt><dd>${json(run.output)}</dd><dt>Error</dt><dd>${json(run.error)}</dd></dl>
      ${finished ? "" : `<p><button class="danger" data-action="cancel" data-run-id="${esc(run.id)}">Cancel run</button></p>`}
      ${waits.length ? `<h2>Waiting for</h2>${waitTable(waits)}` : ""}
      <h2>Steps</h2>
      <table id="steps"><thead><tr><th>Step</th><th>Kind</th><th>Status</th><th>Attempts</th><th>Duration</th><th>Output</th><th>Error</th></tr></thead><tbody>
      ${run.steps.map((s) => `<tr data-step-id="${esc(s.id)}"><td><code>${esc(s.id)}</code></td><td>${esc(s.kind)}</td>
        <td>${status(s.status)}</td><td>${s.attempts}</td><td>${duration(s.started_at, s.ended_at)}</td>
        <td>${json(s.output)}</td><td>${json(s.error)}</td></tr>`).join("") || '<tr><td colspan=7 class="muted">No steps yet.</td></tr>'}
      </tbody></table>`;
  },

  async waits() {
    const {waits} = await api("/api/v1/waits");
    return `<h1>Waiting now</h1>${waits.length ? waitTable(waits) : '<p class="muted">No run is waiting.</p>'}`;
  },

  async events(params) {
    const {events} = await api("/api/v1/events");
    const open = params.get("id");
    let detail = "";
    if (open) {
      const {event, runs, resumed} = await api(`/api/v1/events/${encodeURIComponent(open)}/runs`);
      const links = (list) => list.map((r) => `<a href="#/runs/${esc(r.id)}">${esc(r.function_id)} ${status(r.status)}</a>`).join(", ") || '<span class="muted">none</span>';
      const skipped = event.skipped.length ? `; skipped by: ${skipList(event.skipped)}` : "";
      detail = `<div class="notice" id="event-detail">Event <code>${esc(open)}</code> started: ${links(runs)}; resumed: ${links(resumed)}${skipped}</div>`;
    }
    return `<h1>Events</h1>${detail}
      <table id="events"><thead><tr><th>Event</th><th>Name</th><th>Key</th><th>Data</th><th>Received</th><th>Runs</th><th>Skipped by</th></tr></thead><tbody>
      ${events.map((e) => `<tr data-event-id="${esc(e.id)}"><td><code>${esc(e.id)}</code></td><td><code>${esc(e.name)}</code></td>
        <td>${esc(e.key || "")}</td><td>${json(e.data)}</td><td>${when(e.received_at)}</td>
        <td><a href="#/events?id=${esc(e.id)}">${e.runs_started} started, ${e.runs_resumed} resumed</a></td>
        <td>${skipList(e.skipped)}</td></tr>`).join("") || '<tr><td colspan=7 class="muted">No events yet.</td></tr>'}
      </tbody></table>`;
  },

  async buffers() {
    const {buffers} = await api("/api/v1/buffers");
    return `<h1>Gathering events</h1>
      <p class="muted">Debounce bursts and batches still gathering: each becomes one run when it is due (or, for a batch, full).</p>
      ${buffers.length ? `<table id="buffers"><thead><tr><th>Function</th><th>Kind</th><th>Key</th><th>Events</th><th>First event</th><th>Last event</th><th>Run made at</th></tr></thead><tbody>
      ${buffers.map((b) => `<tr data-buffer-id="${esc(b.id)}" data-kind="${esc(b.kind)}"><td>${esc(b.function_id)}</td><td>${esc(b.kind)}</td>
        <td>${b.partition === null ? '<span class="muted">—</span>' : `<code>${esc(JSON.stringify(b.partition))}</code>`}</td><td>${b.size}</td>
        <td>${when(b.first_at)}</td><td>${when(b.last_at)}</td><td>${when(b.due_at)}</td></tr>`).join("")}
      </tbody></table>` : '<p class="muted" id="no-buffers">No burst or batch is gathering events.</p>'}`;
  },

  async send() {
    return `<h1>Send a test event</h1>
      <form class="stack" id="send-form">
        <label>Name <input name="name" required placeholder="app/account.created"></label>
        <label>Data (JSON object) <textarea name="data" rows="5">{}</textarea></label>
        <label>Key (optional) <input name="key" placeholder="order-1324"></label>
        <button type="submit">Send</button>
        <div id="send-result"></div>
      </form>`;
  },
};

function waitTable(waits) {
  return `<table id="waits"><thead><tr><th>Run</th><th>Step</th><th>Waits for</th><th>Since</th><th>Until</th><th></th></tr></thead><tbody>
    ${waits.map((w) => {
      const what = w.kind === "resume" ? "a resume URL" :
        [w.events.length ? `<code>${esc(w.events.join(" | "))}</code>` : "any event",
         Object.keys(w.match).length ? `where ${esc(Object.entries(w.match).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", "))}` : "",
         w.if_exp ? `if <code>${esc(w.if_exp)}</code>` : "",
         w.remaining != null ? `(${esc(w.remaining)} more at most)` : ""].filter(Boolean).join(" ");
      const button = w.resume_url ? `<button data-action="resume" data-url="${esc(w.resume_url)}">Resume</button>` : "";
      return `<tr data-wait-run="${esc(w.run_id)}"><td><a href="#/runs/${esc(w.run_id)}">${esc(w.function_id)}</a></td>
        <td><code>${esc(w.step_id)}</code> <span class="muted">${esc(w.kind)}${w.condition != null ? `, condition ${esc(w.condition)}` : ""}</span></td><td>${what}</td>
        <td>${when(w.since)}</td><td>${when(w.until)}</td><td>${button}</td></tr>`;
    }).join("")}</tbody></table>`;
}

async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const name = parts[0] === "runs" && parts[1] ? "run" : (parts[0] || "runs");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.nav === (name === "run" ? "runs" : name)));
  clearTimeout(timer);
  const mine = ++generation;  // a slower render of the previous view must not overwrite this one
  const render = async () => {
    const focused = document.activeElement && view.contains(document.activeElement) && document.activeElement.matches("input, textarea, select");
    if (!focused || name !== "send") {
      const draw = Object.hasOwn(views, name) ? views[name] : views.runs;
      let html;
      try { html = await draw(params, parts[1]); }
      catch (e) { html = `<div class="notice error">${esc(e.message)}</div>`; }
      if (mine !== generation) return;
      view.innerHTML = html;
    }
    if (name !== "send" && mine === generation) timer = setTimeout(render, 2000);
  };
  await render();
}

view.addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  button.disabled = true;
  try {
    if (button.dataset.action === "resume") {
      const target = new URL(button.dataset.url, location.href);  // this server, whatever host the URL names
      await api(target.pathname, {method: "POST", body: JSON.stringify({source: "dashboard"})});
    } else if (button.dataset.action === "cancel") {
      await api(`/api/v1/runs/${encodeURIComponent(button.dataset.runId)}/cancel`, {method: "POST"});
    }
  } catch (err) { alert(err.message); }
  route();
});

view.addEventListener("change", (e) => {
  const form = e.target.closest("#run-filters");
  if (!form) return;
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
  location.hash = `#/?${q}`;
});

view.addEventListener("submit", async (e) => {
  if (e.target.id === "run-filters") { e.preventDefault(); return; }
  if (e.target.id !== "send-form") return;
  e.preventDefault();
  const form = new FormData(e.target);
  const out = document.getElementById("send-result");
  try {
    const event = {name: form.get("name"), data: JSON.parse(form.get("data") || "{}")};
    if (form.get("key")) event.key = form.get("key");
    const {ids} = await api("/api/v1/events", {method: "POST", body: JSON.stringify(event)});
    out.innerHTML = `<div class="notice" id="sent">Sent <a href="#/events?id=${esc(ids[0])}"><code>${esc(ids[0])}</code></a></div>`;
  } catch (err) {
    out.innerHTML = `<div class="notice error" id="send-error">${esc(err.message)}</div>`;
  }
});

window.addEventListener("hashchange", route);
route();
