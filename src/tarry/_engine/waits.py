"""Turn the options of a wait into the rows that index it.

A wait's *terms* are ``async.<path> == <value>`` pairs: from ``match``, from
``key``, and from the top-level ``&&`` equalities of ``if_exp``. The trigger's
values are substituted here, once; the sorted paths are the wait's *shape*
and the values its *match key*. An incoming event computes its key for each
shape of its name and probes the index; ``if_exp`` is evaluated only on the
candidates found. A wait with no term is in the scanned bucket of its name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import reprlib
from typing import Any
from urllib.parse import urlsplit

from tarry import _expressions
from tarry._durations import to_ms
from tarry._errors import ExpressionError
from tarry._function import CancelOn
from tarry._serde import MAX_RESULT_BYTES
from tarry._store.base import TimerWrite, WaitWrite

ON_TIMEOUT = ("continue", "fail", "cancel")
INVOKE_DONE = ("tarry/function.finished", "tarry/function.cancelled")


def index_of(terms: list[_expressions.Term], trigger: dict[str, Any]) -> tuple[str, str]:
    """The shape and match key of ``terms``, with the trigger's values substituted."""
    if not terms:
        return "", ""
    values: dict[str, Any] = {}
    never = False
    for term in terms:
        value = _expressions.lookup(trigger, term.event_path) if term.event_path else term.constant
        if _expressions.is_missing(value) or (term.path in values and values[term.path] != value):
            never = True
        values.setdefault(term.path, value)
    shape = "|".join(sorted(values))
    return shape, _expressions.NEVER if never else _expressions.match_key([values[p] for p in sorted(values)])


def event_names(event: object) -> tuple[str, ...]:
    names = [event] if isinstance(event, str) else event
    if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"invalid event {event!r}: an event name or a non-empty list of names")
    return tuple(dict.fromkeys(names))


def check_match(match: object) -> str:
    if not isinstance(match, str) or not match.startswith("data.") or not all(match.split(".")):
        raise ValueError(f"invalid match {match!r}: a path into the event data, such as 'data.userId'")
    return match


def wait_for_event(
    step_id: str, *, event: object, timeout: object, match: object, if_exp: object, key: object,
    on_timeout: object, lookback: object, trigger: dict[str, Any], now: int,
) -> WaitWrite:  # fmt: skip
    """Check every option (raising ``ValueError``/``ExpressionError`` naming it) and build the wait."""
    if event is None and key is None:
        raise ValueError("wait_for_event needs event=, key=, or both")
    names = event_names(event) if event is not None else ("",)
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"invalid key {key!r}: a non-empty string")
    correlation = key if isinstance(key, str) else None
    timeout_ms = to_ms(timeout, what="timeout")
    if on_timeout not in ON_TIMEOUT:
        raise ValueError(f"invalid on_timeout {reprlib.repr(on_timeout)}: one of 'continue', 'fail', 'cancel'")
    terms: list[_expressions.Term] = []
    if match is not None:
        path = check_match(match)
        terms.append(_expressions.Term(path, event_path=path))
    if key is not None:
        terms.append(_expressions.Term("key", constant=key))
    compiled = None
    if if_exp is not None:
        if not isinstance(if_exp, str):
            raise ExpressionError(repr(if_exp), "an expression must be a string")
        compiled = _expressions.compile_expression(if_exp)
        terms.extend(compiled.terms)
    mode, since = _lookback(lookback, now)
    shape, match_key = index_of(terms, trigger)
    residual = compiled.text if compiled is not None and compiled.residual else None
    timer = TimerWrite(step_id, f"wait-{on_timeout}", now + timeout_ms)
    return WaitWrite(step_id, "event", names, shape, match_key, residual, mode, since, timer, correlation)


def _condition(step_id: str, kind: str, *, event: object, match: object, if_exp: object, key: object,
               lookback: tuple[str, int], trigger: dict[str, Any], condition: int | None) -> WaitWrite:  # fmt: skip
    """One condition's rows of the index, its options checked (errors name the condition's index)."""
    try:
        if event is None and key is None:
            raise ValueError("a condition needs event=, key=, or both")
        names = event_names(event) if event is not None else ("",)
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"invalid key {key!r}: a non-empty string")
        terms: list[_expressions.Term] = []
        if match is not None:
            path = check_match(match)
            terms.append(_expressions.Term(path, event_path=path))
        if key is not None:
            terms.append(_expressions.Term("key", constant=key))
        compiled = None
        if if_exp is not None:
            if not isinstance(if_exp, str):
                raise ExpressionError(repr(if_exp), "an expression must be a string")
            compiled = _expressions.compile_expression(if_exp)
            terms.extend(compiled.terms)
    except ExpressionError as exc:
        if condition is None:
            raise
        raise ExpressionError(exc.expression, exc.reason, f"condition {condition}") from None
    except ValueError as exc:
        if condition is None:
            raise
        raise ValueError(f"condition {condition}: {exc}") from None
    shape, match_key = index_of(terms, trigger)
    residual = compiled.text if compiled is not None and compiled.residual else None
    mode, since = lookback
    return WaitWrite(step_id, kind, names, shape, match_key, residual, mode, since, None,
                     key if isinstance(key, str) else None, condition or 0)  # fmt: skip


GROUP_TIMERS = {"wait_for_all": "all", "wait_for_any": "any", "collect_events": "collect"}
MAX_COLLECT = 1000


def group(step_id: str, kind: str, conditions: list[dict[str, Any]], *, timeout: object, on_timeout: object,
          lookback: object, count: object = None, trigger: dict[str, Any], now: int) -> list[WaitWrite]:  # fmt: skip
    """The rows of a step of several conditions, every option checked first; one timer, the deadline."""
    timeout_ms = to_ms(timeout, what="timeout")
    if on_timeout not in ON_TIMEOUT:
        raise ValueError(f"invalid on_timeout {reprlib.repr(on_timeout)}: one of 'continue', 'fail', 'cancel'")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError(f"invalid count {reprlib.repr(count)}: an int >= 1, or None")
    span = _lookback(lookback, now)
    single = kind == "collect_events"
    waits = [_condition(step_id, kind, **c, lookback=span, trigger=trigger, condition=None if single else i)
             for i, c in enumerate(conditions)]  # fmt: skip
    timer = TimerWrite(step_id, f"{GROUP_TIMERS[kind]}-{on_timeout}", now + timeout_ms)
    waits[0] = dataclasses.replace(waits[0], timer=timer)
    if single:
        take = MAX_COLLECT if count is None else min(count, MAX_COLLECT)
        waits[0] = dataclasses.replace(waits[0], take=take, room=MAX_RESULT_BYTES - 2)
    return waits


def _lookback(lookback: object, now: int) -> tuple[str, int]:
    if lookback == "run":
        return "run", 0
    if lookback is None or (isinstance(lookback, int | float) and not isinstance(lookback, bool) and lookback == 0):
        return "none", 0
    ms = to_ms(lookback, what="lookback")
    return ("none", 0) if ms == 0 else ("since", now - ms)


def wait_for_invoke(step_id: str, invoke_event_id: str, timeout: object, now: int) -> WaitWrite:
    timer = None if timeout is None else TimerWrite(step_id, "wait-fail", now + to_ms(timeout, what="timeout"))
    match_key = _expressions.match_key([invoke_event_id])
    return WaitWrite(step_id, "invoke", INVOKE_DONE, "data.event.id", match_key, None, "none", 0, timer)


def wait_for_resume(step_id: str, token_hash: str, expires_at: int, on_timeout: object) -> WaitWrite:
    if on_timeout not in ON_TIMEOUT:
        raise ValueError(f"invalid on_timeout {reprlib.repr(on_timeout)}: one of 'continue', 'fail', 'cancel'")
    timer = TimerWrite(step_id, f"wait-{on_timeout}", expires_at)
    return WaitWrite(step_id, "resume", ("#resume",), "token", token_hash, None, "none", 0, timer)


def wait_for_cancel_on(index: int, item: CancelOn, trigger: dict[str, Any], now: int) -> WaitWrite:
    step_id = f"#cancel:{index}"
    terms: list[_expressions.Term] = []
    if item.match is not None:
        terms.append(_expressions.Term(item.match, event_path=item.match))
    residual = None
    if item.if_exp is not None:
        compiled = _expressions.compile_expression(item.if_exp)
        terms.extend(compiled.terms)
        residual = item.if_exp if compiled.residual else None
    shape, match_key = index_of(terms, trigger)
    timer = None if item.timeout is None else TimerWrite(step_id, "cancel-expire", now + to_ms(item.timeout))
    return WaitWrite(step_id, "cancel", (item.event,), shape, match_key, residual, "none", 0, timer)


def check_cancel_on(item: CancelOn) -> None:
    """Raise at decoration for a cancel_on that could never work."""
    event_names(item.event)
    if not isinstance(item.event, str):
        raise ValueError(f"invalid cancel_on event {item.event!r}: one event name")
    if item.match is not None:
        check_match(item.match)
    if item.if_exp is not None:
        _expressions.compile_expression(item.if_exp)
    if item.timeout is not None:
        to_ms(item.timeout, what="cancel_on timeout")


def check_redirect_url(redirect_url: object) -> str | None:
    """A resume handle's ``redirect_url``: ``None`` or an absolute ``http(s)://`` URL with a host.

    Anything else (``javascript:``, ``data:``, a path, ``//host``) is refused, so that the resume page
    can never be made to send a person somewhere that runs script or is not a web page."""
    if redirect_url is None:
        return None
    refused = ValueError(f"invalid redirect_url {redirect_url!r}: an absolute http:// or https:// URL")
    if not isinstance(redirect_url, str) or any(c.isspace() or ord(c) < 32 for c in redirect_url):
        raise refused
    try:
        parts = urlsplit(redirect_url)
        parts.port  # noqa: B018  # a port that is not a number raises here
    except ValueError:
        raise refused from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise refused
    return redirect_url


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
