"""Where an order is closed at expiry.

An order closes when the network's final cursor has passed its expiry: every block with a time
before `expiresAt` has then been scanned final, so a payment made in time is already counted,
however late it was found. Closing sets `closedAt`; lifecycle.settle then turns `pending` into
`expired` and `underpaid` into `failed`, and leaves a confirming order to its pending payment.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from usdt_gateway import clock, store, transitions
from usdt_gateway.records import Order
from usdt_gateway.transitions import Applied
from usdt_gateway.watchlist import WatchEntry


def close(entry: WatchEntry, network: str) -> Applied:
    watch_pk, _ = store.watch_key(network, 0, "")
    # watched -> closed: the scanner stops considering the entry for expiry.
    mark = store.set_part(watch_pk, entry.sk, set_values={"closed": True}, condition="attribute_exists(pk)")

    def change(order: Order) -> tuple[Order, list[dict[str, Any]]]:
        return replace(order, closed_at=order.closed_at or clock.now_ms()), [mark]

    return transitions.apply(entry.order_pk, change)
