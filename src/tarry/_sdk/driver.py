"""The body of a function served by an Inngest SDK: each turn is one call, each opcode a Tarry step.

Tarry runs the function as it runs its own: the driver below is the
function's body, executed and replayed by the executor. A turn builds the
SDK's call request from the run's step records (the memo, keyed by the SDK's
hashed step ids) and posts it to the SDK; the SDK replays its function and
answers with its output (200) or the next opcodes (206). Each opcode becomes
the Tarry step that writes what a local step writes — ``StepRun`` a
``step.run`` whose result the SDK already computed, ``StepPlanned`` a
``step.run`` whose body calls the SDK for that step alone, ``Sleep`` a
``sleep_until``, ``WaitForEvent`` a ``wait_for_event``, ``InvokeFunction`` an
``invoke`` — so waits, timers, retries, claims and flow control are Tarry's.

An error the SDK reports outside any step (500), or a call that fails (the
SDK down, slow, or not an SDK), is a failed attempt of the turn itself,
recorded as a step ``call-<n>`` (``n``: the steps finished before it) and
retried with the function's retries, as Inngest retries a function.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import jcs  # type: ignore[import-untyped]

from tarry import _expressions, _serde
from tarry._durations import to_ms
from tarry._engine.execution import Intent
from tarry._errors import NonRetriableError, RetryAfterError, StepError, TarryError
from tarry._function import SdkTarget
from tarry._model import Event, RunStatus, StepStatus
from tarry._store.base import StepRow, StepWrite

if TYPE_CHECKING:
    from tarry._context import Context
    from tarry._engine.engine import Engine
    from tarry._engine.execution import Execution
    from tarry._step import Step

#: a step id the SDK made (the SHA-1 of the user's id): the memo's keys, apart from Tarry's own ``call-<n>``
_SDK_STEP = re.compile(r"^[0-9a-f]{40}$")
#: the SDK's answer to one call, at most (a step's output, its opcodes): more fails the attempt
MAX_RESPONSE = 8 * 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
#: connections to the SDKs: as many at once as calls (a slow step holds one, never the others back), but few
#: kept idle, as each request of the pool looks at every idle connection (a system call each; measured)
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=4)
#: a call request's memo, at most (the results of a run's steps, as JSON)
MAX_REQUEST = 32 * 1024 * 1024
#: a body larger than this is signed on a thread, not on the event loop
OFF_LOOP = 64 * 1024
#: the latest a ``retry-after`` may put a retry (a later one is taken as this)
MAX_RETRY_AFTER_S = 7 * 24 * 3600.0
#: the steps of one run, at most (Inngest's limit): a function that never ends fails instead
MAX_STEPS = 1000
_FINISHED = (StepStatus.COMPLETED, StepStatus.FAILED)


class RemoteError(TarryError):
    """An error an SDK reported (``remote``: its ``name``, ``message`` and ``stack``), or a call that failed."""

    def __init__(self, name: str, message: str, stack: str | None = None) -> None:
        Exception.__init__(self, message)  # not super(): RetryAfterError, beside it in a subclass, takes a delay
        self.remote = {"name": name, "stack": stack}


class RemoteNonRetriableError(RemoteError, NonRetriableError):
    """Not retried: ``StepFailed``, ``x-inngest-no-retry: true``, an opcode Tarry does not run."""


class RemoteRetryAfterError(RemoteError, RetryAfterError):
    """Retried at the time of the SDK's ``retry-after``."""

    def __init__(self, name: str, message: str, stack: str | None, delay: float) -> None:
        RemoteError.__init__(self, name, message, stack)
        self.delay = delay


def _remote(error: object, default: str) -> tuple[str, str, str | None]:
    """An SDK's error object as text that can be stored, whatever it holds."""
    if not isinstance(error, dict):
        return default, _text(error) if error is not None else "(no message)", None
    name = error.get("name")
    stack = error.get("stack")
    return (_text(name)[:200] if isinstance(name, str) and name else default,
            _text(error.get("message", "(no message)")), _text(stack) if isinstance(stack, str) else None)  # fmt: skip


def _text(value: object) -> str:
    text = value if isinstance(value, str) else _serde.dumps(value) if _jsonable(value) else repr(value)
    return text[:16_384].encode("utf-8", "backslashreplace").decode("utf-8")


def _jsonable(value: object) -> bool:
    try:
        _serde.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


# -- the signing of calls, and the key's forms -------------------------------------


def signing_key() -> str | None:
    """``INNGEST_SIGNING_KEY`` (the SDK's ``signkey-<env>-<hex>``), or ``None``; ``ValueError`` for a bad one."""
    key = os.environ.get("INNGEST_SIGNING_KEY", "").strip()
    if not key:
        return None
    bearer_of(key)
    return key


def _stripped(key: str) -> str:
    return re.sub(r"^signkey-\w+-", "", key)


def bearer_of(key: str) -> str:
    """What the SDK sends as its bearer key when it syncs: the SHA-256 of the key's hex bytes."""
    try:
        raw = bytes.fromhex(_stripped(key))
    except ValueError:
        raise ValueError("invalid INNGEST_SIGNING_KEY: the SDK's form, 'signkey-<env>-' and hex digits") from None
    return hashlib.sha256(raw).hexdigest()


def signature(key: str, body: bytes, at: int) -> str:
    """The ``x-inngest-signature`` of ``body`` at unix second ``at``, as the SDK checks it."""
    mac = hmac.new(_stripped(key).encode(), body + str(at).encode(), hashlib.sha256).hexdigest()
    return f"t={at}&s={mac}"


def _signed_by(key: str, body: bytes, header: str) -> bool:
    fields = dict(parse_qsl(header))
    at, given = fields.get("t", ""), fields.get("s", "")
    if not at.isdigit():
        return False
    return hmac.compare_digest(signature(key, body, int(at)).encode(), f"t={at}&s={given}".encode())


# -- calls ------------------------------------------------------------------------


class Calls:
    """The HTTP side of an engine's SDK functions: one client, the signing key, the timeout of a call."""

    def __init__(self, key: str | None, timeout_s: float) -> None:
        self.key = key
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_environment(cls, signed: bool = True) -> Calls:
        """Signed with ``INNGEST_SIGNING_KEY`` if set (and ``signed``: ``tarry dev`` never signs, as its SDKs,
        in dev mode, neither check nor sign); each call within ``TARRY_SDK_TIMEOUT`` (default 60 s)."""
        text = os.environ.get("TARRY_SDK_TIMEOUT")
        timeout_ms = to_ms(text, what="TARRY_SDK_TIMEOUT") if text else int(DEFAULT_TIMEOUT_S * 1000)
        return cls(signing_key() if signed else None, max(timeout_ms, 1) / 1000)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, limits=LIMITS)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(self, url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Post a call request (its JSON); the status, headers and body, or ``RemoteError`` when no SDK answered."""
        headers = {"content-type": "application/json", "user-agent": user_agent(),
                   "x-inngest-server-kind": "cloud" if self.key else "dev"}  # fmt: skip
        if self.key is not None:
            canonical = await _off_loop(body, _canonical)
            headers["x-inngest-signature"] = signature(self.key, canonical, int(time.time()))
        where = _shown(url)
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.client.stream("POST", url, content=body, headers=headers,
                                              timeout=self.timeout_s) as response:  # fmt: skip
                    chunks, size = [], 0
                    async for chunk in response.aiter_raw():
                        size += len(chunk)
                        if size > MAX_RESPONSE:
                            raise RemoteError("SdkResponseTooLarge", f"the SDK at {where} answered with more than "
                                                                     f"{MAX_RESPONSE} bytes")  # fmt: skip
                        chunks.append(chunk)
                    status, answer_headers = response.status_code, dict(response.headers)
        except TimeoutError:
            raise RemoteError("SdkTimeout", f"the SDK at {where} did not answer within {self.timeout_s:g} s "
                                            "(TARRY_SDK_TIMEOUT)") from None  # fmt: skip
        except httpx.HTTPError as exc:
            raise RemoteError("SdkUnreachable", f"the SDK at {where} could not be called: "
                                                f"{type(exc).__name__}: {exc}") from None  # fmt: skip
        answer = b"".join(chunks)
        if "x-inngest-sdk" not in answer_headers:
            raise RemoteError("NotAnSdk", f"{where} answered {status} without the x-inngest-sdk header: "
                                          "not an Inngest SDK (is the URL the SDK's serve endpoint?)")  # fmt: skip
        if self.key is not None and not _signed_by(self.key, answer, answer_headers.get("x-inngest-signature", "")):
            raise RemoteError("SdkSignatureInvalid", f"the answer of {where} is not signed with INNGEST_SIGNING_KEY")
        return status, answer_headers, answer


def _canonical(body: bytes) -> bytes:
    """The body as the SDK reads it to check its signature: RFC 8785 over what ``json.loads`` makes of it."""
    try:
        canonical: bytes = jcs.canonicalize(json.loads(body))
    except (ValueError, TypeError, OverflowError) as exc:
        raise RemoteNonRetriableError("SdkRequestUnsignable", "the call cannot be signed: its JSON holds a "
                                      f"value RFC 8785 cannot (a number beyond a double's range?): {exc}") from None  # fmt: skip
    return canonical


async def _off_loop(body: bytes, fn: Callable[[bytes], bytes]) -> bytes:
    """``fn(body)``, on a thread when the body is large: other runs' turns go on meanwhile."""
    return fn(body) if len(body) <= OFF_LOOP else await asyncio.to_thread(fn, body)


def calls_of(engine: Engine) -> Calls:
    if engine.sdk is None:
        engine.sdk = Calls.from_environment()
    calls: Calls = engine.sdk
    return calls


def user_agent() -> str:
    from tarry import __version__  # here: tarry's package is still being imported when this module is

    return f"tarry/{__version__}"


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _targeted(url: str, step_id: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "stepId"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*query, ("stepId", step_id)]), ""))


class Done:
    def __init__(self, output: Any) -> None:
        self.output = output


def _reply(status: int, headers: dict[str, str], body: bytes) -> Done | list[dict[str, Any]]:
    """The SDK's answer: its output (200), its opcodes (206), or the ``RemoteError`` it reported."""
    try:
        value = _serde.parse(body) if body.strip() else None
    except ValueError:
        raise RemoteError("SdkResponseInvalid", f"the SDK answered {status} with a body that is not JSON") from None
    if status == 200:
        return Done(value)
    if status == 206:
        if not isinstance(value, list) or not all(isinstance(op, dict) and isinstance(op.get("id"), str)
                                                  and isinstance(op.get("op"), str) for op in value):  # fmt: skip
            raise RemoteError("SdkResponseInvalid", "the SDK answered 206 without a list of opcodes")
        return value
    name, message, stack = _remote(value, "Error")
    if headers.get("x-inngest-no-retry", "").lower() == "true":
        raise RemoteNonRetriableError(name, message, stack)
    retry_after = headers.get("retry-after")
    if retry_after:
        when = _retry_at(retry_after)
        if when is not None:
            raise RemoteRetryAfterError(name, message, stack, when)
    raise RemoteError(name, message, stack)


def _retry_at(text: str) -> float | None:
    """Seconds from now of a ``retry-after`` (seconds, or the SDK's ISO time), at most ``MAX_RETRY_AFTER_S``."""
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


# -- the call request -------------------------------------------------------------


def _event_json(event: Event) -> dict[str, Any]:
    name = "inngest/function.invoked" if event.name == "tarry/function.invoked" else event.name
    return {"name": name, "data": event.data if isinstance(event.data, dict) else {}, "id": event.id or "",
            "ts": event.ts or 0}  # fmt: skip


def _memo(row: StepRow) -> Any:
    """What the SDK's memo holds for a finished step: ``{"data": ...}`` or ``{"error": ...}``."""
    if row.status == StepStatus.FAILED:
        error = _serde.loads(row.error) if row.error else {}
        if row.kind == "invoke" and error.get("name") in (None, "WaitTimeoutError"):
            error = {"name": "InvokeTimeoutError", "message": "the invoked function did not finish within the timeout"}
        return {"error": {"name": error.get("name") or "Error", "message": error.get("message") or "",
                          "stack": error.get("traceback") or ""}}  # fmt: skip
    output: Any = _serde.loads(row.output) if row.output is not None else None
    if row.kind == "wait_for_event":
        if output is None:
            return None
        return {"data": {"name": output["name"], "data": output["data"], "id": output["id"], "ts": output["ts"]}}
    if row.kind == "invoke":
        if output["name"] == "tarry/function.cancelled":
            return {"error": {"name": "Cancelled", "message": "the invoked run was cancelled", "stack": ""}}
        data = output["data"]
        if "error" in data:
            error = data["error"] or {}
            return {"error": {"name": error.get("name") or "Error", "message": error.get("message") or "",
                              "stack": error.get("traceback") or ""}}  # fmt: skip
        return {"data": data.get("output")}
    return {"data": output}


def _memo_text(row: StepRow) -> str:
    if row.kind == "run" and row.status == StepStatus.COMPLETED:  # its output, as stored: exactly its JSON
        return '{"data":' + (row.output if row.output is not None else "null") + "}"
    return _serde.dumps(_memo(row))


def _request(x: Execution, attempt: int) -> bytes:
    """The call request's JSON: the events, the memo of the finished steps, ``ctx``; at most ``MAX_REQUEST``."""
    ids, parts, size = [], [], 0
    for sid, row in x.steps.items():
        if _SDK_STEP.match(sid) and row.status in _FINISHED:
            part = f'"{sid}":{_memo_text(row)}'  # an SDK id is hex: nothing to escape
            size += len(part)
            if size > MAX_REQUEST:
                raise RemoteNonRetriableError("RunStateTooLarge", f"the results of the run's steps are over "
                                              f"{MAX_REQUEST} bytes of JSON, the most a call carries")  # fmt: skip
            ids.append(sid)
            parts.append(part)
    ctx = {"run_id": x.run_id, "attempt": attempt, "max_attempts": x.spec.retries + 1,
           "disable_immediate_execution": False, "stack": {"stack": ids}}  # fmt: skip
    events = _serde.dumps([_event_json(e) for e in x.events])
    text = (f'{{"event":{_serde.dumps(_event_json(x.event))},"events":{events},"steps":{{{",".join(parts)}}},'
            f'"use_api":false,"ctx":{_serde.dumps(ctx)}}}')  # fmt: skip
    return text.encode("utf-8", "surrogatepass")


# -- the driver -------------------------------------------------------------------


def driver(target: SdkTarget) -> Callable[[Context], Any]:
    """The body of an SDK function (``target``): turns until the SDK returns its output."""

    async def sdk_function(ctx: Context) -> Any:
        x, step = ctx._x, ctx.step
        while True:
            reply = await _turn(x, step, target)
            if isinstance(reply, Done):
                return reply.output
            if len(reply) == 1:
                await _perform(x, step, target, reply[0])
            else:
                await asyncio.gather(*(_perform(x, step, target, op) for op in reply))

    sdk_function.__name__ = sdk_function.__qualname__ = f"sdk:{target.app_id}"
    return sdk_function


async def _turn(x: Execution, step: Step, target: SdkTarget) -> Done | list[dict[str, Any]]:
    """One call with no step targeted; a failure is an attempt of ``call-<n>``, retried or the run's end."""
    finished = sum(1 for sid, row in x.steps.items() if _SDK_STEP.match(sid) and row.status in _FINISHED)
    sid = f"call-{finished}"
    row = x.steps.get(sid)
    if row is not None and row.status == StepStatus.RETRYING and row.wake_at is not None and row.wake_at > x.now():
        await x.park(Intent(RunStatus.SLEEPING))  # woken early (a sibling's event): its backoff still runs
    if row is not None and row.status == StepStatus.RETRYING:
        attempt = row.attempts
    else:
        retrying = [r.attempts for s, r in x.steps.items() if _SDK_STEP.match(s) and r.status == StepStatus.RETRYING]
        attempt = max(retrying, default=0)
    started = x.now()
    x.begin()
    try:
        try:
            reply = _progress(x, _reply(*await calls_of(x.engine).post(target.url, _request(x, attempt))), finished)
        except RemoteError as exc:
            tries = row.attempts if row is not None and row.status == StepStatus.RETRYING else 0
            try:
                await step._failed(sid, tries + 1, started, exc)
            except StepError as failed:  # the function's last attempt: the run fails with the SDK's error
                raise _as_remote(failed) from None
        if row is not None and row.status == StepStatus.RETRYING:  # the turn went through after failing
            now = x.now()
            await step._write(StepWrite(sid, "run", StepStatus.COMPLETED, row.attempts + 1, "null", None, started, now))
    finally:
        x.end()
    return reply


def _progress(x: Execution, reply: Done | list[dict[str, Any]], finished: int) -> Done | list[dict[str, Any]]:
    """The opcodes of a turn, each once, if they move the run on; else ``RemoteError`` (a turn that would
    repeat itself for ever: no opcode, only steps already finished, or past ``MAX_STEPS``)."""
    if isinstance(reply, Done):
        return reply
    if not reply:
        raise RemoteError("SdkResponseInvalid", "the SDK answered 206 with no opcode")
    ops, seen = [], set()
    for op in reply:  # the first of each id, in order, and none of a step finished already: it never runs again
        row = x.steps.get(op["id"])
        if op["id"] not in seen and (row is None or row.status not in _FINISHED):
            seen.add(op["id"])
            ops.append(op)
    if not ops:
        raise RemoteError("SdkResponseInvalid", "the SDK answered with steps that are finished already "
                                                "(is its memo lost?)")  # fmt: skip
    if finished >= MAX_STEPS:
        raise RemoteNonRetriableError("TooManySteps", f"the function has run {finished} steps: at most "
                                                      f"{MAX_STEPS} a run, as on Inngest")  # fmt: skip
    return ops


def _as_remote(failed: StepError) -> RemoteError:
    return RemoteNonRetriableError(failed.name, failed.message, failed.traceback)


async def _perform(x: Execution, step: Step, target: SdkTarget, op: dict[str, Any]) -> None:
    """The Tarry step of one opcode. A step that fails for good is recorded; the SDK hears of it next turn."""
    sid, kind = op["id"], op["op"]
    given = op.get("opts")
    opts: dict[str, Any] = given if isinstance(given, dict) else {}
    if not _SDK_STEP.match(sid):
        raise RemoteNonRetriableError("SdkResponseInvalid", f"the SDK answered with a step id {sid[:80]!r} "
                                                            "that is not one it makes")  # fmt: skip
    try:
        _check(x, kind, op, opts)
    except (ValueError, TypeError) as exc:  # the opcode's options break a rule of its step: it fails at once
        with contextlib.suppress(StepError):
            await step.run(sid, _raise, RemoteNonRetriableError(type(exc).__name__, f"opcode {kind}: {exc}"))
        return
    try:
        if kind == "StepRun":
            await step.run(sid, _given, op.get("data"))
        elif kind == "StepError":
            await step.run(sid, _raise, RemoteError(*_remote(op.get("error"), "Error")))
        elif kind == "StepFailed":
            await step.run(sid, _raise, RemoteNonRetriableError(*_remote(op.get("error"), "Error")))
        elif kind == "StepPlanned":
            await step.run(sid, _call_step, x, target, sid)
        elif kind == "Sleep":
            await step.sleep_until(sid, _wake_at(op.get("name")))
        elif kind == "WaitForEvent":
            await step.wait_for_event(sid, event=op["name"], timeout=opts["timeout"], if_exp=opts.get("if"))
        elif kind == "InvokeFunction":
            payload = opts["payload"] if isinstance(opts.get("payload"), dict) else {}
            await step.invoke(sid, _invoked(x, opts["function_id"]), payload.get("data"), timeout=opts.get("timeout"))
        else:
            what = " (step.ai)" if kind == "AIGateway" else ""
            await step.run(sid, _raise, RemoteNonRetriableError("UnsupportedOpcode", f"opcode {kind[:80]!r}{what} "
                                                                "is not run by Tarry"))  # fmt: skip
    except StepError:
        pass  # recorded as failed: the next turn's memo says so, and the SDK raises it in the function


def _check(x: Execution, kind: str, op: dict[str, Any], opts: dict[str, Any]) -> None:
    """``ValueError`` for an opcode whose options its Tarry step would refuse (before the step is reached,
    so that the step is recorded failed under its own id)."""
    if kind == "Sleep":
        when = datetime.fromisoformat(_wake_at(op.get("name")))
        if when.tzinfo is None:
            raise ValueError(f"a Sleep's time {op.get('name')!r} has no offset")
    elif kind == "WaitForEvent":
        name = op.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"invalid event name {name!r}: the name of the event to wait for")
        to_ms(opts.get("timeout"), what="WaitForEvent timeout")
        if opts.get("if") is not None:
            if not isinstance(opts["if"], str):
                raise ValueError(f"invalid if {opts['if']!r}: a CEL expression")
            _expressions.compile_expression(opts["if"])
    elif kind == "InvokeFunction":
        _invoked(x, opts.get("function_id"))
        if opts.get("timeout") is not None:
            to_ms(opts["timeout"], what="InvokeFunction timeout")
        payload = opts.get("payload")
        data = payload.get("data") if isinstance(payload, dict) else None
        if (payload is not None and not isinstance(payload, dict)) or not (data is None or isinstance(data, dict)):
            raise ValueError(f"invalid payload {payload!r:.200}: {{'data': <a JSON object>}}")


def _invoked(x: Execution, function_id: object) -> str:
    """The function an ``InvokeFunction`` names: an SDK function by its composite id, or a function of the
    Tarry app by its own id, which the SDK's ``invoke_by_id(app_id=<the Tarry app's id>, ...)`` prefixes."""
    functions = x.engine.registry.functions
    if isinstance(function_id, str):
        if function_id in functions:
            return function_id
        local = function_id.removeprefix(f"{x.engine.app_id}-")
        spec = functions.get(local)
        if local != function_id and spec is not None and spec.sdk is None:
            return local
    raise ValueError(f"invalid function_id {function_id!r:.300}: no function of that id is synced or registered")


async def _given(value: Any) -> Any:
    return value


async def _raise(exc: BaseException) -> Any:
    raise exc


def _wake_at(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"a Sleep's name {name!r} is not the time to wake up")
    return name.replace("Z", "+00:00") if name.endswith("Z") else name


async def _call_step(x: Execution, target: SdkTarget, sid: str) -> Any:
    """The body of a planned step: a call for that step alone; its ``StepRun`` data, or its error raised."""
    row = x.steps.get(sid)
    attempt = row.attempts if row is not None else 0
    reply = _reply(*await calls_of(x.engine).post(_targeted(target.url, sid), _request(x, attempt)))
    if isinstance(reply, Done):
        raise RemoteError("SdkResponseInvalid", f"the SDK ran the function to its end when asked for step {sid}")
    for op in reply:
        if op["id"] != sid:
            continue
        if op["op"] == "StepRun":
            return op.get("data")
        if op["op"] == "StepFailed":
            raise RemoteNonRetriableError(*_remote(op.get("error"), "Error"))
        raise RemoteError(*_remote(op.get("error"), "Error"))
    raise RemoteError("SdkResponseInvalid", f"the SDK did not run step {sid} when asked for it")
