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
    deposit.reversed  an unmatched deposit was removed by a reorg deeper than the finality
Each order event carries the order's `sequence`, one more than its previous event's, so a
receiver can drop stale or out-of-order deliveries, and the whole order after the change (`paid`
included): the events of one change carry the same order, so whichever of them a receiver accepts
tells it everything, even when it drops the others as stale.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from usdt_gateway import clock, store
from usdt_gateway.schemas import OrderException, OrderStatus

S = OrderStatus
STATUS_EVENTS = {
    S.CONFIRMING: "order.confirming",
    S.CONFIRMED: "order.confirmed",
    S.UNDERPAID: "order.underpaid",
    S.EXPIRED: "order.expired",
    S.FAILED: "order.failed",
    S.CANCELLED: "order.cancelled",
}
REVERTED = "order.reverted"
PAYMENT_REVERSED = "order.payment_reversed"
UNMATCHED = "deposit.unmatched"
DEPOSIT_REVERSED = "deposit.reversed"
TEST = "webhook.test"  # POST /v1/webhooks/test
PAID_LATE = "order.paid_late"
OVERPAID = "order.overpaid"
ORDER_EVENT_TYPES = (*STATUS_EVENTS.values(), PAID_LATE, OVERPAID, REVERTED, PAYMENT_REVERSED)
EVENT_TYPES = (*ORDER_EVENT_TYPES, UNMATCHED, DEPOSIT_REVERSED)

Item = dict[str, Any]


def new_event_id() -> str:
    return "evt_" + secrets.token_urlsafe(16)


def order_event_types(old: Item, new: Item, *, reverted: bool = False, reversal: bool = False) -> list[str]:
    """The events an order's change from `old` to `new` makes, in the order they happen.
    `reversal`: a final payment was taken away (always announced, whatever the status does)."""
    types = [REVERTED] if reverted else []
    if reversal:
        types.append(PAYMENT_REVERSED)
    old_status, new_status = S(old["status"]), S(new["status"])
    if new_status != old_status:
        if new_status in STATUS_EVENTS:
            types.append(STATUS_EVENTS[new_status])
    elif new_status in (S.UNDERPAID, S.FAILED) and _units(new, "paidUnits") > _units(old, "paidUnits"):
        types.append(STATUS_EVENTS[new_status])  # more arrived, still short
    if new.get("exception") == OrderException.PAID_LATE and old.get("exception") != OrderException.PAID_LATE:
        types.append(PAID_LATE)
    # From the excess, not `exception`: a late overpayment is both, and paid_late takes `exception`.
    if _units(new, "excessUnits") > _units(old, "excessUnits"):
        types.append(OVERPAID)
    return types


def _units(order: Item, name: str) -> int:
    return int(order.get(name) or 0)


def body(event_id: str, event_type: str, created_at: int, sequence: int, data: dict[str, Any]) -> str:
    """The JSON body the merchant receives, byte for byte the same on every attempt."""
    return json.dumps(
        {"id": event_id, "type": event_type, "createdAt": created_at, "sequence": sequence, "data": data},
        separators=(",", ":"),
    )


def index_sk(created_at: int, sequence: int, event_id: str) -> str:
    return f"{created_at:013d}#{sequence:08d}#{event_id}"  # one change's events stay in their order


def outbox_marker(
    event_id: str, at: int, sequence: int, *, merchant_id: str | None = None, order_id: str | None = None
) -> Item:
    """The OUTBOX marker that stays until SQS has taken the event (the sweeper's work list); the
    merchant and order are there for the sweeper's log lines."""
    pk, sk = store.outbox_key(event_id)
    return {
        "pk": pk,
        "sk": sk,
        "eventId": event_id,
        "gsi1pk": store.OUTBOX_INDEX_PK,
        "gsi1sk": index_sk(at, sequence, event_id),
        "merchantId": merchant_id,
        "orderId": order_id,
    }


def _item(
    event_id: str,
    event_type: str,
    *,
    merchant_id: str,
    created_at: int,
    sequence: int,
    data: dict[str, Any],
    order: Item | None,
) -> Item:
    pk, sk = store.event_key(event_id)
    return {
        "pk": pk,
        "sk": sk,
        "eventId": event_id,
        "type": event_type,
        "merchantId": merchant_id,
        "orderId": order["orderId"] if order else None,
        "orderPk": order["pk"] if order else None,
        "notifyUrl": order.get("notifyUrl") if order else None,
        "sequence": sequence,
        "createdAt": created_at,
        "body": body(event_id, event_type, created_at, sequence, data),
        "deliveryStatus": "pending",
        "attemptCount": 0,
        "gsi1pk": store.events_index_pk(merchant_id),
        "gsi1sk": index_sk(created_at, sequence, event_id),
    }


def _parts(
    event_id: str,
    event_type: str,
    *,
    merchant_id: str,
    created_at: int,
    sequence: int,
    data: dict[str, Any],
    order: Item | None,
) -> list[dict[str, Any]]:
    event = _item(
        event_id, event_type, merchant_id=merchant_id, created_at=created_at, sequence=sequence, data=data, order=order
    )
    # none -> pending: event ids are random, so a clash is impossible short of a repeat.
    marker = outbox_marker(event_id, created_at, sequence, merchant_id=merchant_id, order_id=event["orderId"])
    return [store.put_part(event), store.put_part(marker)]


def for_order(
    order: Item, types: list[str], *, first_sequence: int, reversed_deposit: dict[str, Any] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Event ids and transaction parts for `types`, reporting `order` as it is after the change
    (the data is the order as GET /v1/payment/order/{orderId} returns it; an
    order.payment_reversed event adds the deposit taken away as `reversedDeposit`)."""
    if not types:
        return [], []
    from usdt_gateway.orders import scan_head, to_view  # orders imports the event writers' callers

    data = to_view(order, scan_head(order)).model_dump(mode="json", by_alias=True)
    now = clock.now_ms()
    ids, parts = [], []
    for offset, event_type in enumerate(types):
        event_id = new_event_id()
        ids.append(event_id)
        extra = {"reversedDeposit": reversed_deposit} if event_type == PAYMENT_REVERSED else {}
        parts += _parts(
            event_id,
            event_type,
            merchant_id=order["merchantId"],
            created_at=now,
            sequence=first_sequence + offset,
            data={**data, **extra},
            order=order,
        )
    return ids, parts


def for_deposit(
    merchant_id: str, data: dict[str, Any], *, event_type: str = UNMATCHED
) -> tuple[str, list[dict[str, Any]]]:
    """A deposit.unmatched event (sequence 1: a deposit has no earlier events), or the
    deposit.reversed that follows it (sequence 2)."""
    event_id = new_event_id()
    sequence = 2 if event_type == DEPOSIT_REVERSED else 1
    return event_id, _parts(
        event_id,
        event_type,
        merchant_id=merchant_id,
        created_at=clock.now_ms(),
        sequence=sequence,
        data=data,
        order=None,
    )


def webhook_test(merchant_id: str, message: str) -> Item:
    """A webhook.test event item (sequence 0: it belongs to no order), sent at once, not queued."""
    event_id = new_event_id()
    return _item(
        event_id,
        TEST,
        merchant_id=merchant_id,
        created_at=clock.now_ms(),
        sequence=0,
        data={"message": message},
        order=None,
    )
