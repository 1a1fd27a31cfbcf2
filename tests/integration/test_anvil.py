"""The local EVM chain: anvil with the test USDT token, found through eth_getLogs the way a
deposit scanner queries a node, including transfers made through another contract and a reorg."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TransactionNotFound

from devstack.evm import Anvil, deploy_batch_payer, deploy_token, mint, start_anvil, usdt

TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix("0x")


def _topic(address: str) -> str:
    """An address as a 32-byte, left-padded log topic (lowercase hex)."""
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def _fresh_address() -> str:
    return str(Account.create().address)


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with start_anvil() as node:
        yield node


@pytest.fixture
def w3(anvil: Anvil) -> Iterator[Web3]:
    """A client of the module's node; the chain goes back to its previous state after the test."""
    snapshot = anvil.rpc("evm_snapshot")
    yield anvil.web3()
    assert anvil.rpc("evm_revert", [snapshot]) is True


@pytest.fixture
def owner(w3: Web3) -> str:
    return str(w3.eth.accounts[0])


@pytest.fixture
def token(w3: Web3, owner: str) -> Contract:
    token = deploy_token(w3, owner)
    mint(token, owner, usdt("1000"), owner=owner)
    return token


def _transfer_logs(anvil: Anvil, token: Contract, recipients: list[str], from_block: int) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = anvil.rpc(
        "eth_getLogs",
        [
            {
                "fromBlock": hex(from_block),
                "toBlock": "latest",
                "address": token.address,
                "topics": [TRANSFER_TOPIC, None, [_topic(r) for r in recipients]],
            }
        ],
    )
    return logs


def test_token_looks_like_usdt(token: Contract, owner: str) -> None:
    # Given a freshly deployed token with 1000 USDT minted to the owner
    # When its metadata and balance are read
    # Then it has USDT's six decimals and the minted balance
    assert token.functions.decimals().call() == 6
    assert token.functions.symbol().call() == "USDT"
    assert token.functions.name().call() == "Test Tether USD"
    assert token.functions.balanceOf(owner).call() == 1_000_000_000


def test_mint_is_owner_only(token: Contract) -> None:
    # Given an account that did not deploy the token
    stranger = _fresh_address()
    # When it tries to mint, Then the call reverts
    with pytest.raises(ContractLogicError, match="only owner"):
        token.functions.mint(stranger, 1).call({"from": stranger})


def test_get_logs_finds_direct_and_batched_transfers_by_recipient(
    anvil: Anvil, w3: Web3, token: Contract, owner: str
) -> None:
    # Given a direct transfer of 25.5 USDT to alice, and bob and carol paid through BatchPayer
    alice, bob, carol, bystander = (_fresh_address() for _ in range(4))
    start = w3.eth.block_number + 1
    direct = w3.eth.wait_for_transaction_receipt(
        token.functions.transfer(alice, usdt("25.5")).transact({"from": owner})
    )
    payer = deploy_batch_payer(w3, owner)
    token.functions.transfer(bystander, usdt("1")).transact({"from": owner})
    token.functions.approve(payer.address, usdt("100")).transact({"from": owner})
    batch = w3.eth.wait_for_transaction_receipt(
        payer.functions.pay(token.address, [bob, carol], [usdt("10"), usdt("0.000001")]).transact({"from": owner})
    )
    assert direct["status"] == 1 and batch["status"] == 1
    assert batch["to"] == payer.address  # the deposit went through another contract

    # When one eth_getLogs asks for Transfer logs of the token to any of the three recipients
    logs = _transfer_logs(anvil, token, [alice, bob, carol], start)

    # Then exactly those three transfers come back, in chain order, with their values and positions
    assert [(log["topics"][2], int(log["data"], 16)) for log in logs] == [
        (_topic(alice), 25_500_000),
        (_topic(bob), 10_000_000),
        (_topic(carol), 1),
    ]
    assert all(log["address"] == token.address.lower() for log in logs)
    assert all(log["topics"][0] == TRANSFER_TOPIC for log in logs)
    assert all(log["topics"][1] == _topic(owner) for log in logs)
    assert all(log["removed"] is False for log in logs)
    assert int(logs[0]["blockNumber"], 16) == direct["blockNumber"]
    assert logs[0]["transactionHash"] == direct["transactionHash"].to_0x_hex()
    assert int(logs[0]["logIndex"], 16) == 0
    assert [int(log["blockNumber"], 16) for log in logs[1:]] == [batch["blockNumber"]] * 2
    assert [log["transactionHash"] for log in logs[1:]] == [batch["transactionHash"].to_0x_hex()] * 2
    assert [int(log["logIndex"], 16) for log in logs[1:]] == [0, 1]
    assert token.functions.balanceOf(carol).call() == 1


def test_reorg_removes_transfer_from_get_logs(anvil: Anvil, w3: Web3, token: Contract, owner: str) -> None:
    # Given two transfers to alice in consecutive blocks, the second one in the chain's head block
    alice = _fresh_address()
    start = w3.eth.block_number + 1
    kept = w3.eth.wait_for_transaction_receipt(token.functions.transfer(alice, usdt("5")).transact({"from": owner}))
    dropped = w3.eth.wait_for_transaction_receipt(token.functions.transfer(alice, usdt("7")).transact({"from": owner}))
    assert dropped["blockNumber"] == kept["blockNumber"] + 1 == w3.eth.block_number
    assert len(_transfer_logs(anvil, token, [alice], start)) == 2

    # When a reorg of depth 1 replaces the head block with one that does not contain the transfer
    anvil.rpc("anvil_reorg", [1, []])

    # Then eth_getLogs no longer returns it (no `removed: true` log either), its receipt is gone,
    # and the head block at the same height has another hash
    logs = _transfer_logs(anvil, token, [alice], start)
    assert [(log["transactionHash"], int(log["data"], 16)) for log in logs] == [
        (kept["transactionHash"].to_0x_hex(), 5_000_000)
    ]
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(dropped["transactionHash"])
    head = w3.eth.get_block("latest")
    assert head["number"] == dropped["blockNumber"]
    assert head["hash"] != dropped["blockHash"]
    assert token.functions.balanceOf(alice).call() == usdt("5")
