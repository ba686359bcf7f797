"""The HTTP routes of §5: events in, resume URLs, the run/event/wait/buffer API, metrics and health.

Handlers translate HTTP to the app's calls and back; they hold no logic of
their own beyond parsing, limits and status codes.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from html import escape
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tarry import _serde
from tarry._app import Tarry
from tarry._engine.waits import token_hash
from tarry._errors import InvalidEventError
from tarry._filters import run_query
from tarry._model import Event, Run, RunStatus, StepStatus
from tarry._sdk import driver, sync
from tarry._server.json import (
    buffer_json,
    dead_letter_json,
    error,
    event_record_json,
    run_json,
    run_view_json,
    wait_json,
)
from tarry._server.paging import Cursors, limit_of
from tarry._store.base import RunQuery

T = TypeVar("T")

MAX_BODY = 5 * 1024 * 1024  # a batch of events; each event is at most 512 KiB
MAX_EVENTS = 5000  # events in one request, as Inngest's event API allows
BODY_TIMEOUT = 30.0  # seconds a client has to send a whole body
OFF_LOOP = 64 * 1024  # bodies larger than this are parsed and checked on a thread, not on the event loop
MAX_DEPTH = _serde.MAX_DEPTH  # nesting of a body's JSON: the engine's one limit, below what re-encoding can reach


class BodyRefused(Exception):
    """A body that is not read or not used: too large, too slow, too many events."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    too_large = BodyRefused(413, f"the body is over the limit of {MAX_BODY} bytes")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, f"the body did not arrive within {BODY_TIMEOUT:g} seconds") from None
    return b"".join(chunks)


async def off_loop(body: bytes, fn: Callable[[bytes], T]) -> T:
    """``fn(body)``, on a thread when the body is large, so that other requests are served meanwhile."""
    if len(body) <= OFF_LOOP:
        return fn(body)
    return await asyncio.to_thread(fn, body)


def parse(body: bytes) -> Any:
    """``_serde.parse``, then refuse nesting deeper than ``MAX_DEPTH`` (walked without recursion).

    The parser accepts any depth its stack allows at the point it is called; encoding the same
    value again deeper in the stack could not. A fixed limit makes every depth a 200 or a 400."""
    value = _serde.parse(body)
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
        level = [v for c in level for v in (c.values() if isinstance(c, dict) else c) if isinstance(v, dict | list)]
    return value


def tarry_app(request: Request) -> Tarry:
    app: Tarry = request.app.state.tarry
    return app


# -- events -------------------------------------------------------------------


async def send_events(request: Request) -> Response:
    """``POST /e/{event_key}``: one event or an array, Inngest's format."""
    config = request.app.state.config
    if config.event_keys is not None:
        given = request.path_params["event_key"].encode()
        if not any(hmac.compare_digest(given, key.encode()) for key in config.event_keys):
            return error(401, "unknown event key")
    return await _accept_events(request)


async def _accept_events(request: Request) -> Response:
    try:
        body = await read_body(request)
        events = await off_loop(body, events_of)
        ids = await tarry_app(request).send(events) if events else []
    except BodyRefused as exc:
        return error(exc.status, str(exc))
    except ValueError as exc:
        return error(400, str(exc))
    return JSONResponse({"ids": ids, "status": 200})


def events_of(body: bytes) -> list[Event]:
    """The events of a body, counted before any is checked (``ValueError`` naming the event and the rule)."""
    payload = parse(body)
    items = payload if isinstance(payload, list) else [payload]
    if len(items) > MAX_EVENTS:
        raise BodyRefused(413, f"{len(items)} events in one request: the limit is {MAX_EVENTS}; send them in batches")
    events = []
    for index, item in enumerate(items):
        try:
            events.append(_inngest_event(item))
        except InvalidEventError as exc:
            raise InvalidEventError((f"event [{index}] of the batch: " if len(items) > 1 else "") + str(exc)) from None
    return events


def _inngest_event(item: object) -> Event:
    """Inngest's SDKs send ``id: ""`` and ``ts: 0`` for "none"; treat them so."""
    if isinstance(item, dict):
        item = {k: v for k, v in item.items() if not (k == "id" and v == "") and not (k == "ts" and v == 0)}
    return Event.from_json(item)


# -- syncs of Inngest SDK apps -------------------------------------------------


async def register_sdk(request: Request) -> Response:
    """``POST /fn/register``: an Inngest SDK syncs its functions (API §13); in serve, signed with its key.

    Answered as Inngest's own server answers, ``{"ok": true, "modified": ...}``, or ``{"ok": false,
    "error": ...}`` naming what is refused (the SDK shows it); a refused sync stores nothing."""
    config = request.app.state.config
    if config.mode == "serve":
        key = request.app.state.sdk_key
        if key is None:
            return JSONResponse({"ok": False, "error": "this server takes no syncs: set INNGEST_SIGNING_KEY, "
                                                       "the key the SDK signs with"}, status_code=401)  # fmt: skip
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {driver.bearer_of(key)}".encode()):
            return JSONResponse({"ok": False, "error": "the sync is not signed with this server's "
                                                       "INNGEST_SIGNING_KEY"}, status_code=401)  # fmt: skip
    try:
        body = await read_body(request)
        payload = await off_loop(body, parse)
        modified = await sync.register(tarry_app(request).engine, payload)
    except BodyRefused as exc:
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=exc.status)
    except ValueError as exc:  # SyncRefused, or a body that is not JSON
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
    return JSONResponse({"ok": True, "modified": modified})


# -- resume URLs --------------------------------------------------------------


async def resume(request: Request) -> Response:
    """``GET|POST|HEAD /resume/{token}``: a GET resumes (it is a click); HEAD and prefetches never do.

    The token is looked up before any body is read: an unknown one costs one indexed read."""
    app = tarry_app(request)
    token = request.path_params["token"]
    wants_html = "text/html" in request.headers.get("accept", "")
    purpose = (request.headers.get("sec-purpose", "") + request.headers.get("purpose", "")).lower()
    usable, redirect_url = await app.engine.store.peek_handle(token_hash(token), app.clock.now_ms())
    if request.method == "HEAD" or "prefetch" in purpose or request.headers.get("x-moz", "").lower() == "prefetch":
        return Response(status_code=204 if usable else 404, headers={"Cache-Control": "no-store"})
    if not usable:
        return _resume_refused(wants_html, 404, UNUSABLE)
    try:
        data = await _resume_data(request)
    except BodyRefused as exc:
        return _resume_refused(wants_html, exc.status, str(exc))
    except ValueError as exc:
        return _resume_refused(wants_html, 400, f"the data is not usable: {exc}")
    try:
        accepted = await app.resume(token, data)
    except ValueError as exc:
        return _resume_refused(wants_html, 400, f"the data is not usable: {exc}")
    if not accepted:
        return _resume_refused(wants_html, 404, UNUSABLE)
    if wants_html:
        if redirect_url:
            return RedirectResponse(redirect_url, status_code=303)
        return HTMLResponse(_page("Done", "Thank you — your response was recorded. You can close this page."))
    return JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})


UNUSABLE = "this resume link is unknown, already used, or expired"


async def _resume_data(request: Request) -> dict[str, Any] | None:
    if request.method == "GET":
        return dict(request.query_params) or None
    body = await read_body(request)
    if not body.strip():
        return dict(request.query_params) or None
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode(), keep_blank_values=True)) or None
    data = parse(body)
    if not isinstance(data, dict):
        raise ValueError("a JSON body must be an object")
    return data


def _resume_refused(wants_html: bool, status: int, message: str) -> Response:
    headers = {"Cache-Control": "no-store"}
    if wants_html:
        return HTMLResponse(_page("Link not usable", message), status_code=status, headers=headers)
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)


def _page(title: str, message: str) -> str:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{escape(title)}</title><body style='font:16px system-ui;max-width:36em;margin:4em auto'>"
        f"<h1>{escape(title)}</h1><p id=message>{escape(message)}</p></body></html>"
    )


# -- API ----------------------------------------------------------------------


async def notify(request: Request) -> Response:
    try:
        body = await read_body(request)
        data = await off_loop(body, lambda b: parse(b) if b.strip() else None)
        sent = await tarry_app(request)._notify(request.path_params["key"], data)
    except BodyRefused as exc:
        return error(exc.status, str(exc))
    except ValueError as exc:
        return error(400, str(exc))
    return JSONResponse({"event_id": sent.ids[0], "run_ids": sent.resumed})


async def post_events(request: Request) -> Response:
    """``POST /api/v1/events``: send events with the API's credentials (the dashboard's form)."""
    return await _accept_events(request)


def cursors(request: Request) -> Cursors:
    return Cursors(tarry_app(request).engine.signing_key)


def _moment(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time parameter with its offset (``Z`` or ``+hh:mm``); None when absent."""
    text = request.query_params.get(name) or None
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"invalid {name} {text[:60]!r}: an ISO 8601 time with its offset, "
                         "such as 2024-05-01T09:00:00Z or 2024-05-01T11:00:00+02:00")  # fmt: skip
    return moment


def _statuses(request: Request) -> list[str] | None:
    """``status``: one status, several comma-separated, or the parameter repeated."""
    given = [s.strip() for value in request.query_params.getlist("status") for s in value.split(",") if s.strip()]
    for status in given:
        if status not in {s.value for s in RunStatus}:
            raise ValueError(f"invalid status {status[:40]!r}: one of {', '.join(s.value for s in RunStatus)}")
    return given or None


def _function(request: Request) -> str | None:
    """``function`` (``function_id`` is read too, as the dashboard names it)."""
    named = {request.query_params.get(name) or None for name in ("function", "function_id")} - {None}
    if len(named) > 1:
        raise ValueError("function and function_id name different functions: pass one of them")
    return named.pop() if named else None


def flag(request: Request, name: str) -> bool:
    """A switch of the query: ``true`` or ``1`` on, ``false``, ``0``, empty or absent off (``ValueError`` else)."""
    value = request.query_params.get(name, "")
    if value not in ("", "0", "1", "true", "false"):
        raise ValueError(f"invalid {name} {value[:40]!r}: true (or 1) to turn it on, false (or 0) or leave it out")
    return value in ("1", "true")


def runs_filter(request: Request, *, status: bool = True) -> RunQuery:
    """The run list's filters of a request (``ValueError`` naming a bad one): ``function``, ``status``
    (unless not ``status``), ``event_id``, ``run_id``, ``rerun_of``, ``created_after``, ``created_before``."""
    params = request.query_params
    return run_query(function_id=_function(request), status=_statuses(request) if status else None,
                     event_id=params.get("event_id") or None, run_id=params.get("run_id") or None,
                     rerun_of=params.get("rerun_of") or None, created_after=_moment(request, "created_after"),
                     created_before=_moment(request, "created_before"))  # fmt: skip


async def list_runs(request: Request) -> Response:
    """``GET /api/v1/runs``: newest first, by ``function``, ``status``, ``event_id``, ``run_id`` (that run
    alone), ``rerun_of`` (the reruns of a run), ``created_after`` (inclusive) and ``created_before``
    (exclusive), paged by ``cursor``."""
    app = tarry_app(request)
    try:
        limit = limit_of(request)
        query = runs_filter(request)
        position = cursors(request).read("runs", request)
        after = None if position is None else _run_position(position)
    except ValueError as exc:
        return error(400, str(exc))
    runs, following = await app._query_runs(replace(query, after=after), limit)
    return JSONResponse({"runs": [run_json(r, steps=False) for r in runs],
                         "next_cursor": None if following is None else cursors(request).issue("runs", following)})  # fmt: skip


_START = object()  # a list's first page


def _run_position(position: Any) -> tuple[int, str]:
    at, run_id = position  # issued by this server: [created_at, id]
    return int(at), str(run_id)


async def count_runs(request: Request) -> Response:
    """``GET /api/v1/runs/counts``: the runs of each status that the run list's ``function``, ``event_id``,
    ``created_after`` and ``created_before`` select, and their total (its other parameters do not count)."""
    try:
        query = runs_filter(request, status=False)
    except ValueError as exc:
        return error(400, str(exc))
    counts = await tarry_app(request)._count_runs(query)
    return JSONResponse({"counts": counts, "total": sum(counts.values())})


#: the smallest ``truncate`` of a run's view: what is cut is replaced by about 2 KiB of preview
MIN_TRUNCATE = 1024
MAX_TRUNCATE = 1 << 40


def _truncate(request: Request) -> int | None:
    text = request.query_params.get("truncate")
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or not MIN_TRUNCATE <= int(text) <= MAX_TRUNCATE:
        raise ValueError(f"invalid truncate {text[:40]!r}: a number of bytes, an integer from {MIN_TRUNCATE} "
                         f"to {MAX_TRUNCATE}")  # fmt: skip
    return int(text)


async def run_view(app: Tarry, run: Run, truncate: int | None) -> dict[str, Any]:
    """The JSON of a run's own view (also what the stream's ``detail`` sends)."""
    children, reruns = await app._run_links(run)
    return run_view_json(run, children, reruns, truncate)


async def get_run(request: Request) -> Response:
    """``GET /api/v1/runs/{id}``: the run with its steps, each invoke's child run, and its reruns;
    ``truncate=N``: outputs over N bytes of JSON replaced by a preview and a download URL."""
    try:
        truncate = _truncate(request)
    except ValueError as exc:
        return error(400, str(exc))
    app = tarry_app(request)
    run = await app.get_run(request.path_params["run_id"])
    if run is None:
        return error(404, "no such run")
    return JSONResponse(await run_view(app, run, truncate))


async def run_output(request: Request) -> Response:
    """``GET /api/v1/runs/{id}/output``: a completed run's output, whole, as a JSON download."""
    run = await tarry_app(request).get_run(request.path_params["run_id"])
    if run is None:
        return error(404, "no such run")
    if run.status != RunStatus.COMPLETED:
        return error(404, f"the run has no output: it is {run.status.value}")
    return _download(run.output, run.id)


async def step_output(request: Request) -> Response:
    """``GET /api/v1/runs/{id}/steps/{step_id}/output``: a completed step's output, whole, as a JSON download."""
    run = await tarry_app(request).get_run(request.path_params["run_id"])
    if run is None:
        return error(404, "no such run")
    step_id = request.path_params["step_id"]
    step = next((s for s in run.steps if s.id == step_id), None)
    if step is None:
        return error(404, f"the run has no step {step_id[:200]!r}")
    if step.status != StepStatus.COMPLETED:
        return error(404, f"step {step_id[:200]!r} has no output: it is {step.status.value}")
    return _download(step.output, f"{run.id}-{step.id}")


def _download(value: Any, name: str) -> Response:
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:200] + ".json"
    return Response(_serde.dumps(value), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip


async def cancel_run(request: Request) -> Response:
    app = tarry_app(request)
    run_id = request.path_params["run_id"]
    if await app.get_run(run_id) is None:
        return error(404, "no such run")
    return JSONResponse({"cancelled": await app.cancel_run(run_id)})


def fields_of(body: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A body that is empty or a JSON object of the ``allowed`` fields only (``ValueError`` naming any other)."""
    if not body.strip():
        return {}
    fields = parse(body)
    if not isinstance(fields, dict):
        raise ValueError(f"the body must be a JSON object (with {', '.join(allowed)}), or empty")
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}: this route takes {', '.join(allowed)}")
    return fields


async def rerun_run(request: Request) -> Response:
    """``POST /api/v1/runs/{id}/rerun``: ``{"from_step": ...}`` or no body; answers the new run's id."""
    app = tarry_app(request)
    run_id = request.path_params["run_id"]
    try:
        body = await read_body(request)
        fields = await off_loop(body, lambda b: fields_of(b, ("from_step",)))
    except BodyRefused as exc:
        return error(exc.status, str(exc))
    except ValueError as exc:
        return error(400, str(exc))
    if await app.get_run(run_id) is None:
        return error(404, "no such run")
    try:
        new_id = await app.rerun(run_id, from_step=fields.get("from_step"))
    except ValueError as exc:
        return error(400, str(exc))
    return JSONResponse({"run_id": new_id})


BULK_FILTERS = ("function_id", "if_exp", "created_after", "created_before")


def bulk_filters(body: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The filters of a bulk action from its JSON body, the times parsed (ISO 8601 with an offset)."""
    fields = fields_of(body, allowed)
    for name in ("created_after", "created_before"):
        text = fields.get(name)
        if text is None:
            continue
        moment = None
        if isinstance(text, str):
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                moment = None
        if moment is None or moment.tzinfo is None:
            raise ValueError(f"invalid {name} {str(text)[:60]!r}: an ISO 8601 time with its offset, as a string, "
                             "such as 2024-05-01T09:00:00Z or 2024-05-01T11:00:00+02:00")  # fmt: skip
        fields[name] = moment
    return fields


def _dry_run(filters: dict[str, Any]) -> bool:
    """Pops ``dry_run`` from a bulk action's fields: true or false (default false)."""
    dry_run = filters.pop("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValueError(f"invalid dry_run {str(dry_run)[:40]!r}: true (count the runs it would take) or false")
    return dry_run


async def cancel_runs(request: Request) -> Response:
    """``POST /api/v1/runs/cancel``: the filters of ``app.cancel_runs`` as JSON; answers how many.
    With ``"dry_run": true``, changes nothing and answers how many it would cancel now."""
    app = tarry_app(request)
    try:
        body = await read_body(request)
        filters = await off_loop(body, lambda b: bulk_filters(b, (*BULK_FILTERS, "dry_run")))
        if _dry_run(filters):
            return JSONResponse({"matching": await app._bulk_matching("cancel", **filters)})
        cancelled = await app.cancel_runs(**filters)
    except BodyRefused as exc:
        return error(exc.status, str(exc))
    except ValueError as exc:
        return error(400, str(exc))
    return JSONResponse({"cancelled": cancelled})


async def rerun_runs(request: Request) -> Response:
    """``POST /api/v1/runs/rerun``: the filters of ``app.rerun_runs`` as JSON; answers the new ids.
    With ``"dry_run": true``, changes nothing and answers how many it would rerun now."""
    app = tarry_app(request)
    try:
        body = await read_body(request)
        filters = await off_loop(body, lambda b: bulk_filters(b, (*BULK_FILTERS, "status", "dry_run")))
        if _dry_run(filters):
            return JSONResponse({"matching": await app._bulk_matching("rerun", **filters)})
        run_ids = await app.rerun_runs(**filters)
    except BodyRefused as exc:
        return error(exc.status, str(exc))
    except ValueError as exc:
        return error(400, str(exc))
    return JSONResponse({"run_ids": run_ids})


async def list_events(request: Request) -> Response:
    """``GET /api/v1/events``: newest first (by arrival), of one ``name`` if given, paged by ``cursor``."""
    try:
        limit = limit_of(request)
        before = cursors(request).read("events", request)
    except ValueError as exc:
        return error(400, str(exc))
    store = tarry_app(request).engine.store
    records = await store.list_events(request.query_params.get("name") or None, limit + 1, before)
    following = cursors(request).issue("events", records[limit - 1].seq) if len(records) > limit else None
    return JSONResponse({"events": [event_record_json(r) for r in records[:limit]], "next_cursor": following})


async def get_event(request: Request) -> Response:
    record = await tarry_app(request).engine.store.get_event(request.path_params["event_id"])
    if record is None:
        return error(404, "no such event")
    return JSONResponse(event_record_json(record))


async def event_runs(request: Request) -> Response:
    """``GET /api/v1/events/{id}/runs``: the runs the event started (``runs``, with their reruns) and those it
    resumed (``resumed``), each newest first; one ``cursor`` pages both (a list already at its end is empty
    on the later pages)."""
    app = tarry_app(request)
    event_id = request.path_params["event_id"]
    try:
        limit = limit_of(request)
        position = cursors(request).read("event-runs", request)
    except ValueError as exc:
        return error(400, str(exc))
    record = await app.engine.store.get_event(event_id)
    if record is None:
        return error(404, "no such event")
    # each list's position: where its next page starts; None once it is at its end
    started_after, resumed_after = (_START, _START) if position is None else (position["runs"], position["resumed"])
    started: list[Run] = []
    more_started: tuple[int, str] | None = None
    if started_after is not None:
        after = None if started_after is _START else _run_position(started_after)
        started, more_started = await app._query_runs(RunQuery(event_id=event_id, after=after), limit)
    resumed: list[Run] = []
    if resumed_after is not None:
        before = None if resumed_after is _START else str(resumed_after)
        resumed = await app.engine.store.runs_resumed_by_event(event_id, limit + 1, before)
    more_resumed = resumed[limit - 1].id if len(resumed) > limit else None
    following = None
    if more_started is not None or more_resumed is not None:
        following = cursors(request).issue("event-runs", {"runs": more_started, "resumed": more_resumed})
    return JSONResponse({"event": event_record_json(record), "runs": [run_json(r, steps=False) for r in started],
                         "resumed": [run_json(r, steps=False) for r in resumed[:limit]], "skipped": record.skipped,
                         "next_cursor": following})  # fmt: skip


async def list_waits(request: Request) -> Response:
    """``GET /api/v1/waits``: the open waits (of one ``run_id``, if given), newest first, paged by ``cursor``."""
    try:
        limit = limit_of(request)
        before = cursors(request).read("waits", request)
    except ValueError as exc:
        return error(400, str(exc))
    waits = await tarry_app(request).engine.open_waits(request.query_params.get("run_id") or None, limit + 1, before)
    following = cursors(request).issue("waits", waits[limit - 1].seq) if len(waits) > limit else None
    return JSONResponse({"waits": [wait_json(w) for w in waits[:limit]], "next_cursor": following})


async def list_dead_letters(request: Request) -> Response:
    """``GET /api/v1/dead-letters``: rows set aside, newest first, paged by ``cursor``."""
    try:
        limit = limit_of(request)
        before = cursors(request).read("dead-letters", request)
    except ValueError as exc:
        return error(400, str(exc))
    letters = await tarry_app(request).dead_letters(limit=limit + 1, before=before)
    following = cursors(request).issue("dead-letters", letters[limit - 1].id) if len(letters) > limit else None
    return JSONResponse({"dead_letters": [dead_letter_json(d) for d in letters[:limit]], "next_cursor": following})


async def list_buffers(request: Request) -> Response:
    """``GET /api/v1/buffers``: open debounce bursts and batches (of one ``function_id``, if given), newest
    first, paged by ``cursor``."""
    try:
        limit = limit_of(request)
        before = cursors(request).read("buffers", request)
    except ValueError as exc:
        return error(400, str(exc))
    function_id = request.query_params.get("function_id") or None
    buffers = await tarry_app(request).engine.open_buffers(function_id, limit + 1, before)
    following = cursors(request).issue("buffers", buffers[limit - 1].id) if len(buffers) > limit else None
    return JSONResponse({"buffers": [buffer_json(b) for b in buffers[:limit]], "next_cursor": following})


async def list_functions(request: Request) -> Response:
    """``GET /api/v1/functions``: the app's functions by id, with their triggers, retries and options;
    ``counts=true``: each with its ``runs`` by status."""
    app = tarry_app(request)
    try:
        limit = limit_of(request)
        after = cursors(request).read("functions", request)
        counted = flag(request, "counts")
    except ValueError as exc:
        return error(400, str(exc))
    described = [f for f in app._describe_functions() if after is None or f["id"] > after]
    following = cursors(request).issue("functions", described[limit - 1]["id"]) if len(described) > limit else None
    page = described[:limit]
    if counted:
        page = [{**f, "runs": await app._count_runs(RunQuery(function_id=f["id"]))} for f in page]
    return JSONResponse({"functions": page, "next_cursor": following})


# -- operations ---------------------------------------------------------------


async def metrics(request: Request) -> Response:
    engine = tarry_app(request).engine
    body = engine.metrics.render(await engine.store.counts())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def healthz(request: Request) -> Response:
    await tarry_app(request).engine.store.has_work(0)  # the store answers
    return JSONResponse({"ok": True})
