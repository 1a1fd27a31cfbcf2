"""The deposit scanner of the local stack: the template's ScannerFunction invoked over and over
with one network's event, as the schedule's fan-out invokes it once a minute when deployed.

Each invocation scans for SCAN_SECONDS (a few seconds locally), so stopping waits at most that
long; a failed invocation is logged and retried after a pause, as the next schedule would.
"""

from __future__ import annotations

import logging
from typing import Any

from devstack.background import BackgroundLoop
from devstack.functions import LocalFunction

log = logging.getLogger("devstack")

RETRY_PAUSE_S = 2.0
STOP_TIMEOUT_S = 30.0


class ScannerLoop(BackgroundLoop):
    def __init__(self, function: LocalFunction, network: str, *, retry_pause_s: float = RETRY_PAUSE_S) -> None:
        super().__init__(f"devstack-scanner-{network}", stop_timeout_s=STOP_TIMEOUT_S)
        self.function = function
        self.event: dict[str, Any] = {"network": network}
        self.retry_pause_s = retry_pause_s
        self.invocations = 0
        self.failures = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.invocations += 1
            try:
                self.function.invoke(self.event)
            except Exception:
                self.failures += 1
                log.exception(
                    "%s failed on %s; retrying in %.0f s", self.function.logical_id, self.event, self.retry_pause_s
                )
                self._stop.wait(self.retry_pause_s)
