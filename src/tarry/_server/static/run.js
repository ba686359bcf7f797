// A run's page (#/runs/<id>): its header and actions, a waterfall of its steps, its open waits with the
// resume form, followed live by the stream's `detail` messages until it is finished.
import {confirm} from "./app.js";
import {
  FINISHED, NONE, REASONS, api, between, duration, enc, esc, json, morph, ms, number, plural, post, relative,
  shortId, status, when,
} from "./lib.js";
import {queuedWhy} from "./runs.js";

const TRUNCATE = 65536;
const PENDING_WAKE = new Set(["sleeping", "retrying"]);

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** An output, or its preview and a download link when it is larger than the page fetches. */
function output(value, truncated, cls = "output") {
  if (truncated) {
    return `<div class="${cls} truncated"><pre class="json">${esc(truncated.preview)}…</pre>
      <p class="muted">Only the first ${number(truncated.preview.length)} characters of ${size(truncated.size)} are shown.
      <a class="download-output" href="${esc(truncated.url)}" download>Download the whole output</a></p></div>`;
  }
  return `<div class="${cls}">${json(value)}</div>`;
}

function errorHtml(error, open) {
  if (!error) return "";
  const trace = error.traceback
    ? `<details class="trace" ${open ? "open" : ""}><summary>Traceback</summary><pre class="traceback">${esc(error.traceback)}</pre></details>` : "";
  return `<div class="error-box"><strong>${esc(error.name)}</strong>: <span class="message">${esc(error.message)}</span>${trace}</div>`;
}

/** The data of an event the wait's match accepts: {"data.userId": "grace"} gives {"userId": "grace"}. */
function matchingData(match) {
  const data = {};
  for (const [path, value] of Object.entries(match || {})) {
    const parts = path.split(".");
    if (parts[0] !== "data" || parts.length < 2) continue;
    let at = data;
    for (const part of parts.slice(1, -1)) at = (at[part] = typeof at[part] === "object" && at[part] ? at[part] : {});
    at[parts[parts.length - 1]] = value;
  }
  return data;
}

export function runView(ctx) {
  const id = ctx.id;
  let run = null;
  let waits = [];
  let failure = null;
  let tick = null;
  const resumeState = new Map();  // step id -> {error, sending, done}
  const focusResume = ctx.params.get("resume");

  ctx.root.innerHTML = '<div id="run-page"><p class="muted">Loading…</p></div>';
  const page = ctx.root.querySelector("#run-page");

  // -- drawing --
  function header() {
    const finished = FINISHED.has(run.status);
    const end = run.ended_at || (finished ? null : new Date().toISOString());
    const facts = [
      ["Function", `<a href="#/?function=${enc(run.function_id)}">${esc(run.function_id)}</a>`],
      ["Event", `<code>${esc(run.event.name)}</code> <a href="#/events?id=${enc(run.event.id)}" title="${esc(run.event.id)}">${shortId(run.event.id)}</a>${run.events && run.events.length > 1 ? `<div id="run-events" class="muted">${plural(run.events.length, "event")} gathered (a batch or a debounce burst): ${run.events.map((e) => `<a href="#/events?id=${enc(e.id)}">${shortId(e.id)}</a>`).join(", ")}</div>` : ""}`],
      ["Created", when(run.created_at)],
      ["Ended", when(run.ended_at)],
      ["Duration", end ? `${esc(between(run.created_at, end))}${finished ? "" : " so far"}` : NONE],
    ];
    if (run.status === "queued") {
      facts.push(["Queued", `<span id="queued-reason" data-queued-reason="${esc(run.queued_reason || "")}">${run.queued_reason
        ? `${esc(REASONS[run.queued_reason] || run.queued_reason)} (<code>${esc(run.queued_reason)}</code>)`
        : "waiting for a free worker"}</span>`]);
    }
    if (run.rerun_of) facts.push(["Rerun of", `<a id="rerun-of" href="#/runs/${enc(run.rerun_of)}" title="${esc(run.rerun_of)}"><code>${shortId(run.rerun_of)}</code></a>`]);
    if (run.reruns && run.reruns.length) {
      facts.push(["Reruns", `<span id="reruns">${run.reruns.map((r) => `<a href="#/runs/${enc(r)}" title="${esc(r)}"><code>${shortId(r)}</code></a>`).join(" ")}</span>`]);
    }
    const actions = finished
      ? '<button type="button" id="rerun" class="secondary" title="start this function again on the same event, as a new run">Rerun</button>'
      : '<button type="button" id="cancel-run" class="danger">Cancel run</button>';
    return `<div id="run-header" class="run-header" data-status="${esc(run.status)}">
        <div class="crumbs"><a href="#/">Runs</a> / <a href="#/?function=${enc(run.function_id)}">${esc(run.function_id)}</a></div>
        <div class="title-row">
          <h1>${esc(run.function_id)} ${status(run.status)}${queuedWhy(run)}</h1>
          <div class="actions">${actions}</div>
        </div>
        <div class="run-id">run <code>${esc(run.id)}</code></div>
        ${failure ? `<p class="notice error" role="alert">${esc(failure)}</p>` : ""}
      </div>
      <dl class="facts">${facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join("")}</dl>`;
  }

  function io() {
    const result = run.status === "failed" || run.status === "cancelled"
      ? `<section class="panel"><h2>Error</h2>${errorHtml(run.error, false) || NONE}</section>`
      : run.status === "completed"
        ? `<section class="panel"><h2>Output</h2>${output(run.output, run.output_truncated, "run-output")}</section>` : "";
    return `<div class="io">
      <section class="panel"><h2>Input <span class="muted">(the event's data)</span></h2>${json(run.event.data)}</section>
      ${result}</div>`;
  }

  function timeline() {
    const now = Date.now();
    const start = ms(run.created_at);
    let end = run.ended_at ? ms(run.ended_at) : now;
    for (const s of run.steps) if (s.ended_at) end = Math.max(end, ms(s.ended_at));
    const span = Math.max(end - start, 1);
    const finished = FINISHED.has(run.status);
    if (!run.steps.length) {
      return `<div id="timeline" class="timeline"><p class="muted empty">${finished ? "This run took no steps." : "No step has run yet."}</p></div>`;
    }
    const scale = `<div class="scale" aria-hidden="true"><span>0</span><span>${esc(duration(span / 2))}</span><span>${esc(duration(span))}</span></div>`;
    return `<div id="timeline" class="timeline">${scale}${run.steps.map((s) => stepHtml(s, {now, start, span, finished})).join("")}</div>`;
  }

  function stepHtml(s, {now, start, span, finished}) {
    const from = s.started_at ? ms(s.started_at) : start;
    const open = !s.ended_at && !["completed", "failed"].includes(s.status);
    const to = s.ended_at ? ms(s.ended_at) : open ? now : from;
    const left = Math.min(100, Math.max(0, ((from - start) / span) * 100));
    const width = Math.max(0.6, Math.min(100 - left, ((to - from) / span) * 100));
    const took = duration(to - from);
    const wakes = s.wake_at && PENDING_WAKE.has(s.status)
      ? `<span class="wakes">wakes ${when(s.wake_at)} (${esc(relative(s.wake_at))})</span>`
      : s.wake_at && s.kind === "sleep" ? `<span class="woke muted">slept until ${when(s.wake_at)}</span>` : "";
    const errors = s.errors || [];
    const attempts = errors.map((e, i) => `<div class="attempt" data-key="attempt-${i}">
        <div class="attempt-head">attempt ${i + 1}${s.attempts ? ` of ${s.attempts}` : ""} · failed</div>${errorHtml(e, i === errors.length - 1)}</div>`).join("");
    const child = s.child_run_id ? `<p><a class="child-run" href="#/runs/${enc(s.child_run_id)}">child run <code>${shortId(s.child_run_id)}</code> →</a></p>` : "";
    const hasOutput = s.output !== null && s.output !== undefined || s.output_truncated;
    return `<div class="step" data-key="${esc(s.id)}" data-step-id="${esc(s.id)}" data-status="${esc(s.status)}">
      <div class="step-row">
        <div class="step-name"><code>${esc(s.id)}</code> <span class="kind">${esc(s.kind)}</span></div>
        <div class="track" title="${esc(`from +${duration(from - start)} for ${took}`)}"><div class="bar b-${esc(s.status)}" style="left:${left.toFixed(2)}%;width:${width.toFixed(2)}%"></div></div>
        <div class="step-took">${esc(took)}</div>
      </div>
      <div class="step-body">
        <div class="step-meta">${status(s.status)}
          <span>started ${when(s.started_at)} <span class="muted">(+${esc(duration(from - start))})</span></span>
          <span>${open ? "running for" : "took"} ${esc(took)}</span>
          ${s.attempts > 1 ? `<span>${plural(s.attempts, "attempt")}</span>` : ""}
          ${wakes}
          ${finished ? `<button type="button" class="small secondary" data-action="rerun-from" data-step-id="${esc(s.id)}" title="a new run that keeps the steps before this one and runs this one again">Rerun from here</button>` : ""}
        </div>
        ${child}
        ${hasOutput ? output(s.output, s.output_truncated) : ""}
        ${attempts}
      </div></div>`;
  }

  function waitsHtml() {
    if (!waits.length) return '<section id="run-waits" hidden></section>';
    return `<section id="run-waits" class="panel"><h2>Waiting for</h2>${waits.map(waitHtml).join("")}</section>`;
  }

  function waitHtml(w) {
    const key = `${w.step_id}:${w.condition ?? ""}`;
    const until = w.until ? ` · until ${when(w.until)} <span class="muted">(${esc(relative(w.until))})</span>` : "";
    if (w.kind === "resume" && w.resume_url) {
      const state = resumeState.get(key) || {};
      return `<div class="wait" data-key="${esc(key)}"><p><code>${esc(w.step_id)}</code> waits for a person to resume it (its resume URL) · since ${when(w.since)}${until}</p>
        <form class="resume-form" data-url="${esc(w.resume_url)}" data-wait="${esc(key)}">
          <label>Payload (a JSON object: the run gets it as the resume's data)
            <textarea name="payload" rows="3" spellcheck="false">{}</textarea></label>
          <div class="row">
            <button type="button" class="secondary" data-payload="approve">Approve</button>
            <button type="button" class="secondary" data-payload="reject">Reject</button>
            <button type="submit" ${state.sending ? "disabled" : ""}>${state.sending ? "Sending…" : "Resume"}</button>
          </div>
          ${state.error ? `<p class="resume-error notice error" role="alert">${esc(state.error)}</p>` : ""}
          ${state.done ? '<p class="notice">Resumed: the run goes on.</p>' : ""}
        </form></div>`;
    }
    const what = [w.events.length ? `<code>${esc(w.events.join(" | "))}</code>` : "any event",
      Object.keys(w.match || {}).length ? `where ${esc(Object.entries(w.match).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", "))}` : "",
      w.if_exp ? `if <code>${esc(w.if_exp)}</code>` : "",
      w.remaining != null ? `(${esc(w.remaining)} more at most)` : ""].filter(Boolean).join(" ");
    const send = w.events.length === 1 && !w.events[0].endsWith("*")
      ? ` <a class="small-link" href="#/send?name=${enc(w.events[0])}&data=${enc(JSON.stringify(matchingData(w.match)))}">send one…</a>` : "";
    return `<div class="wait" data-key="${esc(key)}"><p><code>${esc(w.step_id)}</code> waits for ${what}${send} · since ${when(w.since)}${until}</p></div>`;
  }

  function draw() {
    if (!run) return;
    morph(page, `${header()}${waitsHtml()}${io()}<section class="panel timeline-panel"><h2>Timeline <span class="muted">(${plural(run.steps.length, "step")})</span></h2>${timeline()}</section>`);
    if (focusResume && !draw.focused) {
      const area = page.querySelector(`form.resume-form[data-wait^="${CSS.escape(focusResume)}:"] textarea`);
      if (area) { draw.focused = true; area.focus(); area.scrollIntoView({block: "center"}); }
    }
  }

  // -- loading --
  async function load() {
    try {
      const [body, open] = await Promise.all([api(`/api/v1/runs/${enc(id)}?truncate=${TRUNCATE}`), loadWaits(true)]);
      if (!ctx.alive()) return;
      run = body;
      waits = FINISHED.has(run.status) ? [] : open;
      draw();
      listen();
    } catch (err) {
      if (!ctx.alive()) return;
      morph(page, `<h1>Run <code>${esc(id)}</code></h1><p class="notice error" role="alert">${err.status === 404 ? "There is no such run." : esc(err.message)}</p>`);
    }
  }

  async function loadWaits(only = false) {
    const {waits: open} = await api(`/api/v1/waits?run_id=${enc(id)}`).catch(() => ({waits: []}));
    if (only) return open;
    if (!ctx.alive()) return open;
    waits = open;
    draw();
    return open;
  }

  function listen() {
    if (FINISHED.has(run.status)) {
      ctx.stream(`runs=${enc(id)}`, handlers);  // read once by the server, then only its pings: the server is there
      clearInterval(tick);
      tick = null;
    } else {
      ctx.stream(`detail=${enc(id)}`, handlers);
      if (!tick) tick = setInterval(draw, 1000);
    }
  }

  const fingerprint = (r) => `${r.status}|${r.steps.map((s) => `${s.id}:${s.status}`).join(",")}`;
  const handlers = {
    detail(body) {
      if (body.id !== id) return;
      const changed = !run || fingerprint(run) !== fingerprint(body);
      run = body;
      if (FINISHED.has(run.status)) waits = [];
      draw();
      if (changed) {
        if (!FINISHED.has(run.status)) loadWaits();
        listen();
      }
    },
  };

  // -- actions --
  async function act(button, action) {
    button.disabled = true;
    failure = null;
    try { await action(); } catch (err) { failure = err.message; }
    button.disabled = false;
    draw();
  }

  page.addEventListener("click", async (e) => {
    const button = e.target.closest("button");
    if (!button || !run) return;
    if (button.id === "rerun") {
      act(button, async () => {
        const {run_id: next} = await post(`/api/v1/runs/${enc(id)}/rerun`);
        location.hash = `#/runs/${enc(next)}`;
      });
    } else if (button.dataset.action === "rerun-from") {
      act(button, async () => {
        const {run_id: next} = await post(`/api/v1/runs/${enc(id)}/rerun`, {from_step: button.dataset.stepId});
        location.hash = `#/runs/${enc(next)}`;
      });
    } else if (button.id === "cancel-run") {
      const yes = await confirm("Cancel this run?", {yes: "Cancel run", detail: `${run.function_id} stops where it is; its steps that ran stay recorded. This cannot be undone.`});
      if (!yes) { button.focus(); return; }
      act(button, async () => {
        await post(`/api/v1/runs/${enc(id)}/cancel`);
        handlers.detail(await api(`/api/v1/runs/${enc(id)}?truncate=${TRUNCATE}`));
      });
    } else if (button.dataset.payload) {
      const area = button.closest("form").elements.namedItem("payload");
      area.value = JSON.stringify({approved: button.dataset.payload === "approve"});
      area.focus();
    }
  });

  page.addEventListener("submit", async (e) => {
    const form = e.target.closest("form.resume-form");
    if (!form) return;
    e.preventDefault();
    const key = form.dataset.wait;
    let payload;
    try {
      payload = JSON.parse(form.elements.namedItem("payload").value || "{}");
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) throw new Error("not an object");
    } catch {
      resumeState.set(key, {error: "The payload must be a JSON object, such as {\"approved\": true}."});
      draw();
      return;
    }
    resumeState.set(key, {sending: true});
    draw();
    try {
      await post(new URL(form.dataset.url, location.href).pathname, payload);  // this server, whatever host the URL names
      resumeState.set(key, {done: true});
    } catch (err) {
      resumeState.set(key, {error: err.message});
    }
    draw();
    if (resumeState.get(key).done && ctx.alive()) {
      handlers.detail(await api(`/api/v1/runs/${enc(id)}?truncate=${TRUNCATE}`));
      loadWaits();
    }
  });

  return {
    start: load,
    destroy() { clearInterval(tick); },
  };
}
