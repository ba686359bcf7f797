"""Schedules (API §10): ``tarry.Cron``, checked once when built, and the instants of its ticks.

Pure: the store computes a schedule's next tick with it, inside the transaction that fires the last
one. ``cronsim`` reads the five fields and walks the calendar in local wall-clock time; this module
maps those local times to real instants in the schedule's IANA zone (docs/guide.md, "Schedules").
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

#: the name of a tick's event, routed only to the schedule's function (through admission, as any event)
TICK_EVENT = "tarry/scheduled.timer"
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS = "minute hour day-of-month month day-of-week"
_EPOCH = datetime(1970, 1, 1)
_DAY_S = 86_400
#: how far back the latest of several missed ticks is first looked for, widening to the schedule's due tick
_LOOK_BACK_S = (3600, _DAY_S, 31 * _DAY_S, 366 * _DAY_S)


@dataclass(frozen=True)
class Cron:
    """A schedule trigger: ``expression`` (five cron fields, or a macro such as ``@hourly``) read in the IANA
    ``timezone``. Each tick starts the function with a ``tarry/scheduled.timer`` event."""

    expression: str
    timezone: str = field(default="UTC", kw_only=True)
    _fields: str = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _by_clock: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = _fields_of(self.expression)
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_zone", _zone_of(self.timezone))
        # An hour written as * or with a step is read off the clock each real hour; any other is a wall time.
        hour = fields.split()[1]
        object.__setattr__(self, "_by_clock", hour.startswith("*") or "/" in hour)

    def __repr__(self) -> str:
        zone = "" if self.timezone == "UTC" else f", timezone={self.timezone!r}"
        return f"Cron({self.expression!r}{zone})"

    def _next_after(self, ms: int) -> int | None:
        after = ms // 1000
        tick = self._next_by_clock(after) if self._by_clock else self._next_by_wall(after)
        return None if tick is None else tick * 1000

    # -- local times to instants --------------------------------------------

    def _local_times(self, after: datetime) -> Iterator[datetime]:
        """The wall-clock times the fields match, strictly after the naive local time ``after``, in order."""
        return iter(CronSim(self._fields, after))

    def _reading(self, s: int) -> datetime:
        """What the zone's clock reads at the instant ``s`` (epoch seconds), as a naive datetime."""
        return datetime.fromtimestamp(s, self._zone).replace(tzinfo=None)

    def _offset(self, s: int) -> int:
        offset = datetime.fromtimestamp(s, self._zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def _next_by_wall(self, after: int) -> int | None:
        """Each matching local time fires once: at its first occurrence if the clock shows it twice, at the
        first instant after the gap if a change skips it (several skipped ones fire together, once)."""
        for local in self._local_times(self._reading(after)):
            instant = self._wall_instant(local)
            if instant > after:  # else: a repeated time whose first occurrence came before ``after``
                return instant
        return None

    def _wall_instant(self, local: datetime) -> int:
        first = local.replace(tzinfo=self._zone)
        second = local.replace(tzinfo=self._zone, fold=1)
        naive_s = int((local - _EPOCH).total_seconds())
        s0 = naive_s - _seconds(first.utcoffset())
        s1 = naive_s - _seconds(second.utcoffset())
        if s0 == s1 or self._reading(s0) == local:  # shown once, or twice: fold 0 is the first occurrence
            return s0
        return self._change_in(min(s0, s1), max(s0, s1))  # skipped: the gap ends where the offset changes

    def _next_by_clock(self, after: int) -> int | None:
        """Every real instant whose clock reading matches, in order: within a stretch of one offset the
        readings follow the instants, so the first match of each stretch is its first tick."""
        at = after
        lower = self._reading(after)
        while True:
            local = next(self._local_times(lower), None)
            if local is None:
                return None
            offset = self._offset(at)
            candidate = int((local - _EPOCH).total_seconds()) - offset
            change = self._first_change(at, candidate, offset)
            if change is None:
                return candidate
            at, lower = change, self._reading(change) - timedelta(seconds=1)

    def _first_change(self, start: int, end: int, offset: int) -> int | None:
        """The first instant in (start, end] whose offset is not ``offset``, or None. The zone is looked at
        once a day between them: its offset changes at most once in a day."""
        probe = start
        while probe < end:
            later = min(probe + _DAY_S, end)
            if self._offset(later) != offset:
                return self._change_in(probe, later)
            probe = later
        return None

    def _change_in(self, low: int, high: int) -> int:
        """The first instant in (low, high] whose offset differs from that of ``low`` (one change between)."""
        before = self._offset(low)
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == before:
                low = middle
            else:
                high = middle
        return high


def next_tick(cron: Cron, after_ms: int) -> int | None:
    """The first tick of ``cron`` strictly after the instant ``after_ms`` (epoch ms), or None if none comes."""
    return cron._next_after(after_ms)


def latest_tick(cron: Cron, due_ms: int, now_ms: int) -> int:
    """The latest tick at or before ``now_ms``, given a tick ``due_ms`` at or before it: the one tick that
    fires when several were missed (the others are not replayed)."""
    tick = due_ms
    for span in _LOOK_BACK_S:
        start = now_ms - span * 1000
        if start <= tick:
            break
        found = cron._next_after(start)
        if found is not None and found <= now_ms:
            tick = found
            break
    while (later := cron._next_after(tick)) is not None and later <= now_ms:
        tick = later
    return tick


def tick_data(cron: Cron, tick_ms: int) -> dict[str, Any]:
    """The ``data`` of a tick's event."""
    at = datetime.fromtimestamp(tick_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"cron": cron.expression, "timezone": cron.timezone, "scheduled_at": at}


def _seconds(offset: timedelta | None) -> int:
    assert offset is not None
    return int(offset.total_seconds())


def _fields_of(expression: object) -> str:
    """The five fields of ``expression`` (a macro expanded); ``ValueError`` naming what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"invalid Cron expression {expression!r}: a non-empty string such as '0 9 * * MON-FRI'")
    text = " ".join(expression.split())
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        zone, _, rest = text.partition(" ")
        raise ValueError(
            f"invalid Cron expression {expression!r}: a {zone.split('=')[0]}= prefix is not read; "
            f"write tarry.Cron({rest!r}, timezone={zone.split('=', 1)[1]!r})"
        )
    if text.startswith("@"):
        fields = MACROS.get(text.lower())
        if fields is None:
            raise ValueError(f"invalid Cron expression {expression!r}: the macros are {', '.join(MACROS)}")
        return fields
    parts = text.split()
    if len(parts) != 5:
        extra = " (no seconds or year field)" if len(parts) > 5 else ""
        raise ValueError(
            f"invalid Cron expression {expression!r}: {len(parts)} field{'s' * (len(parts) != 1)}; "
            f"five are needed: {FIELDS}{extra}"
        )
    try:
        first = next(CronSim(text, datetime(2000, 1, 1)), None)
    except (CronSimError, ValueError, LookupError) as exc:
        raise ValueError(f"invalid Cron expression {expression!r}: {_what(exc)}") from None
    if first is None:
        raise ValueError(f"invalid Cron expression {expression!r}: it matches no date")
    return text


def _what(error: Exception) -> str:
    text = str(error)  # "Bad minute", "Bad day-of-week"...
    return f"bad {text[4:]} field" if text.startswith("Bad ") else text


def _zone_of(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid Cron timezone {name!r}: an IANA time zone name such as 'Europe/Berlin' or 'UTC'")
    try:
        return ZoneInfo(name)  # ZoneInfo keeps each zone it loaded: the files are read once
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"invalid Cron timezone {name!r}: not an IANA time zone (such as 'Europe/Berlin' or 'UTC')"
        ) from None


@functools.lru_cache(maxsize=256)
def parsed(expression: str, timezone: str) -> Cron:
    """A stored schedule's ``Cron``, parsed once per process."""
    return Cron(expression, timezone=timezone)
