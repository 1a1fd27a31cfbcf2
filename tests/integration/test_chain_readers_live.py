"""The scanner's chain readers against real nodes: anvil with the compiled test token, and the
fake Tron full node through tronpy's own HTTP provider."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from eth_account import Account
from tronpy.providers import HTTPProvider

from devstack.evm import Anvil, deploy_batch_payer, deploy_token, mint, start_anvil, usdt
from devstack.tron_node import Trc20Transfer, TronNode, start_tron_node
from usdt_gateway.address_codec import tron_address_from_body
from usdt_gateway.chain import evm, tron
from usdt_gateway.chain.endpoints import Endpoints
from usdt_gateway.chain.jsonrpc import JsonRpc, RpcUnavailable

TRON_USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with start_anvil() as node:
        yield node


def test_evm_reader_finds_direct_and_contract_made_transfers(anvil: Anvil) -> None:
    # Given the token, a direct transfer to one watched address and a batch payment to two more
    w3 = anvil.web3()
    owner = str(w3.eth.accounts[0])
    token = deploy_token(w3, owner)
    payer = deploy_batch_payer(w3, owner)
    mint(token, owner, usdt("1000"), owner=owner)
    start = w3.eth.block_number
    a, b, c, stranger = (str(Account.create().address) for _ in range(4))
    w3.eth.wait_for_transaction_receipt(token.functions.transfer(a, usdt("25.5")).transact({"from": owner}))
    w3.eth.wait_for_transaction_receipt(token.functions.approve(payer.address, usdt("10")).transact({"from": owner}))
    w3.eth.wait_for_transaction_receipt(
        payer.functions.pay(token.address, [b, c], [usdt("3"), usdt("4")]).transact({"from": owner})
    )
    w3.eth.wait_for_transaction_receipt(token.functions.transfer(stranger, usdt("1")).transact({"from": owner}))
    # When the reader scans the range for the watched addresses, two blocks per call
    rpc = JsonRpc(anvil.url)
    found = evm.transfers(
        rpc,
        network="local",
        token=token.address,
        recipients=[a, b, c],
        from_block=start + 1,
        to_block=evm.head(rpc),
        max_range=2,
    )
    # Then it finds exactly the three payments, with amounts in base units and block hashes
    assert [(t.recipient, t.units) for t in found] == [(a, 25_500_000), (b, 3_000_000), (c, 4_000_000)]
    assert all(t.sender == owner and t.block_hash == evm.block_hash(rpc, t.block_number) for t in found)
    assert found[1].txid == found[2].txid and found[1].log_index != found[2].log_index


def test_evm_failover_reaches_the_working_endpoint(anvil: Anvil) -> None:
    # Given a dead endpoint listed before the working one
    eps = Endpoints(
        [("dead", JsonRpc("http://127.0.0.1:9/", timeout=0.5)), ("anvil", JsonRpc(anvil.url))], backoff_s=0.01
    )
    # When the head is read through the failover
    number = eps.call(evm.head)
    # Then the working endpoint answers and the dead one is counted and resting
    assert number == evm.head(JsonRpc(anvil.url))
    assert eps.errors["dead"] == 1 and eps.usable() == ["anvil"]
    with pytest.raises(RpcUnavailable):
        evm.head(JsonRpc("http://127.0.0.1:9/", timeout=0.5))


@pytest.fixture
def tron_node() -> Iterator[TronNode]:
    with start_tron_node(blocks=5) as node:
        yield node


def random_tron() -> str:
    return tron_address_from_body(secrets.token_bytes(20))


def test_tron_reader_through_tronpy_provider(tron_node: TronNode) -> None:
    # Given a block with a payment to the shop, a failed one, one through a contract, and another token's
    payer, shop = random_tron(), random_tron()
    number = tron_node.add_block(
        [
            Trc20Transfer(TRON_USDT, payer, shop, 12_500_000),
            Trc20Transfer(TRON_USDT, payer, shop, 99_000_000, failed=True),
            Trc20Transfer(TRON_USDT, payer, shop, 2_000_000, via_contract=random_tron()),
            Trc20Transfer(random_tron(), payer, shop, 50_000_000),
        ]
    )
    tron_node.mine(20)
    provider = HTTPProvider(tron_node.url)
    # When the reader reads that block for the shop's address
    head, solid = tron.heads(provider)
    found = tron.transfers(
        provider,
        network="tron",
        token=TRON_USDT,
        recipients={shop},
        number=number,
        block_hash=tron.block_id(provider, number) or "",
    )
    # Then only the successful USDT payments count, including the one made through a contract
    assert solid >= number and head > solid
    assert sorted(t.units for t in found) == [2_000_000, 12_500_000]
    assert {t.txid for t in found} <= set(tron_node.txids(number))
    assert all(t.block_hash == tron_node.block_id(number) and t.sender == payer for t in found)
