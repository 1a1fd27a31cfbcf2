"""When to try a request again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now` (a time.time()): delta-seconds or an HTTP-date. None when
    absent or unreadable; never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.replace(".", "", 1).isdigit():
        return max(0.0, float(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: before retry n (0-based) wait between half and all of
    min(max_delay, base_delay * 2**n). A Retry-After longer than that is waited instead, unless it
    is above max_retry_after: then the error is raised at once, with the wait it asked for."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry: int) -> float:
        cap: float = min(self.max_delay, self.base_delay * (2**retry))
        return cap / 2 + random.uniform(0, cap / 2)

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        """How long to wait before retry `retry`; None: do not retry."""
        if retry >= self.max_retries:
            return None
        wait = self.backoff(retry)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            wait = max(wait, retry_after)
        return wait
