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
from usdt_gateway import config, cursor, deposits
from usdt_gateway import status as admin_status
from usdt_gateway.admin import main as admin_main
from usdt_gateway.chain import second_source
from usdt_gateway.chain.endpoints import AllEndpointsFailed, Endpoints
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.chain.readers import EvmReader
from usdt_gateway.chain.rpc_config import EndpointSpec
from usdt_gateway.observability import metrics
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
