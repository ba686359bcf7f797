"""Waits on SQLite: register (looking back first), match incoming events, resolve exactly once.

Every resolution — by an event, a timeout, a resume or a cancellation —
starts with ``claim_wait``, a DELETE of the wait's rows: whoever deletes
first wins, in the transaction that records the step result and wakes the
run. SQLite's single writer orders an event against a registration, so an
event is either seen by the registration's look-back or finds the wait.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from tarry import _serde
from tarry._expressions import Budget
from tarry._model import RunStatus
from tarry._store.base import Hooks, WaitWrite
from tarry._store.rows import event_json

Conn = Any  # a DB-API connection of the dialect (sqlite3 or psycopg), rows accessed by column name
Row = Any
TIMED_OUT = {"name": "WaitTimeoutError", "message": "the wait timed out"}
RESUME = "#resume"  # the event name under which resume handles' waits are indexed
LOOKBACK_BATCH = 200
# What one event may cost in the scanned bucket (waits with no index term, and an if_exp): at most this
# many evaluations, handing CEL at most this many bytes of JSON in all; see docs/design/matching.md.
SCAN_BUDGET = 1000
SCAN_BUDGET_BYTES = 8 * 1024 * 1024
log = logging.getLogger("tarry.store")

#: the kinds of steps that wait for several conditions at once, each condition its own rows of the index
GROUPS = ("wait_for_all", "wait_for_any", "collect_events")
TAKERS = ("wait_for_all", "collect_events")  # their conditions take events one by one

__all__ = ["GROUPS", "Conn", "Row", "WaitsMixin", "group_waits"]


class WaitsMixin:
    """The wait half of ``SQLiteStore``; every method runs inside one of its transactions."""

    hooks: Hooks
    q: dict[str, str]
    _cancel: Callable[..., str]  # the store's: cancel a run in this transaction (run id, now, why)

    def _x(self, c: Conn, name: str, params: dict[str, Any] | None = None) -> Any:
        """Execute the named query of this dialect; returns the cursor."""
        return c.execute(self.q[name], params or {})

    def _lock(self, c: Conn, keys: list[str], *, shared: bool = False) -> None:
        """Order this transaction against others touching ``keys`` (none needed with one writer)."""

    # -- registration -------------------------------------------------------

    def _insert_wait(self, c: Conn, run_id: str, wait: WaitWrite, now: int) -> None:
        for name in wait.names:
            self._x(c, "insert_wait", {"run_id": run_id, "step_id": wait.step_id, "kind": wait.kind,
                                         "event_name": name, "shape": wait.shape, "match_key": wait.match_key,
                                         "if_exp": wait.if_exp, "now": now, "condition": wait.condition,
                                         "take": wait.take, "room": wait.room})  # fmt: skip
            if wait.shape and name != RESUME:
                self._x(c, "insert_shape", {"event_name": name, "shape": wait.shape})
        if wait.timer is not None:
            self._x(c, "insert_timer", {"run_id": run_id, **wait.timer.__dict__})

    def _register(self, c: Conn, run_id: str, group: list[WaitWrite], now: int) -> bool:
        """Register one step's wait (or its conditions), or resolve it at once from what is stored."""
        if group[0].kind in GROUPS:
            return self._register_group(c, run_id, group, now)
        return self._register_wait(c, run_id, group[0], now)

    def _lock_registration(self, c: Conn, waits: list[WaitWrite]) -> None:
        """Order a registration against events of its names, so that each sees the other (PostgreSQL)."""
        new_shapes = sorted({name_lock(n) for w in waits for n in w.names if w.shape and n != RESUME
                             and self._x(c, "shape_since", {"event_name": n, "shape": w.shape}).fetchone() is None})  # fmt: skip
        if new_shapes:  # events of these names must not slip between the look-back and the new shape
            self._lock(c, new_shapes)
        self._lock(c, sorted({key_lock(n, w.shape, w.match_key) for w in waits for n in w.names}))

    def _register_wait(self, c: Conn, run_id: str, wait: WaitWrite, now: int) -> bool:
        """Register ``wait``, or resolve it at once from what is stored; True if resolved."""
        self._lock_registration(c, [wait])
        if wait.kind == "resume":
            handle = self._x(c, "handle_by_hash", {"token_hash": wait.match_key}).fetchone()
            if handle is not None and handle["used_at"] is not None:
                self._resumed(c, run_id, wait.step_id, handle, handle["early"], now)
                return True
        elif wait.lookback != "none":
            found = self._look_back(c, run_id, wait)
            if found is not None:
                self._complete(c, run_id, wait.step_id, _serde.dumps(event_json(found)), now)
                self._consume(c, run_id, wait.step_id, 0, found["seq"])
                return True
        self._insert_wait(c, run_id, wait, now)
        return False

    def _register_group(self, c: Conn, run_id: str, group: list[WaitWrite], now: int) -> bool:
        """Register the conditions of a step of several, taking what is stored first; True if resolved.

        ``wait_for_any`` takes the oldest stored event any condition matches (the lowest condition for
        one event matching several); ``wait_for_all``, in condition order, each condition the oldest
        unconsumed event it matches; ``collect_events`` the oldest ones, up to its count and room."""
        self._lock_registration(c, group)
        first = group[0]
        step_id, kind = first.step_id, first.kind
        if kind == "wait_for_any":
            best: tuple[int, Row] | None = None
            for wait in group:
                found = self._look_back(c, run_id, wait) if wait.lookback != "none" else None
                if found is not None and (best is None or found["seq"] < best[1]["seq"]):
                    best = (wait.condition, found)
            if best is not None:
                self._consume(c, run_id, step_id, best[0], best[1]["seq"])
                self._complete(c, run_id, step_id, _serde.dumps([best[0], event_json(best[1])]), now)
                return True
            open_ = group
        elif kind == "wait_for_all":
            open_ = []
            for wait in group:
                found = self._look_back(c, run_id, wait) if wait.lookback != "none" else None
                if found is not None:
                    self._consume(c, run_id, step_id, wait.condition, found["seq"])
                else:
                    open_.append(wait)
            if not open_:
                self._settle(c, run_id, step_id, self._gathered(c, run_id, step_id, kind), now)
                return True
        else:
            take, room = first.take, first.room
            floor = None  # the events are taken oldest first: each look-back starts after the last taken
            while take > 0 and first.lookback != "none":
                found = self._look_back(c, run_id, first, floor)
                if found is None:
                    break
                size = event_size(found)
                if size > room:
                    take = 0  # its result is full: the step ends with what it has
                    break
                self._consume(c, run_id, step_id, 0, found["seq"])
                take, room, floor = take - 1, room - size, found["seq"]
            if take == 0:
                self._settle(c, run_id, step_id, self._gathered(c, run_id, step_id, kind), now)
                return True
            open_ = [dataclasses.replace(first, take=take, room=room)]
        timer = first.timer
        for wait in open_:
            self._insert_wait(c, run_id, dataclasses.replace(wait, timer=None), now)
        if timer is not None:
            self._x(c, "insert_timer", {"run_id": run_id, **timer.__dict__})
        return False

    def _consume(self, c: Conn, run_id: str, step_id: str, condition: int, seq: int) -> None:
        self._x(c, "insert_consumed", {"run_id": run_id, "seq": seq, "step_id": step_id, "condition": condition})

    def _gathered(self, c: Conn, run_id: str, step_id: str, kind: str, conditions: int = 0) -> str:
        """The result of a step of several, from the events its conditions consumed (JSON); ``conditions``:
        at least this many (a wait_for_all's last conditions may have consumed nothing)."""
        rows = self._x(c, "consumed_by_step", {"run_id": run_id, "step_id": step_id}).fetchall()
        if kind == "collect_events":
            return _serde.dumps([event_json(r) for r in rows])
        if kind == "wait_for_any":
            return _serde.dumps([rows[0]["condition"], event_json(rows[0])] if rows else None)
        result: list[Any] = [None] * max([conditions] + [r["condition"] + 1 for r in rows])
        for r in rows:
            result[r["condition"]] = event_json(r)
        return _serde.dumps(result)

    def _settle(self, c: Conn, run_id: str, step_id: str, output: str, now: int) -> None:
        """A step of several ends with ``output``, unless that is over the limit: then it fails."""
        too_big = _serde.too_big(f"step {step_id!r} gathered", len(output.encode()))
        if too_big is None:
            self._complete(c, run_id, step_id, output, now)
        else:
            self._fail(c, run_id, step_id, {"name": "ValueError", "message": too_big}, now)

    def _take(self, c: Conn, wait: Row, event: Row, incoming: dict[str, Any], now: int) -> bool:
        """A condition of a ``wait_for_all`` or ``collect_events`` takes ``event``; True if it did.

        The deadline's row is taken first (a firing timer takes it first too), so the events of one
        step and its deadline are ordered; the step completes in the transaction of its last event."""
        run_id, step_id, kind = wait["run_id"], wait["step_id"], wait["kind"]
        key = {"run_id": run_id, "step_id": step_id}
        self._x(c, "lock_timer", key).fetchall()
        if kind == "wait_for_all":
            if not self._x(c, "claim_condition", {**key, "condition": wait["condition"]}).rowcount:
                return False
            self._consume(c, run_id, step_id, wait["condition"], event["seq"])
            if self._x(c, "step_is_open", key).fetchone() is not None:
                return True
            self._x(c, "delete_timer", key)
            self._settle(c, run_id, step_id, self._gathered(c, run_id, step_id, kind), now)
            return True
        size = len(_serde.dumps(incoming).encode()) + 1
        left = self._x(c, "take_event", {**key, "size": size}).fetchall()
        if left:
            self._consume(c, run_id, step_id, 0, event["seq"])
            if min(r["take"] for r in left) > 0:
                return True
        elif self._x(c, "step_is_open", key).fetchone() is None:
            return False  # closed already
        self._claim_wait(c, run_id, step_id)  # full (this event has no room: it stays for others)
        self._settle(c, run_id, step_id, self._gathered(c, run_id, step_id, kind), now)
        return bool(left)

    def _look_back(self, c: Conn, run_id: str, wait: WaitWrite, floor: int | None = None) -> Row | None:
        """The oldest stored event that the wait accepts and the run has not consumed; after ``floor``
        (a seq) when given."""
        trigger = self._x(c, "trigger_of_run", {"run_id": run_id}).fetchone()
        if wait.lookback == "run":  # after the trigger; after the last event of a batch or burst
            after = trigger["last_seq"] if trigger["last_seq"] is not None else trigger["seq"]
        else:
            first = self._x(c, "first_seq_since", {"since": wait.since}).fetchone()["first"]
            if first is None:
                return None
            after = first - 1
        if floor is not None:
            after = max(after, floor)
        best: Row | None = None
        for name in wait.names:
            for seq in self._lookback_candidates(c, run_id, name, wait, after):
                if best is not None and seq >= best["seq"]:
                    break
                if seq == trigger["seq"]:
                    continue
                event = self._x(c, "event_by_seq", {"seq": seq}).fetchone()
                if wait.if_exp is None or self.hooks.accepts(wait.if_exp, event_json(trigger), event_json(event)):
                    best = event
                    break
        return best

    def _lookback_candidates(self, c: Conn, run_id: str, name: str, wait: WaitWrite,
                             after: int) -> Any:  # fmt: skip
        """Seqs of stored events of ``name`` that may match, oldest first."""
        base = {"run_id": run_id, "event_name": name, "limit": LOOKBACK_BATCH}
        if not wait.shape:  # the scanned bucket: every event of the name
            yield from _paged(self, c, "lookback_by_name", {**base, "upto": 1 << 62}, after)
            return
        since_row = self._x(c, "shape_since", {"event_name": name, "shape": wait.shape}).fetchone()
        indexed_from = since_row["since_seq"] if since_row is not None else 1 << 62
        if after < indexed_from:  # older events were stored before anyone waited with this shape
            query = "lookback_by_key" if name == "" else "lookback_by_name"
            params = {**base, "upto": indexed_from, "key": wait.key}
            for seq in _paged(self, c, query, params, after):
                event = self._x(c, "event_by_seq", {"seq": seq}).fetchone()
                if self.hooks.event_key(wait.shape, event_json(event)) == wait.match_key:
                    yield seq
        params = {**base, "shape": wait.shape, "match_key": wait.match_key}
        yield from _paged(self, c, "lookback_indexed", params, max(after, indexed_from))

    # -- matching -----------------------------------------------------------

    def _match_waits(self, c: Conn, event: Row, now: int) -> list[str]:
        """Resolve every wait this event matches, at most one per run; index it for look-backs."""
        incoming: dict[str, Any] | None = None  # the event as JSON, parsed only if some wait needs it
        names = sorted({event["name"], ""})
        self._lock(c, [name_lock(n) for n in names], shared=True)  # a new shape of these names waits for us
        probes = [(n, "", "") for n in names]  # the scanned bucket: waits with no index terms
        for row in self._x(c, "shapes_for_names", {"name": event["name"]}).fetchall():
            incoming = incoming or event_json(event)
            key = self.hooks.event_key(row["shape"], incoming)
            if key is not None:
                probes.append((row["event_name"], row["shape"], key))
        self._lock(c, sorted(key_lock(*probe) for probe in probes))
        candidates: list[Row] = self._x(c, "scanned_waits", {"name": event["name"]}).fetchall()
        scanned = {w["id"] for w in candidates if w["if_exp"] is not None}  # evaluated within a budget
        for name, shape, key in probes[len(names) :]:
            self._x(c, "insert_event_key", {"event_name": name, "shape": shape, "match_key": key,
                                             "seq": event["seq"]})  # fmt: skip
            candidates.extend(self._x(c, "waits_for_key", {"event_name": name, "shape": shape, "match_key": key}))
        resumed: list[str] = []
        if not candidates:
            return resumed
        incoming = incoming or event_json(event)
        output: str | None = None
        budget = Budget(SCAN_BUDGET, SCAN_BUDGET_BYTES)  # for the scanned bucket only: an index probe is bounded
        taken: set[str] = set()
        for wait in sorted(candidates, key=lambda w: w["id"]):
            if wait["run_id"] in taken:
                continue  # an event resolves at most one wait per run
            if wait["if_exp"] is not None:
                if wait["id"] in scanned and budget.skipped:
                    budget.skipped += 1
                    continue
                trigger = self._x(c, "trigger_of_run", {"run_id": wait["run_id"]}).fetchone()
                spend = budget if wait["id"] in scanned else None
                if not self.hooks.accepts(wait["if_exp"], event_json(trigger), incoming, spend):
                    continue
            if wait["kind"] in TAKERS:  # a condition of a wait_for_all or collect_events
                if self._take(c, wait, event, incoming, now):
                    taken.add(wait["run_id"])
                    resumed.append(wait["run_id"])
                continue
            if self._claim_wait(c, wait["run_id"], wait["step_id"]):
                if wait["kind"] == "cancel":
                    self._cancel(
                        c, wait["run_id"], now, f"cancelled by a cancel_on event ({event['name']} {event['id']})"
                    )
                elif wait["kind"] == "wait_for_any":
                    chosen = _serde.dumps([wait["condition"], incoming])
                    self._complete(c, wait["run_id"], wait["step_id"], chosen, now)
                    self._consume(c, wait["run_id"], wait["step_id"], wait["condition"], event["seq"])
                else:
                    output = output or _serde.dumps(incoming)
                    self._complete(c, wait["run_id"], wait["step_id"], output, now)
                    self._consume(c, wait["run_id"], wait["step_id"], 0, event["seq"])
                taken.add(wait["run_id"])
                resumed.append(wait["run_id"])
        if budget.skipped:
            log.warning("event %s: %d scanned waits of %r were past the budget of %d evaluations and %d MiB "
                        "handed to CEL, and were not evaluated against it; give them an index term (match=, or "
                        "an equality in if_exp)", event["id"], budget.skipped, event["name"], SCAN_BUDGET,
                        SCAN_BUDGET_BYTES >> 20)  # fmt: skip
        return resumed

    # -- resolution ---------------------------------------------------------

    def _claim_wait(self, c: Conn, run_id: str, step_id: str) -> bool:
        """Delete the wait's rows: True for the one caller that deleted them."""
        # The timer first, then the wait: the order a firing timer takes them in (no deadlock between
        # an event and a timeout). A timer of a wait claimed already was deleted with it.
        self._x(c, "delete_timer", {"run_id": run_id, "step_id": step_id})
        claimed: bool = self._x(c, "claim_wait", {"run_id": run_id, "step_id": step_id}).rowcount > 0
        return claimed

    def _complete(self, c: Conn, run_id: str, step_id: str, output: str, now: int) -> None:
        self._x(c, "complete_step", {"run_id": run_id, "step_id": step_id, "output": output, "now": now})
        self._x(c, "wake_run", {"run_id": run_id, "now": now})

    def _fail(self, c: Conn, run_id: str, step_id: str, error: dict[str, str], now: int) -> None:
        """A wait's step fails (the function gets its error): its one error, kept as a failed attempt's."""
        text = _serde.dumps(error)
        self._x(c, "fail_step", {"run_id": run_id, "step_id": step_id, "error": text, "now": now})
        self._x(c, "insert_step_error", {"run_id": run_id, "step_id": step_id, "attempt": 0, "error": text})
        self._x(c, "wake_run", {"run_id": run_id, "now": now})

    def _resumed(self, c: Conn, run_id: str, step_id: str, handle: Row, data: str | None, now: int) -> None:
        """A resume wait's result: the handle's payload and the caller's data, unless that is over the limit."""
        output, size = _resume_output(handle, data)
        too_big = _serde.too_big(f"step {step_id!r} was resumed with", size)
        if too_big is None:
            self._complete(c, run_id, step_id, output, now)
        else:
            self._fail(c, run_id, step_id, {"name": "ValueError", "message": too_big}, now)

    def _wait_timed_out(self, c: Conn, run_id: str, step_id: str, kind: str, now: int) -> None:
        group, _, action = kind.partition("-")
        key = {"run_id": run_id, "step_id": step_id}
        conditions = 0
        if group in ("all", "collect"):  # the number of conditions: the last is open still, or consumed
            conditions = 1 + max([r["condition"] for r in self._x(c, "open_conditions", key)], default=-1)
        if self._x(c, "claim_wait", key).rowcount == 0:
            return  # resolved first by an event
        if group in ("all", "collect") and action == "continue":
            step_kind = "wait_for_all" if group == "all" else "collect_events"
            self._settle(c, run_id, step_id, self._gathered(c, run_id, step_id, step_kind, conditions), now)
        elif action == "continue":
            self._complete(c, run_id, step_id, "null", now)
        elif action == "fail":
            self._fail(c, run_id, step_id, TIMED_OUT, now)
        elif action == "cancel":
            self._cancel(c, run_id, now, f"the wait {step_id!r} timed out (on_timeout='cancel')")
        # "cancel-expire": a cancel_on stops listening; nothing else changes

    def _resume(self, c: Conn, token_hash: str, data: str | None, now: int) -> bool:
        self._lock(c, [key_lock(RESUME, "token", token_hash)])
        handle = self._x(c, "handle_by_hash", {"token_hash": token_hash}).fetchone()
        if handle is None or handle["used_at"] is not None or handle["expires_at"] <= now:
            return False
        if RunStatus(handle["status"]).finished:
            return False
        self._x(c, "use_handle", {"token_hash": token_hash, "now": now, "early": data})
        for wait in self._x(c, "waits_for_key", {"event_name": RESUME, "shape": "token", "match_key": token_hash}):
            if self._claim_wait(c, wait["run_id"], wait["step_id"]):
                self._resumed(c, wait["run_id"], wait["step_id"], handle, data, now)
        return True


def group_waits(waits: list[WaitWrite]) -> list[list[WaitWrite]]:
    """The waits of a park, one list per step: the conditions of a step of several together."""
    groups: list[list[WaitWrite]] = []
    for wait in waits:
        if groups and wait.kind in GROUPS and groups[-1][0].kind == wait.kind and groups[-1][0].step_id == wait.step_id:
            groups[-1].append(wait)
        else:
            groups.append([wait])
    return groups


def event_size(row: Row) -> int:
    """What a stored event adds to a collect_events result: its JSON and a comma."""
    return len(_serde.dumps(event_json(row)).encode()) + 1


def name_lock(name: str) -> str:
    return "n:" + name


def key_lock(name: str, shape: str, match_key: str) -> str:
    return f"k:{name}\x1f{shape}\x1f{match_key}"


def _resume_output(handle: Row, data: str | None) -> tuple[str, int]:
    """A resume's result as JSON, and its size in bytes."""
    result = dict(_serde.loads(handle["payload"]) or {})
    result["event"] = _serde.loads(data)
    return _serde.dumps_sized(result)


def _paged(store: WaitsMixin, c: Conn, query: str, params: dict[str, Any], after: int) -> Any:
    while True:
        rows = store._x(c, query, {**params, "after": after}).fetchall()
        for row in rows:
            yield row["seq"]
        if len(rows) < params["limit"]:
            return
        after = rows[-1]["seq"]
