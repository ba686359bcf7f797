"""``GET /api/v1/stream``: live updates of what the console shows, pushed as server-sent events.

Each open stream polls the store for what it watches (every ``POLL`` seconds, with the reads the other
routes use, on the store's threads), so it sees what other processes change too, and sends only what
changed. Nothing runs for streams no one has open; a finished run is sent once and never read again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tarry._app import Tarry
from tarry._clock import to_ms
from tarry._model import Run
from tarry._server.json import error, event_record_json, run_json, wait_json
from tarry._server.routes import flag, run_view, runs_filter, tarry_app
from tarry._store.base import FAR, RunQuery

#: seconds between two looks at the store, per open stream
POLL = 0.5
#: seconds between two counts of a list's runs (a count reads more than a page)
COUNTS_EVERY = 2.0
#: seconds between two ``: ping`` comments, which keep proxies from closing a quiet stream
PING = 15
#: open streams per server; more answer 503
MAX_STREAMS = 100
#: runs one stream may watch
MAX_RUNS = 200
#: new runs or events in one message
PER_MESSAGE = 50
#: messages of new runs a stream sends per look (a burst beyond that follows at the next looks)
NEW_PAGES = 4
#: new unfinished runs of another status than a status-filtered list's, watched until they reach it
MAX_PENDING = 1000
#: what ``detail`` cuts: outputs over this many bytes of JSON, as the page asks
DETAIL_TRUNCATE = 65536
WAITS_SHOWN = 100


@dataclass(frozen=True)
class Watch:
    """What one stream watches, from its query (``watch_of``)."""

    runs: tuple[str, ...] = ()
    detail: str | None = None
    list_query: RunQuery | None = None
    waits: bool = False
    events: bool = False


def watch_of(request: Request) -> Watch:
    """The stream's query, checked (``ValueError`` naming the parameter and the rule)."""
    params = request.query_params
    runs = tuple(dict.fromkeys(i.strip() for v in params.getlist("runs") for i in v.split(",") if i.strip()))
    if len(runs) > MAX_RUNS:
        raise ValueError(f"invalid runs: {len(runs)} run ids; a stream watches at most {MAX_RUNS}")
    listing = flag(request, "list")
    watch = Watch(runs=runs, detail=params.get("detail") or None, list_query=runs_filter(request) if listing else None,
                  waits=flag(request, "waits"), events=flag(request, "events"))  # fmt: skip
    if not (watch.runs or watch.detail or listing or watch.waits or watch.events):
        raise ValueError("the stream watches nothing: give runs=<ids>, detail=<id>, list=1, waits=1 or events=1")
    return watch


class Streams:
    """The open streams of one server, at most ``MAX_STREAMS``."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self.limit = limit
        self.open = 0
        self._counts: dict[RunQuery, tuple[float, dict[str, int]]] = {}

    async def stream(self, request: Request) -> Response:
        """``GET /api/v1/stream``: see the module docstring and docs/server.md."""
        try:
            watch = watch_of(request)
        except ValueError as exc:
            return error(400, str(exc))
        app = tarry_app(request)
        if watch.detail is not None and await app.get_run(watch.detail) is None:
            return error(404, "no such run (detail)")
        if self.open >= self.limit:
            return error(503, f"{self.limit} live streams are open on this server, the most it serves; "
                              "close one, or try again later")  # fmt: skip
        self.open += 1
        response = EventSourceResponse(
            updates(app, watch, self.counts), ping=PING, ping_message_factory=lambda: ServerSentEvent(comment="ping"),
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )  # fmt: skip
        return _Held(response, self._release)

    def _release(self) -> None:
        self.open -= 1

    async def counts(self, app: Tarry, query: RunQuery) -> dict[str, int]:
        """The counts of a list's filters, read once per ``COUNTS_EVERY`` for all the streams showing them."""
        key = RunQuery(function_id=query.function_id, event_id=query.event_id, created_after=query.created_after,
                       created_before=query.created_before)  # fmt: skip
        cached = self._counts.get(key)
        if cached is not None and time.monotonic() - cached[0] < COUNTS_EVERY:
            return cached[1]
        counts = await app._count_runs(key)
        now = time.monotonic()
        self._counts = {k: v for k, v in self._counts.items() if now - v[0] < COUNTS_EVERY}  # only the fresh
        self._counts[key] = (now, counts)
        return counts


class _Held(Response):
    """A response that gives its stream's place back once it has ended, however it ended."""

    def __init__(self, inner: Response, release: Callable[[], None]) -> None:
        self.inner = inner
        self.release = release
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.release()


def _message(event: str, body: Any) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(body, separators=(",", ":"), ensure_ascii=False), event=event)


def _fingerprint(run: Run) -> tuple[Any, ...]:
    """What a run's page shows changes only with this: its state and each step's (an output is set
    when its step completes, and never changes after)."""
    steps = tuple((s.id, s.status, s.attempts, len(s.errors), s.started_at, s.ended_at, s.wake_at) for s in run.steps)
    return run.status, run.ended_at, run.queued_reason, len(run.events), steps


def _position(run: Run) -> tuple[int, str]:
    return to_ms(run.created_at), run.id


async def updates(app: Tarry, watch: Watch,
                  count: Callable[[Tarry, RunQuery], Awaitable[dict[str, int]]]) -> AsyncIterator[ServerSentEvent]:  # fmt: skip
    """The stream's messages, as what it watches changes; ends when the client goes (it is cancelled)."""
    store = app.engine.store
    runs: dict[str, tuple[Any, ...] | None] = dict.fromkeys(watch.runs)
    detail, shown = watch.detail, None
    new_after: tuple[int, str] = (-FAR, "")
    pending: dict[str, None] = {}  # new unfinished runs of another status than the list's, oldest first
    if watch.list_query is not None:
        newest, _ = await app._query_runs(RunQuery(), 1)
        new_after = _position(newest[0]) if newest else new_after
    counts: dict[str, int] | None = None
    counted_at = -COUNTS_EVERY
    waits: list[dict[str, Any]] | None = None
    events_after = 0
    if watch.events:
        latest = await store.list_events(None, 1)
        events_after = latest[0].seq if latest else 0
    while True:
        if detail is not None:
            run = await app.get_run(detail)
            if run is None:
                detail = None
            elif (mark := _fingerprint(run)) != shown:  # the view is built only when the run changed
                shown = mark
                body = await run_view(app, run, DETAIL_TRUNCATE)
                yield ServerSentEvent(json.dumps(body, separators=(",", ":"), ensure_ascii=False), event="detail")
                if run.status.finished:
                    detail = None
        if runs:
            found = {r.id: r for r in await store.runs_by_ids(list(runs))}
            for run_id in list(runs):
                run = found.get(run_id)
                if run is None:  # no such run: nothing to watch
                    del runs[run_id]
                    continue
                seen = (run.status, run.ended_at, run.queued_reason)
                if seen != runs[run_id]:
                    runs[run_id] = seen
                    yield _message("run", run_json(run, steps=False))
                if run.status.finished:  # sent finished: never read again
                    del runs[run_id]
        if watch.list_query is not None:
            statuses = watch.list_query.statuses
            if statuses is not None and pending:  # new runs not yet of the list's status: sent once they are
                found = {r.id: r for r in await store.runs_by_ids(list(pending))}
                now_in = [r for i in list(pending) if (r := found.get(i)) is not None and r.status.value in statuses]
                for run_id in list(pending):
                    run = found.get(run_id)
                    if run is None or run.status.value in statuses or run.status.finished:
                        del pending[run_id]
                if now_in:
                    yield _message("new", {"runs": [run_json(r, steps=False) for r in reversed(now_in)]})
            # the new runs of every status, so that one reaching the list's status later is not passed over
            query = replace(watch.list_query, statuses=None, oldest_first=True)
            for _ in range(NEW_PAGES):
                page, more = await app._query_runs(replace(query, after=new_after), PER_MESSAGE)
                if page:
                    new_after = _position(page[-1])
                    shown_now = [r for r in page if statuses is None or r.status.value in statuses]
                    if statuses is not None:
                        for r in page:
                            if r.status.value not in statuses and not r.status.finished:
                                pending[r.id] = None
                        while len(pending) > MAX_PENDING:  # the oldest give way: the counts still show them
                            del pending[next(iter(pending))]
                    if shown_now:
                        yield _message("new", {"runs": [run_json(r, steps=False) for r in reversed(shown_now)]})
                if more is None:
                    break
            if time.monotonic() - counted_at >= COUNTS_EVERY:
                counted_at = time.monotonic()
                fresh = await count(app, watch.list_query)
                if fresh != counts:
                    counts = fresh
                    yield _message("counts", {"counts": fresh, "total": sum(fresh.values())})
        if watch.waits:
            listed = [wait_json(w) for w in await app.engine.open_waits(None, WAITS_SHOWN)]
            if listed != waits:
                waits = listed
                yield _message("waits", {"waits": listed})
        if watch.events:
            records = [r for r in await store.list_events(None, PER_MESSAGE + 1) if r.seq > events_after]
            if records:
                events_after = records[0].seq
                yield _message("events", {"events": [event_record_json(r) for r in records[:PER_MESSAGE]],
                                          "more": len(records) > PER_MESSAGE})  # fmt: skip
        if not (runs or detail or watch.list_query or watch.waits or watch.events):
            await asyncio.Event().wait()  # all it watched has finished: only pings until the client goes
        await asyncio.sleep(POLL)
