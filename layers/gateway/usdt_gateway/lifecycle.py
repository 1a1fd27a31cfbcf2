"""The order state machine (docs/order-states.md), as pure functions.

An order's status is derived from its deposits, never patched: `settle` computes what the status
must be from the final and not-yet-final deposits, the amount, the tolerance and whether the
order is closed (the chain's final blocks have passed its expiry). Writers then store the result
under a condition on the version they read, so concurrent writers (scanner, expiry, cancel,
attach) serialize, and `check_transition` refuses any move the diagram does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usdt_gateway.schemas import OrderException, OrderStatus

S = OrderStatus

# Every edge of docs/order-states.md. A status may also stay as it is.
ALLOWED: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (S.PENDING, S.CONFIRMING),  # payment seen
        (S.PENDING, S.CONFIRMED),  # payment found already final (backfill, attach)
        (S.PENDING, S.UNDERPAID),  # partial payment found already final
        (S.PENDING, S.EXPIRED),  # expiry passed with nothing received
        (S.PENDING, S.CANCELLED),  # merchant cancels
        (S.CONFIRMING, S.CONFIRMED),  # final, in full
        (S.CONFIRMING, S.UNDERPAID),  # final, partial
        (S.CONFIRMING, S.PENDING),  # the seen payment was removed by a reorg
        (S.CONFIRMING, S.EXPIRED),  # reorg removed the payment of a closed order
        (S.CONFIRMING, S.FAILED),  # closed, final sum below the amount
        (S.UNDERPAID, S.CONFIRMING),  # top-up seen
        (S.UNDERPAID, S.CONFIRMED),  # top-up found already final
        (S.UNDERPAID, S.FAILED),  # expiry passed without the rest
        (S.EXPIRED, S.CONFIRMING),  # late payment seen inside the grace window
        (S.EXPIRED, S.CONFIRMED),  # late payment found final inside the grace window
        (S.EXPIRED, S.FAILED),  # late partial payment found final
        (S.FAILED, S.CONFIRMING),  # late top-up seen inside the grace window
        (S.FAILED, S.CONFIRMED),  # late top-up found final
        # A reorg deeper than the network's finality took a final payment away (order.payment_reversed):
        (S.CONFIRMED, S.PENDING),  # nothing left
        (S.CONFIRMED, S.CONFIRMING),  # what is left is not final (or the payment came back, not final yet)
        (S.CONFIRMED, S.UNDERPAID),  # part left, order still open
        (S.CONFIRMED, S.EXPIRED),  # nothing left, order closed
        (S.CONFIRMED, S.FAILED),  # part left, order closed
        (S.UNDERPAID, S.PENDING),  # the partial payment taken away
        (S.FAILED, S.EXPIRED),  # the partial payment of a closed order taken away
    }
)

# Statuses in which an order still takes deposits (closed ones only inside the grace window).
ACCEPTING = frozenset({S.PENDING, S.CONFIRMING, S.UNDERPAID, S.EXPIRED, S.FAILED})


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


def settle(order: dict[str, Any]) -> Settled:
    """The status an order must have given its deposits (`deposits` map of the order item)."""
    # A reversed deposit (a deep reorg took it away) stays listed but counts for nothing.
    deposits = sorted(
        (d for d in (order.get("deposits") or {}).values() if not d.get("reversed")),
        key=lambda d: (d["blockNumber"], d["logIndex"]),
    )
    final = [d for d in deposits if d["final"]]
    paid = sum(int(d["units"]) for d in final)
    seen = sum(int(d["units"]) for d in deposits if not d["final"])
    amount = int(order["amountUnits"])
    tolerance = int(order.get("toleranceUnits") or 0)
    closed = order.get("closedAt") is not None
    late = any(int(d["blockTime"]) > int(order["expiresAt"]) for d in final)
    excess = max(0, paid - amount)
    exception: OrderException | None = None
    if order["status"] == S.CANCELLED:
        status = S.CANCELLED
    elif paid > 0 and paid >= amount - tolerance:
        status = S.CONFIRMED
        exception = OrderException.PAID_LATE if late else OrderException.OVERPAID if excess else None
    elif seen:
        status = S.CONFIRMING
    elif paid:
        status = S.FAILED if closed else S.UNDERPAID
    else:
        status = S.EXPIRED if closed else S.PENDING
    return Settled(status, exception, paid, seen, excess, final[0]["txid"] if final else None)
