"""What a refund may send (settlement/refunds.py `refundable`): the money on the deposit address
(its candidates) less what the order took and is still there; and where the order's money reads
(`funds`) once refunds completed. Pure: records in, units or a refusal out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from usdt_gateway.errors import Conflict
from usdt_gateway.order_views import funds
from usdt_gateway.records import Order
from usdt_gateway.schemas import FundsLocation, OrderStatus
from usdt_gateway.settlement.candidates import Candidate
from usdt_gateway.settlement.refunds import MAX_HELD, refundable

NOW = 1_800_000_000_000
HOUR = 3_600_000
ADDRESS = "0x" + "ab" * 20
ORDER_PK = "ORDER#m#o"


def order(status: str, paid: int, **changes: Any) -> Order:
    base = Order(
        merchant_id="m",
        order_id="o",
        public_id="p",
        network="eth",
        chain_id=1,
        token_contract="0x" + "cd" * 20,
        decimals=6,
        amount_units=100,
        requested_units=100,
        tolerance_units=0,
        address=ADDRESS,
        payment_uri="uri",
        status=OrderStatus(status),
        expires_at=NOW - 2 * HOUR,
        created_at=NOW - 3 * HOUR,
        watch_until=NOW - HOUR,  # its late-payment window ended an hour ago
        paid_units=paid,
        excess_units=max(0, paid - 100) if status == "confirmed" else 0,
        deposit_salt="0x" + "01" * 32,
        deposit_factory="0x" + "fa" * 20,
    )
    return replace(base, **changes)


def candidate(units: int, *, own: bool = True, n: int = 0, **changes: Any) -> Candidate:
    return Candidate(
        network="eth",
        merchant_id="m",
        address=ADDRESS,
        txid=f"0x{n:064x}",
        log_index=0,
        units=units,
        order_pk=ORDER_PK if own else None,
        factory="0x" + "fa" * 20,
        salt="0x" + "01" * 32,
        token="0x" + "cd" * 20,
        credited_at=NOW - HOUR,
        **changes,
    )


@pytest.mark.parametrize(
    ("the_order", "on_address", "units"),
    [
        # confirmed, paid 130 of 100: the 30 overpaid
        (order("confirmed", 130), [candidate(130)], 30),
        # confirmed within the tolerance (98 of 100): it took all of it
        (order("confirmed", 98, tolerance_units=2), [candidate(98)], None),
        # confirmed and swept, then 7 more arrived (no order took them): the 7
        (order("confirmed", 100, swept_units=100), [candidate(7, own=False)], 7),
        # confirmed in two payments, the first 60 swept before the second 50: 10 of the 50
        (order("confirmed", 110, swept_units=60), [candidate(50)], 10),
        # an overpayment of 5 already refunded: nothing more
        (order("confirmed", 105, refunded_units=5, refunded_paid_units=5), [candidate(100)], None),
        # failed (40 of 100), its window over: all 40
        (order("failed", 40), [candidate(40)], 40),
        # failed, inside its window: a top-up may still make it paid; unmatched money only
        (order("failed", 40, watch_until=NOW + HOUR), [candidate(40), candidate(3, own=False, n=1)], 3),
        # underpaid (still open): the same
        (order("underpaid", 40, watch_until=NOW + HOUR), [candidate(40)], None),
        # cancelled, paid to anyway (unmatched): all of it
        (order("cancelled", 0), [candidate(12, own=False)], 12),
        # expired with nothing credited, late money unmatched: all of it
        (order("expired", 0), [candidate(9, own=False)], 9),
    ],
)
def test_the_refundable_is_what_is_on_the_address_less_what_the_order_took(
    the_order: Order, on_address: list[Candidate], units: int | None
) -> None:
    if units is None:
        with pytest.raises(Conflict) as refused:
            refundable(the_order, on_address, now=NOW)
        assert refused.value.code == "REFUND_NOT_AVAILABLE"
    else:
        assert refundable(the_order, on_address, now=NOW).units == units


@pytest.mark.parametrize(
    ("the_order", "on_address", "says"),
    [
        (order("confirmed", 130, sweeping_id="stl_1"), [candidate(130)], "sweep is carrying"),
        (order("confirmed", 130), [candidate(130, sweep_id="stl_1")], "sweep is carrying"),
        (order("confirmed", 130, swept_units=130), [], "swept to the treasury"),
        (order("confirmed", 100), [candidate(100)], "took all"),
        (order("underpaid", 40, watch_until=NOW + HOUR), [candidate(40)], "may still be paid in full"),
        (
            order("confirmed", 100),
            [candidate(100), *(candidate(1, own=False, n=i + 1) for i in range(MAX_HELD))],
            "more than one refund",
        ),
    ],
)
def test_a_refusal_says_why(the_order: Order, on_address: list[Candidate], says: str) -> None:
    with pytest.raises(Conflict, match=says) as refused:
        refundable(the_order, on_address, now=NOW)
    assert refused.value.code == "REFUND_NOT_AVAILABLE"
    if "swept" in says or "carrying" in says:
        assert "treasury" in refused.value.message


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({}, FundsLocation.ON_DEPOSIT_ADDRESS),
        ({"sweeping_id": "stl_1"}, FundsLocation.SWEEPING),
        ({"swept_units": 130}, FundsLocation.SWEPT),
        # 30 refunded of 130, the rest on the address, then swept
        ({"refunded_units": 30, "refunded_paid_units": 30}, FundsLocation.ON_DEPOSIT_ADDRESS),
        ({"refunded_units": 30, "refunded_paid_units": 30, "swept_units": 100}, FundsLocation.SWEPT),
        # all of it refunded, nothing else had reached the address
        ({"refunded_units": 130, "refunded_paid_units": 130, "refunded_all": True}, FundsLocation.REFUNDED),
        # all of its own refunded, but unmatched money was left on the address then
        ({"refunded_units": 130, "refunded_paid_units": 130}, FundsLocation.ON_DEPOSIT_ADDRESS),
        # everything refunded once, then a payment credited to it after
        ({"refunded_units": 130, "refunded_paid_units": 120, "refunded_all": True}, FundsLocation.ON_DEPOSIT_ADDRESS),
    ],
)
def test_funds_read_where_the_orders_money_went(changes: dict[str, Any], where: FundsLocation) -> None:
    assert funds(order("confirmed", 130, **changes)) is where


def test_funds_of_unmatched_money_refunded_read_refunded_and_other_modes_none() -> None:
    stray = order("expired", 0, refunded_units=9, refunded_all=True)
    assert funds(stray) is FundsLocation.REFUNDED
    assert funds(order("expired", 0)) is None
    assert funds(order("confirmed", 100, deposit_salt=None)) is None
