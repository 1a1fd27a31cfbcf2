""" "No payments here" is taken only from what a block itself proves. An endpoint that answers
nothing for blocks it has (a lagging or pruned log index, a node missing receipts or transaction
infos, a wrong answer) must never move the scanner's cursor past a payment: the answer is an
error, the cycle is retried or fails over, and the payment is credited once an endpoint answers
in full. A block whose bloom matches by chance must not stall the scanner either."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tronpy.providers import HTTPProvider

from devstack.evm import deploy_token, mint, start_anvil, usdt
from devstack.tron_node import TronNode, start_tron_node
from tests.integration.apiclient import ApiClient
from tests.integration.chains import (
    EvmChain,
    TronChain,
    create,
    deposits_listed,
    drive,
    evm_scanner,
    new_chain,
    new_tron_chain,
    status,
    tron_address,
    tron_scanner,
)
from tests.integration.rpc_proxy import RpcProxy
from usdt_gateway import cursor
from usdt_gateway.chain import evm
from usdt_gateway.chain.endpoints import AllEndpointsFailed
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.chain.transfers import TRANSFER_TOPIC
from usdt_gateway.scanner import Scanner

TX_INFOS = "/wallet/gettransactioninfobyblocknum"


def final_block(network: str) -> int:
    item = cursor.read(network)
    assert item is not None
    return int(item["finalBlock"])


def fails_once(scanner: Scanner) -> None:
    """One cycle under the scanner's lease, which must fail on the endpoints' answers."""
    state = cursor.acquire(scanner.network.name, scanner.owner, now=scanner._now(), lease_ms=scanner.lease_ms)
    assert state is not None
    with pytest.raises(AllEndpointsFailed):
        scanner.cycle(state)


# -- EVM: anvil behind a proxy that hides the newest blocks' logs --------------------------------


class HidingProxy(RpcProxy):
    """An EVM endpoint in front of anvil (single calls and batches) that answers `[]` to the
    methods in `hide` when they concern its newest `newest` blocks: eth_getLogs whose range
    reaches them or whose blockHash is one of them (a log index that lags), eth_getBlockReceipts
    of one of them (a node without their receipts)."""

    def __init__(self, upstream: str, *, newest: int = 3) -> None:
        self.newest = newest
        self.hide: set[str] = set()
        self.hidden = 0
        super().__init__(upstream)

    def result(self, method: str, params: list[Any]) -> Any:
        result = super().result(method, params)
        if method in self.hide and self._newest(method, params) and result:
            self.hidden += 1
            return []
        return result

    def _newest(self, method: str, params: list[Any]) -> bool:
        first_hidden = int(self.rpc.call("eth_blockNumber", []), 16) - self.newest + 1
        if method == "eth_getLogs" and "blockHash" not in params[0]:
            to = params[0].get("toBlock", "latest")
            return to in ("latest", "pending") or int(to, 16) >= first_hidden
        block_hash = params[0]["blockHash"] if method == "eth_getLogs" else params[0]
        block = self.rpc.call("eth_getBlockByHash", [block_hash, False])
        return block is not None and int(block["number"], 16) >= first_hidden


@pytest.fixture
def evm_chain(settings_env: pytest.MonkeyPatch) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        yield new_chain(anvil, settings_env)


@pytest.fixture
def proxy(evm_chain: EvmChain) -> Iterator[HidingProxy]:
    running = HidingProxy(evm_chain.anvil.url)
    yield running
    running.close()


def test_logs_hidden_for_the_newest_blocks_lose_no_payment(
    api: ApiClient, evm_chain: EvmChain, proxy: HidingProxy
) -> None:
    # Given five orders, and an only endpoint whose eth_getLogs answers [] for anything that
    # reaches its newest 3 blocks, by range or by block hash
    orders = [create(api, evm_chain, f"{n}.00") for n in range(11, 16)]
    scanner = evm_scanner(evm_chain.network, [proxy.url])
    drive(scanner)
    proxy.hide = {"eth_getLogs"}
    # When all five are paid, the payments become final, and the scanner runs
    for order in orders:
        evm_chain.pay(order["address"], order["amount"])
    evm_chain.mine(1)
    drive(scanner)
    # Then none is lost: each block whose header's bloom may hold a payment was read whole
    assert [status(api, o)["status"] for o in orders] == ["confirmed"] * 5
    assert scanner.report.credited == 5 and scanner.reader.endpoints.errors == {}


@pytest.mark.parametrize("then", ["honest", "failover"])
def test_a_node_without_the_newest_blocks_logs_is_an_error_never_an_empty_block(
    api: ApiClient, evm_chain: EvmChain, proxy: HidingProxy, then: str
) -> None:
    # Given an endpoint that has the newest blocks' headers but answers [] for their logs and
    # their receipts, and a payment in one of them, final
    order = create(api, evm_chain)
    scanner = evm_scanner(evm_chain.network, [proxy.url])
    drive(scanner)
    before = final_block(evm_chain.network)
    proxy.hide = {"eth_getLogs", "eth_getBlockReceipts"}
    evm_chain.pay(order["address"], "25.00")
    paid_in = evm_chain.head()
    evm_chain.mine(1)
    # When the scanner reads them through that endpoint only
    fails_once(scanner)
    # Then its answer is an error, counted, and the cursor has not moved past the payment
    assert proxy.hidden >= 1
    assert scanner.reader.endpoints.errors[proxy.url] >= 1
    assert before == final_block(evm_chain.network) < paid_in
    assert status(api, order)["status"] == "pending"
    # And once the endpoint answers in full, or with an honest one to fail over to, it is credited
    if then == "honest":
        proxy.hide = set()
        drive(scanner)
    else:
        drive(evm_scanner(evm_chain.network, [proxy.url, evm_chain.anvil.url], owner=scanner.owner))
    done = status(api, order)
    assert (done["status"], done["paidAmount"]) == ("confirmed", "25.00")


def test_a_block_whose_bloom_matches_by_chance_does_not_stall_the_scanner(api: ApiClient, evm_chain: EvmChain) -> None:
    # Given one block holding a transfer of the token to someone else and a transfer of another
    # token to an order's address: its bloom has the token, the Transfer topic and the order's
    # address, yet it pays nothing
    order = create(api, evm_chain)
    scanner = evm_scanner(evm_chain.network, [evm_chain.anvil.url])
    drive(scanner)
    other = deploy_token(evm_chain.w3, evm_chain.owner)
    mint(other, evm_chain.payer, usdt("100"), owner=evm_chain.owner)
    evm_chain.anvil.rpc("evm_setAutomine", [False])
    bystander = evm_chain.w3.eth.accounts[7]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
    evm_chain.token.functions.transfer(bystander, usdt("25")).transact({"from": evm_chain.payer})
    other.functions.transfer(order["address"], usdt("25")).transact({"from": evm_chain.payer})
    evm_chain.mine(1)
    evm_chain.anvil.rpc("evm_setAutomine", [True])
    decoy = evm_chain.head()
    header = evm.headers(JsonRpc(evm_chain.anvil.url), decoy, decoy)[0]
    bloom = evm.RecipientBloom(
        evm_chain.token.address, {t: evm.topic_mask(t) for t in evm.recipient_topics([order["address"]])}
    )
    assert len(header.txids) == 2 and bloom.matches(header.bloom)
    # When it becomes final and the scanner runs
    evm_chain.mine(1)
    drive(scanner)
    # Then the cursor passed it without an error, and nothing was recorded
    assert final_block(evm_chain.network) >= decoy and scanner.reader.endpoints.errors == {}
    assert status(api, order)["status"] == "pending" and deposits_listed(api, unmatched=False) == []
    # and a real payment after it is credited
    evm_chain.pay(order["address"], "25.00")
    evm_chain.mine(1)
    drive(scanner)
    assert status(api, order)["status"] == "confirmed"


def test_the_gateway_computes_the_nodes_logs_bloom(evm_chain: EvmChain) -> None:
    # Given a block with one Transfer log
    to = evm_chain.w3.eth.accounts[3]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
    evm_chain.pay(to, "1.00")
    rpc = JsonRpc(evm_chain.anvil.url)
    header = evm.headers(rpc, evm_chain.head(), evm_chain.head())[0]
    # When its bloom is rebuilt from the log's address and topics
    items = [
        bytes.fromhex(evm_chain.token.address[2:]),
        bytes.fromhex(TRANSFER_TOPIC),
        bytes(12) + bytes.fromhex(evm_chain.payer[2:]),
        bytes(12) + bytes.fromhex(to[2:]),
    ]
    rebuilt = 0
    for item in items:
        rebuilt |= evm.bloom_mask(item)
    # Then it is the node's logsBloom, bit for bit
    assert rebuilt == header.bloom and 3 <= rebuilt.bit_count() <= 12


# -- Tron: the fake full node answering wrong transaction-info lists -------------------------------


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=3) as running:
        yield running


@pytest.fixture
def tron_chain(node: TronNode, settings_env: pytest.MonkeyPatch) -> TronChain:
    return new_tron_chain(node, settings_env)


WRONG_INFOS: dict[str, Callable[[Any], Any]] = {
    "empty-object": lambda infos: {},  # what java-tron answers only for num <= 0
    "missing-a-transaction": lambda infos: infos[1:],
    "another-blocks-infos": lambda infos: [info | {"blockNumber": info["blockNumber"] - 1} for info in infos],
}


@pytest.mark.parametrize("wrong", WRONG_INFOS)
@pytest.mark.parametrize("then", ["honest", "failover"])
def test_wrong_transaction_infos_are_an_error_never_an_empty_block(
    api: ApiClient, tron_chain: TronChain, wrong: str, then: str
) -> None:
    with TronNode(tron_chain.node.chain) as flaky:  # the preferred node, on the same chain
        # Given a solidified block that pays an order (its first transaction) beside another transfer
        order = create(api, tron_chain)
        scanner = tron_scanner(tron_chain.network, [flaky.url])
        drive(scanner)
        before = final_block(tron_chain.network)
        paid_in = tron_chain.node.head + 1
        tron_chain.include(
            [tron_chain.transfer(order["address"], "25.00"), tron_chain.transfer(tron_address(), "3.00")]
        )
        tron_chain.solidify()
        # When the node answers that block's transaction infos wrongly
        flaky.tamper_next(1, TX_INFOS, WRONG_INFOS[wrong])
        fails_once(scanner)
        # Then it is an error, counted, and the cursor has not moved past the payment
        assert scanner.reader.endpoints.errors == {flaky.url: 1}
        assert before == final_block(tron_chain.network) < paid_in
        assert status(api, order)["status"] == "pending"
        # And once the node answers in full, or with an honest one to fail over to, it is credited
        if then == "honest":
            drive(scanner)
        else:
            flaky.tamper_next(1, TX_INFOS, WRONG_INFOS[wrong])
            failover = tron_scanner(tron_chain.network, [flaky.url, tron_chain.node.url], owner=scanner.owner)
            drive(failover)
            assert failover.reader.endpoints.errors == {flaky.url: 1}
        done = status(api, order)
        assert (done["status"], done["paidAmount"]) == ("confirmed", "25.00")


def test_each_block_is_read_once_per_pass(api: ApiClient, tron_chain: TronChain) -> None:
    # Given a scanner that has caught up, and a solidified payment
    order = create(api, tron_chain)
    scanner = tron_scanner(tron_chain.network, [tron_chain.node.url])
    drive(scanner)
    tron_chain.pay(order["address"], "25.00")
    tron_chain.solidify()
    requests = tron_chain.node.requests
    requests.clear()
    # When it credits it
    drive(scanner)
    assert status(api, order)["status"] == "confirmed"
    # Then the block's hash and time came from the block read with its transaction infos: no
    # block was fetched again on its own
    assert requests["/wallet/getblockbylimitnext"] >= 1 and requests["/wallet/getblockbynum"] == 0


def test_tampering_changes_only_the_answers_it_was_told_to(node: TronNode) -> None:
    # Given a node told to answer one transaction-info request wrongly
    number = node.add_block([])
    provider = HTTPProvider(node.url)
    node.tamper_next(1, TX_INFOS, lambda infos: {})
    # Then that one answer is changed, and the next is java-tron's again
    assert provider.make_request("wallet/gettransactioninfobyblocknum", {"num": number}) == {}
    assert provider.make_request("wallet/gettransactioninfobyblocknum", {"num": number}) == []
