"""The duration grammar of the contract, parsed once at the boundary.

Everything that takes a duration (sleep, timeout, lookback, retry delays)
goes through ``to_ms``; nothing else in Tarry parses durations.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

Duration = int | float | str | timedelta

MAX_MS = 365 * 24 * 3600 * 1000

_COMPACT_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_WORD_UNITS = {
    **{w: 1 for w in ("ms", "msec", "msecs", "millisecond", "milliseconds")},
    **{w: 1000 for w in ("s", "sec", "secs", "second", "seconds")},
    **{w: 60_000 for w in ("m", "min", "mins", "minute", "minutes")},
    **{w: 3_600_000 for w in ("h", "hr", "hrs", "hour", "hours")},
    **{w: 86_400_000 for w in ("d", "day", "days")},
    **{w: 604_800_000 for w in ("w", "week", "weeks")},
}
_NUMBER = r"(\d+(?:\.\d+)?)"
_COMPACT = re.compile(rf"(?:{_NUMBER}(ms|s|m|h|d|w))+")
_COMPACT_PART = re.compile(rf"{_NUMBER}(ms|s|m|h|d|w)")
_WORDS = re.compile(rf"{_NUMBER}\s*([a-zA-Z]+)")


def to_ms(value: object, *, what: str = "duration") -> int:
    """Return ``value`` as whole milliseconds, or raise ``ValueError`` naming it."""
    if isinstance(value, bool):
        raise ValueError(f"invalid {what} {value!r}: expected seconds, a timedelta or a text like '30s'")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"invalid {what} {value!r}: must be a finite number of seconds")
        ms = round(value * 1000)
    elif isinstance(value, timedelta):
        ms = round(value.total_seconds() * 1000)
    elif isinstance(value, str):
        ms = _parse_text(value, what)
    else:
        raise ValueError(f"invalid {what} {value!r}: expected seconds, a timedelta or a text like '30s'")
    if ms < 0:
        raise ValueError(f"invalid {what} {value!r}: must not be negative")
    if ms > MAX_MS:
        raise ValueError(f"invalid {what} {value!r}: at most 365 days")
    return ms


def _parse_text(text: str, what: str) -> int:
    ms = _parsed.get(text)
    if ms is None:
        ms = _parse_new_text(text, what)
        if len(_parsed) < 1024:  # the texts of a program's steps, few and repeated
            _parsed[text] = ms
    return ms


_parsed: dict[str, int] = {}


def _parse_new_text(text: str, what: str) -> int:
    cleaned = text.strip().lower()
    if _COMPACT.fullmatch(text.strip()):  # compact units are lower case: "1M" is not one minute
        return round(sum(float(n) * _COMPACT_UNITS[u] for n, u in _COMPACT_PART.findall(cleaned)))
    parts = _WORDS.findall(text.strip())
    if (
        parts
        and not _WORDS.sub("", text.strip()).strip()
        and all(unit.lower() in _WORD_UNITS and unit != "M" for _, unit in parts)  # "M" would be months
    ):
        return round(sum(float(n) * _WORD_UNITS[unit.lower()] for n, unit in parts))
    if cleaned.startswith("-"):
        raise ValueError(f"invalid {what} {text!r}: must not be negative")
    raise ValueError(
        f"invalid {what} {text!r}: use a number with a unit of ms, s, m, h, d or w "
        "(e.g. '500ms', '1h30m', '2 hours'); months and years are not durations"
    )
