"""When a failed step is tried again: exponential backoff with full jitter, or the user's delay."""

from __future__ import annotations

import random
from datetime import datetime

from tarry import _clock
from tarry._durations import to_ms
from tarry._errors import RetryAfterError

BASE_MS = 1_000
CAP_MS = 10 * 60_000


def retry_delay_ms(exc: BaseException, attempts: int, now_ms: int) -> int:
    """Milliseconds to wait before attempt ``attempts + 1`` after ``exc``.

    Backoff doubles from 1 s per attempt, capped at 10 minutes, and a random
    share of up to half of it is taken off so retries of many runs spread out.
    """
    if isinstance(exc, RetryAfterError):
        if isinstance(exc.delay, datetime):
            if exc.delay.tzinfo is None:
                raise ValueError("RetryAfterError delay must be an aware datetime (with a timezone)")
            return max(0, _clock.to_ms(exc.delay) - now_ms)
        return to_ms(exc.delay, what="RetryAfterError delay")
    ceiling: int = min(CAP_MS, BASE_MS * 2 ** (attempts - 1))
    return ceiling - int(random.random() * ceiling / 2)
