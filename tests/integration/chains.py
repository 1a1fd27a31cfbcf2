"""Chains for the scanner tests: a fresh anvil with the repo's TestUSDT, enabled as a network of
its own (a new name per test, so each test has its own cursor and watch list), and a helper that
drives a Scanner cycle by cycle under its lease."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from devstack.evm import Anvil, deploy_token, mint, usdt
from usdt_gateway import config, cursor
from usdt_gateway.chain.endpoints import Endpoints
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.chain.readers import EvmReader
from usdt_gateway.scanner import Scanner

BASE_NETWORKS = "tron,eth,bsc,polygon"


@dataclass
class EvmChain:
    anvil: Anvil
    w3: Web3
    token: Contract
    owner: str
    payer: str
    network: str  # the gateway's name for this chain in this test
    confirmations: int

    def pay(self, to: str, amount: str, *, sender: str | None = None) -> str:
        """Send `amount` USDT from the payer; returns the txid (mined at once: automine)."""
        tx = self.token.functions.transfer(Web3.to_checksum_address(to), usdt(amount)).transact(
            {"from": sender or self.payer})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.05)
        assert receipt["status"] == 1
        return "0x" + bytes(tx).hex()

    def mine(self, blocks: int = 1) -> None:
        self.anvil.rpc("anvil_mine", [hex(blocks)])

    def warp(self, seconds: int) -> None:
        """Move the chain's clock forward: the next block is `seconds` later."""
        self.anvil.rpc("evm_increaseTime", [seconds])
        self.mine()

    def head(self) -> int:
        return int(self.w3.eth.block_number)


def enable_network(mp: pytest.MonkeyPatch, name: str, token: str, *, confirmations: int,
                   extra: dict[str, Any] | None = None, rpc: list[str] | None = None) -> None:
    spec = {"family": "evm", "chainId": 31337, "displayName": "Anvil", "tokenContract": token, "decimals": 6,
            "finality": {"mode": "confirmations", "confirmations": confirmations}, "blockTimeMs": 1000,
            **(extra or {})}
    mp.setenv("ENABLED_NETWORKS", f"{BASE_NETWORKS},{name}")
    mp.setenv("NETWORKS_CONFIG", json.dumps({name: spec}))
    if rpc:
        mp.setenv("RPC_ENDPOINTS", json.dumps({name: rpc}))
    config.reset()


def new_chain(anvil: Anvil, mp: pytest.MonkeyPatch, *, confirmations: int = 2) -> EvmChain:
    w3 = anvil.web3()
    owner, payer = w3.eth.accounts[0], w3.eth.accounts[1]
    token = deploy_token(w3, owner)
    mint(token, payer, usdt("1000000"), owner=owner)
    name = f"anvil-{secrets.token_hex(3)}"
    enable_network(mp, name, token.address, confirmations=confirmations)
    return EvmChain(anvil, w3, token, owner, payer, name, confirmations)


def evm_scanner(network: str, urls: list[str], **kwargs: Any) -> Scanner:
    """A scanner of `network` through these endpoints, in order; it does not sleep unless given
    `sleep=`."""
    eps = [(u, JsonRpc(u, timeout=2)) for u in urls]
    reader = EvmReader(config.networks()[network], Endpoints(eps, backoff_s=0.01, rest_s=5))
    return Scanner(reader, **{"sleep": lambda s: None, **kwargs})


def drive(scanner: Scanner, *, max_cycles: int = 50) -> cursor.Cursor:
    """Take the lease and run cycles until the scanner has caught up with the chain."""
    state = cursor.acquire(scanner.network.name, scanner.owner, now=scanner._now(), lease_ms=scanner.lease_ms)
    assert state is not None, "another scanner holds the lease"
    for _ in range(max_cycles):
        state, caught_up = scanner.cycle(state)
        if caught_up:
            return state
    raise AssertionError("the scanner did not catch up")
