"""A function the template runs on a Schedule event (EventBridge), invoked locally every few
seconds instead of its rate, with the event EventBridge sends. A failed invocation is logged and
the next one comes on time, as with the deployed schedule."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from devstack.background import BackgroundLoop
from devstack.environment import ACCOUNT_ID
from devstack.functions import LocalFunction

log = logging.getLogger("devstack")

STOP_TIMEOUT_S = 10.0


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    region = rule_arn.split(":")[3]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class Schedule(BackgroundLoop):
    def __init__(self, function: LocalFunction, *, every_s: float, region: str) -> None:
        super().__init__(f"devstack-schedule-{function.logical_id}", stop_timeout_s=STOP_TIMEOUT_S)
        self.function = function
        self.every_s = every_s
        self.rule_arn = f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{function.name}-schedule"
        self.invocations = 0
        self.failures = 0

    def _run(self) -> None:
        next_at = time.monotonic() + self.every_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self.invocations += 1
            try:
                self.function.invoke(scheduled_event(self.rule_arn))
            except Exception:
                self.failures += 1
                log.exception("%s failed; next invocation in %.0f s", self.function.logical_id, self.every_s)
            # On the rate, without catching up on the ticks a slow invocation ran over.
            next_at = max(next_at + self.every_s, time.monotonic())
