"""JSON shapes of the HTTP API: runs, steps, events, waits, dead letters, open bursts and batches; and errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse

from tarry import _serde
from tarry._model import Buffer, DeadLetter, Event, EventRecord, Run, StepRecord, Wait


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def event_json(event: Event) -> dict[str, Any]:
    return event.to_json()


def step_json(step: StepRecord) -> dict[str, Any]:
    return {
        "id": step.id, "kind": step.kind, "status": step.status.value, "attempts": step.attempts,
        "output": step.output, "error": step.error, "errors": step.errors, "started_at": iso(step.started_at),
        "ended_at": iso(step.ended_at), "wake_at": iso(step.wake_at),
    }  # fmt: skip


def run_json(run: Run, *, steps: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": run.id, "function_id": run.function_id, "status": run.status.value, "output": run.output,
        "error": run.error, "event": event_json(run.event), "created_at": iso(run.created_at),
        "ended_at": iso(run.ended_at), "queued_reason": run.queued_reason, "event_count": len(run.events),
        "rerun_of": run.rerun_of,
    }  # fmt: skip
    if steps:  # a list leaves out what can be long: the steps, and a batch's events (up to 10 MiB of them)
        body["steps"] = [step_json(s) for s in run.steps]
        body["events"] = [event_json(e) for e in run.events]
    return body


#: characters of a truncated output's JSON shown in its place
PREVIEW = 2000


def run_view_json(run: Run, children: dict[str, str], reruns: list[str], truncate: int | None) -> dict[str, Any]:
    """A run's own view (``GET /api/v1/runs/{id}``): ``run_json`` with each step's ``child_run_id`` and the
    run's ``reruns``; with ``truncate``, each output whose JSON is over that many bytes is left out
    (``null``), its size, the start of its JSON and where to download it in ``output_truncated``."""
    body = run_json(run)
    body["reruns"] = reruns
    for step in body["steps"]:
        step["child_run_id"] = children.get(step["id"])
    if truncate is None:
        return body
    body["output"], body["output_truncated"] = _cut(body["output"], truncate, output_path(run.id))
    for step in body["steps"]:
        step["output"], step["output_truncated"] = _cut(step["output"], truncate, output_path(run.id, step["id"]))
    return body


def output_path(run_id: str, step_id: str | None = None) -> str:
    """Where a run's output (or one step's) is downloaded whole."""
    run = "/api/v1/runs/" + quote(run_id, safe="")
    return run + "/output" if step_id is None else f"{run}/steps/{quote(step_id, safe='')}/output"


def _cut(value: Any, limit: int, url: str) -> tuple[Any, dict[str, Any] | None]:
    text, size = _serde.dumps_sized(value)
    if size <= limit:
        return value, None
    return None, {"size": size, "preview": text[:PREVIEW], "url": url}


def event_record_json(record: EventRecord) -> dict[str, Any]:
    return {**event_json(record.event), "received_at": iso(record.received_at), "delivered": record.delivered,
            "runs_started": record.started, "runs_resumed": record.resumed,
            "skipped": [{"function_id": s["function_id"], "reason": s["reason"]} for s in record.skipped]}  # fmt: skip


def wait_json(wait: Wait) -> dict[str, Any]:
    return {
        "run_id": wait.run_id, "function_id": wait.function_id, "step_id": wait.step_id, "kind": wait.kind,
        "events": wait.events, "match": wait.match, "if_exp": wait.if_exp, "since": iso(wait.since),
        "until": iso(wait.until), "resume_url": wait.resume_url, "condition": wait.condition,
        "remaining": wait.remaining,
    }  # fmt: skip


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id, "kind": letter.kind.value, "event_id": letter.event_id, "run_id": letter.run_id,
        "step_id": letter.step_id, "failures": letter.failures, "error": letter.error,
        "first_failed_at": iso(letter.first_failed_at), "set_aside_at": iso(letter.set_aside_at),
    }  # fmt: skip


def buffer_json(buffer: Buffer) -> dict[str, Any]:
    return {
        "id": buffer.id, "function_id": buffer.function_id, "kind": buffer.kind, "partition": buffer.partition,
        "size": buffer.size, "first_at": iso(buffer.first_at), "last_at": iso(buffer.last_at),
        "due_at": iso(buffer.due_at),
    }  # fmt: skip


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
