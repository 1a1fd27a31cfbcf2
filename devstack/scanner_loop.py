"""The deposit scanner of the local stack: the template's ScannerFunction invoked over and over
with one network's event, as the schedule's fan-out invokes it once a minute when deployed.

Each invocation scans for SCAN_SECONDS (a few seconds locally), so stopping waits at most that
long; a failed invocation is logged and retried after a pause, as the next schedule would.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from devstack.functions import LocalFunction

log = logging.getLogger("devstack")

RETRY_PAUSE_S = 2.0
STOP_TIMEOUT_S = 30.0


class ScannerLoop:
    def __init__(self, function: LocalFunction, network: str, *, retry_pause_s: float = RETRY_PAUSE_S) -> None:
        self.function = function
        self.event: dict[str, Any] = {"network": network}
        self.retry_pause_s = retry_pause_s
        self.invocations = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"devstack-scanner-{network}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Let the running invocation finish, then end the loop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("the scanner invocation did not end within %.0f s; stopping anyway", STOP_TIMEOUT_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.invocations += 1
            try:
                self.function.invoke(self.event)
            except Exception:
                self.failures += 1
                log.exception("%s failed on %s; retrying in %.0f s", self.function.logical_id, self.event,
                              self.retry_pause_s)
                self._stop.wait(self.retry_pause_s)
