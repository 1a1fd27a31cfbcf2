"""The typed records write back exactly the items they read: the same attribute names and types
as stored before there were records, so existing tables read and write unchanged."""

from __future__ import annotations

from typing import Any

from usdt_gateway import store
from usdt_gateway.records import Deposit, DepositStatus, Event, LedgerEntry, Order, OrderDeposit, OutboxMarker

# The attributes of an order as created (before its first state change), in DynamoDB's terms.
CREATED_ORDER_ATTRIBUTES = {
    "pk",
    "sk",
    "merchantId",
    "orderId",
    "publicId",
    "paymentUrl",
    "network",
    "chainId",
    "tokenContract",
    "decimals",
    "amountUnits",
    "requestedUnits",
    "paidUnits",
    "toleranceUnits",
    "address",
    "addressIndex",
    "paymentUri",
    "qrCodeData",
    "status",
    "expiresAt",
    "watchUntil",
    "createdAt",
    "notifyUrl",
    "returnUrl",
    "metadata",
    "fingerprint",
    "version",
    "gsi1pk",
    "gsi1sk",
}


def present(item: dict[str, Any]) -> dict[str, Any]:
    """What DynamoDB keeps of an item: the store writes no attribute for None."""
    return {k: v for k, v in item.items() if v is not None}


def created_order() -> dict[str, Any]:
    pk, sk = store.order_key("m-1", "o-1")
    return {
        "pk": pk,
        "sk": sk,
        "merchantId": "m-1",
        "orderId": "o-1",
        "publicId": "p_1",
        "paymentUrl": "https://pay.example/pay/p_1",
        "network": "tron",
        "chainId": 728126428,
        "tokenContract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "decimals": 6,
        "amountUnits": 10_000_123,
        "requestedUnits": 10_000_000,
        "paidUnits": 0,
        "toleranceUnits": 10_000,
        "address": "TXYZ",
        "addressIndex": 7,
        "paymentUri": "tron:TXYZ",
        "qrCodeData": "data:image/png;base64,",
        "status": "pending",
        "expiresAt": 1_700_000_900_000,
        "watchUntil": 1_700_001_800_000,
        "createdAt": 1_700_000_000_000,
        "notifyUrl": "https://shop.example/hook",
        "returnUrl": None,
        "metadata": {"cart": "42"},
        "fingerprint": "f" * 64,
        "version": 0,
        "gsi1pk": store.orders_index_pk("m-1"),
        "gsi1sk": "1700000000000#o-1",
    }


def test_a_created_order_is_written_back_as_it_was_read() -> None:
    item = created_order()
    assert set(item) == CREATED_ORDER_ATTRIBUTES
    assert Order.from_item(item).to_item() == item


def test_a_changed_order_reads_its_deposits_and_money_typed() -> None:
    # Given an order item after state changes, as DynamoDB returns it
    deposit = {
        "txid": "0xab",
        "logIndex": 2,
        "units": 10_000_123,
        "blockNumber": 1000,
        "blockHash": "0xb1",
        "blockTime": 1_700_000_100_000,
        "sender": "TPAYER",
        "final": True,
        "attached": True,
    }
    changed = created_order() | {
        "status": "confirmed",
        "paidUnits": 10_000_123,
        "seenUnits": 0,
        "excessUnits": 123,
        "exception": "overpaid",
        "txid": "0xab",
        "confirmedAt": 1_700_000_200_000,
        "closedAt": None,
        "version": 3,
        "updatedAt": 1_700_000_200_000,
        "eventSeq": 2,
        "deposits": {"0xab:2": deposit},
    }
    order = Order.from_item(changed)
    # Then its attributes are typed, and the change's write carries the stored names and values
    assert (order.paid_units, order.excess_units, order.exception, order.event_seq) == (10_000_123, 123, "overpaid", 2)
    assert order.deposits["0xab:2"] == OrderDeposit(
        "0xab", 2, 10_000_123, 1000, "0xb1", 1_700_000_100_000, "TPAYER", True, attached=True
    )
    assert present(order.to_item()) == present(changed)
    assert order.change_fields()["deposits"] == {"0xab:2": deposit}


def test_a_deposit_flag_is_stored_only_once_set() -> None:
    entry = OrderDeposit("0xab", 0, 5, 10, "0xb1", 20, "TPAYER", final=False)
    assert "reversed" not in entry.to_item() and "attached" not in entry.to_item()
    assert OrderDeposit.from_item(entry.to_item()) == entry


def test_deposit_ledger_event_and_marker_items_round_trip() -> None:
    pk, sk = store.deposit_key("tron", "0xab", 1)
    dep = {
        "pk": pk,
        "sk": sk,
        "depositId": "tron:0xab:1",
        "network": "tron",
        "txid": "0xab",
        "logIndex": 1,
        "blockNumber": 1000,
        "blockHash": "0xb1",
        "blockTime": 1_700_000_100_000,
        "sender": "TPAYER",
        "recipient": "TXYZ",
        "units": 5_000_000,
        "decimals": 6,
        "depositStatus": "reversed",
        "recordedAt": 1_700_000_100_500,
        "merchantId": "m-1",
        "orderPk": None,
        "unmatched": False,
        "reason": "reorg",
        "reversedAt": 1_700_000_300_000,
        "reversedFrom": "unmatched",
        "gsi1pk": store.deposits_index_pk("m-1"),
        "gsi1sk": "1700000100000#0xab#1",
    }
    deposit = Deposit.from_item(dep)
    assert deposit.status == DepositStatus.REVERSED and deposit.reversed_from == DepositStatus.UNMATCHED
    assert {k: v for k, v in deposit.to_item().items() if v is not None} == {
        k: v for k, v in dep.items() if v is not None
    }

    ledger = LedgerEntry("tron", 1000, "0xab", 1, pk, 1_702_592_100)
    assert ledger.to_item()["sk"] == "000000001000#0xab#1"
    assert LedgerEntry.from_item(ledger.to_item()) == ledger

    event = Event("evt_1", "order.confirmed", "m-1", 2, 1_700_000_200_000, "{}", "o-1", pk, None)
    assert Event.from_item(event.to_item()) == event
    assert event.to_item()["gsi1sk"] == "1700000200000#00000002#evt_1"

    marker = OutboxMarker("evt_1", 1_700_000_200_000, 2, "m-1", "o-1")
    assert OutboxMarker.from_item(marker.to_item()) == marker
