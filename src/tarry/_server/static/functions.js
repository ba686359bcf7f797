// The functions view (#/functions): each function's triggers, options and runs by status, and a button
// that sends it a test event.
import {STATUSES, all, enc, esc, morph, number} from "./lib.js";

function compact(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return value.map(compact).join(", ");
  return Object.entries(value).map(([k, v]) => `${k}=${compact(v)}`).join(" ");
}

function triggers(list) {
  return list.map((t) => t.cron !== undefined
    ? `<span class="trigger cron" title="a schedule">⏱ <code>${esc(t.cron)}</code>${t.timezone && t.timezone !== "UTC" ? ` <span class="muted">${esc(t.timezone)}</span>` : ""}</span>`
    : `<span class="trigger"><code>${esc(t.event)}</code>${t.if_exp ? ` <span class="muted">if</span> <code>${esc(t.if_exp)}</code>` : ""}</span>`).join("") || '<span class="muted">none (invoked only)</span>';
}

function options(f) {
  const items = [`<span class="opt"><b>retries</b> ${esc(f.retries)}</span>`];
  for (const [name, value] of Object.entries(f.options || {})) {
    items.push(`<span class="opt" title="${esc(JSON.stringify(value))}"><b>${esc(name)}</b> ${esc(compact(value))}</span>`);
  }
  return items.join("");
}

export const firstEvent = (f) => (f.triggers.find((t) => t.event !== undefined)?.event || "").replace(/\*$/, "");

export function functionsView(ctx) {
  let functions = null;
  let failure = null;
  let refresh = null;

  ctx.root.innerHTML = `<div class="view-head"><h1>Functions</h1></div>
    <p class="muted lede">What this app runs: each function's triggers, its options, and its runs by status (a number opens those runs).</p>
    <div id="functions-box"></div>`;
  const box = ctx.root.querySelector("#functions-box");

  function draw() {
    if (failure) { morph(box, `<p class="notice error" role="alert">${esc(failure)}</p>`); return; }
    if (!functions) { morph(box, '<p class="muted">Loading…</p>'); return; }
    if (!functions.length) { morph(box, '<p class="empty">This app has no functions.</p>'); return; }
    const rows = functions.map((f) => {
      const event = firstEvent(f);
      const counts = STATUSES.map((s) => {
        const n = f.runs ? f.runs[s] || 0 : null;
        return `<td class="num count-cell${n ? "" : " zero"}" data-count-status="${s}">${n === null ? "—"
          : `<a href="#/?function=${enc(f.id)}&amp;status=${s}" title="${esc(`${n} ${s} runs of ${f.id}`)}">${number(n)}</a>`}</td>`;
      }).join("");
      return `<tr data-key="${esc(f.id)}" data-function-id="${esc(f.id)}">
        <td><a class="fn" href="#/?function=${enc(f.id)}"><code>${esc(f.id)}</code></a></td>
        <td class="triggers">${triggers(f.triggers)}</td>
        <td class="options">${options(f)}</td>
        ${counts}
        <td><button type="button" class="small secondary" data-action="test-event" data-function-id="${esc(f.id)}" data-event="${esc(event)}"
          ${event ? "" : 'disabled title="it has no event trigger"'}>Send a test event</button></td></tr>`;
    }).join("");
    morph(box, `<div class="table-box"><table id="functions"><thead><tr><th>Function</th><th>Triggers</th><th>Options</th>
      ${STATUSES.map((s) => `<th class="num"><span class="status s-${s}">${s}</span></th>`).join("")}<th></th></tr></thead>
      <tbody>${rows}</tbody></table></div>`);
  }

  async function load() {
    try {
      const list = await all("/api/v1/functions?counts=true", "functions");
      if (!ctx.alive()) return;
      functions = list;
      failure = null;
    } catch (err) {
      if (!ctx.alive()) return;
      failure = err.message;
    }
    draw();
  }

  box.addEventListener("click", (e) => {
    const button = e.target.closest('button[data-action="test-event"]');
    if (!button) return;
    const q = new URLSearchParams({name: button.dataset.event, function: button.dataset.functionId});
    location.hash = `#/send?${q}`;
  });

  const handlers = {  // the runs' counts changed: the functions' counts are read again (at most every 2 s)
    counts() {
      if (refresh) return;
      refresh = setTimeout(() => { refresh = null; if (ctx.alive()) load(); }, 2000);
    },
  };

  return {
    async start() {
      draw();
      await load();
      ctx.stream("list=1", handlers);
    },
    destroy() { clearTimeout(refresh); },
  };
}
