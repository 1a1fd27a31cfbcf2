"""The order state machine: lifecycle.settle derives the status from deposits, and the edges the
code allows are exactly those drawn in docs/order-states.md."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from usdt_gateway.lifecycle import ALLOWED, IllegalTransition, check_transition, settle
from usdt_gateway.records import Order, OrderDeposit
from usdt_gateway.schemas import OrderException, OrderStatus

DOC = Path(__file__).resolve().parents[2] / "docs" / "order-states.md"
EXPIRES = 1_000_000


def order(status: str = "pending", *deposits: OrderDeposit, closed: bool = False, tolerance: int = 0) -> Order:
    return Order(
        merchant_id="m",
        order_id="o",
        public_id="p",
        network="tron",
        chain_id=728126428,
        token_contract="T",
        decimals=6,
        amount_units=100,
        requested_units=100,
        tolerance_units=tolerance,
        address="A",
        payment_uri="A",
        status=OrderStatus(status),
        expires_at=EXPIRES,
        created_at=1,
        closed_at=EXPIRES + 1 if closed else None,
        deposits={f"{i}": d for i, d in enumerate(deposits)},
    )


def dep(units: int, *, final: bool, at: int = EXPIRES - 10, block: int = 1) -> OrderDeposit:
    return OrderDeposit(
        txid=f"t{block}-{units}",
        log_index=0,
        units=units,
        block_number=block,
        block_hash=None,
        block_time=at,
        sender="S",
        final=final,
    )


def test_allowed_edges_are_the_documented_diagram() -> None:
    edges = set(re.findall(r"^\s+(\w+) --> (\w+):", DOC.read_text(), flags=re.M))
    documented = {(OrderStatus(a), OrderStatus(b)) for a, b in edges}
    assert documented == set(ALLOWED)


@pytest.mark.parametrize(
    ("case", "expected", "exception"),
    [
        (order(), "pending", None),
        (order("pending", dep(100, final=False)), "confirming", None),
        (order("confirming", dep(100, final=True)), "confirmed", None),
        (order("confirming", dep(60, final=True)), "underpaid", None),
        (order("underpaid", dep(60, final=True), dep(40, final=False, block=2)), "confirming", None),
        (order("confirming", dep(60, final=True), dep(50, final=True, block=2)), "confirmed", "overpaid"),
        (order("confirming", dep(99, final=True), tolerance=1), "confirmed", None),
        (order("confirming", dep(98, final=True), tolerance=1), "underpaid", None),
        (order("pending", closed=True), "expired", None),
        (order("underpaid", dep(60, final=True), closed=True), "failed", None),
        (order("expired", dep(100, final=True, at=EXPIRES + 5), closed=True), "confirmed", "paid_late"),
        (order("expired", dep(120, final=True, at=EXPIRES + 5), closed=True), "confirmed", "paid_late"),
        (order("confirming", dep(100, final=True, at=EXPIRES), closed=True), "confirmed", None),
        (order("cancelled"), "cancelled", None),
    ],
)
def test_settle_derives_the_status(case: Order, expected: str, exception: str | None) -> None:
    settled = settle(case)
    assert settled.status == expected
    assert (settled.exception.value if settled.exception else None) == exception


def test_settle_sums_final_and_pending_apart() -> None:
    s = settle(order("confirming", dep(30, final=True, block=1), dep(50, final=False, block=2)))
    assert (s.paid_units, s.seen_units, s.excess_units, s.first_txid) == (30, 50, 0, "t1-30")


def test_moves_outside_the_diagram_are_refused() -> None:
    check_transition(OrderStatus.CONFIRMED, OrderStatus.CONFIRMED)  # staying is always allowed
    for old, new in [
        ("cancelled", "pending"),
        ("cancelled", "confirming"),
        ("pending", "failed"),
        ("expired", "pending"),
    ]:
        with pytest.raises(IllegalTransition):
            check_transition(OrderStatus(old), OrderStatus(new))


@pytest.mark.parametrize(
    ("case", "expected", "pending"),
    [
        # open: a held deposit is a payment on its way
        (order("confirming", replace(dep(100, final=False), held=True)), "confirming", 100),
        # closed: it counts for nothing, so the order expires (or fails) as it would without it
        (order("confirming", replace(dep(100, final=False), held=True), closed=True), "expired", 0),
        (
            order("confirming", dep(40, final=True), replace(dep(60, final=False, block=2), held=True), closed=True),
            "failed",
            0,
        ),
        # a deposit seen, not held, still keeps a closed order confirming
        (order("confirming", dep(100, final=False), closed=True), "confirming", 100),
    ],
)
def test_a_held_deposit_never_keeps_an_order_from_closing(case: Order, expected: str, pending: int) -> None:
    settled = settle(case)
    assert (settled.status.value, settled.seen_units) == (expected, pending)
    check_transition(case.status, settled.status)


def test_a_held_deposit_credited_after_its_order_closed_is_paid_late() -> None:
    settled = settle(order("expired", replace(dep(100, final=True), late=True), closed=True))
    assert (settled.status.value, settled.exception) == ("confirmed", OrderException.PAID_LATE)
    check_transition(OrderStatus.EXPIRED, settled.status)
