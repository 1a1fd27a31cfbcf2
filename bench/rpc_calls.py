"""RPC calls per scan cycle at 10, 1,000 and 10,000 open orders, EVM (anvil) and Tron (the fake
full node), beside per-address polling (one call per watched address per cycle, as the popular
self-hosted gateways do). Calls are counted at the client; the scans run against real servers.

    .venv/bin/python -m bench.rpc_calls
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from typing import Any

from tronpy.providers import HTTPProvider

from devstack.evm import deploy_token, mint, start_anvil, usdt
from devstack.tron_node import Trc20Transfer, start_tron_node
from usdt_gateway.address_codec import to_checksum_address, tron_address_from_body
from usdt_gateway.chain import evm, tron
from usdt_gateway.chain.jsonrpc import JsonRpc

ORDERS = (10, 1_000, 10_000)
BLOCKS_PER_CYCLE = 20  # one minute of Tron blocks; a few minutes of Ethereum's
EVM_MAX_RANGE = 2_000  # a common provider limit on eth_getLogs block ranges
TRON_USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


class CountingRpc(JsonRpc):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: Counter[str] = Counter()

    def call(self, method: str, params: list[Any]) -> Any:
        self.calls[method] += 1
        return super().call(method, params)


class CountingProvider(HTTPProvider):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: Counter[str] = Counter()

    def make_request(self, method: str, params: Any = None) -> Any:
        self.calls[method] += 1
        return super().make_request(method, params)


def evm_cycle(orders: int) -> tuple[int, float, int]:
    with start_anvil() as anvil:
        w3 = anvil.web3()
        owner = str(w3.eth.accounts[0])
        token = deploy_token(w3, owner)
        mint(token, owner, usdt("1000"), owner=owner)
        watched = [to_checksum_address(secrets.token_bytes(20)) for _ in range(orders)]
        start = w3.eth.block_number + 1
        for i in range(BLOCKS_PER_CYCLE):  # a payment to a watched address in every block
            token.functions.transfer(watched[i % orders], usdt("1")).transact({"from": owner})
        rpc = CountingRpc(anvil.url)
        began = time.perf_counter()
        found = evm.transfers(rpc, network="local", token=token.address, recipients=watched, from_block=start,
                              to_block=start + BLOCKS_PER_CYCLE - 1, max_range=EVM_MAX_RANGE)
        elapsed = time.perf_counter() - began
        return sum(rpc.calls.values()) + 1, elapsed, len(found)  # + the eth_blockNumber of the cycle


def tron_cycle(orders: int) -> tuple[int, float, int]:
    watched = {tron_address_from_body(secrets.token_bytes(20)) for _ in range(orders)}
    payer = tron_address_from_body(secrets.token_bytes(20))
    with start_tron_node(blocks=3) as node:
        numbers = [node.add_block([Trc20Transfer(TRON_USDT, payer, addr, 1_000_000)])
                   for addr in list(watched)[:BLOCKS_PER_CYCLE]]
        numbers += [node.add_block() for _ in range(BLOCKS_PER_CYCLE - len(numbers))]
        node.mine(20)
        provider = CountingProvider(node.url)
        began = time.perf_counter()
        tron.heads(provider)
        found = []
        for n in numbers:
            found += tron.transfers(provider, network="tron", token=TRON_USDT, recipients=watched, number=n,
                                    block_hash=tron.block_id(provider, n) or "")
        elapsed = time.perf_counter() - began
        return sum(provider.calls.values()), elapsed, len(found)


def main() -> None:
    print(f"one scan cycle of {BLOCKS_PER_CYCLE} blocks; EVM eth_getLogs range limit {EVM_MAX_RANGE} blocks")
    print(f"{'chain':6s} {'open orders':>11s} {'our calls':>9s} {'scan time':>10s} {'found':>6s} "
          f"{'per-address polling calls':>26s}")
    for name, cycle in (("EVM", evm_cycle), ("Tron", tron_cycle)):
        for orders in ORDERS:
            calls, elapsed, found = cycle(orders)
            print(f"{name:6s} {orders:>11,} {calls:>9,} {elapsed * 1000:>8.0f} ms {found:>6} {orders:>26,}")


if __name__ == "__main__":
    main()
