"""The console at 100,000 runs: the server time of what the dashboard's page asks, on a full database.

**The fill.** A template of about 500 runs is made through the engine itself, on the store measured:
functions that complete in three steps (a few with a 100 KiB output), fail after three attempts with a
traceback each, back off for 10 minutes, sleep for 7 days, wait for an event or for a resume URL (some
resumed, some cancelled), invoke a child function, rerun failed runs, wait in a queue behind a
concurrency limit of 1 whose one slot a running run holds, and events that start nothing or that a rate
limit skips. Its rows are read back as the store wrote them (every table a run or an event has rows in)
and copied into a fresh database ``--runs / template`` times by direct SQL, each copy with new ids
(ULIDs at the copy's time; every id found in a column or inside a JSON text is replaced, and resume
tokens' hashes too) and its times moved back, the copies spread over the last 30 days (times in the
future, such as a sleep's wake-up or a wait's timeout, are kept). So every row is one the store wrote,
the counters of migration 0005 are kept by their own triggers, and 100,000 runs take seconds to load
instead of minutes. The one running run of each copy is owned by a worker row that never expires, so
nothing recovers it. PostgreSQL is analysed after the load (as autovacuum would); SQLite is not (the
store never runs ``ANALYZE``).

**The measure.** The app (the same functions, no worker) is served by ``create_app`` and called in
process through ``httpx.ASGITransport``: each figure is the time of one request from the client's call
to the whole answer read, which is the server's time plus a few tens of µs of httpx. Each request is
made a few times to warm up, then ``--samples`` times; p50 and p99. A route not built yet is measured as
the store query it will run, and said so (``"via": "sql"``).

**Under load** (``--load-rate``): the same requests while the app's worker executes runs started at that
rate (each run queued, running, then completed: three changes of state), in the same process.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import random
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

import tarry
from benchmarks.common import Backend, percentiles
from tarry._engine import bulk
from tarry._server import create_app

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
STORES = ("sqlite", "postgresql")
DAY_MS = 86_400_000
SPREAD_MS = 30 * DAY_MS  # the copies' span, back from now
TARGET_MS = 300.0
# what a run or an event has rows in; the rest (schema, counters, buffers, workers) is not copied
TABLES = ("events", "runs", "steps", "step_errors", "timers", "waits", "resume_handles", "consumed", "run_events",
          "event_keys", "skips")  # fmt: skip
TIMES = {"events": ("ts", "received_at"), "runs": ("created_at", "ended_at", "queued_at", "place", "started_at"),
         "steps": ("started_at", "ended_at", "wake_at"), "timers": ("due_at",), "waits": ("created_at",),
         "resume_handles": ("expires_at", "used_at"), "skips": ("at",)}  # fmt: skip
SEQS = {"events": ("seq",), "consumed": ("event_seq",), "event_keys": ("seq",), "runs": ("last_seq",)}
SERIAL = {"steps": ("seq",), "waits": ("id",)}  # numbered by the database as rows come
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BIG = 100 * 1024  # a step output over the page's 64 KiB


class GatewayTimeout(Exception):
    pass


def _charge(order: int) -> None:
    def call_gateway(amount: int) -> None:
        raise GatewayTimeout(f"the card gateway did not answer within 10 s (order {order}, {amount} cents)")

    call_gateway(order * 100 + 99)


def define(app: tarry.Tarry, gate: asyncio.Event | None = None) -> None:
    """The functions of the template (and of the app that serves the filled database)."""

    @app.function(trigger="shop/order.placed", id="checkout")
    async def checkout(ctx: tarry.Context) -> Any:
        n = ctx.event.data["n"]
        await ctx.step.run("reserve", lambda: {"sku": f"sku-{n % 97}", "qty": 1 + n % 3})
        receipt = await ctx.step.run("charge", lambda: {"amount": 1999 + n, "big": "x" * BIG if n % 100 == 7 else ""})
        await ctx.step.run("email", lambda: {"sent": True, "to": f"user{n}@example.com"})
        return {"order": n, "amount": receipt["amount"]}

    @app.function(trigger="shop/payment.requested", id="charge-card", retries=2)
    async def charge_card(ctx: tarry.Context) -> None:
        await ctx.step.run("charge", _charge, ctx.event.data["n"])

    @app.function(trigger="sync/requested", id="sync-crm", retries=5)
    async def sync_crm(ctx: tarry.Context) -> None:
        def push() -> None:
            raise tarry.RetryAfterError("the CRM answered 429", delay="10m")

        await ctx.step.run("push", push)

    @app.function(trigger="mail/digest.due", id="digest")
    async def digest(ctx: tarry.Context) -> str:
        await ctx.step.run("collect", lambda: ["a", "b", "c"])
        await ctx.step.sleep("nap", "7d")
        return "sent"

    @app.function(trigger="expense/submitted", id="approval")
    async def approval(ctx: tarry.Context) -> Any:
        await ctx.step.run("notify", lambda: True)
        got = await ctx.step.wait_for_event("approved", event="expense/approved", match="data.id", timeout="30d")
        return None if got is None else got.data

    @app.function(trigger="refund/requested", id="refund")
    async def refund(ctx: tarry.Context) -> Any:
        handle = await ctx.step.resume_url("link", timeout="30d", payload={"order": ctx.event.data["n"]})
        return await ctx.step.wait_for_resume("review", handle)

    @app.function(trigger="shop/ship.requested", id="ship")
    async def ship(ctx: tarry.Context) -> Any:
        return await ctx.step.run("label", lambda: {"tracking": f"TRK{ctx.event.data.get('n', 0)}"})

    @app.function(trigger="shop/order.paid", id="fulfil")
    async def fulfil(ctx: tarry.Context) -> Any:
        await ctx.step.run("pick", lambda: True)
        return await ctx.step.invoke("ship", "ship", {"n": ctx.event.data["n"]})

    @app.function(trigger="reports/requested", id="reports", concurrency=tarry.Concurrency(limit=1))
    async def reports(ctx: tarry.Context) -> str:
        async def build() -> str:
            if gate is not None:
                await gate.wait()
            return "done"

        return str(await ctx.step.run("build", build))

    @app.function(trigger="shop/page.viewed", id="visits", rate_limit=tarry.RateLimit(limit=1, period="1h"))
    async def visits(ctx: tarry.Context) -> int:
        return int(ctx.event.data["n"])

    @app.function(trigger="load/tick", id="load", retries=0)
    async def load(ctx: tarry.Context) -> int:
        return int(await ctx.step.run("work", lambda: 1))


def _events(name: str, count: int, first: int = 0, **data: Any) -> list[tarry.Event]:
    return [tarry.Event(name, {"n": n, **data}) for n in range(first, first + count)]


async def _until(check: Callable[[], Any], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the template did not reach: {what}")
        await asyncio.sleep(0.05)


async def make_template(url: str) -> None:
    """About 500 runs of every status through the engine; returns with the app still open (one run running)."""
    gate = asyncio.Event()
    app = tarry.Tarry("console", database_url=url, concurrency=64)
    define(app, gate)
    async with app:
        await app.send(_events("shop/order.placed", 254))
        await app.send(_events("shop/payment.requested", 40))
        await app.send(_events("sync/requested", 10))
        await app.send(_events("mail/digest.due", 30))
        await app.send([tarry.Event("expense/submitted", {"n": n, "id": n}) for n in range(60)])
        await app.send(_events("refund/requested", 20))
        await app.send(_events("shop/order.paid", 20))
        await app.send(_events("shop/ship.requested", 10))
        await app.send(_events("shop/page.viewed", 10))
        await app.send(_events("shop/cart.updated", 100))  # no function
        await app.idle(timeout=120)
        await app.send([tarry.Event("expense/approved", {"id": n}) for n in range(20)])
        await app.idle(timeout=120)
        for run in (await app.list_runs(function_id="approval", status="waiting", limit=100))[:10]:
            await app.cancel_run(run.id)

        def failed(count: int) -> Callable[[], Any]:  # their retries back off for a few seconds
            async def check() -> bool:
                return len(await app.list_runs(function_id="charge-card", status="failed", limit=100)) == count

            return check

        await _until(failed(40), "40 runs failed after their retries")
        for run in await app.list_runs(function_id="charge-card", status="failed", limit=10):
            await app.rerun(run.id, from_step="charge")
        await _until(failed(50), "their 10 reruns failed too")
        await app.send(_events("reports/requested", 25))

        async def held() -> bool:
            runs = await app.list_runs(function_id="reports", limit=100)
            return sum(r.status == "queued" for r in runs) == 24 and sum(r.status == "running" for r in runs) == 1

        await _until(held, "one reports run running, 24 queued behind it")
        await asyncio.sleep(0.5)  # the held runs' reasons written
        TEMPLATE_OPEN.set()
        await TEMPLATE_READ.wait()
        gate.set()


TEMPLATE_OPEN = asyncio.Event()
TEMPLATE_READ = asyncio.Event()


# -- the rows of a database, read and written as plain rows ---------------------------------------------


class Rows:
    """Plain rows of one database (sqlite3 or psycopg), for the copy."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = url.startswith("postgresql")
        if self.pg:
            import psycopg

            self.conn: Any = psycopg.connect(url, autocommit=False)
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, check_same_thread=False)

    def read(self, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self.conn.execute(f"SELECT * FROM {table}")
        columns = [d[0] for d in cur.description]
        rows = [tuple(r) for r in cur.fetchall()]
        self.conn.rollback() if self.pg else None
        return columns, rows

    def write(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.pg:
            with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _ulid(ms: int, rng: random.Random) -> str:
    value = (ms << 80) | rng.getrandbits(80)
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def _ulid_ms(ulid: str) -> int:
    value = 0
    for ch in ulid[:10]:
        value = value * 32 + _ALPHABET.index(ch)
    return value


def copies(template: dict[str, tuple[list[str], list[tuple[Any, ...]]]], count: int,
           now: int) -> Iterator[dict[str, tuple[list[str], list[tuple[Any, ...]]]]]:  # fmt: skip
    """``count`` copies of the template's rows, oldest first, each with new ids, seqs and times."""
    rng = random.Random(11)
    ids = [r[0] for r in template["runs"][1]] + [r[1] for r in template["events"][1]]
    ev_cols = template["events"][0]
    seq_at = ev_cols.index("seq")
    seqs = [r[seq_at] for r in template["events"][1]]
    lo_seq, span = min(seqs), max(seqs) - min(seqs) + 1
    tokens = [r[0] for r in template["resume_handles"][1]]
    end = max(max(r[template["runs"][0].index("created_at")] for r in template["runs"][1]), now)
    gap = SPREAD_MS // count
    for k in range(count):
        delta = -(count - k) * gap
        mapping = {old: _ulid(_ulid_ms(old) + delta, rng) for old in ids}
        mapping.update({t: hashlib.sha256(f"{t}/{k}".encode()).hexdigest() for t in tokens})

        def text(value: str, mapping: dict[str, str] = mapping) -> str:
            if value in mapping:
                return mapping[value]
            return ULID.sub(lambda m: mapping.get(m.group(0), m.group(0)), value) if len(value) >= 26 else value

        out: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table, (columns, rows) in template.items():
            drop = set(SERIAL.get(table, ()))
            keep = [i for i, c in enumerate(columns) if c not in drop]
            times = {columns.index(c) for c in TIMES.get(table, ()) if c in columns}
            seq_cols = {columns.index(c) for c in SEQS.get(table, ()) if c in columns}
            new_rows = []
            for row in rows:
                new = []
                for i in keep:
                    v = row[i]
                    if v is None:
                        pass
                    elif i in times:
                        v = v + delta if v <= end else v
                    elif i in seq_cols:
                        v = (k + 1) * span + (v - lo_seq) + lo_seq
                    elif isinstance(v, str):
                        v = text(v)
                    new.append(v)
                new_rows.append(tuple(new))
            out[table] = ([columns[i] for i in keep], new_rows)
        yield out


# -- many copies of a few runs, by set-based SQL ------------------------------------------------------------

LINKS = {"events": ("id", "event_id"), "runs": ("id", "run_id")}  # (column, copy_map's): the rows of a run
MAP = ("n", "run_id", "event_id", "old_text", "new_run", "new_event", "new_text")


def copy_runs(url: str, template: list[tuple[str, str]], count: int, text: Callable[[int, int], str],
              chunk: int = 50_000) -> int:  # fmt: skip
    """Copy the rows of the ``template`` runs ``count`` times into their database, by set-based SQL; rows written.

    ``template`` is ``(run_id, text)`` for each run: its rows and its event's (every table of ``TABLES``) are
    copied as the store wrote them, each copy with new ULIDs for the run and its event (at the template's
    times) and, in every text column, ``text`` replaced by ``text(k, j)`` for copy ``k`` (1 .. ``count``) of
    template run ``j`` (its match key, say). Serial columns are numbered again by the database, in the
    template's order, and the counters' triggers count the copies. The template's rows are set aside first;
    then, ``chunk`` runs at a time, a mapping of old ids to new ones (made here, loaded in one statement) is
    joined with them by one ``INSERT ... SELECT`` per table. Rows that name an event's seq (what a run
    consumed, a batch's last event, look-back keys) would need more than that, and are refused.
    """
    runs = [run_id for run_id, _ in template]
    marks = ", ".join("?" for _ in runs)
    events: dict[str, str] = {}

    def prepare() -> tuple[Rows, list[str]]:
        """A connection with the template's rows set aside and an empty mapping; the inserts to run."""
        rows = Rows(url)
        if rows.pg:  # the waits trigger looks for each new wait's run among the statement's rows: in memory
            rows.execute("SET work_mem = '256MB'")
        events.update(rows.execute(f"SELECT id, event_id FROM runs WHERE id IN ({marks})", tuple(runs)))
        if len(set(events.values())) != len(runs):
            raise ValueError("each template run needs an event of its own")
        seqs = f"SELECT seq FROM events WHERE id IN ({marks})"
        for check, args in ((f"SELECT 1 FROM runs WHERE id IN ({marks}) AND last_seq IS NOT NULL", tuple(runs)),
                            (f"SELECT 1 FROM consumed WHERE run_id IN ({marks})", tuple(runs)),
                            (f"SELECT 1 FROM event_keys WHERE seq IN ({seqs})", tuple(events.values()))):  # fmt: skip
            if rows.execute(check, args):
                raise ValueError(f"the template's rows name an event's seq ({check.split()[3]}): not copied so")
        inserts: list[str] = []
        for table in TABLES:
            column, mapped = LINKS.get(table, ("run_id", "run_id"))
            ids = tuple(events.values()) if table == "events" else tuple(runs)
            columns = [d[0] for d in rows.conn.execute(f"SELECT * FROM {table} WHERE 1 = 0").description]
            if column not in columns or not rows.execute(f"SELECT 1 FROM {table} WHERE {column} IN ({marks})", ids):
                continue
            rows.execute(f"CREATE TEMP TABLE tpl_{table} AS SELECT * FROM {table} WHERE 1 = 0")
            rows.execute(f"INSERT INTO tpl_{table} SELECT * FROM {table} WHERE {column} IN ({marks})", ids)
            serial = [c for c in (*SERIAL.get(table, ()), *(("seq",) if table == "events" else ())) if c in columns]
            texts = _texts(rows, table)
            keep = [c for c in columns if c not in serial]
            values = [f"replace(replace(replace(x.{c}, m.run_id, m.new_run), m.event_id, m.new_event), m.old_text, "
                      f"m.new_text)" if c in texts else f"x.{c}" for c in keep]  # fmt: skip
            order = ", ".join(["m.n", *(f"x.{c}" for c in serial)])
            inserts.append(f"INSERT INTO {table} ({', '.join(keep)}) SELECT {', '.join(values)} "
                           f"FROM tpl_{table} x JOIN copy_map m ON x.{column} = m.{mapped} ORDER BY {order}")  # fmt: skip
        rows.execute("CREATE TEMP TABLE copy_map (n BIGINT, run_id TEXT, event_id TEXT, old_text TEXT, "
                     "new_run TEXT, new_event TEXT, new_text TEXT)")  # fmt: skip
        rows.commit()
        return rows, inserts

    rows, inserts = prepare()
    per = max(1, chunk // len(runs))
    written, first, lost = 0, 1, 0
    try:
        while first <= count:
            mapping = [(n, run_id, events[run_id], old, _next_ulid(run_id, 2 * n + 1), _next_ulid(events[run_id], 2 * n),
                        text(k, j))
                       for k in range(first, min(count + 1, first + per))
                       for j, (run_id, old) in enumerate(template) for n in (k * len(runs) + j,)]  # fmt: skip
            try:
                rows.execute("DELETE FROM copy_map")
                rows.write("copy_map", list(MAP), mapping)
                done = sum(rows.conn.execute(insert).rowcount for insert in inserts)
                rows.commit()
            except Exception as exc:  # a server restarted under the copy: the chunk again, on a new connection
                if not (rows.pg and lost_connection(exc)) or lost == 10:
                    raise
                lost += 1
                rows.close()
                rows, inserts = again(prepare)
                continue
            written += done
            first += per
        return written
    finally:
        rows.close()


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is the PostgreSQL connection lost (the server restarted or shutting down)."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


def again(call: Callable[[], Any], tries: int = 30) -> Any:
    """``call()``, retried every 2 s while the PostgreSQL server cannot be reached (restarting)."""
    for attempt in range(tries):
        try:
            return call()
        except Exception as exc:
            if not lost_connection(exc) or attempt == tries - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def _next_ulid(ulid: str, n: int) -> str:
    """A ULID of the same millisecond as ``ulid``, the ``n``-th of that millisecond: as the store's monotonic ids
    of one millisecond, the copies of one template run have increasing ids, so each index takes them in order."""
    return ulid[:10] + "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(15, -1, -1))


def _texts(rows: Rows, table: str) -> set[str]:
    """The text columns of ``table``."""
    if rows.pg:
        found = rows.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                             "AND table_schema = current_schema() AND data_type = 'text'", (table,))  # fmt: skip
        return {c for (c,) in found}
    return {r[1] for r in rows.execute(f"PRAGMA table_info({table})") if r[2].upper() == "TEXT"}


async def fill(backend: Backend, runs: int) -> tuple[str, dict[str, Any]]:
    """A database with about ``runs`` runs (copies of a template made through the engine)."""
    template_url = backend.fresh("console_template")
    url = backend.fresh("console")
    began = time.perf_counter()
    TEMPLATE_OPEN.clear()
    TEMPLATE_READ.clear()
    maker = asyncio.ensure_future(make_template(template_url))
    await asyncio.wait([maker, asyncio.ensure_future(TEMPLATE_OPEN.wait())], return_when=asyncio.FIRST_COMPLETED)
    if maker.done():
        maker.result()
    source = Rows(template_url)
    template = {t: source.read(t) for t in TABLES}
    owner = source.execute("SELECT id FROM workers")
    source.close()
    TEMPLATE_READ.set()
    await maker
    made = time.perf_counter() - began
    per = len(template["runs"][1])
    count = max(1, round(runs / per))
    schema = tarry.Tarry("console", database_url=url)
    await schema.start(worker=False)
    await schema.close()
    target = Rows(url)
    now = int(time.time() * 1000)
    loaded = time.perf_counter()
    for copy in copies(template, count, now):
        for table in TABLES:
            target.write(table, *copy[table])
        target.commit()
    far = now + 10 * 365 * DAY_MS
    for (worker_id,) in owner:  # the running runs' owner stays alive: nothing recovers them
        target.execute("INSERT INTO workers (id, started_at, heartbeat_at) VALUES (?, ?, ?)", (worker_id, now, far))
    top = target.execute("SELECT max(seq) FROM events")[0][0]
    if target.pg:
        target.execute("SELECT setval(pg_get_serial_sequence('events', 'seq'), ?)", (top,))
    target.execute("INSERT INTO skip_counts (function_id, reason, n) SELECT function_id, reason, count(*) "
                   "FROM skips WHERE true GROUP BY function_id, reason "
                   "ON CONFLICT (function_id, reason) DO UPDATE SET n = excluded.n")  # fmt: skip
    target.commit()
    load_s = time.perf_counter() - loaded
    if target.pg:
        target.conn.autocommit = True
        target.execute("VACUUM ANALYZE")
    sizes = {t: target.execute(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    statuses = dict(target.execute("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status"))
    target.close()
    return url, {"template_runs": per, "copies": count, "template_s": round(made, 1), "load_s": round(load_s, 1),
                 "rows": sizes, "statuses": statuses}  # fmt: skip


# -- the measure ------------------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


class Probe:
    """Where the requests point: ids picked from the filled database."""

    def __init__(self, url: str) -> None:
        rows = Rows(url)

        def middle(column: str, source: str, *params: Any) -> Any:
            """The middle one of what ``SELECT column FROM source`` finds (neither the newest nor the oldest)."""
            [(count,)] = rows.execute(f"SELECT count(*) FROM {source}", params)
            return rows.execute(f"SELECT {column} FROM {source} ORDER BY 1 LIMIT 1 OFFSET ?",
                                (*params, count // 2))[0][0]  # fmt: skip

        self.now = int(time.time() * 1000)
        self.middle_run = middle("id", "runs")
        self.failed_run = middle("id", "runs WHERE function_id = 'charge-card' AND status = 'failed' "
                                 "AND rerun_of IS NULL")  # fmt: skip
        self.rerun_original = middle("rerun_of", "runs WHERE rerun_of IS NOT NULL")
        self.big_run = middle("run_id", "steps WHERE length(output) > ?", BIG)
        self.parent_run = middle("id", "runs WHERE function_id = 'fulfil'")
        self.waiting_run = middle("id", "runs WHERE function_id = 'refund' AND status = 'waiting'")
        self.event = middle("event_id", "runs WHERE function_id = 'checkout'")
        self.resuming_event = middle("e.id", "consumed c JOIN events e ON e.seq = c.event_seq")
        self.skipped_event = middle("event_id", "skips")
        rows.close()


REQUESTS: list[tuple[str, str, str]] = [  # (figure, method, path: formatted with the probe)
    ("runs: first page", "GET", "/api/v1/runs?limit=50"),
    ("runs: page 2 (cursor)", "GET", "/api/v1/runs?limit=50&cursor={cursor}"),
    ("runs: of a function", "GET", "/api/v1/runs?limit=50&function=checkout"),
    ("runs: of a rare function", "GET", "/api/v1/runs?limit=50&function=reports"),
    ("runs: by status (failed)", "GET", "/api/v1/runs?limit=50&status=failed"),
    ("runs: by a rare status (running)", "GET", "/api/v1/runs?limit=50&status=running"),
    ("runs: function and a status it never has", "GET", "/api/v1/runs?limit=50&function=checkout&status=failed"),
    ("runs: last 24 h", "GET", "/api/v1/runs?limit=50&created_after={day_ago}&created_before={now}"),
    ("runs: last 24 h, failed", "GET", "/api/v1/runs?limit=50&status=failed&created_after={day_ago}"),
    ("runs: a week, 3 weeks ago", "GET", "/api/v1/runs?limit=50&created_after={weeks_ago}&created_before={week_after}"),
    ("runs: by event_id", "GET", "/api/v1/runs?limit=50&event_id={event}"),
    ("search: a run id", "GET", "/api/v1/runs?limit=50&run_id={middle_run}"),
    ("runs: reruns of a run", "GET", "/api/v1/runs?limit=50&rerun_of={rerun_original}"),
    ("counts: all", "GET", "/api/v1/runs/counts"),
    ("counts: of a function", "GET", "/api/v1/runs/counts?function=checkout"),
    ("counts: last 24 h", "GET", "/api/v1/runs/counts?created_after={day_ago}"),
    ("functions with counts", "GET", "/api/v1/functions?counts=true"),
    ("run page: failed, tracebacks", "GET", "/api/v1/runs/{failed_run}?truncate=65536"),
    ("run page: rerun original (reruns)", "GET", "/api/v1/runs/{rerun_original}?truncate=65536"),
    ("run page: a 100 KiB output", "GET", "/api/v1/runs/{big_run}?truncate=65536"),
    ("run page: invoke parent", "GET", "/api/v1/runs/{parent_run}?truncate=65536"),
    ("run page: its waits", "GET", "/api/v1/waits?run_id={waiting_run}"),
    ("waits: first page", "GET", "/api/v1/waits?limit=50"),
    ("events: first page", "GET", "/api/v1/events?limit=50"),
    ("events: page 2 (cursor)", "GET", "/api/v1/events?limit=50&cursor={event_cursor}"),
    ("events: of a name", "GET", "/api/v1/events?limit=50&name=shop/order.placed"),
    ("event", "GET", "/api/v1/events/{event}"),
    ("event: its runs", "GET", "/api/v1/events/{event}/runs"),
    ("event: runs it resumed", "GET", "/api/v1/events/{resuming_event}/runs"),
    ("event: skipped by a function", "GET", "/api/v1/events/{skipped_event}"),
    ("bulk cancel preview (dry run)", "POST", "/api/v1/runs/cancel"),
    ("bulk rerun preview (dry run)", "POST", "/api/v1/runs/rerun"),
]
BODIES = {"bulk cancel preview (dry run)": {"function_id": "approval", "dry_run": True},
          "bulk rerun preview (dry run)": {"function_id": "charge-card", "dry_run": True}}  # fmt: skip

# How to tell a route answers what it is asked (a server without it ignores the parameter, or has no route).
BUILT: dict[str, Callable[[Any, Probe], bool]] = {
    "search: a run id": lambda j, p: [r["id"] for r in j["runs"]] == [p.middle_run],
    "runs: reruns of a run": lambda j, p: (
        bool(j["runs"]) and all(r.get("rerun_of") == p.rerun_original for r in j["runs"])
    ),
    "counts: all": lambda j, p: "counts" in j,
    "counts: of a function": lambda j, p: "counts" in j,
    "counts: last 24 h": lambda j, p: "counts" in j,
    "functions with counts": lambda j, p: all("runs" in f for f in j["functions"]),
    "run page: failed, tracebacks": lambda j, p: "output_truncated" in j,
    "run page: a 100 KiB output": lambda j, p: any(s.get("output_truncated") for s in j["steps"]),
    "bulk cancel preview (dry run)": lambda j, p: "matching" in j,
    "bulk rerun preview (dry run)": lambda j, p: "matching" in j,
}

# What a route not built yet will ask of the store, in both dialects (``?`` placeholders).
FALLBACK_SQL: dict[str, tuple[str, Callable[[Probe], tuple[Any, ...]]]] = {
    "search: a run id": (
        "SELECT r.*, e.name FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = ?",
        lambda p: (p.middle_run,),
    ),
    "runs: reruns of a run": (
        "SELECT r.*, e.name FROM runs r JOIN events e ON e.id = r.event_id "
        "WHERE r.rerun_of = ? ORDER BY r.created_at DESC, r.id DESC LIMIT 51",
        lambda p: (p.rerun_original,),
    ),
    "counts: all": ("SELECT status, count(*) FROM runs GROUP BY status", lambda p: ()),
    "counts: of a function": (
        "SELECT status, count(*) FROM runs WHERE function_id = ? GROUP BY status",
        lambda p: ("checkout",),
    ),
    "counts: last 24 h": (
        "SELECT status, count(*) FROM runs WHERE created_at >= ? GROUP BY status",
        lambda p: (p.now - DAY_MS,),
    ),
    "functions with counts": (
        "SELECT function_id, status, count(*) FROM runs GROUP BY function_id, status",
        lambda p: (),
    ),
    "reruns of a run (run page)": (
        "SELECT id FROM runs WHERE rerun_of = ? ORDER BY created_at DESC, id DESC LIMIT 20",
        lambda p: (p.rerun_original,),
    ),
}
# A bulk action's preview not built yet: its selection walked as the action walks it (pages of 200 runs).
FALLBACK_BULK: dict[str, dict[str, Any]] = {
    "bulk cancel preview (dry run)": {"action": "cancel_runs", "function_id": "approval"},
    "bulk rerun preview (dry run)": {"action": "rerun_runs", "function_id": "charge-card", "status": "failed"},
}


async def _selected(app: tarry.Tarry, action: str, **filters: Any) -> int:
    selection = bulk.select(action, if_exp=None, created_after=None, created_before=None, **filters)
    return sum([len(page) async for page in bulk._pages(app.engine, selection)])


def _query(rows: Rows, sql: str, args: tuple[Any, ...]) -> Callable[[], Awaitable[Any]]:
    return lambda: asyncio.to_thread(rows.execute, sql, args)


async def _timed(call: Callable[[], Any], samples: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        await call()
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def _figure(name: str, via: str, times: list[float], status: int | None = None) -> dict[str, Any]:
    p = percentiles(times)
    return {"figure": name, "via": via, "status": status, "p50_ms": round(p["p50"], 2),
            "p99_ms": round(p["p99"], 2), "samples": len(times)}  # fmt: skip


async def measure(url: str, samples: int, load_rate: int = 0) -> dict[str, Any]:
    probe = Probe(url)
    app = tarry.Tarry("console", database_url=url, concurrency=64)
    define(app)
    await app.start(worker=load_rate > 0)
    rows = Rows(url)
    figures: list[dict[str, Any]] = []
    loading: asyncio.Task[int] | None = None
    try:
        server = create_app(app, manage=False)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            first = (await client.get("/api/v1/runs?limit=50")).json()
            events = (await client.get("/api/v1/events?limit=50")).json()
            values = {
                **vars(probe),
                "cursor": first["next_cursor"],
                "event_cursor": events["next_cursor"],
                "day_ago": _iso(probe.now - DAY_MS),
                "now": _iso(probe.now),
                "weeks_ago": _iso(probe.now - 21 * DAY_MS),
                "week_after": _iso(probe.now - 14 * DAY_MS),
            }
            values = {k: quote(v, safe="") if isinstance(v, str) else v for k, v in values.items()}
            if load_rate:
                loading = asyncio.ensure_future(_load(app, load_rate))
                await asyncio.sleep(2)  # the load settles
            for name, method, path in REQUESTS:
                target = path.format(**values)
                body = BODIES.get(name)

                async def call(target: str = target, body: Any = body, method: str = method) -> httpx.Response:
                    if method == "POST":
                        return await client.post(target, json=body)
                    return await client.get(target)

                answer = await call()
                check = BUILT.get(name)
                built = answer.status_code == 200 and (check is None or check(answer.json(), probe))
                via = "http" if built else "http, not built yet"
                if not built and name in FALLBACK_SQL:
                    sql, params = FALLBACK_SQL[name]
                    times = await _timed(_query(rows, sql, params(probe)), samples)
                    figures.append(_figure(name, "sql", times))
                    continue
                if not built and name in FALLBACK_BULK:
                    times = await _timed(functools.partial(_selected, app, **FALLBACK_BULK[name]), samples)
                    figures.append(_figure(name, "selection", times))
                    continue
                if answer.status_code != 200:
                    raise RuntimeError(f"{name}: {method} {target} answered {answer.status_code}: {answer.text[:300]}")
                times = await _timed(call, samples)
                figures.append(_figure(name, via, times, answer.status_code))
            sql, params = FALLBACK_SQL["reruns of a run (run page)"]
            if "reruns" not in (await client.get(f"/api/v1/runs/{probe.rerun_original}")).json():
                times = await _timed(_query(rows, sql, params(probe)), samples)
                figures.append(_figure("run page: its reruns (store query)", "sql", times))
    finally:
        rate = 0
        if loading is not None:
            loading.cancel()
            try:
                rate = await loading
            except asyncio.CancelledError:
                rate = 0
        rows.close()
        await app.close()
    result: dict[str, Any] = {"figures": figures}
    if load_rate:
        result["load"] = {"asked_runs_per_s": load_rate, "completed_runs_per_s": LOAD_DONE.get("rate", 0)}
    for f in figures:
        flag = "" if f["p99_ms"] < TARGET_MS else "  OVER"
        print(f"    {f['figure']:<44} {f['via']:<20} p50 {f['p50_ms']:>8.2f} ms  p99 {f['p99_ms']:>8.2f} ms{flag}")
    del rate
    return result


LOAD_DONE: dict[str, float] = {}


async def _load(app: tarry.Tarry, rate: int) -> int:
    """Start ``rate`` runs a second (in tenths), until cancelled; records how many completed per second."""
    began = time.perf_counter()
    sent = 0
    baseline = (await app.engine.store.counts()).runs.get("completed", 0)
    try:
        while True:
            due = int((time.perf_counter() - began) * rate)
            if due > sent:
                await app.send([tarry.Event("load/tick", {}) for _ in range(due - sent)])
                sent = due
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        done = (await app.engine.store.counts()).runs.get("completed", 0) - baseline
        LOAD_DONE["rate"] = round(done / (time.perf_counter() - began), 1)
        raise


def run(backend: Backend, runs: int, samples: int, load_rate: int, keep: bool = False) -> dict[str, Any]:
    try:
        began = time.perf_counter()
        url, filled = asyncio.run(fill(backend, runs))
        print(f"  filled in {time.perf_counter() - began:.1f} s: {filled['copies']} copies of a template of "
              f"{filled['template_runs']} runs; rows {filled['rows']}")  # fmt: skip
        print(f"  runs by status: {filled['statuses']}")
        print("  quiet:")
        quiet = asyncio.run(measure(url, samples))
        loaded = None
        if load_rate:
            print(f"  while runs start at {load_rate}/s:")
            loaded = asyncio.run(measure(url, samples, load_rate))
            print(f"  load: {loaded['load']}")
        if keep:
            print(f"  kept: {url}")
    finally:
        if not keep:
            backend.clean()
    return {"runs": filled["rows"]["runs"], "events": filled["rows"]["events"], "fill": filled, "samples": samples,
            "quiet": quiet, "loaded": loaded, "target_ms": TARGET_MS, "pid": os.getpid()}  # fmt: skip


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2) + "\n"


def render(results: Path = RESULTS, doc: Path = DOC) -> None:
    """Write the figures of ``results/console-<store>.json`` into ``doc``, between its console markers."""
    found = {store: json.loads((results / f"console-{store}.json").read_text()) for store in STORES
             if (results / f"console-{store}.json").exists()}  # fmt: skip
    text = doc.read_text()
    head, marker, rest = text.partition("<!-- console -->")
    if not found or not marker:
        return
    lines = []
    for store, f in found.items():
        m, fill = f.get("machine", {}), f["fill"]
        load = (f.get("loaded") or {}).get("load")
        lines.append(f"{store}: measured {f.get('when', '?')}, {m.get('cpus', '?')} cores, Tarry {m.get('tarry', '?')}, "
                     f"{store} {m.get(store, '?')}; {f['runs']:,} runs and {f['events']:,} events ({fill['copies']} "
                     f"copies of a template of {fill['template_runs']} runs, loaded in {fill['load_s']} s); "
                     f"{f['samples']} calls of each request"
                     + (f"; under load: runs started at {load['asked_runs_per_s']}/s, "
                        f"{load['completed_runs_per_s']}/s completed meanwhile." if load else "."))  # fmt: skip
    stores = list(found)
    cells = " | ".join(f"{s} p50 | {s} p99" + (f" | {s} p99 under load" if found[s].get("loaded") else "")
                       for s in stores)  # fmt: skip
    lines += ["", f"| request | how | {cells} |",
              "| --- | --- | " + " | ".join("---: | ---:" + (" | ---:" if found[s].get("loaded") else "")
                                         for s in stores) + " |"]  # fmt: skip
    names = [fig["figure"] for fig in found[stores[0]]["quiet"]["figures"]]
    for name in names:
        row, how = [], ""
        for s in stores:
            quiet = {fig["figure"]: fig for fig in found[s]["quiet"]["figures"]}.get(name)
            loaded = {fig["figure"]: fig for fig in (found[s].get("loaded") or {"figures": []})["figures"]}.get(name)
            how = how or (quiet or {}).get("via", "")
            row.append(f"{quiet['p50_ms']:.2f} ms | {quiet['p99_ms']:.2f} ms" if quiet else " | ")
            if found[s].get("loaded"):
                row.append(f"{loaded['p99_ms']:.2f} ms" if loaded else "")
        lines.append(f"| {name} | {how} | " + " | ".join(row) + " |")
    _, _, tail = rest.partition("<!-- /console -->")
    doc.write_text(f"{head}<!-- console -->\n" + "\n".join(lines) + f"\n<!-- /console -->{tail}")
    print(f"written {doc}")
