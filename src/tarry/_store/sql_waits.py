"""Waits on SQLite: register (looking back first), match incoming events, resolve exactly once.

Every resolution — by an event, a timeout, a resume or a cancellation —
starts with ``claim_wait``, a DELETE of the wait's rows: whoever deletes
first wins, in the transaction that records the step result and wakes the
run. SQLite's single writer orders an event against a registration, so an
event is either seen by the registration's look-back or finds the wait.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
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


Probe = tuple[str, str, str]  # an index term of an event: (name, shape, key)
Known = dict[tuple[str, str], int]  # shapes found stored, by (name, shape): their since_seq


class WaitsMixin:
    """The wait half of ``SQLiteStore``; every method runs inside one of its transactions."""

    hooks: Hooks
    q: dict[str, str]
    dialect: str
    _cancel: Callable[..., str]  # the store's: cancel a run in this transaction (run id, now, why)

    def _x(self, c: Conn, name: str, params: dict[str, Any] | None = None) -> Any:
        """Execute the named query of this dialect; returns the cursor."""
        return c.execute(self.q[name], params or {})

    def _lock(self, c: Conn, keys: list[str], *, shared: bool = False) -> None:
        """Order this transaction against others touching ``keys`` (none needed with one writer)."""

    @property
    def _join_statements(self) -> bool:
        """Whether each statement costs a round trip to a server (PostgreSQL): then a few hot reads and
        writes are joined into one statement each (data-modifying WITH, JSON arrays of probes). SQLite,
        in process, runs the plain statements, cheaper there than unpacking JSON (the queries of those
        names say which)."""
        return self.dialect == "postgresql"

    # -- registration -------------------------------------------------------

    def _insert_wait(self, c: Conn, run_id: str, wait: WaitWrite, now: int, known: Known | None = None) -> None:
        """Store a wait's rows, and its shape unless ``known`` says it is stored (shapes are never deleted)."""
        for name in wait.names:
            self._x(c, "insert_wait", {"run_id": run_id, "step_id": wait.step_id, "kind": wait.kind,
                                         "event_name": name, "shape": wait.shape, "match_key": wait.match_key,
                                         "if_exp": wait.if_exp, "now": now, "condition": wait.condition,
                                         "take": wait.take, "room": wait.room})  # fmt: skip
            if wait.shape and name != RESUME and (known is None or (name, wait.shape) not in known):
                self._x(c, "insert_shape", {"event_name": name, "shape": wait.shape})
                _sending_shape(name, wait.shape)
        if wait.timer is not None:
            self._x(c, "insert_timer", {"run_id": run_id, **wait.timer.__dict__})

    def _register(self, c: Conn, run_id: str, group: list[WaitWrite], now: int) -> bool:
        """Register one step's wait (or its conditions), or resolve it at once from what is stored."""
        if group[0].kind in GROUPS:
            return self._register_group(c, run_id, group, now)
        return self._register_wait(c, run_id, group[0], now)

    def _lock_registration(self, c: Conn, waits: list[WaitWrite]) -> Known:
        """Order a registration against events of its names, so that each sees the other (PostgreSQL).
        The shapes found stored, which the look-back and the registration need not read or store again."""
        known: Known = {}
        new_shapes = set()
        for n, shape in {(n, w.shape) for w in waits for n in w.names if w.shape and n != RESUME}:
            row = self._x(c, "shape_since", {"event_name": n, "shape": shape}).fetchone()
            if row is None:
                new_shapes.add(name_lock(n))
            else:
                known[(n, shape)] = row["since_seq"]
        if new_shapes:  # events of these names must not slip between the look-back and the new shape
            self._lock(c, sorted(new_shapes))
        self._lock(c, sorted({key_lock(n, w.shape, w.match_key) for w in waits for n in w.names}))
        return known

    def _register_wait(self, c: Conn, run_id: str, wait: WaitWrite, now: int) -> bool:
        """Register ``wait``, or resolve it at once from what is stored; True if resolved."""
        known = self._lock_registration(c, [wait])
        if wait.kind == "resume":
            handle = self._x(c, "handle_by_hash", {"token_hash": wait.match_key}).fetchone()
            if handle is not None and handle["used_at"] is not None:
                self._resumed(c, run_id, wait.step_id, handle, handle["early"], now)
                return True
        elif wait.lookback != "none":
            found = self._look_back(c, run_id, wait, known=known)
            if found is not None:
                self._complete(c, run_id, wait.step_id, _serde.dumps(event_json(found)), now)
                self._consume(c, run_id, wait.step_id, 0, found["seq"])
                return True
        self._insert_wait(c, run_id, wait, now, known)
        return False

    def _register_group(self, c: Conn, run_id: str, group: list[WaitWrite], now: int) -> bool:
        """Register the conditions of a step of several, taking what is stored first; True if resolved.

        ``wait_for_any`` takes the oldest stored event any condition matches (the lowest condition for
        one event matching several); ``wait_for_all``, in condition order, each condition the oldest
        unconsumed event it matches; ``collect_events`` the oldest ones, up to its count and room."""
        known = self._lock_registration(c, group)
        first = group[0]
        step_id, kind = first.step_id, first.kind
        if kind == "wait_for_any":
            best: tuple[int, Row] | None = None
            for wait in group:
                found = self._look_back(c, run_id, wait, known=known) if wait.lookback != "none" else None
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
                found = self._look_back(c, run_id, wait, known=known) if wait.lookback != "none" else None
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
                found = self._look_back(c, run_id, first, floor, known)
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
            self._insert_wait(c, run_id, dataclasses.replace(wait, timer=None), now, known)
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

    def _look_back(self, c: Conn, run_id: str, wait: WaitWrite, floor: int | None = None,
                   known: Known | None = None) -> Row | None:  # fmt: skip
        """The oldest stored event that the wait accepts and the run has not consumed; after ``floor``
        (a seq) when given; ``known``: shapes found stored (``_lock_registration``)."""
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
            for seq in self._lookback_candidates(c, run_id, name, wait, after, known or {}):
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
                             after: int, known: Known) -> Any:  # fmt: skip
        """Seqs of stored events of ``name`` that may match, oldest first."""
        base = {"run_id": run_id, "event_name": name, "limit": LOOKBACK_BATCH}
        if not wait.shape:  # the scanned bucket: every event of the name
            yield from _paged(self, c, "lookback_by_name", {**base, "upto": 1 << 62}, after)
            return
        indexed_from = known.get((name, wait.shape))  # a stored shape's since_seq never changes
        if indexed_from is None:  # not found before the registration's locks: it may be stored now
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

    def _match_waits(self, c: Conn, event: Row, now: int, probes: list[Probe] | None = None) -> list[str]:
        """Resolve every wait this event matches, at most one per run; index it for look-backs.

        ``probes``: its index terms, locked and indexed already as it was stored (``insert_indexed_event``)."""
        incoming: dict[str, Any] | None = None  # the event as JSON, parsed only if some wait needs it
        if probes is None:
            incoming, probes = self._probes(c, event["name"], lambda: event_json(event))
            self._lock(c, self._probe_locks(event["name"], probes))
            for name, shape, key in probes:
                self._x(c, "insert_event_key", {"event_name": name, "shape": shape, "match_key": key,
                                                 "seq": event["seq"]})  # fmt: skip
        if self._join_statements:
            params = {"name": event["name"], "probes": _serde.dumps(probes)}
            candidates: list[Row] = self._x(c, "candidate_waits", params).fetchall()
            scanned = {w["id"] for w in candidates if w["scanned"] and w["if_exp"] is not None}  # within a budget
        else:
            candidates = self._x(c, "scanned_waits", {"name": event["name"]}).fetchall()
            scanned = {w["id"] for w in candidates if w["if_exp"] is not None}
            for name, shape, key in probes:
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
            if wait["kind"] != "cancel":  # a wait's step completes with the event
                if wait["kind"] == "wait_for_any":
                    result, condition = _serde.dumps([wait["condition"], incoming]), wait["condition"]
                else:
                    output = output or _serde.dumps(incoming)
                    result, condition = output, 0
                if self._resolve(c, wait["run_id"], wait["step_id"], result, condition, event["seq"], now):
                    taken.add(wait["run_id"])
                    resumed.append(wait["run_id"])
            elif self._claim_wait(c, wait["run_id"], wait["step_id"]):
                if wait["kind"] == "cancel":
                    self._cancel(
                        c, wait["run_id"], now, f"cancelled by a cancel_on event ({event['name']} {event['id']})"
                    )
                taken.add(wait["run_id"])
                resumed.append(wait["run_id"])
        if budget.skipped:
            log.warning("event %s: %d scanned waits of %r were past the budget of %d evaluations and %d MiB "
                        "handed to CEL, and were not evaluated against it; give them an index term (match=, or "
                        "an equality in if_exp)", event["id"], budget.skipped, event["name"], SCAN_BUDGET,
                        SCAN_BUDGET_BYTES >> 20)  # fmt: skip
        return resumed

    def _probes(
        self, c: Conn, name: str, as_json: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any] | None, list[Probe]]:
        """An event's index terms: its key under each shape waited with on its name or on every name (and
        the event as JSON, if computing them parsed it).

        The shared locks of its names are taken before the shapes are read (a registration of a new shape
        of these names takes them exclusively, so it either sees this event or is seen by it): here,
        or once for every event of a send (``_sending``), whose shapes are then read once too."""
        shapes = _sent_shapes(name)
        if shapes is None:
            names = sorted({name, ""})
            self._lock(c, [name_lock(n) for n in names], shared=True)
            shapes = [(r["event_name"], r["shape"]) for r in self._x(c, "shapes_for_names", {"name": name})]
        incoming: dict[str, Any] | None = None
        probes: list[Probe] = []
        for event_name, shape in shapes:
            incoming = incoming or as_json()
            key = self.hooks.event_key(shape, incoming)
            if key is not None:
                probes.append((event_name, shape, key))
        return incoming, probes

    @staticmethod
    def _probe_locks(name: str, probes: list[Probe]) -> list[str]:
        """The key locks an event takes before it reads its candidate waits: its probes' and the scanned
        buckets' of its name and of every name, sorted."""
        return sorted({key_lock(n, "", "") for n in (name, "")} | {key_lock(*probe) for probe in probes})

    @contextlib.contextmanager
    def _sending(self, c: Conn, names: list[str], locked: Sequence[str] = ()) -> Iterator[None]:
        """Within: the events of these names (being sent) read their shapes from what this takes once, the
        shared locks of their names (sorted; ``locked``: taken by the caller already) and their shapes; waits
        stored meanwhile add theirs.

        Not while the rows of a transaction run under savepoints of their own: a lock taken under one that
        is rolled back is released, so there each event takes its locks itself (``_probes``)."""
        if getattr(_rows, "isolated", False) or (len(names) < 2 and not self._join_statements):
            yield  # (on SQLite one event reads as much alone, with no locks to join)
            return
        outer = getattr(_send_state, "shapes", None)
        shapes: dict[str, list[tuple[str, str]]] = {} if outer is None else outer
        missing = sorted(({n for n in names} | {""}) - shapes.keys()) if names else []
        if missing:
            unlocked = [name_lock(n) for n in missing if n not in locked]
            if unlocked and self._join_statements:
                self._x(c, "lock_shared_names", {"locks": _serde.dumps(unlocked)})
            elif unlocked:
                self._lock(c, unlocked, shared=True)
            for n in missing:
                shapes[n] = []
            for n in [m for m in missing if m] or [""]:  # each read has the shapes of "" too
                for r in self._x(c, "shapes_for_names", {"name": n}):
                    if r["event_name"] in missing and (r["event_name"], r["shape"]) not in shapes[r["event_name"]]:
                        shapes[r["event_name"]].append((r["event_name"], r["shape"]))
        _send_state.shapes = shapes
        try:
            yield
        finally:
            _send_state.shapes = outer

    def _resolve(self, c: Conn, run_id: str, step_id: str, output: str, condition: int, seq: int, now: int) -> bool:
        """An event resolves a wait: its step completes with ``output``, its run wakes, the event is
        consumed; True for the one caller that claimed the wait."""
        if self._join_statements:
            params = {"run_id": run_id, "step_id": step_id, "output": output, "condition": condition,
                      "seq": seq, "now": now}  # fmt: skip
            return bool(self._x(c, "resolve_wait", params).fetchone()["claimed"])
        if not self._claim_wait(c, run_id, step_id):
            return False
        self._complete(c, run_id, step_id, output, now)
        self._consume(c, run_id, step_id, condition, seq)
        return True

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


_rows = threading.local()  # whether this thread's transaction runs each row under a savepoint (``sql._each``)
_send_state = threading.local()  # .shapes: of the names a send of this thread's transaction holds locked


def _sent_shapes(name: str) -> list[tuple[str, str]] | None:
    """The shapes of ``name`` and of every name, if a send holds their locks (``_sending``); else None."""
    shapes: dict[str, list[tuple[str, str]]] | None = getattr(_send_state, "shapes", None)
    if shapes is None or name not in shapes or "" not in shapes:
        return None
    return shapes[name] + shapes[""] if name else shapes[""]


def _sending_shape(name: str, shape: str) -> None:
    """A shape stored in this transaction: the send under way, if it holds ``name``'s lock, knows it now."""
    shapes: dict[str, list[tuple[str, str]]] | None = getattr(_send_state, "shapes", None)
    if shapes is not None and name in shapes and (name, shape) not in shapes[name]:
        shapes[name].append((name, shape))


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
