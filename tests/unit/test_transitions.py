"""transitions.apply against an in-memory table: a write that loses a race is recomputed on a
fresh read of the order, and reads the network's head (for its events' confirmations) once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from usdt_gateway import outbox, store, transitions
from usdt_gateway.records import Order, OrderDeposit
from usdt_gateway.schemas import OrderStatus

ORDER_PK, _ = store.order_key("m-1", "o-1")
CURSOR_PK, _ = store.cursor_key("tron")


def stored_order() -> dict[str, Any]:
    return {
        "merchantId": "m-1",
        "orderId": "o-1",
        "publicId": "p_1",
        "paymentUrl": "https://pay.example/pay/p_1",
        "network": "tron",
        "chainId": 728126428,
        "tokenContract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "decimals": 6,
        "amountUnits": 100_000_000,
        "requestedUnits": 100_000_000,
        "address": "TXYZ",
        "paymentUri": "TXYZ",
        "qrCodeData": "data:image/png;base64,",
        "status": "pending",
        "expiresAt": 2_000,
        "createdAt": 1_000,
        "version": 3,
        "eventSeq": 0,
    }


class Table:
    """The order and the tron cursor; the first `races` transactions lose to a concurrent writer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, races: int) -> None:
        self.reads: list[str] = []
        self.written: list[list[dict[str, Any]]] = []
        self.races = races
        monkeypatch.setattr(store, "get", self.get)
        monkeypatch.setattr(store, "put_part", lambda item, **_: {"Put": item})
        monkeypatch.setattr(store, "set_part", lambda pk, sk, *, set_values, **_: {"Update": (pk, set_values)})
        monkeypatch.setattr(store, "transact", self.transact)
        monkeypatch.setattr(outbox, "publish", lambda ids: [])

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        self.reads.append(pk)
        return stored_order() if pk == ORDER_PK else {"head": 1_020} if pk == CURSOR_PK else None

    def transact(self, parts: list[dict[str, Any]]) -> None:
        if self.races:
            self.races -= 1
            raise store.TransactionConflict(["None"] * (len(parts) - 1) + ["TransactionConflict"], [None] * len(parts))
        self.written.append(parts)


def seen_payment(order: Order) -> tuple[Order, list[dict[str, Any]]]:
    deposit = OrderDeposit("0xab", 0, 100_000_000, 1_000, "0xb1", 1_500, "TPAYER", final=False)
    return replace(order, deposits={deposit.key: deposit}), []


def test_a_write_that_lost_a_race_reads_the_order_again_and_the_head_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an order whose first two writes lose to concurrent writers
    table = Table(monkeypatch, races=2)
    # When a payment is seen for it
    applied = transitions.apply(ORDER_PK, seen_payment)
    # Then the change is recomputed on three reads of the order, and the head is read once
    assert table.reads.count(ORDER_PK) == 3
    assert table.reads.count(CURSOR_PK) == 1
    # And the write that commits is the order's next version, its event showing the confirmations
    assert applied.order is not None and applied.order.status == OrderStatus.CONFIRMING
    assert applied.order.version == 4 and applied.order.event_seq == 1
    (parts,) = table.written
    event = next(p["Put"] for p in parts if "Put" in p and p["Put"].get("type") == "order.confirming")
    assert '"confirmations":21' in event["body"]


def test_a_change_without_deposits_reads_no_head(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an order that is closed with nothing received
    table = Table(monkeypatch, races=1)
    # When it expires
    applied = transitions.apply(ORDER_PK, lambda order: (replace(order, closed_at=2_001), []))
    # Then its order.expired event needs no confirmations, so the cursor is never read
    assert applied.order is not None and applied.order.status == OrderStatus.EXPIRED
    assert table.reads.count(CURSOR_PK) == 0
