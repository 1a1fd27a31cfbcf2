"""Which webhook events an order change makes (events.order_event_types)."""

from __future__ import annotations

import pytest

from usdt_gateway.events import EVENT_TYPES, order_event_types


def order(status: str, paid: int = 0, exception: str | None = None) -> dict:
    return {"status": status, "paidUnits": paid, "exception": exception}


@pytest.mark.parametrize(("old", "new", "reverted", "expected"), [
    (order("pending"), order("confirming"), False, ["order.confirming"]),
    (order("confirming"), order("confirmed", 100), False, ["order.confirmed"]),
    (order("pending"), order("confirmed", 120, "overpaid"), False, ["order.confirmed", "order.overpaid"]),
    (order("expired"), order("confirmed", 100, "paid_late"), False, ["order.confirmed", "order.paid_late"]),
    (order("confirmed", 100), order("confirmed", 150, "overpaid"), False, ["order.overpaid"]),  # attached later
    (order("confirming"), order("underpaid", 60), False, ["order.underpaid"]),
    (order("underpaid", 60), order("underpaid", 80), False, ["order.underpaid"]),  # more came, still short
    (order("underpaid", 60), order("failed", 60), False, ["order.failed"]),
    (order("pending"), order("expired"), False, ["order.expired"]),
    (order("pending"), order("cancelled"), False, ["order.cancelled"]),
    (order("confirming"), order("pending"), True, ["order.reverted"]),
    (order("confirming"), order("expired"), True, ["order.reverted", "order.expired"]),
    (order("confirming"), order("confirming"), False, []),  # a second payment seen: same state
    (order("confirmed", 100), order("confirmed", 100), False, []),  # closing a paid order
])
def test_events_of_a_change(old: dict, new: dict, reverted: bool, expected: list[str]) -> None:
    assert order_event_types(old, new, reverted=reverted) == expected
    assert set(expected) <= set(EVENT_TYPES)


def test_only_a_final_paid_order_is_announced_confirmed() -> None:
    # No status but confirmed ever yields order.confirmed, whatever it came from
    for old in ("pending", "confirming", "underpaid", "expired", "failed"):
        for new in ("pending", "confirming", "underpaid", "expired", "failed", "cancelled"):
            assert "order.confirmed" not in order_event_types(order(old), order(new))
