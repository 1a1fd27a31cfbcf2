"""A wall clock the test sets. Patched over `usdt_gateway.clock.now_ms` (the `fake_clock` fixture
of tests/conftest.py), it is the time of every timestamp the gateway stores or signs, so a test
moves time forward by a number instead of sleeping."""

from __future__ import annotations

import time
from dataclasses import dataclass

MINUTE_MS = 60_000


@dataclass
class FakeClock:
    """Milliseconds since the epoch; it stands still until the test sets or advances it."""

    ms: int

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> int:
        """Move the clock `ms` forward; returns the new time."""
        self.ms += ms
        return self.ms


def mid_minute() -> FakeClock:
    """A clock stopped 30 s into the current wall-clock minute: a one-minute rate-limit window
    cannot turn over during the test, and the timestamps stay close to the real time."""
    return FakeClock(time.time_ns() // 1_000_000 // MINUTE_MS * MINUTE_MS + MINUTE_MS // 2)
