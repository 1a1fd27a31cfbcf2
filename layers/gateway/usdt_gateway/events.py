"""Where state changes become webhook events.

An event is written in the same DynamoDB transaction as the change it reports, together with an
outbox marker: a committed change always has its event, and an event exists only for a change
that committed. After the commit the writer hands the event to the webhook queue
(outbox.publish); the outbox sweeper hands over any it could not, so a writer dying right after
its commit loses nothing.

Which events an order change makes (docs/webhooks.md):
    order.confirming  a payment is seen on chain, not final yet
    order.confirmed   final and paid in full (within the tolerance)
    order.paid_late   after order.confirmed, when a payment came after expiry (grace window)
    order.overpaid    after order.confirmed (and order.paid_late), whenever the excess grows
    order.underpaid   final payments short of the amount (again whenever more arrives, still short)
    order.expired     nothing received by expiry
    order.failed      closed with a partial payment that was never topped up
    order.cancelled   cancelled by the merchant
    order.reverted    a seen payment was removed by a chain reorg (then the new status's event)
    order.payment_reversed  a final payment was removed by a reorg deeper than the network's
                      finality: `reversedDeposit` names it; the order is recomputed without it
    deposit.unmatched a final payment to one of the merchant's addresses that no order takes
    deposit.reversed  an unmatched deposit was removed by a reorg deeper than the finality (or a
                      held one: its hold ends there)
    deposit.held      a final payment held, not counted: `status` says why, `disputed` (a second
                      RPC endpoint contradicts it) or `unverified` (one endpoint, above the
                      network's secondSourceAbove); again when an unverified one becomes disputed
    deposit.released  a held deposit confirmed (by a second endpoint or the operator): `status`
                      says where it went, `credited` to `orderId` or `unmatched`
    deposit.rejected  a held deposit the operator found on no explorer: never counted
    settlement.completed  contract mode: a sweep of deposit addresses to the treasury is final
    settlement.failed     contract mode: a sweep reverted or could not be sent; its deposits wait
                      for the next one
    refund.completed  contract mode: a refund the owner signed is final on chain
    refund.failed     contract mode: a signed refund did not run and no longer can (`reason`)
Each order event carries the order's `sequence`, one more than its previous event's, so a
receiver can drop stale or out-of-order deliveries, and the whole order after the change (`paid`
included): the events of one change carry the same order, so whichever of them a receiver accepts
tells it everything, even when it drops the others as stale.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from usdt_gateway import clock, order_views, store
from usdt_gateway.records import Event, Order, OutboxMarker
from usdt_gateway.schemas import OrderException, OrderStatus

STATUS_EVENTS = {
    OrderStatus.CONFIRMING: "order.confirming",
    OrderStatus.CONFIRMED: "order.confirmed",
    OrderStatus.UNDERPAID: "order.underpaid",
    OrderStatus.EXPIRED: "order.expired",
    OrderStatus.FAILED: "order.failed",
    OrderStatus.CANCELLED: "order.cancelled",
}
REVERTED = "order.reverted"
PAYMENT_REVERSED = "order.payment_reversed"
UNMATCHED = "deposit.unmatched"
DEPOSIT_REVERSED = "deposit.reversed"
DEPOSIT_HELD = "deposit.held"
DEPOSIT_RELEASED = "deposit.released"
DEPOSIT_REJECTED = "deposit.rejected"
# A deposit's events in the order they can happen, numbered by it: deposit.held (unverified) 1,
# deposit.held (disputed) 2, then one that ends the hold 3; an unmatched deposit's 1, reversed 2.
HELD_SEQUENCE = {"unverified": 1, "disputed": 2}
HOLD_ENDED_SEQUENCE = 3
SETTLEMENT_COMPLETED = "settlement.completed"
SETTLEMENT_FAILED = "settlement.failed"
REFUND_COMPLETED = "refund.completed"
REFUND_FAILED = "refund.failed"
TEST = "webhook.test"  # POST /v1/webhooks/test
PAID_LATE = "order.paid_late"
OVERPAID = "order.overpaid"
ORDER_EVENT_TYPES = (*STATUS_EVENTS.values(), PAID_LATE, OVERPAID, REVERTED, PAYMENT_REVERSED)
EVENT_TYPES = (
    *ORDER_EVENT_TYPES,
    UNMATCHED,
    DEPOSIT_REVERSED,
    DEPOSIT_HELD,
    DEPOSIT_RELEASED,
    DEPOSIT_REJECTED,
    SETTLEMENT_COMPLETED,
    SETTLEMENT_FAILED,
    REFUND_COMPLETED,
    REFUND_FAILED,
)


def new_event_id() -> str:
    return "evt_" + secrets.token_urlsafe(16)


def order_event_types(old: Order, new: Order, *, reverted: bool = False, reversal: bool = False) -> list[str]:
    """The events an order's change from `old` to `new` makes, in the order they happen.
    `reversal`: a final payment was taken away (always announced, whatever the status does)."""
    types = [REVERTED] if reverted else []
    if reversal:
        types.append(PAYMENT_REVERSED)
    if new.status != old.status:
        if new.status in STATUS_EVENTS:
            types.append(STATUS_EVENTS[new.status])
    elif new.status in (OrderStatus.UNDERPAID, OrderStatus.FAILED) and new.paid_units > old.paid_units:
        types.append(STATUS_EVENTS[new.status])  # more arrived, still short
    if new.exception == OrderException.PAID_LATE and old.exception != OrderException.PAID_LATE:
        types.append(PAID_LATE)
    # From the excess, not `exception`: a late overpayment is both, and paid_late takes `exception`.
    if new.excess_units > old.excess_units:
        types.append(OVERPAID)
    return types


def body(event_id: str, event_type: str, created_at: int, sequence: int, data: dict[str, Any]) -> str:
    """The JSON body the merchant receives, byte for byte the same on every attempt."""
    return json.dumps(
        {"id": event_id, "type": event_type, "createdAt": created_at, "sequence": sequence, "data": data},
        separators=(",", ":"),
    )


def outbox_marker(
    event_id: str, at: int, sequence: int, *, merchant_id: str | None = None, order_id: str | None = None
) -> dict[str, Any]:
    """The OUTBOX marker item that stays until SQS has taken the event (the sweeper's work list)."""
    return OutboxMarker(event_id, at, sequence, merchant_id, order_id).to_item()


def _event(
    event_id: str,
    event_type: str,
    *,
    merchant_id: str,
    created_at: int,
    sequence: int,
    data: dict[str, Any],
    order: Order | None,
) -> Event:
    return Event(
        event_id=event_id,
        type=event_type,
        merchant_id=merchant_id,
        sequence=sequence,
        created_at=created_at,
        body=body(event_id, event_type, created_at, sequence, data),
        order_id=order.order_id if order else None,
        order_pk=order.pk if order else None,
        notify_url=order.notify_url if order else None,
    )


def _parts(event: Event) -> list[dict[str, Any]]:
    # none -> pending: event ids are random, so a clash is impossible short of a repeat.
    marker = OutboxMarker(event.event_id, event.created_at, event.sequence, event.merchant_id, event.order_id)
    return [store.put_part(event.to_item()), store.put_part(marker.to_item())]


def for_order(
    order: Order,
    types: list[str],
    *,
    first_sequence: int,
    head: int | None,
    reversed_deposit: dict[str, Any] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Event ids and transaction parts for `types`, reporting `order` as it is after the change
    (the data is the order as GET /v1/payment/order/{orderId} returns it, its confirmations from
    `head`; an order.payment_reversed event adds the deposit taken away as `reversedDeposit`)."""
    if not types:
        return [], []
    data = order_views.to_view(order, head).model_dump(mode="json", by_alias=True)
    now = clock.now_ms()
    ids, parts = [], []
    for offset, event_type in enumerate(types):
        event_id = new_event_id()
        ids.append(event_id)
        extra = {"reversedDeposit": reversed_deposit} if event_type == PAYMENT_REVERSED else {}
        event = _event(
            event_id,
            event_type,
            merchant_id=order.merchant_id,
            created_at=now,
            sequence=first_sequence + offset,
            data={**data, **extra},
            order=order,
        )
        parts += _parts(event)
    return ids, parts


def for_deposit(
    merchant_id: str, data: dict[str, Any], *, event_type: str = UNMATCHED, sequence: int | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """A deposit.unmatched event (sequence 1: a deposit has no earlier events), or the
    deposit.reversed that follows it (sequence 2); a held deposit's events give theirs
    (HELD_SEQUENCE, HOLD_ENDED_SEQUENCE)."""
    event_id = new_event_id()
    if sequence is None:
        sequence = 2 if event_type == DEPOSIT_REVERSED else 1
    event = _event(
        event_id,
        event_type,
        merchant_id=merchant_id,
        created_at=clock.now_ms(),
        sequence=sequence,
        data=data,
        order=None,
    )
    return event_id, _parts(event)


def for_settlement(merchant_id: str, data: dict[str, Any], *, completed: bool) -> tuple[str, list[dict[str, Any]]]:
    """A settlement.completed or settlement.failed event (sequence 1: a settlement ends once)."""
    event_id = new_event_id()
    event = _event(
        event_id,
        SETTLEMENT_COMPLETED if completed else SETTLEMENT_FAILED,
        merchant_id=merchant_id,
        created_at=clock.now_ms(),
        sequence=1,
        data=data,
        order=None,
    )
    return event_id, _parts(event)


def for_refund(order: Order, data: dict[str, Any], *, completed: bool) -> tuple[str, list[dict[str, Any]]]:
    """A refund.completed or refund.failed event (sequence 1: a refund ends once; it is not one of
    the order's numbered events). It goes where the order's events go and is listed under it."""
    event_id = new_event_id()
    event = _event(
        event_id,
        REFUND_COMPLETED if completed else REFUND_FAILED,
        merchant_id=order.merchant_id,
        created_at=clock.now_ms(),
        sequence=1,
        data=data,
        order=order,
    )
    return event_id, _parts(event)


def webhook_test(merchant_id: str, message: str) -> dict[str, Any]:
    """A webhook.test event item (sequence 0: it belongs to no order), sent at once, not queued."""
    event_id = new_event_id()
    return _event(
        event_id,
        TEST,
        merchant_id=merchant_id,
        created_at=clock.now_ms(),
        sequence=0,
        data={"message": message},
        order=None,
    ).to_item()
