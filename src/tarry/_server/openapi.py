"""The OpenAPI document of the HTTP API, written out (it is the contract's §5 in machine form)."""

from __future__ import annotations

from typing import Any

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
_STEP = {"type": "object", "properties": {
    "id": {"type": "string"}, "kind": {"type": "string"}, "status": {"type": "string"},
    "attempts": {"type": "integer"}, "output": {}, "error": {"oneOf": [_FAILURE, {"type": "null"}]},
    "errors": {"type": "array", "items": _FAILURE, "description": "Every failed attempt's error, oldest first"},
    "started_at": {"type": ["string", "null"]}, "ended_at": {"type": ["string", "null"]},
    "wake_at": {"type": ["string", "null"], "description": "When a sleep or a retry's backoff ends"},
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
}}  # fmt: skip

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


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid input", 401: "Missing or wrong credentials", 404: "Not found", 408: "Body too slow",
            413: f"Body over {MAX_BODY} bytes, or more than {MAX_EVENTS} events", 415: "Not JSON (dev)",
            403: "A state-changing request from another site"}  # fmt: skip
    return {str(code): _json(_ERROR, text[code]) for code in codes}


def _limit() -> dict[str, Any]:
    return {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}


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
            "/api/v1/runs": {
                "get": {
                    "summary": "Runs, newest first",
                    "security": auth,
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                        {"name": "function_id", "in": "query", "schema": {"type": "string"}},
                        _limit(),
                    ],
                    "responses": {
                        "200": _json({"type": "object", "properties": {"runs": {"type": "array", "items": _RUN}}}),
                        **_errors(400, *unauthorized),
                    },
                }
            },
            "/api/v1/runs/{run_id}": {
                "get": {
                    "summary": "A run with its steps",
                    "security": auth,
                    "parameters": [path_param("run_id")],
                    "responses": {"200": _json(_RUN), **_errors(404, *unauthorized)},
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
                "get": {
                    "summary": "Events, newest first",
                    "security": auth,
                    "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}, _limit()],
                    "responses": {
                        "200": _json({"type": "object", "properties": {"events": {"type": "array", "items": _EVENT}}}),
                        **_errors(400, *unauthorized),
                    },
                },
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
            "/api/v1/events/{event_id}/runs": {
                "get": {
                    "summary": "The runs an event started, and those it resumed",
                    "security": auth,
                    "parameters": [path_param("event_id")],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "event": _EVENT,
                                    "runs": {"type": "array", "items": _RUN},
                                    "resumed": {"type": "array", "items": _RUN},
                                    "skipped": {"type": "array", "items": _SKIP},
                                },
                            }
                        ),
                        **_errors(404, *unauthorized),
                    },
                }
            },
            "/api/v1/waits": {
                "get": {
                    "summary": "Open waits, newest first",
                    "security": auth,
                    "parameters": [{"name": "run_id", "in": "query", "schema": {"type": "string"}}, _limit()],
                    "responses": {"200": _json({"type": "object"}), **_errors(400, *unauthorized)},
                }
            },
            "/api/v1/dead-letters": {
                "get": {
                    "summary": "Rows set aside after failing again and again (events, timers, runs), newest first",
                    "security": auth,
                    "parameters": [_limit(), {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "dead_letters": {"type": "array", "items": _DEAD_LETTER},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            }
                        ),
                        **_errors(400, *unauthorized),
                    },
                }
            },
            "/api/v1/buffers": {
                "get": {
                    "summary": "Open debounce bursts and batches (events gathered, no run yet), newest first",
                    "security": auth,
                    "parameters": [
                        {"name": "function_id", "in": "query", "schema": {"type": "string"}},
                        _limit(),
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "buffers": {"type": "array", "items": _BUFFER},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            }
                        ),
                        **_errors(400, *unauthorized),
                    },
                }
            },
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
