"""Tarry: durable workflows whose heart is waiting.

A run of a function pauses on ``step.sleep``, ``step.wait_for_event`` or a
resume URL, costs nothing while it waits, and resumes exactly once.
"""

from tarry import testing
from tarry._app import Tarry
from tarry._context import Context
from tarry._cron import Cron
from tarry._errors import (
    ExpressionError,
    InvalidEventError,
    NonRetriableError,
    RetryAfterError,
    StepError,
    StoreError,
    TarryError,
    WaitTimeoutError,
)
from tarry._flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle, Timeouts
from tarry._function import CancelOn, Trigger, Wait
from tarry._model import DeadLetter, DeadLetterKind, Event, ResumeHandle, Run, RunStatus, StepRecord, StepStatus
from tarry._step import Step

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "CancelOn",
    "Concurrency",
    "Context",
    "Cron",
    "DeadLetter",
    "DeadLetterKind",
    "Debounce",
    "Event",
    "ExpressionError",
    "InvalidEventError",
    "NonRetriableError",
    "Priority",
    "RateLimit",
    "ResumeHandle",
    "RetryAfterError",
    "Run",
    "RunStatus",
    "Singleton",
    "Step",
    "StepError",
    "StepRecord",
    "StepStatus",
    "StoreError",
    "Tarry",
    "TarryError",
    "Throttle",
    "Timeouts",
    "Trigger",
    "Wait",
    "WaitTimeoutError",
    "testing",
]
