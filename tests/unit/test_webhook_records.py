"""Webhook deliveries, typed: an EVENT item reads as its delivery, and the attempts and state it
writes keep the stored shape."""

from __future__ import annotations

from typing import Any

from usdt_gateway import events, store
from usdt_gateway.schemas import DeliveryStatus
from usdt_gateway.webhooks.delivery_http import Outcome
from usdt_gateway.webhooks.records import Attempt, Delivery, DeliveryState


def stored(item: dict[str, Any]) -> dict[str, Any]:
    """The item as DynamoDB keeps it and store.get gives it back (None attributes left out)."""
    loaded = store._load(store._dump(item))
    assert loaded is not None
    return loaded


def test_a_new_test_event_reads_as_a_pending_delivery_without_attempts() -> None:
    # Given a webhook.test event item as events makes it
    item = stored(events.webhook_test("m_1", "hello"))
    # When it is read as a delivery
    delivery = Delivery.from_item(item)
    # Then it is the event, pending, with nothing attempted and no order
    assert (delivery.event_id, delivery.merchant_id, delivery.order_id) == (item["eventId"], "m_1", None)
    assert delivery.body == item["body"] and delivery.sequence == 0
    assert delivery.state == DeliveryState(DeliveryStatus.PENDING)


def test_an_attempt_keeps_every_key_even_when_empty() -> None:
    # Given a failed attempt without an HTTP answer
    attempt = Attempt.of(3, 1_000, None, Outcome(status=None, latency_ms=12, error="timed out", code="TIMEOUT"))
    # When it is stored inside the attempts list
    entry = stored({"attempts": [attempt.to_item()]})["attempts"][0]
    # Then its None values are kept (as the log has always shown them) and it reads back the same
    assert entry == {
        "n": 3,
        "at": 1_000,
        "url": None,
        "statusCode": None,
        "latencyMs": 12,
        "error": "timed out",
        "code": "TIMEOUT",
    }
    assert Attempt.from_item(entry) == attempt


def test_a_delivery_state_writes_only_what_it_has() -> None:
    # Given a delivered state after one attempt, never resent nor claimed
    attempt = Attempt(1, 1_000, "https://shop.example/hook", 204, 30, None, None)
    state = DeliveryState(
        DeliveryStatus.DELIVERED, attempt_count=1, attempts=(attempt,), last_attempt_at=1_000, delivered_at=1_030
    )
    # When it is written and read back
    item = stored(state.to_item())
    # Then no retry base, next attempt or owner is stored, and it reads back the same
    assert set(item) == {"deliveryStatus", "attempts", "attemptCount", "lastAttemptAt", "deliveredAt"}
    assert item["deliveryStatus"] == "delivered"
    assert DeliveryState.from_item(item) == state
