"""Which webhook events an order change makes (events.order_event_types), and the order every
one of them carries (order_views.to_view)."""

from __future__ import annotations

from typing import Any

import pytest

from usdt_gateway.events import EVENT_TYPES, order_event_types
from usdt_gateway.order_views import to_view
from usdt_gateway.records import Order


def item(status: str, *, paid: int = 0, exception: str | None = None, excess: int = 0) -> dict[str, Any]:
    """An order item as stored, amount 100.00 USDT (6 decimals)."""
    return {
        "merchantId": "m-1",
        "orderId": "o-1",
        "publicId": "p_1",
        "network": "tron",
        "chainId": 728126428,
        "decimals": 6,
        "tokenContract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "amountUnits": 100_000_000,
        "requestedUnits": 100_000_000,
        "address": "TXYZ",
        "paymentUrl": "https://pay.example/pay/p_1",
        "paymentUri": "TXYZ",
        "qrCodeData": "data:image/png;base64,",
        "status": status,
        "exception": exception,
        "paidUnits": paid,
        "excessUnits": excess,
        "expiresAt": 2,
        "createdAt": 1,
    }


def order(status: str, paid: int = 0, exception: str | None = None, excess: int = 0) -> Order:
    return Order.from_item(item(status, paid=paid, exception=exception, excess=excess))


@pytest.mark.parametrize(
    ("old", "new", "reverted", "expected"),
    [
        (order("pending"), order("confirming"), False, ["order.confirming"]),
        (order("confirming"), order("confirmed", 100), False, ["order.confirmed"]),
        (order("pending"), order("confirmed", 120, "overpaid", 20), False, ["order.confirmed", "order.overpaid"]),
        (order("expired"), order("confirmed", 100, "paid_late"), False, ["order.confirmed", "order.paid_late"]),
        (order("confirmed", 100), order("confirmed", 150, "overpaid", 50), False, ["order.overpaid"]),  # attached later
        (
            order("confirmed", 120, "overpaid", 20),
            order("confirmed", 150, "overpaid", 50),
            False,
            ["order.overpaid"],
        ),  # more excess attached later
        (
            order("confirmed", 120, "overpaid", 20),
            order("confirmed", 150, "paid_late", 50),
            False,
            ["order.paid_late", "order.overpaid"],
        ),  # a late payment attached to an overpaid order
        (order("confirming"), order("underpaid", 60), False, ["order.underpaid"]),
        (order("underpaid", 60), order("underpaid", 80), False, ["order.underpaid"]),  # more came, still short
        (order("underpaid", 60), order("failed", 60), False, ["order.failed"]),
        (order("pending"), order("expired"), False, ["order.expired"]),
        (order("pending"), order("cancelled"), False, ["order.cancelled"]),
        (order("confirming"), order("pending"), True, ["order.reverted"]),
        (order("confirming"), order("expired"), True, ["order.reverted", "order.expired"]),
        (order("confirming"), order("confirming"), False, []),  # a second payment seen: same state
        (order("confirmed", 100), order("confirmed", 100), False, []),  # closing a paid order
        (order("confirmed", 120, "overpaid", 20), order("confirmed", 120, "overpaid", 20), False, []),  # nothing new
    ],
)
def test_events_of_a_change(old: Order, new: Order, reverted: bool, expected: list[str]) -> None:
    assert order_event_types(old, new, reverted=reverted) == expected
    assert set(expected) <= set(EVENT_TYPES)


@pytest.mark.parametrize("old", ["expired", "failed"])
def test_a_late_overpayment_announces_both_its_lateness_and_its_excess(old: str) -> None:
    # Given a closed order (amount 100) that a late payment of 130 confirms
    # When the change's events are decided
    types = order_event_types(order(old), order("confirmed", 130, "paid_late", 30))
    # Then it is confirmed, paid late and overpaid, in that order
    assert types == ["order.confirmed", "order.paid_late", "order.overpaid"]


def test_only_a_final_paid_order_is_announced_confirmed() -> None:
    # No status but confirmed ever yields order.confirmed, whatever it came from
    for old in ("pending", "confirming", "underpaid", "expired", "failed"):
        for new in ("pending", "confirming", "underpaid", "expired", "failed", "cancelled"):
            assert "order.confirmed" not in order_event_types(order(old), order(new))


@pytest.mark.parametrize(
    "status", ["pending", "confirming", "underpaid", "confirmed", "expired", "cancelled", "failed"]
)
def test_the_order_says_whether_it_is_paid(status: str) -> None:
    # Given an order in any status, when it is viewed (GET and every order event's data)
    view = to_view(order(status, paid=100_000_000 if status == "confirmed" else 0)).model_dump(by_alias=True)
    # Then `paid` is true exactly when it is confirmed
    assert view["paid"] is (status == "confirmed")


@pytest.mark.parametrize(
    ("exception", "excess", "exceptions"),
    [
        (None, 0, []),
        ("overpaid", 30_000_000, ["overpaid"]),
        ("paid_late", 0, ["paid_late"]),
        ("paid_late", 30_000_000, ["paid_late", "overpaid"]),
    ],
)
def test_a_late_overpayment_shows_both_exceptions(exception: str | None, excess: int, exceptions: list[str]) -> None:
    # Given a confirmed order, late or not, overpaid or not
    stored = item("confirmed", paid=100_000_000 + excess, exception=exception, excess=excess)
    # When it is viewed
    view = to_view(Order.from_item(stored)).model_dump(mode="json", by_alias=True)
    # Then `exceptions` lists every one that applies, `exception` stays the first (paid_late wins)
    assert view["exceptions"] == exceptions
    assert view["exception"] == exception and view["excessAmount"] == f"{excess // 10**6}.00"
