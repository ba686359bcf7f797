"""Every public error of Tarry, in one place.

    TarryError
    ├── InvalidEventError      (also a ValueError) an event breaks a rule of §2
    ├── ExpressionError        (also a ValueError) an if_exp that does not parse
    ├── StepError              a step failed for good; raised into the function
    ├── NonRetriableError      raise it in a step to stop retrying at once
    ├── RetryAfterError        raise it in a step to retry after a given delay
    ├── WaitTimeoutError       a wait with on_timeout="fail" timed out
    └── StoreError             the database cannot be opened or used

Bad durations raise a plain ``ValueError`` naming the text, as the contract says.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tarry import _tracebacks


class TarryError(Exception):
    """The base of every error Tarry raises on purpose."""


class InvalidEventError(TarryError, ValueError):
    """An event breaks a rule: the message names the field and the rule."""


class ExpressionError(TarryError, ValueError):
    """An ``if_exp`` that does not parse or names anything but ``event``/``async``."""

    def __init__(self, expression: str, reason: str, where: str | None = None) -> None:
        within = f" in {where}" if where else ""
        super().__init__(f"invalid expression {expression!r}{within}: {reason}")
        self.expression = expression
        self.reason = reason


class StepError(TarryError):
    """A step failed after its last attempt.

    ``name`` and ``message`` describe the original error, ``traceback`` its
    traceback when the step's code raised it (else ``None``). The function
    may catch it; uncaught, the run fails.
    """

    def __init__(self, step_id: str, name: str, message: str, *, traceback: str | None = None) -> None:
        super().__init__(f"step {step_id!r} failed: {name}: {message}")
        self.step_id = step_id
        self.name = name
        self.message = message
        self.traceback = traceback


class NonRetriableError(TarryError):
    """Raised inside a step: do not retry it, fail the step at once."""


class RetryAfterError(TarryError):
    """Raised inside a step: retry it after ``delay``.

    ``delay`` is any duration of the contract (seconds, ``timedelta``, a
    string such as ``"30s"``) or an aware ``datetime`` to retry at.
    """

    def __init__(self, message: str, delay: float | int | str | timedelta | datetime) -> None:
        super().__init__(message)
        self.delay = delay


class WaitTimeoutError(TarryError):
    """A wait with ``on_timeout="fail"`` reached its timeout."""


class StoreError(TarryError):
    """The database cannot be opened or used; ``__cause__`` holds the driver's error."""


def describe(exc: BaseException, limit: int | None = None, *, traceback: bool = False) -> dict[str, str]:
    """The stored form of an exception, ``{"name", "message"}``, whatever the exception.

    Its ``str()`` may raise or hold lone surrogates; neither may stop it from being stored (and a
    run from failing once, or a row from being set aside). ``limit`` bounds the message's length in
    characters; it is at most 16 KiB in any case. With ``traceback``, an exception that was raised
    (user code's) also gets its ``"traceback"``; a ``StepError``'s starts with the step's own.
    """
    try:
        message = str(exc)
    except Exception as bad:  # a __str__ that raises
        message = f"(its message could not be read: {type(bad).__name__})"
    message = _tracebacks.head(message[:limit].encode("utf-8", "backslashreplace").decode("utf-8"))
    error = {"name": type(exc).__name__, "message": message}
    remote = getattr(exc, "remote", None)  # an error another process reported (an Inngest SDK's): as it said
    if remote is not None:
        error["name"] = remote.get("name") or error["name"]
        if traceback and remote.get("stack"):
            error["traceback"] = _tracebacks.head(remote["stack"])
            return error
    if traceback and exc.__traceback__ is not None:
        cause = exc.traceback if isinstance(exc, StepError) else None
        error["traceback"] = _tracebacks.format_exception(exc, cause)
    return error
