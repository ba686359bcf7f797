"""The HTTP routes of §5: events in, resume URLs, the run/event/wait API, metrics and health.

Handlers translate HTTP to the app's calls and back; they hold no logic of
their own beyond parsing, limits and status codes.
"""

from __future__ import annotations

import hmac
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tarry import _serde
from tarry._app import Tarry
from tarry._engine.waits import token_hash
from tarry._errors import InvalidEventError
from tarry._model import Event, RunStatus
from tarry._server.json import dead_letter_json, error, event_record_json, run_json, wait_json

MAX_BODY = 5 * 1024 * 1024  # a batch of events; each event is at most 512 KiB


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


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
    except BodyTooLarge:
        return error(413, f"the body is over the limit of {MAX_BODY} bytes")
    try:
        payload = _serde.parse(body)
    except ValueError as exc:
        return error(400, str(exc))
    items = payload if isinstance(payload, list) else [payload]
    try:
        events = []
        for index, item in enumerate(items):
            try:
                events.append(_inngest_event(item))
            except InvalidEventError as exc:
                raise InvalidEventError(
                    (f"event [{index}] of the batch: " if len(items) > 1 else "") + str(exc)
                ) from None
        ids = await tarry_app(request).send(events) if events else []
    except InvalidEventError as exc:
        return error(400, str(exc))
    return JSONResponse({"ids": ids, "status": 200})


def _inngest_event(item: object) -> Event:
    """Inngest's SDKs send ``id: ""`` and ``ts: 0`` for "none"; treat them so."""
    if isinstance(item, dict):
        item = {k: v for k, v in item.items() if not (k == "id" and v == "") and not (k == "ts" and v == 0)}
    return Event.from_json(item)


# -- resume URLs --------------------------------------------------------------


async def resume(request: Request) -> Response:
    """``GET|POST|HEAD /resume/{token}``: a GET resumes (it is a click); HEAD and prefetches never do."""
    app = tarry_app(request)
    token = request.path_params["token"]
    wants_html = "text/html" in request.headers.get("accept", "")
    purpose = (request.headers.get("sec-purpose", "") + request.headers.get("purpose", "")).lower()
    if request.method == "HEAD" or "prefetch" in purpose or request.headers.get("x-moz", "").lower() == "prefetch":
        usable, _ = await app.engine.store.peek_handle(token_hash(token), app.clock.now_ms())
        return Response(status_code=204 if usable else 404, headers={"Cache-Control": "no-store"})
    try:
        data = await _resume_data(request)
    except BodyTooLarge:
        return _resume_refused(wants_html, 413, f"the body is over the limit of {MAX_BODY} bytes")
    except ValueError as exc:
        return _resume_refused(wants_html, 400, f"the data is not usable: {exc}")
    _, redirect_url = await app.engine.store.peek_handle(token_hash(token), app.clock.now_ms())
    try:
        accepted = await app.resume(token, data)
    except ValueError as exc:
        return _resume_refused(wants_html, 400, f"the data is not usable: {exc}")
    if not accepted:
        return _resume_refused(wants_html, 404, "this resume link is unknown, already used, or expired")
    if wants_html:
        if redirect_url:
            return RedirectResponse(redirect_url, status_code=303)
        return HTMLResponse(_page("Done", "Thank you — your response was recorded. You can close this page."))
    return JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})


async def _resume_data(request: Request) -> dict[str, Any] | None:
    if request.method == "GET":
        return dict(request.query_params) or None
    body = await read_body(request)
    if not body.strip():
        return dict(request.query_params) or None
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode(), keep_blank_values=True)) or None
    data = _serde.parse(body)
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
        data = _serde.parse(body) if body.strip() else None
    except BodyTooLarge:
        return error(413, f"the body is over the limit of {MAX_BODY} bytes")
    except ValueError as exc:
        return error(400, str(exc))
    try:
        sent = await tarry_app(request)._notify(request.path_params["key"], data)
    except ValueError as exc:
        return error(400, str(exc))
    return JSONResponse({"event_id": sent.ids[0], "run_ids": sent.resumed})


async def post_events(request: Request) -> Response:
    """``POST /api/v1/events``: send events with the API's credentials (the dashboard's form)."""
    return await _accept_events(request)


def _limit(request: Request) -> int:
    text = request.query_params.get("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise ValueError(f"invalid limit {text!r}: an integer from 1 to 1000")
    return int(text)


async def list_runs(request: Request) -> Response:
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in {s.value for s in RunStatus}:
        return error(400, f"invalid status {status!r}: one of {', '.join(s.value for s in RunStatus)}")
    try:
        limit = _limit(request)
    except ValueError as exc:
        return error(400, str(exc))
    runs = await tarry_app(request).list_runs(function_id=params.get("function_id") or None, status=status,
                                              limit=limit)  # fmt: skip
    return JSONResponse({"runs": [run_json(r, steps=False) for r in runs]})


async def get_run(request: Request) -> Response:
    run = await tarry_app(request).get_run(request.path_params["run_id"])
    if run is None:
        return error(404, "no such run")
    return JSONResponse(run_json(run))


async def cancel_run(request: Request) -> Response:
    app = tarry_app(request)
    run_id = request.path_params["run_id"]
    if await app.get_run(run_id) is None:
        return error(404, "no such run")
    return JSONResponse({"cancelled": await app.cancel_run(run_id)})


async def list_events(request: Request) -> Response:
    try:
        limit = _limit(request)
    except ValueError as exc:
        return error(400, str(exc))
    records = await tarry_app(request).engine.store.list_events(request.query_params.get("name") or None, limit)
    return JSONResponse({"events": [event_record_json(r) for r in records]})


async def event_runs(request: Request) -> Response:
    app = tarry_app(request)
    event_id = request.path_params["event_id"]
    if await app.engine.store.get_event(event_id) is None:
        return error(404, "no such event")
    started = await app.runs_for_event(event_id)
    resumed = await app.engine.store.runs_resumed_by_event(event_id)
    return JSONResponse({"runs": [run_json(r, steps=False) for r in started],
                         "resumed": [run_json(r, steps=False) for r in resumed]})  # fmt: skip


async def list_waits(request: Request) -> Response:
    try:
        limit = _limit(request)
    except ValueError as exc:
        return error(400, str(exc))
    waits = await tarry_app(request).engine.open_waits(request.query_params.get("run_id") or None, limit)
    return JSONResponse({"waits": [wait_json(w) for w in waits]})


async def list_dead_letters(request: Request) -> Response:
    """``GET /api/v1/dead-letters``: rows set aside, newest first; ``cursor`` is the last page's ``next_cursor``."""
    try:
        limit = _limit(request)
    except ValueError as exc:
        return error(400, str(exc))
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and (not cursor.isdigit() or int(cursor) < 1 or len(cursor) > 18):
        return error(400, f"invalid cursor {cursor!r}: pass the next_cursor of the previous page")
    letters = await tarry_app(request).dead_letters(limit=limit, before=None if cursor is None else int(cursor))
    next_cursor = str(letters[-1].id) if len(letters) == limit else None
    return JSONResponse({"dead_letters": [dead_letter_json(d) for d in letters], "next_cursor": next_cursor})


# -- operations ---------------------------------------------------------------


async def metrics(request: Request) -> Response:
    engine = tarry_app(request).engine
    body = engine.metrics.render(await engine.store.counts())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def healthz(request: Request) -> Response:
    await tarry_app(request).engine.store.has_work(0)  # the store answers
    return JSONResponse({"ok": True})
