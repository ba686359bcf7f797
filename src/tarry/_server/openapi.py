"""The OpenAPI document of the HTTP API, written out (it is the contract's §5 in machine form)."""

from __future__ import annotations

from typing import Any

from tarry._server.paging import MAX_LIMIT
from tarry._server.routes import MAX_BODY, MAX_EVENTS

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_EVENT_IN = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 256},
        "data": {"type": "object"},
        "id": {"type": "string"},
        "ts": {"type": "integer", "minimum": 0},
        "v": {"type": "string"},
        "key": {"type": "string"},
    },
    "required": ["name"],
}
_FAILURE = {"type": "object", "properties": {
    "name": {"type": "string"}, "message": {"type": "string", "description": "At most 16 KiB"},
    "traceback": {"type": "string", "description": "When user code raised: as Python prints it, at most 16 KiB, "
                                                   "the innermost frames kept"},
}, "required": ["name", "message"]}  # fmt: skip
_TRUNCATED = {"type": "object", "properties": {
    "size": {"type": "integer", "description": "Bytes of the output's compact JSON"},
    "preview": {"type": "string", "description": "Its first 2,000 characters"},
    "url": {"type": "string", "description": "Where to download it whole"},
}}  # fmt: skip
_STEP = {"type": "object", "properties": {
    "id": {"type": "string"}, "kind": {"type": "string"}, "status": {"type": "string"},
    "attempts": {"type": "integer"}, "output": {}, "error": {"oneOf": [_FAILURE, {"type": "null"}]},
    "errors": {"type": "array", "items": _FAILURE, "description": "Every failed attempt's error, oldest first"},
    "started_at": {"type": ["string", "null"]}, "ended_at": {"type": ["string", "null"]},
    "wake_at": {"type": ["string", "null"], "description": "When a sleep or a retry's backoff ends"},
    "child_run_id": {"type": ["string", "null"], "description": "An invoke step's child run (a run's view only)"},
    "output_truncated": {"oneOf": [_TRUNCATED, {"type": "null"}], "description": "With truncate only"},
}}  # fmt: skip
_RUN = {"type": "object", "properties": {
    "id": {"type": "string"}, "function_id": {"type": "string"}, "status": {"type": "string"},
    "output": {}, "error": {"oneOf": [_FAILURE, {"type": "null"}]}, "event": {"type": "object"},
    "created_at": {"type": "string"}, "ended_at": {"type": ["string", "null"]},
    "queued_reason": {"type": ["string", "null"], "enum": ["concurrency", "throttle", None]},
    "event_count": {"type": "integer"},
    "rerun_of": {"type": ["string", "null"], "description": "The finished run this one reruns"},
    "events": {"type": "array", "items": {"type": "object"}, "description": "A batch's or burst's (not in lists)"},
    "steps": {"type": "array", "items": _STEP, "description": "Not in lists"},
    "reruns": {"type": "array", "items": {"type": "string"},
               "description": "The newest 20 runs that rerun this one (a run's view only)"},
    "output_truncated": {"oneOf": [_TRUNCATED, {"type": "null"}], "description": "With truncate only"},
}}  # fmt: skip
_COUNTS = {"type": "object", "required": ["counts", "total"], "properties": {
    "counts": {"type": "object", "additionalProperties": {"type": "integer"},
               "description": "Every status, 0 when none"},
    "total": {"type": "integer"},
}}  # fmt: skip
_MATCHING = {"type": "object", "properties": {"matching": {"type": "integer",
             "description": "With dry_run: how many runs the call would take now"}}}  # fmt: skip

_SKIP = {"type": "object", "properties": {
    "function_id": {"type": "string"}, "reason": {"type": "string", "enum": ["rate_limit", "idempotency", "singleton"]},
}}  # fmt: skip

_EVENT = {"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "data": {"type": "object"}, "ts": {"type": "integer"},
    "key": {"type": ["string", "null"]}, "v": {"type": ["string", "null"]}, "received_at": {"type": "string"},
    "delivered": {"type": "boolean"}, "runs_started": {"type": "integer"}, "runs_resumed": {"type": "integer"},
    "skipped": {"type": "array", "items": _SKIP},
}}  # fmt: skip

_BUFFER = {"type": "object", "properties": {
    "id": {"type": "integer"}, "function_id": {"type": "string"}, "kind": {"type": "string", "enum": ["debounce", "batch"]},
    "partition": {"description": "The key's value for these events; null without a key"}, "size": {"type": "integer"},
    "first_at": {"type": "string"}, "last_at": {"type": "string"}, "due_at": {"type": "string"},
}}  # fmt: skip

_DEAD_LETTER = {"type": "object", "properties": {
    "id": {"type": "integer"}, "kind": {"type": "string", "enum": ["event", "timer", "run"]},
    "event_id": {"type": ["string", "null"]}, "run_id": {"type": ["string", "null"]},
    "step_id": {"type": ["string", "null"]}, "failures": {"type": "integer"}, "error": {"type": "object"},
    "first_failed_at": {"type": "string"}, "set_aside_at": {"type": "string"},
}}  # fmt: skip


_WAIT = {"type": "object", "properties": {
    "run_id": {"type": "string"}, "function_id": {"type": "string"}, "step_id": {"type": "string"},
    "kind": {"type": "string", "description": "event, resume, invoke, or wait_for_all, wait_for_any, collect_events"},
    "events": {"type": "array", "items": {"type": "string"}}, "match": {"type": "object"},
    "if_exp": {"type": ["string", "null"]}, "since": {"type": "string"}, "until": {"type": ["string", "null"]},
    "resume_url": {"type": ["string", "null"]},
    "condition": {"type": ["integer", "null"], "description": "its index among the conditions of its step"},
    "remaining": {"type": ["integer", "null"], "description": "collect_events: how many events it still takes"},
}}  # fmt: skip

_FUNCTION = {"type": "object", "properties": {
    "id": {"type": "string"},
    "triggers": {"type": "array", "items": {"type": "object", "description": 'e.g. {"event": "app/x"}, {"event": "app/*"}, {"event": "app/x", "if_exp": "event.data.vip"}, {"cron": "0 9 * * MON", "timezone": "Europe/Berlin"}'}},
    "retries": {"type": "integer"},
    "options": {"type": "object", "description": "The flow-control options that are set, and cancel_on, as given"},
    "runs": {"type": "object", "additionalProperties": {"type": "integer"},
             "description": "With counts=true: its runs by status, every status"},
    "sdk": {"type": "object", "description": "Only for a function served by an Inngest SDK: its app_id and url",
            "properties": {"app_id": {"type": "string"}, "url": {"type": "string"}}},
}}  # fmt: skip

_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601 with its offset (Z or +hh:mm)"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid input", 401: "Missing or wrong credentials", 404: "Not found", 408: "Body too slow",
            413: f"Body over {MAX_BODY} bytes, or more than {MAX_EVENTS} events", 415: "Not JSON (dev)",
            403: "A state-changing request from another site"}  # fmt: skip
    return {str(code): _json(_ERROR, text[code]) for code in codes}


def _limit() -> dict[str, Any]:
    return {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}


def _query(name: str, schema: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:
    parameter = {"name": name, "in": "query", "schema": schema or {"type": "string"}}
    return parameter if description is None else {**parameter, "description": description}


def _paged(key: str, item: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A page of a list: its items under ``key``, and ``next_cursor`` (null at the end)."""
    return {"type": "object", "required": [key, "next_cursor"],
            "properties": {key: {"type": "array", "items": item}, **more, "next_cursor": {"type": ["string", "null"]}}}  # fmt: skip


def _list(summary: str, auth: list[dict[str, list[str]]], unauthorized: tuple[int, ...], key: str,
          item: dict[str, Any], *parameters: dict[str, Any], **more: Any) -> dict[str, Any]:  # fmt: skip
    """A ``GET`` of a list, paged by ``limit`` and ``cursor``."""
    cursor = _query("cursor", description="The next_cursor of the previous page, as it was given")
    return {"get": {"summary": summary, "security": auth, "parameters": [*parameters, _limit(), cursor],
                    "responses": {"200": _json(_paged(key, item, **more)), **_errors(400, *unauthorized)}}}  # fmt: skip


def _with_404(operation: dict[str, Any]) -> dict[str, Any]:
    operation["get"]["responses"].update(_errors(404))
    return operation


def _bulk_body(status: bool = False) -> dict[str, Any]:
    """The filters of a bulk action: those given must all hold (times ISO 8601 with their offset)."""
    moment = {"type": ["string", "null"], "format": "date-time"}
    properties: dict[str, Any] = {
        "function_id": {"type": ["string", "null"]},
        "if_exp": {"type": ["string", "null"], "description": "CEL over event, the run's trigger"},
        "created_after": {**moment, "description": "Inclusive"},
        "created_before": {**moment, "description": "Exclusive"},
    }
    properties["dry_run"] = {
        "type": "boolean",
        "default": False,
        "description": "Change nothing; answer how many runs it would take (matching)",
    }
    if status:
        properties["status"] = {"type": "string", "enum": ["completed", "failed", "cancelled"], "default": "failed"}
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def document(secured: bool) -> dict[str, Any]:
    auth: list[dict[str, list[str]]] = [{"bearer": []}] if secured else []
    unauthorized = (401,) if secured else ()
    events_body = {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [_EVENT_IN, {"type": "array", "items": _EVENT_IN, "maxItems": MAX_EVENTS}]}}}}  # fmt: skip
    ids = {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}},
                                            "status": {"type": "integer"}}}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tarry",
            "version": "1",
            "description": "Events in, resume URLs, runs, events, waits and flow control.",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/e/{event_key}": {
                "post": {
                    "summary": "Send one event or a batch (Inngest's event format)",
                    "parameters": [path_param("event_key")],
                    "requestBody": events_body,
                    "responses": {"200": _json(ids), **_errors(400, 403, 408, 413, *unauthorized)},
                }
            },
            "/resume/{token}": {
                method: {
                    "summary": "Resume the run waiting on this resume URL (once)",
                    "parameters": [path_param("token")],
                    **(
                        {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}
                        if method == "post"
                        else {}
                    ),
                    "responses": {
                        "200": _json({"type": "object", "properties": {"ok": {"type": "boolean"}}}),
                        "303": {"description": "Redirect to the handle's redirect_url (browsers)"},
                        "400": _json({"type": "object"}, "Unusable data"),
                        "404": _json({"type": "object"}, "Unknown, used or expired token (no body is read)"),
                        "408": _json({"type": "object"}, "Body too slow"),
                        "413": _json({"type": "object"}, f"Body over {MAX_BODY} bytes"),
                    },
                }
                for method in ("get", "post")
            },
            "/api/v1/notify/{key}": {
                "post": {
                    "summary": "Send a tarry/notify event with this key",
                    "security": auth,
                    "parameters": [path_param("key")],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "event_id": {"type": "string"},
                                    "run_ids": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        ),
                        **_errors(400, 403, 408, 413, *unauthorized),
                    },
                }
            },
            "/api/v1/runs": _list(
                "Runs, newest first; every filter given must hold",
                auth,
                unauthorized,
                "runs",
                _RUN,
                _query("function", description="A function id"),
                _query("function_id", description="The same as function"),
                _query("status", description="A status, or several separated by commas"),
                _query("event_id", description="Runs this event started (and their reruns)"),
                _query("run_id", description="This run only"),
                _query("rerun_of", description="The runs that rerun this run"),
                _query("created_after", _TIME, "Created at or after this time"),
                _query("created_before", _TIME, "Created before this time"),
            ),
            "/api/v1/runs/counts": {
                "get": {
                    "summary": "How many runs of each status the filters select",
                    "security": auth,
                    "parameters": [
                        _query("function", description="A function id"),
                        _query("function_id", description="The same as function"),
                        _query("event_id", description="Runs this event started (and their reruns)"),
                        _query("created_after", _TIME, "Created at or after this time"),
                        _query("created_before", _TIME, "Created before this time"),
                    ],
                    "responses": {"200": _json(_COUNTS), **_errors(400, *unauthorized)},
                }
            },
            "/api/v1/stream": {
                "get": {
                    "summary": "Live updates (server-sent events) of the runs, run, list, waits and events named",
                    "description": "Never ends while the client listens; events run, detail, new, counts, waits, "
                    "events (see docs/server.md). More than 100 open streams answer 503.",
                    "security": auth,
                    "parameters": [
                        _query("runs", description="Run ids, comma-separated (at most 200)"),
                        _query("detail", description="A run id: its whole view"),
                        _query("list", {"type": "string", "enum": ["1"]}, "New runs of the filters, and counts"),
                        _query("function"),
                        _query("status"),
                        _query("event_id"),
                        _query("created_after", _TIME),
                        _query("created_before", _TIME),
                        _query("waits", {"type": "string", "enum": ["1"]}, "The open waits"),
                        _query("events", {"type": "string", "enum": ["1"]}, "New events"),
                    ],
                    "responses": {
                        "200": {
                            "description": "A stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, *unauthorized),
                        "503": _json(_ERROR, "Too many open streams"),
                    },
                }
            },
            "/api/v1/runs/cancel": {
                "post": {
                    "summary": "Cancel every unfinished run the filters select (at least one filter)",
                    "security": auth,
                    "requestBody": _bulk_body(),
                    "responses": {
                        "200": _json(
                            {"oneOf": [{"type": "object", "properties": {"cancelled": {"type": "integer"}}}, _MATCHING]}
                        ),
                        **_errors(400, 403, 408, 413, 415, *unauthorized),
                    },
                }
            },
            "/api/v1/runs/rerun": {
                "post": {
                    "summary": "Rerun every finished run of status the filters select (at least one filter)",
                    "security": auth,
                    "requestBody": _bulk_body(status=True),
                    "responses": {
                        "200": _json(
                            {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "properties": {"run_ids": {"type": "array", "items": {"type": "string"}}},
                                    },
                                    _MATCHING,
                                ]
                            }
                        ),
                        **_errors(400, 403, 408, 413, 415, *unauthorized),
                    },
                }
            },
            "/api/v1/runs/{run_id}": {
                "get": {
                    "summary": "A run with its steps, each invoke's child run, and its reruns",
                    "security": auth,
                    "parameters": [
                        path_param("run_id"),
                        _query(
                            "truncate",
                            {"type": "integer", "minimum": 1024},
                            "Outputs whose JSON is over this many bytes are replaced by null and output_truncated",
                        ),
                    ],
                    "responses": {"200": _json(_RUN), **_errors(400, 404, *unauthorized)},
                }
            },
            "/api/v1/runs/{run_id}/output": {
                "get": {
                    "summary": "A completed run's output, whole, as a download",
                    "security": auth,
                    "parameters": [path_param("run_id")],
                    "responses": {"200": _json({}), **_errors(404, *unauthorized)},
                }
            },
            "/api/v1/runs/{run_id}/steps/{step_id}/output": {
                "get": {
                    "summary": "A completed step's output, whole, as a download",
                    "security": auth,
                    "parameters": [path_param("run_id"), path_param("step_id")],
                    "responses": {"200": _json({}), **_errors(404, *unauthorized)},
                }
            },
            "/api/v1/runs/{run_id}/cancel": {
                "post": {
                    "summary": "Cancel a run",
                    "security": auth,
                    "parameters": [path_param("run_id")],
                    "responses": {
                        "200": _json({"type": "object", "properties": {"cancelled": {"type": "boolean"}}}),
                        **_errors(403, 404, *unauthorized),
                    },
                }
            },
            "/api/v1/runs/{run_id}/rerun": {
                "post": {
                    "summary": "Rerun a finished run (from_step: keep the steps recorded before that one)",
                    "security": auth,
                    "parameters": [path_param("run_id")],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"from_step": {"type": ["string", "null"]}},
                                    "additionalProperties": False,
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": _json({"type": "object", "properties": {"run_id": {"type": "string"}}}),
                        **_errors(400, 403, 404, 408, 413, 415, *unauthorized),
                    },
                }
            },
            "/api/v1/events": {
                **_list("Events, newest first", auth, unauthorized, "events", _EVENT, _query("name")),
                "post": {
                    "summary": "Send events with the API's credentials",
                    "security": auth,
                    "requestBody": events_body,
                    "responses": {"200": _json(ids), **_errors(400, 403, 408, 413, *unauthorized)},
                },
            },
            "/api/v1/events/{event_id}": {
                "get": {
                    "summary": "An event, with how many runs it started and resumed, and which functions skipped it",
                    "security": auth,
                    "parameters": [path_param("event_id")],
                    "responses": {"200": _json(_EVENT), **_errors(404, *unauthorized)},
                }
            },
            "/api/v1/events/{event_id}/runs": _with_404(
                _list(
                    "The runs an event started (with their reruns) and those it resumed, newest first; one cursor "
                    "pages both lists",
                    auth,
                    unauthorized,
                    "runs",
                    _RUN,
                    path_param("event_id"),
                    event=_EVENT,
                    resumed={"type": "array", "items": _RUN},
                    skipped={"type": "array", "items": _SKIP},
                )
            ),
            "/api/v1/waits": _list("Open waits, newest first", auth, unauthorized, "waits", _WAIT, _query("run_id")),
            "/api/v1/dead-letters": _list(
                "Rows set aside after failing again and again (events, timers, runs), newest first",
                auth,
                unauthorized,
                "dead_letters",
                _DEAD_LETTER,
            ),
            "/api/v1/buffers": _list(
                "Open debounce bursts and batches (events gathered, no run yet), newest first",
                auth,
                unauthorized,
                "buffers",
                _BUFFER,
                _query("function_id"),
            ),
            "/api/v1/functions": _list(
                "The app's functions by id: triggers, retries and options",
                auth,
                unauthorized,
                "functions",
                _FUNCTION,
                _query("counts", {"type": "string", "enum": ["true", "false"]}, "true: each with its runs by status"),
            ),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (in serve: Bearer TARRY_METRICS_KEY, else the signing key)",
                    "security": auth,
                    "responses": {
                        "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **_errors(*unauthorized),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Health", "responses": {"200": _json({"type": "object"})}}},
        },
    }
