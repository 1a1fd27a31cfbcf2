"""Where an order changes state after creation (except cancel, in orders.py).

`apply` reads the order, lets the caller change its deposits or close it, derives the new status
with lifecycle.settle, checks the move is an edge of the state machine, and writes it together
with the caller's other writes and the webhook events the change makes (events.py) in one
transaction, conditional on the version it read:
    <status read> -> <status derived>, only if nobody wrote the order since it was read.
A concurrent writer makes the condition fail; the change is then recomputed on a fresh read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from usdt_gateway import clock, cursor, events, lifecycle, order_views, outbox, store
from usdt_gateway.observability import log_keys, logger, order_keys
from usdt_gateway.records import Order
from usdt_gateway.schemas import OrderStatus

MAX_ATTEMPTS = 8

# Given the order as read, return the order as it must be (or None for "nothing to do") and the
# other writes that belong to the same change.
Change = Callable[[Order], tuple[Order, list[dict[str, Any]]] | None]


@dataclass(frozen=True)
class Applied:
    order: Order | None  # the order as written; None when the change had nothing to do
    old_status: OrderStatus | None = None
    conflict: list[str] | None = None  # reasons of the caller's parts when one of them failed
    events: tuple[str, ...] = ()  # ids of the webhook events the change made

    @property
    def changed(self) -> bool:
        return self.order is not None and self.old_status != self.order.status


def apply(order_pk: str, change: Change, *, reverted: bool = False, reversal: dict[str, Any] | None = None) -> Applied:
    """`reverted`: the change removes a seen payment a reorg took away (order.reverted).
    `reversal`: the change takes away a final payment a deeper reorg removed, this deposit
    (order.payment_reversed, naming it). Every line logged meanwhile carries the order's
    order_id and merchant_id."""
    with log_keys(**order_keys(order_pk)):
        applied = _apply(order_pk, change, reverted=reverted, reversal=reversal)
        if applied.changed and applied.order is not None:
            logger.info(
                "order status changed",
                extra={
                    "from_status": applied.old_status.value if applied.old_status else None,
                    "to_status": applied.order.status.value,
                    "exception": applied.order.exception.value if applied.order.exception else None,
                    "paid_units": applied.order.paid_units,
                    "events": list(applied.events),
                },
            )
        return applied


def _apply(order_pk: str, change: Change, *, reverted: bool, reversal: dict[str, Any] | None) -> Applied:
    # The network's head, for the confirmations in the events' order views: read once per write,
    # not once per retry, and only when an event shows deposits.
    head: int | None = None
    head_read = False
    for _ in range(MAX_ATTEMPTS):
        item = store.get(order_pk, "ORDER")
        if item is None:
            raise LookupError(f"order {order_pk} is missing")
        order = Order.from_item(item)
        result = change(order)
        if result is None:
            return Applied(None)
        new, parts = result
        settled = lifecycle.settle(new)
        lifecycle.check_transition(order.status, settled.status)
        confirmed_at = order.confirmed_at
        if settled.status != OrderStatus.CONFIRMED:
            confirmed_at = None  # a reversal can take a confirmed order's payment away
        elif confirmed_at is None:
            confirmed_at = clock.now_ms()
        updated = replace(
            new,
            status=settled.status,
            exception=settled.exception,
            paid_units=settled.paid_units,
            seen_units=settled.seen_units,
            excess_units=settled.excess_units,
            txid=settled.first_txid,
            confirmed_at=confirmed_at,
            version=order.version + 1,
            updated_at=clock.now_ms(),
        )
        # The change's webhook events, in the same transaction: no change without its events.
        types = events.order_event_types(order, updated, reverted=reverted, reversal=reversal is not None)
        updated = replace(updated, event_seq=order.event_seq + len(types))
        if types and not head_read and order_views.needs_head(updated):
            head, head_read = cursor.view_head(updated.network), True
        event_ids, event_parts = events.for_order(
            updated,
            types,
            first_sequence=order.event_seq + 1,
            head=head,
            reversed_deposit=reversal,
        )
        write = store.set_part(
            order_pk,
            "ORDER",
            set_values=updated.change_fields(),
            # <status read> -> <status derived>, only from the version read.
            condition="#cst = :from AND #cv = :v",
            names={"#cst": "status", "#cv": "version"},
            values={":from": order.status.value, ":v": order.version},
        )
        try:
            store.transact([*parts, *event_parts, write])
        except store.TransactionConflict as conflict:
            mine = conflict.reasons[: len(parts)]
            if "ConditionalCheckFailed" in mine:
                return Applied(None, order.status, mine)
            continue  # the order moved under us: recompute from a fresh read
        outbox.publish(event_ids)
        return Applied(updated, order.status, events=tuple(event_ids))
    raise RuntimeError(f"order {order_pk} kept changing under concurrent writers")
