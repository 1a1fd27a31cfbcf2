"""A loop of the local stack on a thread of its own (the scanner, the webhook queue's poller, a
scheduled function), stopped by an event that also cuts its pauses short: stopping waits only for
the work in hand, not for a sleep to end."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("devstack")


class BackgroundLoop:
    def __init__(self, name: str, *, stop_timeout_s: float) -> None:
        self.stop_timeout_s = stop_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the loop to end after the work in hand; returns at once (several loops stop in parallel)."""
        self._stop.set()

    def stop(self) -> None:
        """Ask the loop to end and wait for it."""
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(timeout=self.stop_timeout_s)
            if self._thread.is_alive():
                log.warning("%s did not end within %.0f s; stopping anyway", self._thread.name, self.stop_timeout_s)
