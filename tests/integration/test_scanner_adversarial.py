"""Deposit detection against what an adversary (or a misbehaving chain) can do, on anvil with the
real TestUSDT: zero-value and dust transfers, a transfer re-mined at another log index, and
reorgs deeper than the network's finality policy, down to one past its maxReorgDepth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from devstack.evm import mint, start_anvil, usdt
from tests.integration.apiclient import ApiClient
from tests.integration.chains import (
    EvmChain,
    create,
    deposits_listed,
    drive,
    enable_network,
    evm_scanner,
    new_chain,
    order_events,
    status,
)
from usdt_gateway import cursor
from usdt_gateway.scanner import ScanHalted


@pytest.fixture
def chain(settings_env: pytest.MonkeyPatch) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        chain = new_chain(anvil, settings_env)
        chain.mine(12)  # room below the payments for the deepest reorg the tests make
        yield chain


def merchant_events(api: ApiClient, event_type: str) -> list[dict[str, Any]]:
    reply = api.request("GET", "/v1/webhooks/deliveries", query=[("type", event_type)])
    assert reply.status == 200, reply.body
    deliveries: list[dict[str, Any]] = reply.body["deliveries"]
    return deliveries


def transfer_request(chain: EvmChain, to: str, amount: str, sender: str | None = None, **fees: int) -> dict[str, Any]:
    """A token transfer as anvil_reorg takes it (anvil's accounts are unlocked)."""
    data = chain.token.encode_abi("transfer", [Web3.to_checksum_address(to), usdt(amount)])
    return {"from": sender or chain.payer, "to": chain.token.address, "data": data, **fees}


def log_index(chain: EvmChain, txid: str) -> tuple[int, int]:
    receipt = chain.w3.eth.get_transaction_receipt(txid)  # type: ignore[arg-type]
    return receipt["blockNumber"], receipt["logs"][0]["logIndex"]


def receipt_gone(chain: EvmChain, txid: str) -> bool:
    return chain.anvil.rpc("eth_getTransactionReceipt", [txid]) is None


# --- 3. zero-value and dust transfers ---------------------------------------------------------------


def test_a_zero_value_transfer_from_a_victim_is_recorded_nowhere(api: ApiClient, chain: EvmChain) -> None:
    # Given an order, and an attacker who sends transferFrom(victim, order, 0): no allowance needed
    order = create(api, chain)
    attacker = chain.w3.eth.accounts[7]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
    tx = chain.token.functions.transferFrom(chain.payer, order["address"], 0).transact({"from": attacker})
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    chain.mine(2)
    drive(scanner)
    # Then nothing changed: no deposit, no event, and the order can still be cancelled
    assert (status(api, order)["status"], status(api, order)["deposits"]) == ("pending", [])
    assert deposits_listed(api, unmatched=False) == []
    assert order_events(api, order) == [] and merchant_events(api, "deposit.unmatched") == []
    cancelled = api.request("POST", f"/v1/payment/order/{order['orderId']}/cancel", {})
    assert (cancelled.status, cancelled.body["status"]) == (200, "cancelled")


def test_dust_changes_no_order_sends_no_webhook_and_is_listed_with_its_reason(api: ApiClient, chain: EvmChain) -> None:
    # Given an order that receives 0.000001 USDT first (below the 0.01 minimum), seen then final
    order = create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    dust = chain.pay(order["address"], "0.000001")
    drive(scanner)
    assert status(api, order)["status"] == "pending"  # not even confirming
    chain.mine(2)
    drive(scanner)
    # Then the order is untouched, no webhook went out, and the deposits API shows it, ignored
    dusted = status(api, order)
    assert (dusted["status"], dusted["paidAmount"], dusted["deposits"]) == ("pending", "0.00", [])
    assert order_events(api, order) == [] and merchant_events(api, "deposit.unmatched") == []
    listed = deposits_listed(api, unmatched=False)
    assert [(d["txid"], d["amount"], d["status"], d["reason"], d["unmatched"]) for d in listed] == [
        (dust, "0.000001", "ignored", "below_minimum", False)
    ]
    assert deposits_listed(api, unmatched=True) == []
    attach = api.request("POST", f"/v1/deposits/{listed[0]['depositId']}/attach", {"orderId": order["orderId"]})
    assert (attach.status, attach.body["code"]) == (409, "DEPOSIT_NOT_UNMATCHED")
    # When the real payment comes
    paid = chain.pay(order["address"], "25.00")
    chain.mine(2)
    drive(scanner)
    # Then it is confirmed by that payment alone: not overpaid, and its txid is the payment's
    done = status(api, order)
    assert (done["status"], done["exception"], done["paidAmount"], done["txid"]) == ("confirmed", None, "25.00", paid)
    assert [d["txid"] for d in done["deposits"]] == [paid]
    assert [e["type"] for e in order_events(api, order)] == ["order.confirmed"]


def test_an_order_that_only_got_dust_expires_rather_than_fails(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain, expiresIn=60)
    chain.pay(order["address"], "0.009999")
    chain.warp(90)
    chain.mine(2)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    assert (status(api, order)["status"], status(api, order)["paidAmount"]) == ("expired", "0.00")
    assert [e["type"] for e in order_events(api, order)] == ["order.expired"]


def test_the_minimum_deposit_is_per_network(api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch) -> None:
    # Given a network whose operator set the minimum deposit to 1 USDT
    enable_network(settings_env, chain.network, chain.token.address, confirmations=2, extra={"minDeposit": "1"})
    order = create(api, chain, "25.00")
    small, counted = chain.pay(order["address"], "0.99"), chain.pay(order["address"], "1.00")
    chain.mine(2)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    # Then only what reaches it counts
    seen = status(api, order)
    assert (seen["status"], seen["paidAmount"], [d["txid"] for d in seen["deposits"]]) == (
        "underpaid",
        "1.00",
        [counted],
    )
    assert {d["txid"]: d["status"] for d in deposits_listed(api, unmatched=False)} == {
        small: "ignored",
        counted: "credited",
    }


# --- 4. the same transfer re-mined at another log index --------------------------------------------


def test_a_transfer_reincluded_at_another_log_index_is_one_deposit(api: ApiClient, chain: EvmChain) -> None:
    # Given a payment seen in a block that is not final yet
    order = create(api, chain, "25.00")
    mint(chain.token, chain.owner, usdt("10"), owner=chain.owner)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    txid = chain.pay(order["address"], "25.00")
    drive(scanner)
    assert status(api, order)["pendingAmount"] == "25.00"
    before = log_index(chain, txid)
    # When a reorg replaces its block with one where another transfer comes first, then the very
    # same signed transaction: the same txid, at another log index
    other = transfer_request(
        chain, "0x" + "77" * 20, "1.00", sender=chain.owner, maxPriorityFeePerGas=10**10, maxFeePerGas=10**11
    )
    raw = chain.anvil.rpc("eth_getRawTransactionByHash", [txid])
    chain.anvil.rpc("anvil_reorg", [1, [[other, 0], [raw, 0]]])
    after = log_index(chain, txid)
    assert after[1] != before[1]
    drive(scanner)
    # Then the page still shows one payment pending, not two
    seen = status(api, order)
    assert (seen["status"], seen["pendingAmount"], len(seen["deposits"])) == ("confirming", "25.00", 1)
    chain.mine(2)
    drive(scanner)
    # And it confirms once, without a reversal in between
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["pendingAmount"]) == ("confirmed", "25.00", "0.00")
    assert [(d["txid"], d["blockNumber"]) for d in done["deposits"]] == [(txid, after[0])]
    assert [e["type"] for e in order_events(api, order)] == ["order.confirming", "order.confirmed"]
    assert [d["txid"] for d in deposits_listed(api, unmatched=False)] == [txid]


# --- 1. reorgs deeper than the finality policy ------------------------------------------------------


@pytest.mark.parametrize("depth", [7, 9])
def test_a_deep_reorg_is_read_again_credits_the_new_payment_and_reverses_the_vanished_one(
    api: ApiClient, chain: EvmChain, depth: int
) -> None:
    # Given an order paid and confirmed under the 2-confirmation policy, and another order unpaid
    gone, new = create(api, chain, "25.00"), create(api, chain, "30.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    paid = chain.pay(gone["address"], "25.00")
    chain.mine(3)
    drive(scanner)
    assert status(api, gone)["status"] == "confirmed"
    # When a reorg of `depth` blocks (deeper than the policy) replaces the payment's block, and the
    # replacement blocks hold a payment to the other order
    chain.anvil.rpc("anvil_reorg", [depth, [[transfer_request(chain, new["address"], "30.00"), 2]]])
    assert receipt_gone(chain, paid)
    chain.mine(3)
    drive(scanner)
    # Then the replaced blocks were read again: the new payment is credited, once
    assert (status(api, new)["status"], status(api, new)["paidAmount"]) == ("confirmed", "30.00")
    # And the vanished payment is reversed: the API no longer reports it as paid
    back = status(api, gone)
    assert (back["status"], back["paid"], back["paidAmount"], back["txid"], back["confirmedAt"]) == (
        "pending",
        False,
        "0.00",
        None,
        None,
    )
    assert [(d["txid"], d["reversed"]) for d in back["deposits"]] == [(paid, True)]
    # And the merchant got an event of its own naming the deposit and the amount
    reversal = order_events(api, gone)[-1]
    assert reversal["type"] == "order.payment_reversed"
    assert (reversal["data"]["status"], reversal["data"]["paid"]) == ("pending", False)
    assert (
        reversal["data"]["reversedDeposit"]["txid"],
        reversal["data"]["reversedDeposit"]["amount"],
        reversal["data"]["reversedDeposit"]["status"],
    ) == (paid, "25.00", "reversed")
    listed = {d["txid"]: (d["status"], d["reason"]) for d in deposits_listed(api, unmatched=False)}
    assert listed[paid] == ("reversed", "reorg")
    assert scanner.report.reversed == 1 and scanner.report.credited == 2
    # And once past the replaced range, the cursor is back to normal scanning
    item = cursor.read(chain.network)
    assert item is not None and item.get("rescanTo") is None and not item.get("halted")
    drive(scanner)
    assert len(order_events(api, gone)) == len(order_events(api, gone))  # nothing more happened
    assert [e["type"] for e in order_events(api, new)].count("order.confirmed") == 1


def test_a_payment_a_deep_reorg_mines_again_elsewhere_stays_credited(api: ApiClient, chain: EvmChain) -> None:
    # Given a confirmed order
    order = create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    txid = chain.pay(order["address"], "25.00")
    chain.mine(3)
    drive(scanner)
    assert status(api, order)["status"] == "confirmed"
    first_block = log_index(chain, txid)[0]
    # When a deep reorg replaces its block but mines the same signed transaction again, later
    raw = chain.anvil.rpc("eth_getRawTransactionByHash", [txid])
    chain.anvil.rpc("anvil_reorg", [6, [[raw, 3]]])
    moved_to = log_index(chain, txid)[0]
    assert moved_to != first_block
    chain.mine(3)
    drive(scanner)
    # Then the money never left: still confirmed, no reversal, the deposit in its new block
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "25.00", txid)
    assert [(d["txid"], d["blockNumber"], d["reversed"]) for d in done["deposits"]] == [(txid, moved_to, False)]
    assert [e["type"] for e in order_events(api, order)] == ["order.confirmed"]
    assert scanner.report.reversed == 0


def test_an_unmatched_deposit_a_deep_reorg_removes_is_reversed_and_announced(api: ApiClient, chain: EvmChain) -> None:
    # Given a second payment to a confirmed order: unmatched, and announced
    order = create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "25.00")
    chain.mine(3)
    drive(scanner)
    again = chain.pay(order["address"], "5.00")
    chain.mine(3)
    drive(scanner)
    assert [d["txid"] for d in deposits_listed(api, unmatched=True)] == [again]
    # When a deep reorg removes it (and only it)
    chain.anvil.rpc("anvil_reorg", [4, []])
    assert receipt_gone(chain, again)
    chain.mine(3)
    drive(scanner)
    # Then it is no longer offered for attaching, is listed reversed, and the merchant heard of it
    assert deposits_listed(api, unmatched=True) == []
    listed = {d["txid"]: d["status"] for d in deposits_listed(api, unmatched=False)}
    assert listed[again] == "reversed"
    assert len(merchant_events(api, "deposit.reversed")) == 1
    assert status(api, order)["status"] == "confirmed"


def test_a_reorg_deeper_than_max_depth_halts_the_network_until_resumed(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a network that repairs reorgs of at most 3 blocks, and a confirmed order on it
    enable_network(settings_env, chain.network, chain.token.address, confirmations=2, extra={"maxReorgDepth": 3})
    order = create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    paid = chain.pay(order["address"], "25.00")
    for _ in range(6):  # the cursor records a checkpoint per cycle
        chain.mine(1)
        drive(scanner)
    assert status(api, order)["status"] == "confirmed"
    halted_at = cursor.read(chain.network)["finalBlock"]  # type: ignore[index]
    # When a reorg of 8 blocks removes the payment
    chain.anvil.rpc("anvil_reorg", [8, []])
    chain.mine(3)
    # Then the scanner stops that network's cursor rather than guess, and says why
    with pytest.raises(ScanHalted):
        drive(scanner)
    item = cursor.read(chain.network)
    assert item is not None and item["halted"]["finalBlock"] == halted_at and item["finalBlock"] == halted_at
    assert "maxReorgDepth" in item["halted"]["reason"]
    scanner.report = type(scanner.report)()
    report = scanner.run(until=scanner.clock())  # a scheduled run: it scans nothing
    assert (report.halted, report.credited, report.reversed) == (True, 0, 0)
    # When the operator resumes it below the reorg
    cursor.resume(chain.network, from_block=halted_at - 10, now=scanner._now())
    drive(scanner)
    # Then the range is read again and the vanished payment reversed
    back = status(api, order)
    assert (back["status"], back["paidAmount"]) == ("pending", "0.00")
    assert [(d["txid"], d["reversed"]) for d in back["deposits"]] == [(paid, True)]
    assert not cursor.read(chain.network).get("halted")  # type: ignore[union-attr]


# --- 7. a chain whose clock lags the gateway's ------------------------------------------------------


def test_a_chain_whose_timestamps_lag_ten_minutes_still_matches_prompt_payments(
    api: ApiClient, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a chain whose block timestamps run 10 minutes behind the gateway's clock
    with start_anvil() as anvil:
        anvil.rpc("evm_setTime", [int(time.time()) - 600])
        chain = new_chain(anvil, settings_env)
        scanner = evm_scanner(chain.network, [chain.anvil.url])
        drive(scanner)
        # When an order is created and paid at once
        order = create(api, chain, "25.00")
        paid = chain.pay(order["address"], "25.00")
        drive(scanner)
        chain.mine(2)
        drive(scanner)
        # Then the payment pays it: its block time, 10 minutes "before" the order, is the chain's
        done = status(api, order)
        assert (done["status"], done["txid"]) == ("confirmed", paid)
        assert done["deposits"][0]["blockTime"] < done["createdAt"] - 500_000
        assert deposits_listed(api, unmatched=True) == []
