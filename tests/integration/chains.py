"""Chains for the scanner tests: a fresh anvil with the repo's TestUSDT, or a fake Tron full node
with a random token contract, each enabled as a network of its own (a new name per test, so each
test has its own cursor and watch list), and a helper that drives a Scanner cycle by cycle under
its lease."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from devstack.evm import Anvil, deploy_token, mint, usdt
from devstack.tron_node import FakeChain, Transfer, Trc20Transfer, TronNode
from tests.integration.apiclient import ApiClient
from usdt_gateway import config, cursor, deposits, store
from usdt_gateway.address_codec import tron_address_from_body
from usdt_gateway.chain.endpoints import Endpoints
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.chain.readers import EvmReader, TronReader
from usdt_gateway.chain.readers import TronNode as TronClient
from usdt_gateway.networks import BUILTIN
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
            {"from": sender or self.payer}
        )
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


def enable_network(
    mp: pytest.MonkeyPatch,
    name: str,
    token: str,
    *,
    confirmations: int,
    extra: dict[str, Any] | None = None,
    rpc: list[str] | None = None,
) -> None:
    spec = {
        "family": "evm",
        "chainId": 31337,
        "displayName": "Anvil",
        "tokenContract": token,
        "decimals": 6,
        "finality": {"mode": "confirmations", "confirmations": confirmations},
        "blockTimeMs": 1000,
        **(extra or {}),
    }
    mp.setenv("ENABLED_NETWORKS", f"{BASE_NETWORKS},{name}")
    mp.setenv("NETWORKS_CONFIG", json.dumps({name: spec}))
    if rpc:
        mp.setenv("RPC_ENDPOINTS", json.dumps({name: rpc}))
    config.reset()


def new_chain(anvil: Anvil, mp: pytest.MonkeyPatch, *, confirmations: int = 2) -> EvmChain:
    w3 = anvil.web3()
    owner, payer = w3.eth.accounts[0], w3.eth.accounts[1]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
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


@contextlib.contextmanager
def killed_after_one_credit(mp: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside, the scanner credits one deposit and then dies (SystemExit), as a process killed
    mid-range does: after its first commit, before its cursor moves. Its deposit workers take
    turns here, so exactly one credit is made whichever thread comes first."""
    real = deposits.credit_final
    credited: list[object] = []
    turn = threading.Lock()

    def credit_then_die(*args: Any, **kwargs: Any) -> Any:
        with turn:
            if credited:
                raise SystemExit("killed mid-range")
            credited.append(real(*args, **kwargs))
            return credited[-1]

    mp.setattr(deposits, "credit_final", credit_then_die)
    try:
        yield
    finally:
        mp.setattr(deposits, "credit_final", real)


# -- Tron, through the fake full node --------------------------------------------------------------


def tron_address() -> str:
    """A random valid base58 Tron address."""
    return tron_address_from_body(secrets.token_bytes(20))


@dataclass
class TronChain:
    """A fake full node's chain as one test's network. Its solid head is pinned: new blocks stay
    above it (seen, not final) until `solidify`."""

    node: TronNode
    network: str  # the gateway's name for this chain in this test
    token: str  # the network's USDT contract (base58)
    payer: str

    def transfer(
        self,
        to: str,
        amount: str,
        *,
        token: str | None = None,
        failed: bool | str = False,
        via_contract: str | None = None,
    ) -> Trc20Transfer:
        """A USDT transfer from the payer (another TRC-20 with `token`), to put in a block."""
        return Trc20Transfer(
            token or self.token, self.payer, to, usdt(amount), failed=failed, via_contract=via_contract
        )

    def pay(self, to: str, amount: str, *, timestamp: int | None = None, **kwargs: Any) -> str:
        """A new block holding one transfer (see `transfer`); returns its txid (bare hex)."""
        return self.include([self.transfer(to, amount, **kwargs)], timestamp=timestamp)[0]

    def include(self, transfers: list[Transfer], *, timestamp: int | None = None) -> list[str]:
        """A new block holding these transfers, one transaction each; returns their txids."""
        return self.node.txids(self.node.add_block(transfers, timestamp))

    def mine(self, blocks: int = 1) -> int:
        """Empty blocks; returns the new head."""
        return self.node.mine(blocks)

    def warp(self, timestamp: int) -> int:
        """An empty block at `timestamp` (ms): the chain's clock jumps there; returns its number."""
        return self.node.add_block([], timestamp)

    def solidify(self, number: int | None = None) -> int:
        """Move the solidified head to `number` (default: the head); returns it."""
        solid = self.node.head if number is None else number
        self.node.set_solid(solid)
        return solid

    def reinclude(self, number: int, *, later: int = 1) -> int:
        """A reorg from block `number` that puts its transactions back `later` blocks on, with the
        same txids (the same signed transactions in a new block); returns that block's number."""
        chain = self.node.chain
        old = chain.block(number)
        assert old is not None
        self.node.reorg(number, later + 1)
        new = chain.block(number + later)
        assert new is not None
        new.transactions.extend(old.transactions)
        chain.txs.update({tx.txid: (tx, new.number) for tx in old.transactions})
        return new.number

    def head(self) -> int:
        return self.node.head


def lagging_copy(chain: FakeChain, behind: int) -> FakeChain:
    """What a node `behind` blocks out of sync holds: the same blocks and ids, minus the newest."""
    copy = FakeChain(solid_lag=chain.solid_lag)
    copy.blocks = chain.blocks[: len(chain.blocks) - behind]
    copy.txs = {txid: entry for txid, entry in chain.txs.items() if entry[1] < len(copy.blocks)}
    return copy


def _free_chain_id() -> int:
    """A chain id no built-in network has, so it never collides with an enabled one."""
    taken = {spec["chainId"] for spec in BUILTIN.values()}
    while (chain_id := 1_000_000 + secrets.randbelow(1 << 30)) in taken:
        pass
    return chain_id


def enable_tron_network(
    mp: pytest.MonkeyPatch,
    name: str,
    token: str,
    *,
    finality: dict[str, Any] | None = None,
    rpc: list[str] | None = None,
) -> None:
    """Enable `name` as a Tron-family network (solidified finality unless told otherwise)."""
    spec = {
        "family": "tron",
        "chainId": _free_chain_id(),
        "displayName": "Fake Tron",
        "tokenContract": token,
        "decimals": 6,
        "finality": finality or {"mode": "solidified"},
        "blockTimeMs": 3000,
    }
    mp.setenv("ENABLED_NETWORKS", f"{BASE_NETWORKS},{name}")
    mp.setenv("NETWORKS_CONFIG", json.dumps({name: spec}))
    if rpc:
        mp.setenv("RPC_ENDPOINTS", json.dumps({name: rpc}))
    config.reset()


def new_tron_chain(node: TronNode, mp: pytest.MonkeyPatch, *, finality: dict[str, Any] | None = None) -> TronChain:
    """A network of its own on `node`, with its solid head pinned at the current head."""
    name = f"tron-{secrets.token_hex(3)}"
    token = tron_address()
    enable_tron_network(mp, name, token, finality=finality)
    node.set_solid(node.head)
    return TronChain(node, name, token, tron_address())


def tron_scanner(network: str, urls: list[str], *, timeout: float = 2.0, **kwargs: Any) -> Scanner:
    """A scanner of `network` through these full nodes, in order; it does not sleep unless given
    `sleep=`."""
    nodes = [(u, TronClient(u, timeout=timeout)) for u in urls]
    reader = TronReader(config.networks()[network], Endpoints(nodes, backoff_s=0.01, rest_s=5))
    return Scanner(reader, **{"sleep": lambda s: None, **kwargs})


# --- the API calls the lifecycle tests make ------------------------------------------------------


def create(api: ApiClient, chain: EvmChain | TronChain, amount: str = "25.00", **extra: object) -> dict[str, Any]:
    """Create an order on the test chain's network through the API; it must be created."""
    resp = api.create(network=chain.network, amount=amount, **extra)
    assert resp.status == 201, resp.body
    order: dict[str, Any] = resp.body
    return order


def status(api: ApiClient, order: dict[str, Any]) -> dict[str, Any]:
    """The order as GET /v1/payment/order/{orderId} returns it."""
    resp = api.request("GET", f"/v1/payment/order/{order['orderId']}")
    assert resp.status == 200
    current: dict[str, Any] = resp.body
    return current


def order_events(api: ApiClient, order: dict[str, Any]) -> list[dict[str, Any]]:
    """The order's webhook events, as their bodies, in its event sequence."""
    reply = api.request("GET", "/v1/webhooks/deliveries", query=[("orderId", order["orderId"])])
    assert reply.status == 200, reply.body
    bodies: list[dict[str, Any]] = []
    for d in reply.body["deliveries"]:
        item = store.get(*store.event_key(d["deliveryId"]))
        assert item is not None
        bodies.append(json.loads(item["body"]))
    return sorted(bodies, key=lambda b: b["sequence"])


def deposits_listed(api: ApiClient, *, unmatched: bool) -> list[dict[str, Any]]:
    resp = api.request("GET", "/v1/deposits", query=[("unmatched", "true" if unmatched else "false")])
    assert resp.status == 200, resp.body
    listed: list[dict[str, Any]] = resp.body["deposits"]
    return listed
