"""Sortable unique ids (ULID, Crockford base32), monotonic within a process.

Two ids made in the same millisecond still sort in the order they were made:
the random part of the second is the first's plus one.
"""

from __future__ import annotations

import os
import threading

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: every 10 bits as their two characters: an id is 13 look-ups, not 26 shifts
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0
_last_prefix = ""  # the ten characters of _last_ms


def new_id(ms: int) -> str:
    """A ULID for time ``ms`` (epoch milliseconds), never smaller than the last one."""
    global _last_ms, _last_rand, _last_prefix
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_rand += 1
            if _last_rand >= 1 << 80:
                ms += 1
                _last_rand = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1
        if ms != _last_ms or not _last_prefix:  # the time's ten characters (its 50 bits) change with it
            p = _PAIRS
            _last_prefix = (p[(ms >> 40) & 1023] + p[(ms >> 30) & 1023] + p[(ms >> 20) & 1023]
                            + p[(ms >> 10) & 1023] + p[ms & 1023])  # fmt: skip
        _last_ms = ms
        rand, prefix = _last_rand, _last_prefix
    p = _PAIRS
    return (prefix + p[rand >> 70] + p[(rand >> 60) & 1023] + p[(rand >> 50) & 1023] + p[(rand >> 40) & 1023]
            + p[(rand >> 30) & 1023] + p[(rand >> 20) & 1023] + p[(rand >> 10) & 1023] + p[rand & 1023])  # fmt: skip
