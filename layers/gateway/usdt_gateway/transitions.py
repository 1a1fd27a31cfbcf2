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
from dataclasses import dataclass
from typing import Any

from usdt_gateway import clock, events, lifecycle, outbox, store
from usdt_gateway.observability import log_keys, logger, order_keys
from usdt_gateway.schemas import OrderStatus

MAX_ATTEMPTS = 8

Order = dict[str, Any]
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
        return self.order is not None and self.old_status != self.order["status"]


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
                    "to_status": applied.order["status"],
                    "exception": applied.order.get("exception"),
                    "paid_units": applied.order.get("paidUnits"),
                    "events": list(applied.events),
                },
            )
        return applied


def _apply(order_pk: str, change: Change, *, reverted: bool, reversal: dict[str, Any] | None) -> Applied:
    for _ in range(MAX_ATTEMPTS):
        order = store.get(order_pk, "ORDER")
        if order is None:
            raise LookupError(f"order {order_pk} is missing")
        result = change(order)
        if result is None:
            return Applied(None)
        new, parts = result
        settled = lifecycle.settle(new)
        old_status = OrderStatus(order["status"])
        lifecycle.check_transition(old_status, settled.status)
        confirmed_at = order.get("confirmedAt")
        if settled.status != OrderStatus.CONFIRMED:
            confirmed_at = None  # a reversal can take a confirmed order's payment away
        elif confirmed_at is None:
            confirmed_at = clock.now_ms()
        fields = {
            "deposits": new.get("deposits") or {},
            "closedAt": new.get("closedAt"),
            "status": settled.status.value,
            "exception": settled.exception.value if settled.exception else None,
            "paidUnits": settled.paid_units,
            "seenUnits": settled.seen_units,
            "excessUnits": settled.excess_units,
            "txid": settled.first_txid,
            "confirmedAt": confirmed_at,
            "version": int(order.get("version") or 0) + 1,
            "updatedAt": clock.now_ms(),
        }
        # The change's webhook events, in the same transaction: no change without its events.
        types = events.order_event_types(order, {**order, **fields}, reverted=reverted, reversal=reversal is not None)
        sequence = int(order.get("eventSeq") or 0)
        fields["eventSeq"] = sequence + len(types)
        event_ids, event_parts = events.for_order(
            {**order, **fields}, types, first_sequence=sequence + 1, reversed_deposit=reversal
        )
        write = store.set_part(
            order_pk,
            "ORDER",
            set_values=fields,
            # <status read> -> <status derived>, only from the version read.
            condition="#cst = :from AND #cv = :v",
            names={"#cst": "status", "#cv": "version"},
            values={":from": old_status.value, ":v": int(order.get("version") or 0)},
        )
        try:
            store.transact([*parts, *event_parts, write])
        except store.TransactionConflict as conflict:
            mine = conflict.reasons[: len(parts)]
            if "ConditionalCheckFailed" in mine:
                return Applied(None, old_status, mine)
            continue  # the order moved under us: recompute from a fresh read
        outbox.publish(event_ids)
        return Applied({**order, **fields}, old_status, events=tuple(event_ids))
    raise RuntimeError(f"order {order_pk} kept changing under concurrent writers")
