"""JSON shapes of the HTTP API: runs, steps, events, waits, dead letters, open bursts and batches; and errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse

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
