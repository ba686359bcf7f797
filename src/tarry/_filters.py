"""Filters of run lists as callers give them, checked once and turned into the store's ``RunQuery``.

``app.list_runs``, the JSON API, the CLI and the bulk actions all select runs through ``run_query``:
one set of rules for a function id, statuses, an event id, a run id, the run a rerun remakes and a time
range (aware datetimes).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from tarry._model import RunStatus
from tarry._store.base import RunQuery

MAX_LIMIT = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: the statuses of a run that has not finished yet
UNFINISHED = tuple(s.value for s in RunStatus if not s.finished)


def check_limit(limit: object, most: int = MAX_LIMIT) -> int:
    """``limit`` if it is an int from 1 to ``most`` (not a bool); else ``ValueError`` naming it."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise ValueError(f"invalid limit {limit!r}: an int from 1 to {most}")
    return limit


def statuses(status: object, field: str = "status") -> tuple[str, ...] | None:
    """A status or several (a list, tuple or set of them) as their values; None for None."""
    if status is None:
        return None
    items: Iterable[Any] = status if isinstance(status, list | tuple | set | frozenset) else [status]
    found: list[str] = []
    for item in items:
        try:
            value = RunStatus(item).value
        except ValueError:
            choices = ", ".join(s.value for s in RunStatus)
            raise ValueError(f"invalid {field} {item!r}: one of {choices}") from None
        if value not in found:
            found.append(value)
    if not found:
        raise ValueError(f"invalid {field} {status!r}: name at least one status (or pass None for any)")
    return tuple(found)


def moment_ms(moment: object, field: str) -> int | None:
    """An aware datetime as epoch milliseconds; None for None; else ``ValueError`` naming ``field``."""
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise ValueError(f"invalid {field} {moment!r}: an aware datetime (with a time zone) or None")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"invalid {field} {moment!r}: a naive datetime; give it a time zone (e.g. tzinfo=UTC)")
    # rounded up: a run's created_at is whole milliseconds, so "at or after 12:00:00.0005" and
    # "before 12:00:00.0005" both divide at 12:00:00.001
    return -(-((moment - _EPOCH) // timedelta(microseconds=1)) // 1000)


def _text(value: object, field: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"invalid {field} {value!r}: a non-empty string or None")
    return value


def run_query(*, function_id: object = None, status: object = None, event_id: object = None,
              created_after: object = None, created_before: object = None, run_id: object = None,
              rerun_of: object = None, oldest_first: bool = False) -> RunQuery:  # fmt: skip
    """The query of these filters, each checked (``ValueError`` naming the field and the rule).

    ``created_after`` is inclusive and ``created_before`` exclusive; a range that holds nothing
    (after at or past before) is allowed and selects no run."""
    return RunQuery(
        function_id=_text(function_id, "function_id"),
        statuses=statuses(status),
        event_id=_text(event_id, "event_id"),
        run_id=_text(run_id, "run_id"),
        rerun_of=_text(rerun_of, "rerun_of"),
        created_after=moment_ms(created_after, "created_after"),
        created_before=moment_ms(created_before, "created_before"),
        oldest_first=oldest_first,
    )
