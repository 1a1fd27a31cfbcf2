"""No single RPC answer credits money on its own: a payment that only one endpoint shows (a lying
provider, a hijacked DNS name, a broken proxy) is held, never credited, when a second endpoint is
configured; with one endpoint, deposits above the network's secondSourceAbove wait for a second
source or the operator. A second endpoint that is slow, down or behind delays a credit and loses
nothing. On anvil behind a proxy that forges payments (devstack/forging_proxy.py), and on the
fake Tron node with a lying twin on the same chain (tests/integration/forged_tron.py)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from devstack.evm import Anvil, start_anvil, usdt
from devstack.forging_proxy import ForgingProxy
from devstack.tron_node import TronNode, start_tron_node
from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient
from tests.integration.chains import (
    EvmChain,
    TronChain,
    create,
    deposits_listed,
    drive,
    enable_network,
    evm_scanner,
    new_chain,
    new_tron_chain,
    order_events,
    status,
    tron_scanner,
)
from tests.integration.forged_tron import ForgingChain
from tests.integration.rpc_proxy import RpcProxy
from usdt_gateway import config, cursor, deposits, outbox, store
from usdt_gateway import status as admin_status
from usdt_gateway.admin import main as admin_main
from usdt_gateway.chain import second_source
from usdt_gateway.chain.endpoints import AllEndpointsFailed, Endpoints
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.chain.readers import EvmReader
from usdt_gateway.chain.rpc_config import EndpointSpec
from usdt_gateway.chain.transfers import Transfer
from usdt_gateway.observability import metrics
from usdt_gateway.records import Deposit, DepositStatus
from usdt_gateway.scanner import Scanner


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with start_anvil() as running:
        yield running


@pytest.fixture
def chain(anvil: Anvil, settings_env: pytest.MonkeyPatch) -> EvmChain:
    """A network of its own (token, cursor, watch list) on the module's anvil."""
    return new_chain(anvil, settings_env)


@pytest.fixture
def forger(chain: EvmChain) -> Iterator[ForgingProxy]:
    running = ForgingProxy(chain.anvil.url)
    yield running
    running.close()


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the metrics added meanwhile."""
    names: list[str] = []
    real = metrics.add_metric

    def spy(*, name: str, **kwargs: Any) -> None:
        names.append(name)
        real(name=name, **kwargs)

    monkeypatch.setattr(metrics, "add_metric", spy)
    yield names
    metrics.clear_metrics()


def final_block(network: str) -> int:
    item = cursor.read(network)
    assert item is not None
    return int(item["finalBlock"])


def fails_once(scanner: Scanner) -> None:
    """One cycle under the scanner's lease, which must fail: no second source can tell yet."""
    state = cursor.acquire(scanner.network.name, scanner.owner, now=scanner._now(), lease_ms=scanner.lease_ms)
    assert state is not None
    with pytest.raises(AllEndpointsFailed):
        scanner.cycle(state)


def listed(api: ApiClient) -> dict[str, tuple[str, str | None]]:
    """txid -> (status, reason) as GET /v1/deposits lists each."""
    return {d["txid"]: (d["status"], d["reason"]) for d in deposits_listed(api, unmatched=False)}


def held_status(network: str, urls: list[str]) -> admin_status.NetworkStatus:
    specs = [EndpointSpec(url=u) for u in urls]
    return admin_status.network_status(config.networks()[network], specs, now_ms=0, max_lag_seconds=10**9)


def confirm_by_hand(capsys: pytest.CaptureFixture[str], network: str, txid: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = admin_main(["confirm-deposit", "--network", network, "--txid", txid, "--log-index", "0"])
    out = capsys.readouterr()
    return code, json.loads(out.out if code == 0 else out.err)


# -- EVM: a forged payment -------------------------------------------------------------------------


def test_a_forged_payment_is_held_disputed_and_the_order_never_confirms(
    api: ApiClient, chain: EvmChain, forger: ForgingProxy, emitted: list[str]
) -> None:
    # Given an order, and two endpoints: the preferred one shows a payment of it no transaction made
    order = create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [forger.url, chain.anvil.url])
    drive(scanner)
    forged = forger.forge(token=chain.token.address, recipient=order["address"], units=usdt("25.00"))
    chain.mine(1)
    drive(scanner)
    assert status(api, order)["status"] == "confirming"  # seen, on the one endpoint's word
    # When its block is final
    chain.mine(2)
    drive(scanner)
    # Then the second endpoint contradicts it: the deposit is held, disputed, and never credited
    held = status(api, order)
    assert (held["status"], held["paidAmount"], held["confirmedAt"]) == ("confirming", "0.00", None)
    assert listed(api) == {forged.txid: ("disputed", "second_source_disagrees")}
    assert [e["type"] for e in order_events(api, order)] == ["order.confirming"]
    assert (scanner.report.disputed, scanner.report.credited) == (1, 0)
    assert "DepositsDisputed" in emitted and "DepositsCredited" not in emitted
    # And the merchant cannot attach it elsewhere
    attach = api.request("POST", f"/v1/deposits/{chain.network}:{forged.txid}:0/attach", {"orderId": order["orderId"]})
    assert (attach.status, attach.body["code"]) == (409, "DEPOSIT_NOT_UNMATCHED")
    # And the scan went on past it; running again records nothing twice
    assert final_block(chain.network) >= forged.block
    chain.mine(1)
    drive(scanner)
    assert scanner.report.disputed == 1 and listed(api)[forged.txid][0] == "disputed"
    # And `admin status` lists it, naming what the second endpoint said, as a problem
    report = held_status(chain.network, [forger.url, chain.anvil.url])
    assert [(h.deposit_id, h.status, h.amount) for h in report.held] == [
        (f"{chain.network}:{forged.txid}:0", "disputed", "25.00")
    ]
    assert "the transaction is in no block" in str(report.held[0].detail)
    assert not report.healthy and any("disputed" in p for p in report.problems)
    assert report.trust is not None and report.trust.startswith("2 RPC endpoints")


def test_with_one_endpoint_forgeries_above_the_threshold_wait_and_below_it_are_trusted(
    api: ApiClient, chain: EvmChain, forger: ForgingProxy, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a network with one endpoint, the forging one, where deposits above 100 USDT wait
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    big, small = create(api, chain, "250.00"), create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [forger.url])
    drive(scanner)
    # When it shows a payment of each, final
    above = forger.forge(token=chain.token.address, recipient=big["address"], units=usdt("250.00"))
    below = forger.forge(token=chain.token.address, recipient=small["address"], units=usdt("25.00"))
    chain.mine(3)
    drive(scanner)
    # Then the one above waits, unverified; the one below is credited on the endpoint's word: a
    # network with one endpoint trusts its provider (docs/deploy.md)
    assert status(api, big)["status"] != "confirmed" and status(api, small)["status"] == "confirmed"
    assert listed(api) == {above.txid: ("unverified", "awaiting_second_source"), below.txid: ("credited", None)}
    assert (scanner.report.unverified, scanner.report.credited) == (1, 1)
    report = held_status(chain.network, [forger.url])
    assert report.trust is not None and "trusted up to 100 USDT" in report.trust
    # When a second endpoint is configured (a new scanner, as after a cold start)
    second = evm_scanner(chain.network, [forger.url, chain.anvil.url], owner=scanner.owner)
    drive(second)
    # Then the waiting one is asked of it, contradicted, and disputed: still never credited
    assert listed(api)[above.txid] == ("disputed", "second_source_disagrees")
    assert status(api, big)["paidAmount"] == "0.00" and second.report.disputed == 1


def test_a_real_payment_held_unverified_is_credited_once_a_second_endpoint_confirms_it(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a real payment above the threshold, final, with one endpoint: it waits
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    order = create(api, chain, "250.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    txid = chain.pay(order["address"], "250.00")
    drive(scanner)
    chain.mine(2)
    drive(scanner)
    assert listed(api) == {txid: ("unverified", "awaiting_second_source")}
    assert status(api, order)["status"] == "confirming"
    # When a second endpoint is configured
    other = RpcProxy(chain.anvil.url)
    try:
        second = evm_scanner(chain.network, [chain.anvil.url, other.url], owner=scanner.owner)
        drive(second)
        drive(second)
    finally:
        other.close()
    # Then it confirms the payment, which is credited once, through the same path as any other
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "250.00", txid)
    assert listed(api) == {txid: ("credited", None)}
    assert [e["type"] for e in order_events(api, order)] == ["order.confirming", "order.confirmed"]
    assert second.report.credited == 1 and deposits.held(chain.network) == []


def test_the_operator_confirms_an_unverified_deposit_by_hand(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a real payment waiting for a second source
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    order = create(api, chain, "250.00")
    txid = chain.pay(order["address"], "250.00")
    chain.mine(2)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    assert listed(api)[txid][0] == "unverified"
    # When the operator, having found it on an explorer, confirms it
    code, result = confirm_by_hand(capsys, chain.network, txid)
    # Then it is credited, and the order confirmed
    assert code == 0 and result == {
        "depositId": f"{chain.network}:{txid}:0",
        "was": "unverified",
        "status": "credited",
        "orderId": order["orderId"],
    }
    assert (status(api, order)["status"], listed(api)[txid]) == ("confirmed", ("credited", None))
    assert deposits.held(chain.network) == []
    # And confirming it again is refused: it is no longer held
    code, result = confirm_by_hand(capsys, chain.network, txid)
    assert (code, result["error"]) == (2, "DEPOSIT_NOT_HELD")


def test_a_deep_reorg_that_removes_a_held_deposit_clears_it(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a payment held awaiting a second source, seen first (the order confirming)
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    chain.mine(12)  # room below the payment for a reorg deeper than the finality policy
    order = create(api, chain, "250.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    txid = chain.pay(order["address"], "250.00")
    drive(scanner)
    chain.mine(3)
    drive(scanner)
    assert listed(api) == {txid: ("unverified", "awaiting_second_source")}
    # When a reorg deeper than the policy removes its transaction
    chain.anvil.rpc("anvil_reorg", [6, []])
    assert chain.anvil.rpc("eth_getTransactionReceipt", [txid]) is None
    chain.mine(3)
    drive(scanner)
    # Then the held deposit is cleared: out of the listings, the order back to pending, and it can
    # no longer be confirmed by hand
    assert listed(api) == {} and deposits.held(chain.network) == []
    back = status(api, order)
    assert (back["status"], back["deposits"]) == ("pending", [])
    code, result = confirm_by_hand(capsys, chain.network, txid)
    assert (code, result["error"]) == (2, "DEPOSIT_NOT_HELD")


# -- EVM: what becomes of a held deposit's order, and the merchant's events ----------------------


def deposit_events(api: ApiClient, event_type: str) -> list[dict[str, Any]]:
    """The merchant's events of one type, as their bodies (deposit events belong to no order)."""
    reply = api.request("GET", "/v1/webhooks/deliveries", query=[("type", event_type)])
    assert reply.status == 200, reply.body
    bodies = []
    for d in reply.body["deliveries"]:
        item = store.get(*store.event_key(d["deliveryId"]))
        assert item is not None
        bodies.append(json.loads(item["body"]))
    return bodies


def by_hand(capsys: pytest.CaptureFixture[str], verb: str, network: str, txid: str) -> tuple[int, dict[str, Any]]:
    """admin confirm-deposit or reject-deposit of the deposit at log index 0."""
    capsys.readouterr()
    code = admin_main([f"{verb}-deposit", "--network", network, "--txid", txid, "--log-index", "0"])
    out = capsys.readouterr()
    return code, json.loads(out.out if code == 0 else out.err)


def held_at_expiry(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, fake_clock: FakeClock
) -> tuple[dict[str, Any], str, Scanner]:
    """An order paid in time with a real payment above secondSourceAbove on a one-endpoint network,
    seen first, then held unverified; its expiry then passes in final blocks (the gateway's clock
    set to the chain's, so the order's window is the chain's)."""
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    fake_clock.ms = int(chain.w3.eth.get_block("latest")["timestamp"]) * 1000
    order = create(api, chain, "250.00", expiresIn=60)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    txid = chain.pay(order["address"], "250.00")
    drive(scanner)
    chain.mine(2)
    drive(scanner)
    held = status(api, order)
    assert (held["status"], held["paidAmount"], [d["held"] for d in held["deposits"]]) == ("confirming", "0.00", [True])
    chain.warp(120)
    chain.mine(2)
    drive(scanner)
    return order, txid, scanner


def test_a_held_deposit_does_not_keep_its_order_from_expiring(
    api: ApiClient,
    chain: EvmChain,
    settings_env: pytest.MonkeyPatch,
    fake_clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an order whose only payment, seen first, is held unverified when its expiry passes
    order, txid, _ = held_at_expiry(api, chain, settings_env, fake_clock)
    # Then it expires as an unpaid order would, the held deposit listed on it
    expired = status(api, order)
    assert (expired["status"], expired["paid"], expired["pendingAmount"]) == ("expired", False, "0.00")
    assert [(d["txid"], d["held"], d["final"]) for d in expired["deposits"]] == [(txid, True, False)]
    assert [e["type"] for e in order_events(api, order)] == ["order.confirming", "order.expired"]
    (held,) = deposit_events(api, "deposit.held")
    assert (held["data"]["status"], held["data"]["amount"], held["data"]["txid"]) == ("unverified", "250.00", txid)
    assert (held["data"]["network"], held["data"]["orderId"], held["sequence"]) == (chain.network, order["orderId"], 1)
    # When the operator confirms it inside the late-payment grace window
    fake_clock.advance(30 * 60_000)
    code, result = by_hand(capsys, "confirm", chain.network, txid)
    # Then it is a late payment, as one found then would be: confirmed, paid_late
    assert (code, result["status"], result["orderId"]) == (0, "credited", order["orderId"])
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["exceptions"]) == ("confirmed", "250.00", ["paid_late"])
    assert [e["type"] for e in order_events(api, order)][2:] == ["order.confirmed", "order.paid_late"]
    (released,) = deposit_events(api, "deposit.released")
    assert (released["data"]["status"], released["sequence"]) == ("credited", 3)


def test_a_held_deposit_confirmed_after_the_grace_window_is_unmatched(
    api: ApiClient,
    chain: EvmChain,
    settings_env: pytest.MonkeyPatch,
    fake_clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an order expired with a held deposit
    order, txid, scanner = held_at_expiry(api, chain, settings_env, fake_clock)
    # When a second source confirms it only after the order's late-payment grace window
    fake_clock.advance(2 * 3600_000)
    other = RpcProxy(chain.anvil.url)
    try:
        drive(evm_scanner(chain.network, [chain.anvil.url, other.url], owner=scanner.owner))
    finally:
        other.close()
    # Then it is recorded unmatched, as a payment found after the window would be: the order stays
    # expired without it, and the merchant may attach it
    after = status(api, order)
    assert (after["status"], after["deposits"]) == ("expired", [])
    assert listed(api) == {txid: ("unmatched", None)} and deposits.held(chain.network) == []
    (released,) = deposit_events(api, "deposit.released")
    assert (released["data"]["status"], released["data"]["orderId"]) == ("unmatched", None)
    assert [e["type"] for e in order_events(api, order)] == ["order.confirming", "order.expired"]
    attach = api.request("POST", f"/v1/deposits/{chain.network}:{txid}:0/attach", {"orderId": order["orderId"]})
    assert attach.status == 200 and attach.body["status"] == "confirmed"
    # And confirming it by hand now is refused: it is no longer held
    assert by_hand(capsys, "confirm", chain.network, txid)[1]["error"] == "DEPOSIT_NOT_HELD"


def test_a_rejected_forgery_is_never_counted_even_replayed(
    api: ApiClient, chain: EvmChain, forger: ForgingProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a forged payment held disputed, the order confirming on it
    order = create(api, chain, "25.00")
    scanner = evm_scanner(chain.network, [forger.url, chain.anvil.url])
    drive(scanner)
    forged = forger.forge(token=chain.token.address, recipient=order["address"], units=usdt("25.00"))
    chain.mine(3)
    drive(scanner)
    assert listed(api) == {forged.txid: ("disputed", "second_source_disagrees")}
    assert status(api, order)["status"] == "confirming"
    (held,) = deposit_events(api, "deposit.held")
    assert (held["data"]["status"], held["sequence"]) == ("disputed", 2)
    # When the operator, finding no such transaction on an explorer, rejects it
    code, result = by_hand(capsys, "reject", chain.network, forged.txid)
    # Then it is closed, listed rejected, and the order open again without it
    assert (code, result) == (
        0,
        {"depositId": f"{chain.network}:{forged.txid}:0", "was": "disputed", "status": "rejected"},
    )
    assert listed(api) == {forged.txid: ("rejected", "not_on_chain")} and deposits.held(chain.network) == []
    back = status(api, order)
    assert (back["status"], back["deposits"]) == ("pending", [])
    (rejected,) = deposit_events(api, "deposit.rejected")
    assert (rejected["data"]["status"], rejected["sequence"]) == ("rejected", 3)
    # And neither operator can act on it again
    assert by_hand(capsys, "reject", chain.network, forged.txid)[1]["error"] == "DEPOSIT_NOT_HELD"
    assert by_hand(capsys, "confirm", chain.network, forged.txid)[1]["error"] == "DEPOSIT_NOT_HELD"
    # When the forger replays the same log through every path, even as the only endpoint, where it
    # would be trusted
    alone = evm_scanner(chain.network, [forger.url], owner=scanner.owner)
    drive(alone)
    item = store.get(*store.deposit_key(chain.network, forged.txid, 0))
    assert item is not None
    t = deposits.transfer_of(Deposit.from_item(item))
    entry, owner = alone.watch.match(t.recipient, t.units, t.block_time)
    assert entry is not None
    assert deposits.record_seen(t, entry).order is None
    assert deposits.credit_final(t, entry, owner)[0] == deposits.Outcome.ALREADY
    for held_as in (DepositStatus.UNVERIFIED, DepositStatus.DISPUTED):
        assert deposits.hold(t, entry, owner, held_as, source=forger.url) == deposits.Outcome.ALREADY
    # Then nothing changes and the merchant hears nothing more
    assert (status(api, order)["status"], listed(api)[forged.txid]) == ("pending", ("rejected", "not_on_chain"))
    assert len(deposit_events(api, "deposit.held")) == 1 and deposit_events(api, "deposit.released") == []
    assert [e["type"] for e in order_events(api, order)] == ["order.confirming"]


@pytest.mark.parametrize("winner", ["confirm", "reject"])
def test_two_operators_at_once_one_wins_and_the_other_is_refused(
    api: ApiClient,
    chain: EvmChain,
    settings_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    winner: str,
) -> None:
    # Given a deposit held unverified, and two operators: one confirms it, the other rejects it,
    # the loser having read it held before the winner wrote
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    order = create(api, chain, "250.00")
    txid = chain.pay(order["address"], "250.00")
    chain.mine(2)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    # the loser stops between its read and its conditional write
    loser_step = "_end_hold" if winner == "confirm" else "_credit_final"
    real = getattr(deposits, loser_step)
    results: list[tuple[int, dict[str, Any]]] = []

    def winner_first(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(deposits, loser_step, real)
        results.append(by_hand(capsys, winner, chain.network, txid))
        return real(*args, **kwargs)

    monkeypatch.setattr(deposits, loser_step, winner_first)
    # When both act at once
    loser = by_hand(capsys, "reject" if winner == "confirm" else "confirm", chain.network, txid)
    # Then the winner's write holds, the loser is told plainly, and the merchant hears one outcome
    assert results[0][0] == 0 and (loser[0], loser[1]["error"]) == (2, "DEPOSIT_NOT_HELD")
    if winner == "confirm":
        assert (status(api, order)["status"], listed(api)[txid]) == ("confirmed", ("credited", None))
        assert len(deposit_events(api, "deposit.released")) == 1 and deposit_events(api, "deposit.rejected") == []
    else:
        assert (status(api, order)["status"], listed(api)[txid]) == ("pending", ("rejected", "not_on_chain"))
        assert len(deposit_events(api, "deposit.rejected")) == 1 and deposit_events(api, "deposit.released") == []


def test_two_scanners_holding_at_once_record_and_announce_it_once(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a final payment above the threshold that two scanners both read as new
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    order = create(api, chain, "250.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    txid = chain.pay(order["address"], "250.00")
    chain.mine(2)
    receipt = chain.w3.eth.get_transaction_receipt(txid)  # type: ignore[arg-type]
    block = chain.w3.eth.get_block(receipt["blockNumber"])
    t = Transfer(
        network=chain.network,
        txid=txid,
        log_index=0,
        block_number=receipt["blockNumber"],
        block_hash="0x" + bytes(receipt["blockHash"]).hex(),
        sender=chain.payer,
        recipient=order["address"],
        units=usdt("250.00"),
        block_time=int(block["timestamp"]) * 1000,
    )
    entry, owner = scanner.watch.match(t.recipient, t.units, t.block_time)
    both_read = threading.Barrier(2, timeout=10)
    real = deposits._hold_on_order

    def after_both_read(*args: Any) -> bool:
        both_read.wait()
        return real(*args)

    monkeypatch.setattr(deposits, "_hold_on_order", after_both_read)
    outcomes: list[deposits.Outcome] = []

    def hold() -> None:
        outcomes.append(deposits.hold(t, entry, owner, DepositStatus.UNVERIFIED, source=chain.anvil.url))

    # When both hold it at once
    threads = [threading.Thread(target=hold) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Then one records it, the other finds it recorded: one hold, one deposit.held
    assert sorted(outcomes) == sorted([deposits.Outcome.UNVERIFIED, deposits.Outcome.ALREADY])
    assert listed(api) == {txid: ("unverified", "awaiting_second_source")}
    assert len(deposit_events(api, "deposit.held")) == 1
    assert [e["type"] for e in order_events(api, order)] == ["order.confirming"]


def test_a_scanner_dying_between_the_hold_and_its_event_loses_and_repeats_nothing(
    api: ApiClient,
    chain: EvmChain,
    settings_env: pytest.MonkeyPatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a scanner that dies right after committing a hold, before handing its event over
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    order = create(api, chain, "250.00")
    txid = chain.pay(order["address"], "250.00")
    chain.mine(2)

    def die(event_ids: list[str]) -> list[str]:
        raise SystemExit("killed after the commit")

    monkeypatch.setattr(outbox, "publish", die)
    dead = evm_scanner(chain.network, [chain.anvil.url])
    with pytest.raises(SystemExit):
        drive(dead)
    monkeypatch.undo()
    # Then the hold and its event are committed together, the event's outbox marker left for the
    # sweeper
    assert listed(api) == {txid: ("unverified", "awaiting_second_source")}
    (held,) = deposit_events(api, "deposit.held")
    assert store.get(*store.outbox_key(held["id"])) is not None
    # When a new scanner (under the lease the dead one left) reads the same blocks again
    drive(evm_scanner(chain.network, [chain.anvil.url], owner=dead.owner))
    # Then it finds the deposit held: no second hold, no second event
    assert len(deposit_events(api, "deposit.held")) == 1 and status(api, order)["status"] == "confirming"


def test_a_deep_reorg_removing_a_held_deposit_tells_the_merchant_once(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a payment held awaiting a second source, the merchant told
    enable_network(
        settings_env, chain.network, chain.token.address, confirmations=2, extra={"secondSourceAbove": "100"}
    )
    chain.mine(12)
    order = create(api, chain, "250.00")
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    txid = chain.pay(order["address"], "250.00")
    chain.mine(3)
    drive(scanner)
    assert len(deposit_events(api, "deposit.held")) == 1
    # When a reorg deeper than the policy removes it, and the scanner reads the range twice
    chain.anvil.rpc("anvil_reorg", [6, []])
    chain.mine(3)
    drive(scanner)
    drive(scanner)
    # Then its hold ends once: deposit.reversed, and the order back to pending
    (gone,) = deposit_events(api, "deposit.reversed")
    assert (gone["data"]["txid"], gone["data"]["status"], gone["sequence"]) == (txid, "reversed", 3)
    assert status(api, order)["status"] == "pending" and listed(api) == {}


# -- EVM: a second endpoint that is down, slow or behind -------------------------------------------


class Unsteady(RpcProxy):
    """anvil through a proxy that can be down (503 to everything), slow (holds each request until
    released, beyond the client's timeout) or behind (its chain ends `behind` blocks early)."""

    def __init__(self, upstream: str) -> None:
        self.mode = "ok"
        self.behind = 0
        self.released = threading.Event()
        super().__init__(upstream)

    def refuse(self) -> tuple[int, bytes] | None:
        if self.mode == "down":
            return 503, b'{"error": "unavailable"}'
        if self.mode == "slow":
            self.released.wait(10)
        return None

    def result(self, method: str, params: list[Any]) -> Any:
        head = int(self.rpc.call("eth_blockNumber", []), 16) - self.behind
        if method == "eth_blockNumber":
            return hex(head)
        found = super().result(method, params)
        if method == "eth_getBlockByNumber" and str(params[0]).startswith("0x") and int(params[0], 16) > head:
            return None
        if method == "eth_getTransactionReceipt" and found and int(found["blockNumber"], 16) > head:
            return None
        return found


def two_endpoints(network: str, first: str, second: str) -> Scanner:
    """A scanner whose second endpoint times out after 0.3 s."""
    endpoints = Endpoints(
        [(first, JsonRpc(first, timeout=2)), (second, JsonRpc(second, timeout=0.3))], backoff_s=0.01, rest_s=5
    )
    return Scanner(EvmReader(config.networks()[network], endpoints), sleep=lambda s: None)


@pytest.mark.parametrize("trouble", ["down", "slow", "behind"])
def test_a_second_endpoint_down_slow_or_behind_delays_the_credit_and_loses_nothing(
    api: ApiClient, chain: EvmChain, trouble: str
) -> None:
    second = Unsteady(chain.anvil.url)
    try:
        # Given a real payment, final, and a second endpoint that cannot confirm it yet
        order = create(api, chain, "25.00")
        scanner = two_endpoints(chain.network, chain.anvil.url, second.url)
        drive(scanner)
        before = final_block(chain.network)
        txid = chain.pay(order["address"], "25.00")
        paid_in = chain.head()
        chain.mine(2)
        second.mode, second.behind = ("ok", 10) if trouble == "behind" else (trouble, 0)
        # When the scanner runs: the pass stops before crediting, and its cursor stays before the payment
        fails_once(scanner)
        fails_once(scanner)
        assert before == final_block(chain.network) < paid_in
        assert status(api, order)["status"] == "pending" and listed(api) == {}
        # Then once the second endpoint answers (caught up), the payment is credited, once
        second.mode, second.behind = "ok", 0
        second.released.set()
        drive(scanner)
        done = status(api, order)
        assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "25.00", txid)
        assert [e["type"] for e in order_events(api, order)] == ["order.confirmed"]
        assert scanner.report.credited == 1 and scanner.report.disputed == 0
    finally:
        second.released.set()
        second.close()


def test_two_honest_endpoints_credit_once_even_when_killed_between_the_check_and_the_credit(
    api: ApiClient, chain: EvmChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = RpcProxy(chain.anvil.url)
    try:
        # Given a real payment, final, with two honest endpoints
        order = create(api, chain, "25.00")
        scanner = evm_scanner(chain.network, [chain.anvil.url, other.url])
        drive(scanner)
        before = final_block(chain.network)
        txid = chain.pay(order["address"], "25.00")
        chain.mine(2)
        # When the scanner dies after the second endpoint confirmed it, before the credit's write
        checked: list[second_source.Finding] = []
        real_check, real_credit = second_source.check, deposits.credit_final

        def check(*args: Any) -> list[second_source.Finding]:
            found = real_check(*args)
            checked.extend(found)
            return found

        def killed(*args: Any, **kwargs: Any) -> Any:
            raise SystemExit("killed before the credit")

        monkeypatch.setattr(second_source, "check", check)
        monkeypatch.setattr(deposits, "credit_final", killed)
        with pytest.raises(SystemExit):
            drive(scanner)
        monkeypatch.setattr(deposits, "credit_final", real_credit)
        assert [(f.verdict, f.endpoint) for f in checked] == [(second_source.Verdict.CONFIRMED, other.url)]
        assert final_block(chain.network) == before and status(api, order)["status"] == "pending"
        # Then its successor asks again and credits it, once
        drive(evm_scanner(chain.network, [chain.anvil.url, other.url], owner=scanner.owner))
        done = status(api, order)
        assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "25.00", txid)
        assert [e["type"] for e in order_events(api, order)] == ["order.confirmed"]
        assert listed(api) == {txid: ("credited", None)}
    finally:
        other.close()


# -- Tron: a lying twin of the full node -----------------------------------------------------------


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=3) as running:
        yield running


@pytest.fixture
def tron(node: TronNode, settings_env: pytest.MonkeyPatch) -> TronChain:
    return new_tron_chain(node, settings_env)


def set_network_field(mp: pytest.MonkeyPatch, network: str, **fields: Any) -> None:
    spec = json.loads(os.environ["NETWORKS_CONFIG"])
    spec[network].update(fields)
    mp.setenv("NETWORKS_CONFIG", json.dumps(spec))
    config.reset()


def test_tron_a_forged_transaction_info_is_held_disputed(
    api: ApiClient, tron: TronChain, node: TronNode, emitted: list[str]
) -> None:
    lying = ForgingChain(node.chain)
    with TronNode(lying) as liar:
        # Given an order, and two full nodes on its chain: the preferred one shows a payment of it
        # in a block of the chain (same block id, its transaction list and infos to match)
        order = create(api, tron, "25.00")
        scanner = tron_scanner(tron.network, [liar.url, node.url])
        drive(scanner)
        number = tron.mine(1)
        txid = lying.forge(number, tron.transfer(order["address"], "25.00"))
        drive(scanner)
        assert status(api, order)["status"] == "confirming"
        # When the block is solidified
        tron.solidify()
        drive(scanner)
        # Then the honest node contradicts it: held, disputed, never credited
        assert (status(api, order)["status"], status(api, order)["paidAmount"]) == ("confirming", "0.00")
        assert listed(api) == {txid: ("disputed", "second_source_disagrees")}
        assert scanner.report.disputed == 1 and "DepositsDisputed" in emitted
        (held,) = deposits.held(tron.network)
        assert held.source == liar.url and "the transaction is in no block" in str(held.held_detail)


def test_tron_with_one_node_a_forgery_above_the_threshold_waits_and_below_it_is_trusted(
    api: ApiClient, tron: TronChain, node: TronNode, settings_env: pytest.MonkeyPatch
) -> None:
    set_network_field(settings_env, tron.network, secondSourceAbove="100")
    lying = ForgingChain(node.chain)
    with TronNode(lying) as liar:
        big, small = create(api, tron, "250.00"), create(api, tron, "25.00")
        scanner = tron_scanner(tron.network, [liar.url])
        drive(scanner)
        number = tron.mine(1)
        above = lying.forge(number, tron.transfer(big["address"], "250.00"))
        below = lying.forge(number, tron.transfer(small["address"], "25.00"))
        tron.solidify()
        drive(scanner)
        assert listed(api) == {above: ("unverified", "awaiting_second_source"), below: ("credited", None)}
        assert status(api, big)["status"] != "confirmed" and status(api, small)["status"] == "confirmed"


def test_tron_a_second_node_briefly_down_delays_the_credit_and_loses_nothing(
    api: ApiClient, tron: TronChain, node: TronNode
) -> None:
    with TronNode(node.chain) as second:
        # Given a real payment, solidified, and a second node that fails its next two answers
        order = create(api, tron, "25.00")
        scanner = tron_scanner(tron.network, [node.url, second.url])
        drive(scanner)
        before = final_block(tron.network)
        txid = tron.pay(order["address"], "25.00")
        tron.solidify()
        second.fail_next(2, HTTPStatus.INTERNAL_SERVER_ERROR, path="/wallet/gettransactioninfobyid")
        fails_once(scanner)
        fails_once(scanner)
        assert final_block(tron.network) == before and status(api, order)["status"] == "pending"
        # When it answers again, the payment is credited, once
        drive(scanner)
        done = status(api, order)
        assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "25.00", txid)
        assert second.requests["/wallet/gettransactioninfobyid"] == 3
