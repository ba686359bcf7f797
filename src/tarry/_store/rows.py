"""Turn store rows into the public records; shared by every dialect."""

from __future__ import annotations

from typing import Any

from tarry import _serde
from tarry._clock import to_datetime
from tarry._flow import SEP
from tarry._model import (
    Buffer,
    DeadLetter,
    DeadLetterKind,
    Event,
    EventRecord,
    QueuedReason,
    Run,
    RunStatus,
    StepRecord,
    StepStatus,
)
from tarry._store.base import Delivery, StepRow


def event_from_row(row: Any, prefix: str = "") -> Event:
    return Event._received(
        row[prefix + "name"], _serde.loads(row[prefix + "data"]), row[prefix + "id"], row[prefix + "ts"],
        row[prefix + "key"], row[prefix + "v"],
    )  # fmt: skip


def event_json(row: Any) -> dict[str, Any]:
    """An event row as the JSON object expressions and wait results see."""
    return {"name": row["name"], "data": _serde.loads(row["data"]), "id": row["id"], "ts": row["ts"],
            "key": row["key"], "v": row["v"]}  # fmt: skip


def step_from_row(row: StepRow, errors: list[str] | None = None) -> StepRecord:
    """A step as read; ``errors``: the JSON of each failed attempt's error, oldest first."""
    return StepRecord(
        id=row.id,
        kind=row.kind,
        status=StepStatus(row.status),
        attempts=row.attempts,
        output=_serde.loads(row.output),
        error=_serde.loads(row.error),
        started_at=to_datetime(row.started_at),
        ended_at=to_datetime(row.ended_at),
        errors=[_serde.loads(e) for e in errors or []],
        wake_at=to_datetime(row.wake_at),
    )


def run_from_row(row: Any, steps: list[StepRow] | None = None, events: list[Event] | None = None,
                 errors: dict[str, list[str]] | None = None) -> Run:  # fmt: skip
    """A run as read, with its steps (and their errors, by step id) and a batch's or burst's events."""
    created = to_datetime(row["created_at"])
    assert created is not None
    reason = row["queued_reason"] if row["status"] == RunStatus.QUEUED else None
    return Run(
        id=row["id"],
        function_id=row["function_id"],
        status=RunStatus(row["status"]),
        output=_serde.loads(row["output"]),
        error=_serde.loads(row["error"]),
        event=event_from_row(row, "e_"),
        created_at=created,
        ended_at=to_datetime(row["ended_at"]),
        steps=[step_from_row(s, (errors or {}).get(s.id)) for s in steps or []],
        events=events or [],
        queued_reason=QueuedReason(reason) if reason else None,
        rerun_of=row["rerun_of"],
    )


def event_record(row: Any) -> EventRecord:
    received = to_datetime(row["received_at"])
    assert received is not None
    delivered = row["delivered"] == Delivery.DELIVERED
    skipped = [dict(zip(("function_id", "reason"), item.split("\x1f"), strict=True))
               for item in (row["skipped"] or "").split("\x1e") if item]  # fmt: skip
    return EventRecord(event_from_row(row), received, delivered, row["started"], row["resumed"], skipped, row["seq"])


def dead_letter_from_row(row: Any) -> DeadLetter:
    first, aside = to_datetime(row["first_failed_at"]), to_datetime(row["set_aside_at"])
    assert first is not None and aside is not None
    return DeadLetter(id=row["id"], kind=DeadLetterKind(row["kind"]), event_id=row["event_id"], run_id=row["run_id"],
                      step_id=row["step_id"], failures=row["failures"], error=_serde.loads(row["error"]),
                      first_failed_at=first, set_aside_at=aside)  # fmt: skip


def buffer_from_row(row: Any) -> Buffer:
    first, last, due = to_datetime(row["first_at"]), to_datetime(row["last_at"]), to_datetime(row["due_at"])
    assert first is not None and last is not None and due is not None
    return Buffer(id=row["id"], function_id=row["function_id"], kind=row["kind"],
                  partition=_key_value(row["partition"], row["kind"][0] + SEP + row["function_id"]), size=row["size"],
                  first_at=first, last_at=last, due_at=due)  # fmt: skip


def _key_value(partition: str, prefix: str) -> Any:
    """The key's value a partition's text was made from (``None``: the function has no key)."""
    if not partition.startswith(prefix + SEP):
        return None
    text = partition[len(prefix) + 1 :]
    try:
        return _serde.loads(text)
    except ValueError:  # a long value, kept as its hash
        return text
