// The runs view (#/): counts by status, search, filters, paging, bulk cancel and rerun, rows patched live.
import {confirm, replaceQuery} from "./app.js";
import {
  FINISHED, NONE, REASONS, STATUSES, all, api, between, enc, esc, isoToLocal, localToIso, morph, ms,
  number, plural, post, shortId, status, when,
} from "./lib.js";

const PAGE = 50;
const MAX_ROWS = 200;  // rows kept on the first page as new runs arrive on top
const FILTERS = ["q", "function", "status", "created_after", "created_before"];

export function queuedWhy(run) {
  if (run.status !== "queued" || !run.queued_reason) return "";
  return ` <span class="reason" data-queued-reason="${esc(run.queued_reason)}" title="${esc(REASONS[run.queued_reason] || "")}">${esc(run.queued_reason)}</span>`;
}

export function runsView(ctx) {
  const params = ctx.params;
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  let cursors = [null];  // the cursor of each page seen; the last is the page shown
  let nextCursor = null;
  let rows = new Map();  // id -> run JSON, the rows shown
  let counts = null;
  let newer = 0;  // runs created since, while a later page is shown
  let searched = null;  // with q: "run" or "event", what q turned out to be
  let loading = 0;
  let reopen = null;
  let tick = null;

  ctx.root.innerHTML = `
    <div class="view-head"><h1>Runs</h1><div id="run-counts" class="counts" aria-label="runs by status"></div></div>
    <form id="run-filters" class="filters" role="search" autocomplete="off">
      <label class="grow">Search <input name="q" type="search" placeholder="a run id or an event id" spellcheck="false"></label>
      <label>Function <select name="function"><option value="">all functions</option></select></label>
      <label>Status <select name="status"><option value="">any status</option>${STATUSES.map((s) => `<option value="${s}">${s}</option>`).join("")}</select></label>
      <label>Created after <input name="created_after" type="datetime-local" step="60"></label>
      <label>Created before <input name="created_before" type="datetime-local" step="60"></label>
      <button type="button" class="ghost" id="clear-filters">Clear</button>
    </form>
    <div class="toolbar">
      <button type="button" class="danger" id="bulk-cancel" disabled title="choose a function or a time range first">Cancel matching…</button>
      <button type="button" class="secondary" id="bulk-rerun" disabled title="choose a function or a time range first">Rerun matching…</button>
      <span id="bulk-result" role="status"></span>
    </div>
    <div id="runs-notice"></div>
    <div class="table-box"><table id="runs">
      <thead><tr><th>Run</th><th>Function</th><th>Status</th><th>Event</th><th>Created</th><th>Duration</th><th>Ended</th></tr></thead>
      <tbody></tbody></table></div>
    <div class="pager">
      <button type="button" class="secondary" id="prev-page" disabled>← Newer</button>
      <span id="page-info" class="muted"></span>
      <button type="button" class="secondary" id="next-page" disabled>Older →</button>
    </div>`;
  const form = ctx.root.querySelector("#run-filters");
  const tbody = ctx.root.querySelector("#runs tbody");
  const field = (name) => form.elements.namedItem(name);
  field("q").value = filters.q;
  field("status").value = filters.status;
  field("created_after").value = isoToLocal(filters.created_after);
  field("created_before").value = isoToLocal(filters.created_before);
  const functionSelect = field("function");
  if (filters.function) functionSelect.add(new Option(filters.function, filters.function, true, true));

  const listQuery = (extra = {}) => {
    const q = new URLSearchParams();
    if (filters.function) q.set("function", filters.function);
    if (filters.created_after) q.set("created_after", filters.created_after);
    if (filters.created_before) q.set("created_before", filters.created_before);
    for (const [k, v] of Object.entries(extra)) if (v) q.set(k, v);
    return q;
  };

  // -- drawing --
  function rowHtml(r) {
    const end = r.ended_at || (FINISHED.has(r.status) ? null : new Date().toISOString());
    const took = end ? between(r.created_at, end) : "";
    return `<tr data-key="${esc(r.id)}" data-run-id="${esc(r.id)}" data-status="${esc(r.status)}">
      <td><a href="#/runs/${enc(r.id)}" title="${esc(r.id)}"><code>${shortId(r.id)}</code></a>${r.rerun_of ? ` <span class="chip" title="a rerun of ${esc(r.rerun_of)}">rerun</span>` : ""}</td>
      <td><a class="plain" href="#/?function=${enc(r.function_id)}">${esc(r.function_id)}</a></td>
      <td>${status(r.status)}${queuedWhy(r)}</td>
      <td><code>${esc(r.event.name)}</code>${r.event_count > 1 ? ` <span class="muted">+${r.event_count - 1}</span>` : ""}</td>
      <td>${when(r.created_at)}</td>
      <td class="num">${took ? `${FINISHED.has(r.status) ? "" : '<span class="muted">for </span>'}${esc(took)}` : NONE}</td>
      <td>${when(r.ended_at)}</td></tr>`;
  }

  function sorted() {
    return [...rows.values()].sort((a, b) => (ms(b.created_at) - ms(a.created_at)) || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0));
  }

  function drawRows() {
    const list = sorted();
    const empty = loading ? '<tr><td colspan="7" class="muted">Loading…</td></tr>'
      : `<tr><td colspan="7" class="empty">${anyFilter() ? "No run matches these filters." : "No runs yet: send an event to start one."}</td></tr>`;
    morph(tbody, list.map(rowHtml).join("") || empty);
    const page = cursors.length;
    ctx.root.querySelector("#prev-page").disabled = page === 1;
    ctx.root.querySelector("#next-page").disabled = !nextCursor;
    ctx.root.querySelector("#page-info").textContent = list.length ? `page ${page} · ${plural(list.length, "run")}` : "";
    const notice = ctx.root.querySelector("#runs-notice");
    morph(notice, newer && page > 1 ? `<p class="notice"><button type="button" class="link" id="to-first-page">${plural(newer, "newer run")} — back to the first page</button></p>` : "");
  }

  function drawCounts() {
    const box = ctx.root.querySelector("#run-counts");
    if (!counts) { morph(box, ""); return; }
    const link = (s) => {
      const q = new URLSearchParams(currentQuery());
      if (s) q.set("status", s); else q.delete("status");
      return `#/?${q}`;
    };
    morph(box, `<a class="count total${filters.status ? "" : " on"}" data-key="total" href="${esc(link(""))}"><b data-count-total>${number(counts.total)}</b> all</a>` +
      STATUSES.map((s) => `<a class="count s-${s}${filters.status === s ? " on" : ""}${counts.counts[s] ? "" : " zero"}" data-key="${s}" href="${esc(link(s))}"><b data-count-status="${s}">${number(counts.counts[s])}</b> ${s}</a>`).join(""));
  }

  function anyFilter() { return FILTERS.some((k) => filters[k]); }
  const bulkAllowed = () => !filters.q && Boolean(filters.function || filters.created_after || filters.created_before);

  function drawBulk() {
    for (const id of ["bulk-cancel", "bulk-rerun"]) {
      const button = ctx.root.querySelector(`#${id}`);
      button.disabled = !bulkAllowed();
      button.title = bulkAllowed() ? "" : filters.q ? "clear the search first: bulk actions select by function and time" : "choose a function or a time range first";
    }
  }

  function currentQuery() {
    const q = new URLSearchParams();
    for (const k of FILTERS) if (filters[k]) q.set(k, filters[k]);
    return q;
  }

  // -- loading --
  async function loadCounts() {
    try {
      if (filters.q && searched === "run") {
        const c = Object.fromEntries(STATUSES.map((s) => [s, 0]));
        for (const r of rows.values()) c[r.status] += 1;
        counts = {counts: c, total: rows.size};
      } else {
        const extra = filters.q ? {event_id: filters.q} : {};
        const body = await api(`/api/v1/runs/counts?${listQuery(extra)}`);
        if (!ctx.alive()) return;
        counts = body;
      }
    } catch { counts = null; }
    drawCounts();
  }

  async function loadPage() {
    loading += 1;
    const cursor = cursors[cursors.length - 1];
    try {
      let runs;
      let following = null;
      if (filters.q) {
        const byRun = api(`/api/v1/runs?${listQuery({run_id: filters.q, status: filters.status})}&limit=1`).catch(() => ({runs: []}));
        const byEvent = api(`/api/v1/runs?${listQuery({event_id: filters.q, status: filters.status, cursor})}&limit=${PAGE}`);
        const [one, many] = await Promise.all([byRun, byEvent]);
        searched = one.runs.length ? "run" : "event";
        runs = one.runs.length ? one.runs : many.runs;
        following = one.runs.length ? null : many.next_cursor;
      } else {
        const body = await api(`/api/v1/runs?${listQuery({status: filters.status, cursor})}&limit=${PAGE}`);
        runs = body.runs;
        following = body.next_cursor;
      }
      if (!ctx.alive()) return;
      rows = new Map(runs.map((r) => [r.id, r]));
      nextCursor = following;
      ctx.root.querySelector("#bulk-result").classList.remove("error");
    } catch (err) {
      if (!ctx.alive()) return;
      rows = new Map();
      morph(ctx.root.querySelector("#runs-notice"), `<p class="notice error" role="alert">${esc(err.message)}</p>`);
    } finally {
      loading -= 1;
    }
    drawRows();
    listen();
  }

  async function reload() {
    newer = 0;
    await Promise.all([loadPage(), filters.q ? null : loadCounts()]);
    if (filters.q) await loadCounts();
  }

  // -- live --
  function streamQuery() {
    const q = new URLSearchParams();
    const watched = [...rows.values()].filter((r) => !FINISHED.has(r.status)).map((r) => r.id).slice(0, 200);
    if (watched.length) q.set("runs", watched.join(","));
    if (!(filters.q && searched === "run")) {
      q.set("list", "1");
      for (const [k, v] of listQuery(filters.q ? {event_id: filters.q, status: filters.status} : {status: filters.status})) q.set(k, v);
    }
    return q.toString();
  }

  let opened = false;
  let broken = false;
  function listen() {
    clearTimeout(reopen);
    reopen = setTimeout(() => ctx.stream(streamQuery(), handlers), opened ? 1000 : 0);
  }

  const handlers = {
    open() {
      if (broken) { broken = false; reload(); return; }  // back after a lost connection: what changed meanwhile
      if (opened) fillGap();
      opened = true;
    },
    error() { broken = true; },
    run(run) {
      if (!rows.has(run.id)) return;
      const before = rows.get(run.id);
      rows.set(run.id, {...before, ...run});
      drawRows();
      if (FINISHED.has(run.status) !== FINISHED.has(before.status)) listen();
      if (searched === "run") loadCounts();
    },
    new({runs}) {
      if (cursors.length > 1) { newer += runs.length; drawRows(); return; }
      let added = false;
      for (const r of runs) {
        if (filters.status && r.status !== filters.status) continue;
        if (!rows.has(r.id)) { rows.set(r.id, r); added = true; }
      }
      if (!added) return;
      const list = sorted();
      for (const r of list.slice(MAX_ROWS)) rows.delete(r.id);
      drawRows();
      listen();
    },
    counts(body) { if (!(filters.q && searched === "run")) { counts = body; drawCounts(); } },
  };

  async function fillGap() {  // runs created while the stream was being reopened
    if (cursors.length > 1 || filters.q) return;
    const newest = sorted()[0];
    if (!newest) return;
    const after = filters.created_after && ms(filters.created_after) > ms(newest.created_at) ? filters.created_after : newest.created_at;
    try {
      const q = listQuery({status: filters.status});
      q.set("created_after", after);
      const {runs} = await api(`/api/v1/runs?${q}&limit=${PAGE}`);
      if (ctx.alive()) handlers.new({runs: runs.filter((r) => !rows.has(r.id))});
    } catch { /* the next message brings it */ }
  }

  // -- filters --
  let typing = null;
  function apply() {
    const next = {
      q: field("q").value.trim(), function: functionSelect.value, status: field("status").value,
      created_after: localToIso(field("created_after").value), created_before: localToIso(field("created_before").value),
    };
    if (FILTERS.every((k) => next[k] === filters[k])) return;
    Object.assign(filters, next);
    cursors = [null];
    searched = null;
    replaceQuery("/", currentQuery());
    drawBulk();
    reload();
  }

  form.addEventListener("change", (e) => { if (e.target.name !== "q") apply(); });
  form.addEventListener("input", (e) => {
    if (e.target.name !== "q") return;
    clearTimeout(typing);
    typing = setTimeout(apply, 400);
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(typing); apply(); });
  ctx.root.querySelector("#clear-filters").addEventListener("click", () => {
    for (const k of FILTERS) field(k).value = "";
    apply();
  });
  ctx.root.querySelector("#next-page").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    loadPage().then(() => window.scrollTo({top: 0}));
  });
  ctx.root.querySelector("#prev-page").addEventListener("click", () => {
    if (cursors.length === 1) return;
    cursors.pop();
    if (cursors.length === 1) newer = 0;
    loadPage();
  });
  ctx.root.addEventListener("click", (e) => {
    if (e.target.closest("#to-first-page")) { cursors = [null]; newer = 0; loadPage(); }
  });

  // -- bulk --
  function bulkBody() {
    const body = {};
    if (filters.function) body.function_id = filters.function;
    if (filters.created_after) body.created_after = filters.created_after;
    if (filters.created_before) body.created_before = filters.created_before;
    return body;
  }

  function scope() {
    const parts = [filters.function ? `of ${filters.function}` : "of every function"];
    if (filters.created_after) parts.push(`created from ${new Date(filters.created_after).toLocaleString()}`);
    if (filters.created_before) parts.push(`created before ${new Date(filters.created_before).toLocaleString()}`);
    return parts.join(", ");
  }

  async function bulk(kind) {
    if (!bulkAllowed()) return;
    const result = ctx.root.querySelector("#bulk-result");
    result.classList.remove("error");
    const rerunStatus = FINISHED.has(filters.status) ? filters.status : "failed";
    const body = kind === "cancel" ? bulkBody() : {...bulkBody(), status: rerunStatus};
    const path = kind === "cancel" ? "/api/v1/runs/cancel" : "/api/v1/runs/rerun";
    try {
      result.textContent = "Counting…";
      const {matching} = await post(path, {...body, dry_run: true});
      result.textContent = "";
      const text = kind === "cancel" ? `Cancel ${plural(matching, "run")}?` : `Rerun ${plural(matching, "run")}?`;
      const detail = matching === 0 ? "Nothing matches: there is nothing to do."
        : kind === "cancel" ? `Every unfinished run ${scope()} is cancelled. This cannot be undone.`
        : `Each ${rerunStatus} run ${scope()} starts again as a new run, from its first step.`;
      const yes = matching === 0 ? null : kind === "cancel" ? `Cancel ${plural(matching, "run")}` : `Rerun ${plural(matching, "run")}`;
      if (!await confirm(text, {yes, detail})) return;
      result.textContent = kind === "cancel" ? "Cancelling…" : "Starting the reruns…";
      if (kind === "cancel") {
        const {cancelled} = await post(path, body);
        result.textContent = `Cancelled ${plural(cancelled, "run")}.`;
      } else {
        const {run_ids: ids} = await post(path, body);
        result.textContent = `Started ${plural(ids.length, "rerun")}.`;
      }
      if (ctx.alive()) reload();
    } catch (err) {
      result.textContent = err.message;
      result.classList.add("error");
    }
  }
  ctx.root.querySelector("#bulk-cancel").addEventListener("click", () => bulk("cancel"));
  ctx.root.querySelector("#bulk-rerun").addEventListener("click", () => bulk("rerun"));

  return {
    async start() {
      drawBulk();
      loading += 1;
      drawRows();
      loading -= 1;
      const functions = all("/api/v1/functions", "functions").catch(() => []);
      reload();
      const list = await functions;
      if (!ctx.alive()) return;
      const chosen = functionSelect.value;
      functionSelect.replaceChildren(new Option("all functions", ""), ...list.map((f) => new Option(f.id, f.id)));
      if (chosen && !list.some((f) => f.id === chosen)) functionSelect.add(new Option(chosen, chosen));
      functionSelect.value = chosen;
      tick = setInterval(() => { if ([...rows.values()].some((r) => !FINISHED.has(r.status))) drawRows(); }, 1000);
    },
    destroy() { clearTimeout(reopen); clearTimeout(typing); clearInterval(tick); },
  };
}

