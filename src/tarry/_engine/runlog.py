"""A run's life in one line per change — started, a step retrying or failed, ended — as ``INFO`` records.

They go to the ``tarry.runs`` logger with ``run_id``, ``function_id`` and ``step_id`` attributes (as
``ctx.logger``'s records have); ``tarry dev`` prints them. Nothing is formatted unless that logger is
enabled for ``INFO``, so a quiet logger costs one level check.
"""

from __future__ import annotations

import logging
from typing import TextIO

log = logging.getLogger("tarry.runs")

#: the most of an error's message a line shows (its first line)
SHOWN = 200


def print_to(stream: TextIO) -> None:
    """Print these lines to ``stream``, each after the time (``tarry dev``); they no longer reach the root logger."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def started(run_id: str, function_id: str, event: str) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info("started   run=%s function=%s event=%s", run_id, function_id, event,
                 extra=_ids(run_id, function_id))  # fmt: skip


def retrying(run_id: str, function_id: str, step_id: str, attempt: int, attempts: int, took_ms: int,
             retry_in_ms: int, error: dict[str, str]) -> None:  # fmt: skip
    if log.isEnabledFor(logging.INFO):
        log.info("retrying  run=%s function=%s step=%s attempt=%d/%d took=%s retry_in=%s error=%s", run_id,
                 function_id, step_id, attempt, attempts, span(took_ms), span(retry_in_ms), shown(error),
                 extra=_ids(run_id, function_id, step_id))  # fmt: skip


def step_failed(run_id: str, function_id: str, step_id: str, attempts: int, took_ms: int,
                error: dict[str, str]) -> None:  # fmt: skip
    if log.isEnabledFor(logging.INFO):
        log.info("step-failed run=%s function=%s step=%s attempts=%d took=%s error=%s", run_id, function_id,
                 step_id, attempts, span(took_ms), shown(error), extra=_ids(run_id, function_id, step_id))  # fmt: skip


def ended(run_id: str, function_id: str, status: str, took_ms: int, error: dict[str, str] | None) -> None:
    """A run's end (``status``: completed, failed or cancelled), ``took_ms`` after it was created."""
    if log.isEnabledFor(logging.INFO):
        if error is None:
            log.info("%-9s run=%s function=%s took=%s", status, run_id, function_id, span(took_ms),
                     extra=_ids(run_id, function_id))  # fmt: skip
        else:
            log.info("%-9s run=%s function=%s took=%s error=%s", status, run_id, function_id, span(took_ms),
                     shown(error), extra=_ids(run_id, function_id))  # fmt: skip


def shown(error: dict[str, str]) -> str:
    """An error in a line: its name and the first line of its message, cut to ``SHOWN`` characters."""
    lines = str(error.get("message", "")).splitlines()
    first = lines[0] if lines else ""
    more = len(lines) > 1 or len(first) > SHOWN
    return f"{error.get('name')}: {first[:SHOWN]}{' ...' if more else ''}"


def span(ms: int) -> str:
    """A duration the way a person reads it: 25ms, 3.9s, 4m05s, 2h03m, 3d04h."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"


def _ids(run_id: str, function_id: str, step_id: str | None = None) -> dict[str, str | None]:
    return {"run_id": run_id, "function_id": function_id, "step_id": step_id}
