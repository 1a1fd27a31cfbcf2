"""The gateway's one wall clock.

Every timestamp the gateway stores or signs is read here, through the module attribute
(`clock.now_ms()`), so a test can set the time for all of them at once (tests/fake_clock.py).
Durations and deadlines within one process use `time.monotonic`, which no test needs to set.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as clients compute it (`int(time.time() * 1000)`): with
    `time_ns() // 10**6` the float rounding of the client's reading could put a request 1 ms after
    the gateway's own."""
    return int(time.time() * 1000)


def now_s() -> float:
    """Seconds since the Unix epoch, for APIs that speak seconds (HTTP dates, the scanner's budget)."""
    return now_ms() / 1000
