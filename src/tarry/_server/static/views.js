// The events, waits, buffers and send views.
import {replaceQuery} from "./app.js";
import {FINISHED, NONE, SKIPS, api, enc, esc, inline, json, morph, plural, post, relative, shortId, status, when} from "./lib.js";

const skipList = (list) => list.map((s) => `<span class="skip" data-skip="${esc(s.function_id)}" title="${esc(SKIPS[s.reason] || "")}">${esc(s.function_id)}: ${esc(s.reason)}</span>`).join(" ");

/** A list paged by "Load older": `pages[0]` is the first page (the stream may replace it), the rest older ones. */
function pagedList(path, key) {
  return {
    pages: [], next: null,
    async first() { const body = await api(path()); this.pages = [body[key]]; this.next = body.next_cursor; },
    async more() {
      if (!this.next) return;
      const body = await api(`${path()}&cursor=${enc(this.next)}`);
      this.pages.push(body[key]);
      this.next = body.next_cursor;
    },
    items() {
      const seen = new Set();
      return this.pages.flat().filter((item) => { const id = item.id ?? item.key; if (seen.has(id)) return false; seen.add(id); return true; });
    },
  };
}

// -- events ------------------------------------------------------------------------

export function eventsView(ctx) {
  const list = pagedList(() => "/api/v1/events?limit=50", "events");
  let openId = ctx.params.get("id") || "";
  let detail = null;  // {event, runs, resumed}
  let detailError = null;
  let polls = 0;
  let poll = null;
  const recheck = new Map();  // undelivered event id -> tries

  ctx.root.innerHTML = `<div class="view-head"><h1>Events</h1></div>
    <p class="muted lede">Every event received, newest first. Open one to see the runs it started or resumed, and which functions skipped it; replay sends a copy.</p>
    <div id="event-detail-box"></div>
    <div id="events-box"><p class="muted">Loading…</p></div>`;
  const detailBox = ctx.root.querySelector("#event-detail-box");
  const box = ctx.root.querySelector("#events-box");

  function rowHtml(e) {
    return `<tr data-key="${esc(e.id)}" data-event-id="${esc(e.id)}" class="clickable${e.id === openId ? " selected" : ""}" tabindex="-1">
      <td><a href="#/events?id=${enc(e.id)}" title="${esc(e.id)}" data-open-event="${esc(e.id)}"><code>${shortId(e.id)}</code></a></td>
      <td><code>${esc(e.name)}</code></td><td>${e.key ? `<code>${esc(e.key)}</code>` : NONE}</td>
      <td>${inline(e.data, 80)}</td><td>${when(e.received_at)}</td>
      <td>${e.delivered ? `${esc(e.runs_started)} started, ${esc(e.runs_resumed)} resumed` : '<span class="muted">being delivered…</span>'}</td>
      <td>${skipList(e.skipped)}</td>
      <td><button type="button" class="small secondary" data-action="replay" data-event-id="${esc(e.id)}" title="send a copy of this event (a new id)">Replay</button></td></tr>`;
  }

  function draw() {
    const items = list.items();
    morph(box, `<div class="table-box"><table id="events"><thead><tr><th>Event</th><th>Name</th><th>Key</th><th>Data</th><th>Received</th><th>Runs</th><th>Skipped by</th><th></th></tr></thead>
      <tbody>${items.map(rowHtml).join("") || '<tr><td colspan="8" class="empty">No events yet.</td></tr>'}</tbody></table></div>
      ${list.next ? '<div class="pager"><button type="button" class="secondary" id="older-events">Load older events</button></div>' : ""}`);
    drawDetail();
  }

  function runLinks(runs) {
    return runs.map((r) => `<li data-key="${esc(r.id)}"><a href="#/runs/${enc(r.id)}" title="${esc(r.id)}">${esc(r.function_id)} <code>${shortId(r.id)}</code></a> ${status(r.status)}</li>`).join("");
  }

  function drawDetail() {
    if (!openId) { morph(detailBox, ""); return; }
    if (detailError) { morph(detailBox, `<div id="event-detail" class="panel"><p class="notice error">${esc(detailError)}</p></div>`); return; }
    if (!detail) { morph(detailBox, '<div id="event-detail" class="panel"><p class="muted">Loading…</p></div>'); return; }
    const {event, runs, resumed} = detail;
    const fields = [["id", event.id], ["name", event.name], ["ts", event.ts], ["key", event.key], ["v", event.v]]
      .map(([k, v]) => `<div><dt>${k}</dt><dd>${v === null || v === undefined ? NONE : `<code>${esc(v)}</code>`}</dd></div>`).join("");
    const skipped = event.skipped.length
      ? `<p>This event was skipped by: ${skipList(event.skipped)} <span class="muted">(${event.skipped.map((s) => esc(`${s.function_id}: ${SKIPS[s.reason] || s.reason}`)).join("; ")})</span></p>` : "";
    morph(detailBox, `<div id="event-detail" class="panel" data-event-id="${esc(event.id)}">
      <div class="title-row"><h2>Event <code>${esc(event.name)}</code></h2>
        <div class="actions"><button type="button" class="small ghost" id="close-event">Close</button></div></div>
      <dl class="facts">${fields}<div><dt>received</dt><dd>${when(event.received_at)}</dd></div></dl>
      ${event.delivered ? "" : '<p class="muted">Being delivered to the functions…</p>'}
      <div class="columns">
        <div><h3>Runs it started</h3>${runs.length ? `<ul class="links">${runLinks(runs)}</ul>` : '<p class="muted">none</p>'}</div>
        <div><h3>Runs it resumed</h3>${resumed.length ? `<ul class="links">${runLinks(resumed)}</ul>` : '<p class="muted">none</p>'}</div>
      </div>
      ${skipped}
      <h3>Data</h3>${json(event.data)}</div>`);
  }

  async function loadDetail() {
    clearTimeout(poll);
    if (!openId) { detail = null; drawDetail(); listen(); return; }
    const asked = openId;
    try {
      const body = await api(`/api/v1/events/${enc(asked)}/runs`);
      if (!ctx.alive() || asked !== openId) return;
      detail = body;
      detailError = null;
      if (!body.event.delivered && polls++ < 60) poll = setTimeout(loadDetail, 500);  // until every function saw it
    } catch (err) {
      if (!ctx.alive() || asked !== openId) return;
      detailError = err.status === 404 ? "There is no such event." : err.message;
    }
    drawDetail();
    listen();
  }

  function open(id) {
    openId = id;
    detail = null;
    detailError = null;
    polls = 0;
    replaceQuery("/events", new URLSearchParams(id ? {id} : {}));
    draw();
    loadDetail();
    if (id) detailBox.scrollIntoView({block: "nearest"});
  }

  function listen() {
    const q = new URLSearchParams({events: "1"});
    const watched = detail ? [...detail.runs, ...detail.resumed].filter((r) => !FINISHED.has(r.status)).map((r) => r.id).slice(0, 200) : [];
    if (watched.length) q.set("runs", watched.join(","));
    ctx.stream(q.toString(), handlers);
  }

  async function recheckUndelivered() {
    for (const [id, tries] of recheck) {
      if (tries > 20) { recheck.delete(id); continue; }
      recheck.set(id, tries + 1);
      try {
        const event = await api(`/api/v1/events/${enc(id)}`);
        if (!ctx.alive()) return;
        for (const page of list.pages) {
          const at = page.findIndex((e) => e.id === id);
          if (at >= 0) page[at] = event;
        }
        if (event.delivered) recheck.delete(id);
      } catch { recheck.delete(id); }
    }
    draw();
    if (recheck.size) recheckTimer = setTimeout(recheckUndelivered, 1000);
    else recheckTimer = null;
  }
  let recheckTimer = null;

  const handlers = {
    open() { if (handlers.broken) { handlers.broken = false; reload(); } },
    error() { handlers.broken = true; },
    events({events, more}) {
      if (!list.pages.length) return;
      if (more) { reload(); return; }  // more arrived than one message holds: read the first page again
      list.pages[0] = [...events, ...list.pages[0].filter((e) => !events.some((n) => n.id === e.id))];
      for (const e of events) if (!e.delivered) recheck.set(e.id, recheck.get(e.id) || 0);
      if (recheck.size && !recheckTimer) recheckTimer = setTimeout(recheckUndelivered, 1000);
      draw();
    },
    run(run) {
      if (!detail) return;
      for (const group of [detail.runs, detail.resumed]) {
        const at = group.findIndex((r) => r.id === run.id);
        if (at >= 0) group[at] = {...group[at], ...run};
      }
      drawDetail();
    },
  };

  async function reload() {
    try { await list.first(); } catch (err) { morph(box, `<p class="notice error" role="alert">${esc(err.message)}</p>`); return; }
    if (!ctx.alive()) return;
    for (const e of list.pages[0]) if (!e.delivered) recheck.set(e.id, 0);
    if (recheck.size && !recheckTimer) recheckTimer = setTimeout(recheckUndelivered, 1000);
    draw();
  }

  ctx.root.addEventListener("click", async (e) => {
    const replay = e.target.closest('button[data-action="replay"]');
    if (replay) { location.hash = `#/send?replay=${enc(replay.dataset.eventId)}`; return; }
    if (e.target.closest("#close-event")) { open(""); return; }
    if (e.target.closest("#older-events")) { await list.more(); draw(); return; }
    const link = e.target.closest("a[data-open-event]");
    if (link) { e.preventDefault(); open(link.dataset.openEvent); return; }
    if (e.target.closest("a, button")) return;
    const row = e.target.closest("tr[data-event-id]");
    if (row && !window.getSelection()?.toString()) open(row.dataset.eventId);
  });

  return {
    async start() {
      drawDetail();
      await Promise.all([reload(), loadDetail()]);
    },
    destroy() { clearTimeout(poll); clearTimeout(recheckTimer); },
  };
}

// -- waits -------------------------------------------------------------------------

export function waitsView(ctx) {
  const list = pagedList(() => "/api/v1/waits?limit=100", "waits");
  let failure = null;

  ctx.root.innerHTML = `<div class="view-head"><h1>Waiting now</h1></div>
    <p class="muted lede">Every open wait: the event a run waits for (and how it must match), or a person's resume. A resume wait opens the run's resume form.</p>
    <div id="waits-box"><p class="muted">Loading…</p></div>`;
  const box = ctx.root.querySelector("#waits-box");

  const keyOf = (w) => `${w.run_id}/${w.step_id}/${w.condition ?? ""}`;
  function rowHtml(w) {
    const what = w.kind === "resume" ? "a resume URL" :
      [w.events.length ? `<code>${esc(w.events.join(" | "))}</code>` : "any event",
       Object.keys(w.match || {}).length ? `where ${esc(Object.entries(w.match).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", "))}` : "",
       w.if_exp ? `if <code>${esc(w.if_exp)}</code>` : "",
       w.remaining != null ? `(${esc(w.remaining)} more at most)` : ""].filter(Boolean).join(" ");
    const page = w.kind === "resume" ? `#/runs/${enc(w.run_id)}?resume=${enc(w.step_id)}` : `#/runs/${enc(w.run_id)}`;
    const action = w.kind === "resume"  // one link a row: the run's page (at its resume form); the button goes there too
      ? `<button type="button" class="small" data-go="${esc(page)}" title="open the run's resume form">Resume…</button>` : "";
    return `<tr data-key="${esc(keyOf(w))}" data-wait-run="${esc(w.run_id)}" data-kind="${esc(w.kind)}">
      <td><a href="${esc(page)}" title="${esc(w.run_id)}">${esc(w.function_id)}</a> <code class="muted">${shortId(w.run_id)}</code></td>
      <td><code>${esc(w.step_id)}</code> <span class="muted">${esc(w.kind)}${w.condition != null ? `, condition ${esc(w.condition)}` : ""}</span></td>
      <td class="waits-for">${what}</td><td>${when(w.since)}</td>
      <td>${w.until ? `${when(w.until)} <span class="muted">${esc(relative(w.until))}</span>` : '<span class="muted">no timeout</span>'}</td>
      <td>${action}</td></tr>`;
  }

  function draw() {
    if (failure) { morph(box, `<p class="notice error" role="alert">${esc(failure)}</p>`); return; }
    const seen = new Set();
    const items = list.pages.flat().filter((w) => !seen.has(keyOf(w)) && seen.add(keyOf(w)));
    morph(box, `<div class="table-box"><table id="waits"><thead><tr><th>Run</th><th>Step</th><th>Waits for</th><th>Since</th><th>Until</th><th></th></tr></thead>
      <tbody>${items.map(rowHtml).join("") || '<tr><td colspan="6" class="empty" id="no-waits">No run is waiting.</td></tr>'}</tbody></table></div>
      ${list.next ? '<div class="pager"><button type="button" class="secondary" id="older-waits">Load more</button></div>' : ""}`);
  }

  async function reload() {
    try { await list.first(); failure = null; } catch (err) { failure = err.message; }
    if (ctx.alive()) draw();
  }

  const handlers = {
    open() { if (handlers.broken) { handlers.broken = false; reload(); } },
    error() { handlers.broken = true; },
    waits({waits}) { list.pages[0] = waits; if (list.pages.length === 1 && waits.length < 100) list.next = null; draw(); },
  };
  box.addEventListener("click", async (e) => {
    const go = e.target.closest("button[data-go]");
    if (go) { location.hash = go.dataset.go; return; }
    if (e.target.closest("#older-waits")) { await list.more(); draw(); }
  });
  const tick = setInterval(() => ctx.alive() && list.pages.length && draw(), 5000);  // "in 3 min" stays true

  return {
    async start() { await reload(); ctx.stream("waits=1", handlers); },
    destroy() { clearInterval(tick); },
  };
}

// -- buffers -----------------------------------------------------------------------

export function buffersView(ctx) {
  let buffers = null;
  let failure = null;
  let timer = null;
  ctx.root.innerHTML = `<div class="view-head"><h1>Gathering events</h1></div>
    <p class="muted lede">Debounce bursts and batches still gathering: each becomes one run when it is due (or, for a batch, full).</p>
    <div id="buffers-box"><p class="muted">Loading…</p></div>`;
  const box = ctx.root.querySelector("#buffers-box");

  function draw() {
    if (failure) { morph(box, `<p class="notice error" role="alert">${esc(failure)}</p>`); return; }
    if (!buffers.length) { morph(box, '<p class="empty" id="no-buffers">No burst or batch is gathering events.</p>'); return; }
    morph(box, `<div class="table-box"><table id="buffers"><thead><tr><th>Function</th><th>Kind</th><th>Key</th><th>Events</th><th>First event</th><th>Last event</th><th>Run made at</th></tr></thead><tbody>
      ${buffers.map((b) => `<tr data-key="${esc(b.id)}" data-buffer-id="${esc(b.id)}" data-kind="${esc(b.kind)}"><td>${esc(b.function_id)}</td><td>${esc(b.kind)}</td>
        <td>${b.partition === null ? NONE : `<code>${esc(JSON.stringify(b.partition))}</code>`}</td><td>${b.size}</td>
        <td>${when(b.first_at)}</td><td>${when(b.last_at)}</td><td>${when(b.due_at)} ${b.due_at ? `<span class="muted">${esc(relative(b.due_at))}</span>` : ""}</td></tr>`).join("")}
      </tbody></table></div>`);
  }

  async function load() {
    clearTimeout(timer);
    try { ({buffers} = await api("/api/v1/buffers")); failure = null; } catch (err) { failure = err.message; buffers = buffers || []; }
    if (!ctx.alive()) return;
    draw();
    timer = setTimeout(load, 3000);  // a burst ends by time, not by an event: read again while this view is open
  }

  let soon = null;
  const handlers = {events() { clearTimeout(soon); soon = setTimeout(load, 300); }};
  return {
    async start() { await load(); ctx.stream("events=1", handlers); },
    destroy() { clearTimeout(timer); clearTimeout(soon); },
  };
}

// -- send --------------------------------------------------------------------------

export function sendView(ctx) {
  const params = ctx.params;
  const replaying = params.get("replay");
  const forFunction = params.get("function");
  ctx.root.innerHTML = `<div class="view-head"><h1>${replaying ? "Replay an event" : "Send an event"}</h1></div>
    <p class="muted lede" id="send-intro">${replaying ? `A copy of event <a href="#/events?id=${enc(replaying)}"><code>${esc(replaying)}</code></a>: change what you like, then send it (it gets a new id).`
      : forFunction ? `A test event for <a href="#/?function=${enc(forFunction)}"><code>${esc(forFunction)}</code></a>: its trigger's name is filled in; write the data it expects.`
      : "Any event, as your app would send it: the functions it triggers start, and waits that match it resume."}</p>
    <form class="stack panel" id="send-form" novalidate>
      <label>Name <input name="name" required placeholder="app/account.created" spellcheck="false"></label>
      <label>Data <span class="muted">(a JSON object)</span> <textarea name="data" rows="8" spellcheck="false">{}</textarea></label>
      <div class="grid-2">
        <label>Id <span class="muted">(optional: an event with an id already received is not sent twice)</span> <input name="id" spellcheck="false"></label>
        <label>Time <span class="muted">(optional, local time; default: now; a later time delays the event until then)</span> <input name="ts" type="datetime-local" step="1"></label>
        <label>Key <span class="muted">(optional)</span> <input name="key" spellcheck="false" placeholder="order-1324"></label>
        <label>Version <span class="muted">(optional, v)</span> <input name="v" spellcheck="false" placeholder="2024-01-01.1"></label>
      </div>
      <div class="row"><button type="submit">Send</button></div>
      <div id="send-result" aria-live="polite"></div>
    </form>`;
  const form = ctx.root.querySelector("#send-form");
  const out = ctx.root.querySelector("#send-result");
  const field = (name) => form.elements.namedItem(name);
  if (params.get("name")) field("name").value = params.get("name");
  if (params.get("data")) {  // a wait's "send one…": the data its match accepts
    try { field("data").value = JSON.stringify(JSON.parse(params.get("data")), null, 2); } catch { /* left as it is */ }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fail = (message) => { out.innerHTML = `<div class="notice error" id="send-error" role="alert">${esc(message)}</div>`; };
    const event = {name: field("name").value.trim()};
    if (!event.name) { fail("Name: required, the event's name (such as app/account.created)."); field("name").focus(); return; }
    try {
      event.data = JSON.parse(field("data").value.trim() || "{}");
    } catch (err) {
      fail(`Data: not valid JSON (${err.message}).`);
      field("data").focus();
      return;
    }
    if (event.data === null || typeof event.data !== "object" || Array.isArray(event.data)) {
      fail("Data: it must be a JSON object, such as {\"userId\": \"ada\"}.");
      return;
    }
    for (const name of ["id", "key", "v"]) if (field(name).value.trim()) event[name] = field(name).value.trim();
    if (field("ts").value) {
      const at = new Date(field("ts").value).getTime();
      if (Number.isNaN(at)) { fail("Time: not a date and time."); return; }
      event.ts = at;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const {ids} = await post("/api/v1/events", event);
      out.innerHTML = `<div class="notice ok" id="sent" role="status">Sent ${plural(ids.length, "event")}: <a href="#/events?id=${enc(ids[0])}"><code>${esc(ids[0])}</code></a> — open it to see the runs it started.</div>`;
    } catch (err) {
      fail(err.message);
    } finally {
      button.disabled = false;
    }
  });

  return {
    async start() {
      ctx.stream("events=1", {});  // what says the server is there (the form itself needs no updates)
      if (!replaying) return;
      try {
        const event = await api(`/api/v1/events/${enc(replaying)}`);
        if (!ctx.alive()) return;
        field("name").value = event.name;
        field("data").value = JSON.stringify(event.data ?? {}, null, 2);
        field("key").value = event.key || "";
        field("v").value = event.v || "";
        field("id").value = "";
      } catch (err) {
        out.innerHTML = `<div class="notice error" id="send-error" role="alert">The event to replay: ${esc(err.message)}</div>`;
      }
    },
  };
}
