"""Contract mode's reuse pool on anvil, through the moto server: a swept deposit contract goes
back into service only after its order's watch window and grace, with nothing pending on it and
its quarantine over; the next order then gets its address and its sweep deploys nothing. Money
paid to a pooled address is found, recorded unmatched and swept, and keeps it out until then;
two creates never share one address; reuse off gives every order a fresh address."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_typing import HexStr
from web3 import Web3

from tests.integration.chains import create, deposits_listed, drive, evm_scanner, status
from tests.integration.test_settlement_function import World, world  # noqa: F401  # the fixture
from usdt_gateway import config, contract_mode, create2, deposit_pool, store
from usdt_gateway.address_codec import to_checksum_address
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.settlement import candidates, pooling

GRACE_S = 60  # the late-payment grace: an order of 60 s is watched 2 minutes
QUARANTINE_S = 3600
DEPLOYED_TOPIC = "0x" + Web3.keccak(text="DepositDeployed(address,bytes32)").hex().removeprefix("0x")


@pytest.fixture
def pool(world: World, settings_env: pytest.MonkeyPatch) -> Iterator[World]:  # noqa: F811
    """The test world with a short grace and a one-hour quarantine."""
    settings_env.setenv("LATE_PAYMENT_GRACE_SECONDS", str(GRACE_S))
    config.reset()
    contract_mode.configure_reuse(world.merchant.merchant_id, world.network, reuse=True, quarantine_s=QUARANTINE_S)
    yield world


def later(w: World, seconds: int) -> None:
    """The gateway's clock and the chain's move on together; the scanner reads up to the new head."""
    w.clock.advance(seconds * 1000)
    w.contracts.chain.warp(seconds)
    w.contracts.chain.mine(w.contracts.chain.confirmations)
    drive(w.scanner)


def swept_order(w: World, amount: str = "25.00") -> dict[str, Any]:
    """An order of 60 s paid in full, credited and swept to the treasury."""
    order = create(w.api, w.contracts.chain, amount, expiresIn=60)
    w.pay(order, amount)
    w.settle()
    assert w.funds(order) == "swept"
    return order


def address_item(w: World, address: str) -> dict[str, Any]:
    item = store.get(*store.address_key(w.network, address))
    assert item is not None
    return item


def pool_state(w: World, address: str) -> str | None:
    state = address_item(w, address).get("poolState")
    return None if state is None else str(state)


def order_item(w: World, order: dict[str, Any]) -> dict[str, Any]:
    item = store.get(*store.order_key(w.merchant.merchant_id, order["orderId"]))
    assert item is not None
    return item


def quarantined(w: World, order: dict[str, Any]) -> None:
    """The order's watch window and grace over, the settlement puts its swept address in quarantine."""
    later(w, 300)
    w.run()
    assert pool_state(w, order["address"]) == "quarantined"


def available(w: World, order: dict[str, Any]) -> None:
    """... and once the quarantine is over, makes it available to the merchant's next order."""
    quarantined(w, order)
    later(w, QUARANTINE_S)
    w.run()
    assert pool_state(w, order["address"]) == "available"


def sweep_receipt(w: World, reports: list[dict[str, Any]]) -> Any:
    (settlement_id,) = reports[-1]["marked"]
    record = store.get(*store.settlement_key(settlement_id))
    assert record is not None and record["settlementStatus"] == "completed"
    return w.contracts.chain.w3.eth.get_transaction_receipt(HexStr(record["txHash"]))


def deployed(receipt: Any) -> list[str]:
    """The deposit addresses a sweep deployed (its DepositDeployed logs)."""
    return [
        to_checksum_address(bytes(log["topics"][1])[12:])
        for log in receipt["logs"]
        if "0x" + bytes(log["topics"][0]).hex() == DEPLOYED_TOPIC
    ]


def fresh_address(w: World, order_id: str) -> str:
    cfg = w.contracts
    salt = create2.order_salt(w.merchant.merchant_id, order_id)
    return to_checksum_address(create2.deposit_address(cfg.factory.address, cfg.implementation.address, salt))


def test_a_swept_address_is_reused_after_its_quarantine_and_its_sweep_deploys_nothing(
    pool: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an order paid and swept (its sweep deployed its deposit contract), its address in the
    # pool once its window, grace and quarantine are over
    first = create(pool.api, pool.contracts.chain, "25.00", expiresIn=60)
    pool.pay(first, "25.00")
    first_sweep = sweep_receipt(pool, pool.settle())
    assert deployed(first_sweep) == [first["address"]]
    available(pool, first)
    # When the merchant's next order is created (with the chain unreachable from the create path)
    calls: list[str] = []
    with monkeypatch.context() as patch:
        patch.setattr(JsonRpc, "call", lambda self, method, params: calls.append(method))
        second = create(pool.api, pool.contracts.chain, "30.00")
    # Then it gets the first order's address and salt, without any RPC call, and the address now
    # names it (the order it served before kept for the record)
    assert calls == []
    assert second["address"] == first["address"]
    assert order_item(pool, second)["depositSalt"] == order_item(pool, first)["depositSalt"]
    item = address_item(pool, first["address"])
    assert item["orderPk"] == store.order_key(pool.merchant.merchant_id, second["orderId"])[0]
    assert item["previousOrderPk"] == store.order_key(pool.merchant.merchant_id, first["orderId"])[0]
    assert "poolState" not in item and "gsi1pk" not in item
    # And once paid, it is credited to the second order only, and its sweep deploys nothing
    pool.pay(second, "30.00")
    assert status(pool.api, second)["status"] == "confirmed"
    assert status(pool.api, first)["paidAmount"] == "25.00"
    second_sweep = sweep_receipt(pool, pool.settle())
    assert deployed(second_sweep) == []
    assert second_sweep["gasUsed"] < first_sweep["gasUsed"] - 30_000
    assert pool.balance(pool.contracts.treasury) == 55_000_000 and pool.funds(second) == "swept"


def test_no_reuse_before_the_window_and_grace_nor_before_the_quarantine_ends(pool: World) -> None:
    # Given an order paid and swept, its window (60 s) and grace (60 s) not over yet
    first = swept_order(pool)
    assert pool_state(pool, first["address"]) == "waiting"

    def next_address() -> str:
        return str(create(pool.api, pool.contracts.chain)["address"])

    # Then a new order gets a fresh address, and the settlement leaves the address waiting
    assert next_address() != first["address"]
    pool.run()
    assert pool_state(pool, first["address"]) == "waiting"
    # And once they are over, the address is quarantined, not handed out
    quarantined(pool, first)
    assert next_address() != first["address"]
    # And one minute before the quarantine ends, still not
    pool.clock.advance((QUARANTINE_S - 60) * 1000)
    pool.run()
    assert pool_state(pool, first["address"]) == "quarantined" and next_address() != first["address"]
    # And once it has ended, the next order gets it
    pool.clock.advance(60_000)
    pool.run()
    assert next_address() == first["address"]


def test_an_address_with_a_credit_not_yet_swept_stays_out_until_its_sweep(pool: World) -> None:
    # Given a swept order's address on its way into the pool, paid 4.00 more inside its window
    # (the order is confirmed: money no order takes, swept all the same)
    first = swept_order(pool)
    assert pool_state(pool, first["address"]) == "waiting"
    pool.pay(first, "4.00")
    (late,) = candidates.unsettled(pool.network)
    assert late.order_pk is None and late.units == 4_000_000
    # Then the credit took it off the way (in its own transaction), and it does not come back
    # while that money is on it (below the sweep minimum, waiting for the maximum age)
    assert pool_state(pool, first["address"]) is None
    later(pool, 300)
    report = pool.run()
    assert report["claimed"] is None and pool_state(pool, first["address"]) is None
    pool.clock.advance(QUARANTINE_S * 1000)
    pool.run()
    assert create(pool.api, pool.contracts.chain)["address"] != first["address"]
    # And once that money is swept, it is on its way again (quarantined at once: the order's
    # window is long over)
    pool.settle()
    assert candidates.unsettled(pool.network) == []
    assert pool_state(pool, first["address"]) == "quarantined"


def test_money_the_scanner_never_saw_keeps_an_address_out_of_the_pool(pool: World) -> None:
    # Given a swept order whose window is over (the scanner no longer watches its address), and
    # 3.00 paid to the address then: recorded nowhere
    first = swept_order(pool)
    later(pool, 300)
    pool.contracts.chain.pay(first["address"], "3.00")
    later(pool, 10)
    assert deposits_listed(pool.api, unmatched=True) == []
    # When the settlement looks at the address
    pool.run()
    # Then the balance on chain keeps it out of the pool, and the next orders get fresh addresses
    assert pool_state(pool, first["address"]) is None
    pool.clock.advance(QUARANTINE_S * 1000)
    pool.run()
    assert create(pool.api, pool.contracts.chain)["address"] != first["address"]
    assert pool.balance(first["address"]) == 3_000_000


def test_an_address_waits_while_a_refund_is_pending_on_it(pool: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a swept order whose window is over, and a refund pending on its address
    first = swept_order(pool)
    later(pool, 300)
    with monkeypatch.context() as patch:
        patch.setattr(pooling._Step, "refund_pending", lambda step, order: order.order_id == first["orderId"])
        # Then the address waits, looked at again later
        assert pool.run()["pool"]["postponed"] == 1
        assert pool_state(pool, first["address"]) == "waiting"
    # And once the refund is over, it goes into quarantine
    pool.clock.advance(16 * 60_000)
    pool.run()
    assert pool_state(pool, first["address"]) == "quarantined"


def test_a_late_payment_to_a_pooled_address_is_recorded_unmatched_swept_and_keeps_it_out(pool: World) -> None:
    # Given a swept order's address in quarantine (its order's window and grace long over)
    first = swept_order(pool)
    quarantined(pool, first)
    # When the address is paid 5.00 (a late payment for that order)
    txid = pool.contracts.chain.pay(first["address"], "5.00")
    later(pool, 10)
    # Then the scanner, which still watches it, records the money unmatched: no order takes it,
    # the order it served keeps what it had
    (unmatched,) = deposits_listed(pool.api, unmatched=True)
    assert (unmatched["txid"], unmatched["amount"], unmatched["orderId"]) == (txid, "5.00", None)
    assert unmatched["recipient"] == first["address"]
    assert (status(pool.api, first)["status"], status(pool.api, first)["paidAmount"]) == ("confirmed", "25.00")
    # And the credit took the address out of the pool in its own transaction, its money to be swept
    assert pool_state(pool, first["address"]) is None
    (waiting,) = candidates.unsettled(pool.network)
    assert (waiting.address, waiting.units, waiting.order_pk) == (first["address"], 5_000_000, None)
    # And after the quarantine it is not handed out, until that money is swept
    pool.clock.advance(QUARANTINE_S * 1000)
    pool.run()
    assert create(pool.api, pool.contracts.chain)["address"] != first["address"]
    pool.settle()
    assert pool.balance(pool.contracts.treasury) == 30_000_000
    assert pool_state(pool, first["address"]) == "quarantined"


def test_two_creates_racing_for_one_pooled_address_one_wins_the_other_gets_a_fresh_one(
    pool: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usdt_gateway.orders import create_order
    from usdt_gateway.schemas import CreateOrderRequest

    # Given one available address in the merchant's pool, and two creates that both read it
    # before either commits
    first = swept_order(pool)
    available(pool, first)
    both_read = threading.Barrier(2, timeout=30)
    real_take = deposit_pool.take
    seen: list[str | None] = []

    def take_together(*args: Any, **kwargs: Any) -> deposit_pool.Pooled | None:
        taken = real_take(*args, **kwargs)
        seen.append(taken.address if taken else None)
        both_read.wait()
        return taken

    monkeypatch.setattr(deposit_pool, "take", take_together)

    def create_one(order_id: str) -> str:
        req = CreateOrderRequest.model_validate(
            {"network": pool.network, "currency": "USDT", "amount": "10.00", "orderId": order_id}
        )
        view, created = create_order(pool.merchant.merchant_id, req)
        assert created
        return view.address

    # When they commit
    with ThreadPoolExecutor(max_workers=2) as threads:
        addresses = dict(zip(("race-a", "race-b"), threads.map(create_one, ("race-a", "race-b")), strict=True))
    assert seen == [first["address"], first["address"]]
    # Then one got the pooled address, the other a fresh one of its own; the address names the winner
    (winner,) = [order_id for order_id, address in addresses.items() if address == first["address"]]
    (loser,) = [order_id for order_id in addresses if order_id != winner]
    assert addresses[loser] == fresh_address(pool, loser)
    assert address_item(pool, first["address"])["orderPk"] == store.order_key(pool.merchant.merchant_id, winner)[0]


def test_with_reuse_off_every_order_gets_a_fresh_address(pool: World) -> None:
    # Given an address available in the pool, and reuse then turned off for the network
    first = swept_order(pool)
    available(pool, first)
    contract_mode.configure_reuse(pool.merchant.merchant_id, pool.network, reuse=False)
    # Then a new order gets a fresh address, as before reuse existed
    order = create(pool.api, pool.contracts.chain)
    assert order["address"] == fresh_address(pool, order["orderId"]) != first["address"]
    # And a newly swept address does not enter the pool
    second = swept_order(pool)
    later(pool, 300)
    pool.run()
    assert pool_state(pool, second["address"]) is None
    # And turned on again, the address that was available is handed out again
    contract_mode.configure_reuse(pool.merchant.merchant_id, pool.network, reuse=True)
    assert create(pool.api, pool.contracts.chain)["address"] == first["address"]


def test_a_quarantine_longer_than_a_watch_entry_is_watched_throughout(
    pool: World, settings_env: pytest.MonkeyPatch
) -> None:
    # Given orders of at most 10 minutes (a scanner started afresh reads back watch entries of
    # the last 11 minutes only) and an address in its one-hour quarantine
    settings_env.setenv("MAX_EXPIRES_IN", "600")
    config.reset()
    first = swept_order(pool)
    quarantined(pool, first)
    # When the settlement runs through most of the quarantine
    renewed = 0
    for _ in range(10):
        later(pool, 330)
        renewed += pool.run()["pool"]["renewed"]
    # Then it renewed the address's watch entry before each one ended, and the address waits on
    assert renewed >= 9 and pool_state(pool, first["address"]) == "quarantined"
    # And a scanner started afresh near the quarantine's end still finds money paid to it
    cold = evm_scanner(pool.network, [pool.contracts.chain.anvil.url])
    pool.clock.advance(pool.scanner.lease_ms + 1)  # the warm scanner stopped: its lease lapsed
    txid = pool.contracts.chain.pay(first["address"], "5.00")
    pool.contracts.chain.mine(pool.contracts.chain.confirmations)
    drive(cold)
    (unmatched,) = deposits_listed(pool.api, unmatched=True)
    assert (unmatched["txid"], unmatched["recipient"]) == (txid, first["address"])
    assert pool_state(pool, first["address"]) is None
