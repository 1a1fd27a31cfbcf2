"""The order state machine (docs/order-states.md), as pure functions.

An order's status is derived from its deposits, never patched: `settle` computes what the status
must be from the final and not-yet-final deposits, the amount, the tolerance and whether the
order is closed (the chain's final blocks have passed its expiry). Writers then store the result
under a condition on the version they read, so concurrent writers (scanner, expiry, cancel,
attach) serialize, and `check_transition` refuses any move the diagram does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

from usdt_gateway.records import Order
from usdt_gateway.schemas import OrderException, OrderStatus

# Every edge of docs/order-states.md. A status may also stay as it is.
ALLOWED: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (OrderStatus.PENDING, OrderStatus.CONFIRMING),  # payment seen
        (OrderStatus.PENDING, OrderStatus.CONFIRMED),  # payment found already final (backfill, attach)
        (OrderStatus.PENDING, OrderStatus.UNDERPAID),  # partial payment found already final
        (OrderStatus.PENDING, OrderStatus.EXPIRED),  # expiry passed with nothing received
        (OrderStatus.PENDING, OrderStatus.CANCELLED),  # merchant cancels
        (OrderStatus.CONFIRMING, OrderStatus.CONFIRMED),  # final, in full
        (OrderStatus.CONFIRMING, OrderStatus.UNDERPAID),  # final, partial
        (OrderStatus.CONFIRMING, OrderStatus.PENDING),  # the seen payment was removed by a reorg
        (OrderStatus.CONFIRMING, OrderStatus.EXPIRED),  # reorg removed the payment of a closed order
        (OrderStatus.CONFIRMING, OrderStatus.FAILED),  # closed, final sum below the amount
        (OrderStatus.UNDERPAID, OrderStatus.CONFIRMING),  # top-up seen
        (OrderStatus.UNDERPAID, OrderStatus.CONFIRMED),  # top-up found already final
        (OrderStatus.UNDERPAID, OrderStatus.FAILED),  # expiry passed without the rest
        (OrderStatus.EXPIRED, OrderStatus.CONFIRMING),  # late payment seen inside the grace window
        (OrderStatus.EXPIRED, OrderStatus.CONFIRMED),  # late payment found final inside the grace window
        (OrderStatus.EXPIRED, OrderStatus.FAILED),  # late partial payment found final
        (OrderStatus.FAILED, OrderStatus.CONFIRMING),  # late top-up seen inside the grace window
        (OrderStatus.FAILED, OrderStatus.CONFIRMED),  # late top-up found final
        # A reorg deeper than the network's finality took a final payment away (order.payment_reversed):
        (OrderStatus.CONFIRMED, OrderStatus.PENDING),  # nothing left
        # what is left is not final (or the payment came back, not final yet)
        (OrderStatus.CONFIRMED, OrderStatus.CONFIRMING),
        (OrderStatus.CONFIRMED, OrderStatus.UNDERPAID),  # part left, order still open
        (OrderStatus.CONFIRMED, OrderStatus.EXPIRED),  # nothing left, order closed
        (OrderStatus.CONFIRMED, OrderStatus.FAILED),  # part left, order closed
        (OrderStatus.UNDERPAID, OrderStatus.PENDING),  # the partial payment taken away
        (OrderStatus.FAILED, OrderStatus.EXPIRED),  # the partial payment of a closed order taken away
    }
)

# Statuses in which an order still takes deposits (closed ones only inside the grace window).
ACCEPTING = frozenset(
    {OrderStatus.PENDING, OrderStatus.CONFIRMING, OrderStatus.UNDERPAID, OrderStatus.EXPIRED, OrderStatus.FAILED}
)


class IllegalTransition(RuntimeError):
    pass


def check_transition(old: OrderStatus, new: OrderStatus) -> None:
    if old != new and (old, new) not in ALLOWED:
        raise IllegalTransition(f"{old} -> {new} is not in the order state machine")


@dataclass(frozen=True)
class Settled:
    status: OrderStatus
    exception: OrderException | None
    paid_units: int  # final deposits
    seen_units: int  # deposits seen but not final yet
    excess_units: int
    first_txid: str | None


def settle(order: Order) -> Settled:
    """The status an order must have given its deposits (`deposits` map of the order item)."""
    # A reversed deposit (a deep reorg took it away) stays listed but counts for nothing.
    deposits = sorted(
        (d for d in order.deposits.values() if not d.reversed), key=lambda d: (d.block_number, d.log_index)
    )
    closed = order.closed_at is not None
    final = [d for d in deposits if d.final]
    paid = sum(d.units for d in final)
    # A held deposit (unverified or disputed) keeps an open order confirming, as a payment on its
    # way; once the order closes it counts for nothing, so it never keeps an order from expiring.
    seen = sum(d.units for d in deposits if not d.final and not (d.held and closed))
    amount = order.amount_units
    tolerance = order.tolerance_units
    late = any(d.block_time > order.expires_at or d.late for d in final)
    excess = max(0, paid - amount)
    exception: OrderException | None = None
    if order.status == OrderStatus.CANCELLED:
        status = OrderStatus.CANCELLED
    elif paid > 0 and paid >= amount - tolerance:
        status = OrderStatus.CONFIRMED
        exception = OrderException.PAID_LATE if late else OrderException.OVERPAID if excess else None
    elif seen:
        status = OrderStatus.CONFIRMING
    elif paid:
        status = OrderStatus.FAILED if closed else OrderStatus.UNDERPAID
    else:
        status = OrderStatus.EXPIRED if closed else OrderStatus.PENDING
    return Settled(status, exception, paid, seen, excess, final[0].txid if final else None)
