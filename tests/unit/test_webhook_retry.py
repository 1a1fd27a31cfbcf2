"""When a failed webhook attempt is tried again: the schedule's delay with jitter, Retry-After
when it asks for longer, never beyond what SQS can keep a message hidden."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from usdt_gateway import config
from usdt_gateway.webhooks import sender
from usdt_gateway.webhooks.delivery_http import Outcome

FAILED = Outcome(status=500, latency_ms=10, error="HTTP 500", code="HTTP_STATUS")


@pytest.fixture(autouse=True)
def schedule(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"TABLE_NAME": "t-unit", "KMS_KEY_ID": "k", "WEBHOOK_RETRY_SCHEDULE": "5,300,36000"}.items():
        monkeypatch.setenv(name, value)
    config.reset()
    yield
    config.reset()


def test_each_retry_waits_its_scheduled_delay_within_ten_percent() -> None:
    for retry, base in enumerate((5, 300, 36000), start=1):
        delays = {sender._retry_delay(retry, FAILED) for _ in range(200)}
        assert all(base * 0.9 <= d <= base * 1.1 + 1 and d == int(d) for d in delays if d is not None)
        assert len(delays) > 1  # jittered, not one fixed value


def test_after_the_last_scheduled_retry_there_is_none() -> None:
    assert sender._retry_delay(4, FAILED) is None


def test_retry_after_counts_when_it_asks_for_longer_up_to_the_sqs_limit() -> None:
    def wait(seconds: float) -> float | None:
        return sender._retry_delay(
            1, Outcome(status=429, latency_ms=5, error="HTTP 429", code="HTTP_STATUS", retry_after_s=seconds)
        )

    assert wait(120) == 120
    assert wait(7.2) == 8  # whole seconds, never shorter than asked
    assert all(5 <= (wait(2) or 0) <= 6 for _ in range(20))  # shorter than the schedule: the schedule's
    assert wait(10 * 86_400) == sender.MAX_HIDDEN_S < 43_200
