"""RPC calls of one real scan cycle (`Scanner.cycle()`) at 10, 1,000 and 10,000 open orders, on
an EVM chain (anvil) and on Tron (the fake full node), beside per-address polling (one call per
open order per cycle, as the popular self-hosted gateways do).

    .venv/bin/python -m bench.rpc_calls [--endpoints 2] [--orders 10,1000]

What is counted: every request the gateway's chain clients make during one `Scanner.cycle()`, at
the client: `JsonRpc.call` and `JsonRpc.batch` on EVM and `readers.TronNode.make_request` on Tron
are wrapped for the cycle (so the heads, the range reads, the block-hash checks of
`Scanner._with_blocks` in both passes and, with two endpoints, the second endpoint's word on
each deposit credited (chain/second_source.py) all show up by method, and per endpoint). A
JSON-RPC batch is one HTTP request and counts as one call ("batch"); the calls inside it are
listed apart, by method, and not added to the total. The readers are built by
`readers.reader_for` from `EndpointSpec`s, as `scan_jobs.build` builds them: one (`--endpoints 1`,
the default), or two (`--endpoints 2`: the same node twice under two names, so each call is
counted against the endpoint that made it). The endpoint check that runs every 30 s with two
endpoints (`Scanner._check_endpoints`: each one's head, and a block hash) is not part of a
cycle's cost: it is left out of the measured cycles. The time inside those calls is summed too, and the
DynamoDB calls of the same cycle are counted and timed (botocore's `before-call`/`after-call`
events), for context: the cycle's wall time is mostly moto's, not the chain's.

Setup, all in this process: an AtomicMotoServer (table from template.yaml, a KMS key); a merchant
with a fresh EVM and Tron xpub (random mnemonic made at run time). Per chain and order count, a
network of its own (its own cursor and WATCH partition):

- EVM: a fresh anvil (automine) with the compiled TestUSDT, finality `confirmations` (2), 1 s
  blockTimeMs, the default maxLogRange of 1,000 blocks.
- Tron: a fresh fake full node, finality `solidified` (the node's solid head trails its head by
  19 blocks, as on mainnet), a random token contract.
- Open orders: min(orders, 20) made by `orders.create_order` (50 USDT each, so they are paid in
  part and every payment is credited); the rest as WATCH items made by the gateway's
  `watchlist.watch_part` (one random address each, created over the last 20 minutes, open for
  30 minutes plus the grace window) and batch-written with botocore exactly as `watch_part`
  shapes them. The scanner reads them with the real `WatchList.refresh` (strongly consistent
  queries of the WATCH partition).
- The scanner is caught up first (cycles under its lease until caught up). Then 20 new blocks,
  each with one 1 USDT payment to one of the created orders (on anvil each transfer is its own
  block), and the one cycle that follows is measured. Then the steady state, each after catching
  up again: one new block with one payment, and one new empty block (on Tron, an empty block
  beside a block of transfers to others would read the same: the node's answer is per block).
  Those cycles still credit earlier payments as they become final; the last one (marked idle,
  `1/0*`) follows empty blocks enough for every payment to be credited already: it credits nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import random
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from bip_utils import Bip39MnemonicGenerator, Bip39SeedGenerator, Bip44, Bip44Coins
from web3 import Web3

from bench.local_aws import point_at_moto
from devstack.evm import deploy_token, mint, start_anvil, usdt
from devstack.moto_server import AtomicMotoServer
from devstack.tron_node import Trc20Transfer, start_tron_node

ORDERS = (10, 1_000, 10_000)
NEW_BLOCKS = 20  # per measured cycle, one payment in each: a minute of Tron blocks, 20 s of anvil's
# What each measured cycle follows: (new blocks, of which paying one order each, and whether every
# payment before them is credited already: an idle cycle, which credits nothing)
SCENARIOS = ((NEW_BLOCKS, NEW_BLOCKS, False), (1, 1, False), (1, 0, False), (1, 0, True))
# Empty blocks that make every earlier payment final before an idle cycle: EVM's confirmations,
# Tron's solid lag (the fake node's default).
SETTLE_BLOCKS = {"EVM": 3, "Tron": 20}
PAID_ORDERS = 20  # orders made through orders.create_order; the others are bare WATCH items
ORDER_AMOUNT, PAYMENT = "50.00", "1"
EVM_CONFIRMATIONS = 2
TABLE = "bench-rpc-calls"
BATCH = 25  # BatchWriteItem's limit


@dataclasses.dataclass
class Measured:
    chain: str
    orders: int
    new_blocks: int
    paying: int  # of the new blocks
    idle: bool  # every earlier payment credited before: the cycle credits nothing
    rpc: Counter[str]
    batched: Counter[str]  # calls made inside batch requests, by method (not in `total`)
    by_endpoint: Counter[str]  # requests (a batch is one) by endpoint name
    dynamodb: Counter[str]
    dynamodb_seconds: dict[str, float]
    seconds: float  # the whole cycle
    rpc_seconds: float  # inside the RPC client calls
    final_blocks: int  # blocks the final pass read
    seen_blocks: int  # blocks the seen pass read
    credited: int
    seen: int
    unmatched: int

    @property
    def total(self) -> int:
        return sum(self.rpc.values())


_DYNAMODB: Counter[str] = Counter()  # calls by operation
_DYNAMODB_S: dict[str, float] = {}  # seconds by operation
_STARTED: list[float] = []


def _dynamodb_before(model: Any, **_: Any) -> None:
    _DYNAMODB[model.name] += 1
    _STARTED.append(time.perf_counter())


def _dynamodb_after(model: Any, **_: Any) -> None:
    _DYNAMODB_S[model.name] = _DYNAMODB_S.get(model.name, 0.0) + time.perf_counter() - _STARTED.pop()


@dataclasses.dataclass
class Calls:
    by_method: Counter[str] = dataclasses.field(default_factory=Counter)
    batched: Counter[str] = dataclasses.field(default_factory=Counter)
    by_endpoint: Counter[str] = dataclasses.field(default_factory=Counter)
    seconds: float = 0.0  # spent inside the client calls


@contextlib.contextmanager
def counted(cls: type, name: str) -> Iterator[Calls]:
    """Count (and time) the calls of the client method `cls.name(self, method, params)` by method,
    and the client's batch requests (`cls.batch(self, calls)`, one request each), if it has any."""
    calls = Calls()
    original: Callable[..., Any] = getattr(cls, name)
    original_batch: Callable[..., Any] | None = getattr(cls, "batch", None)

    def wrapper(self: Any, method: str, params: Any = None) -> Any:
        calls.by_method[method] += 1
        calls.by_endpoint[str(self.label)] += 1
        began = time.perf_counter()
        try:
            return original(self, method, params)
        finally:
            calls.seconds += time.perf_counter() - began

    def batch_wrapper(self: Any, batch: Any) -> Any:
        assert original_batch is not None
        calls.by_method["batch"] += 1
        calls.by_endpoint[str(self.label)] += 1
        calls.batched.update(method for method, _ in batch)
        began = time.perf_counter()
        try:
            return original_batch(self, batch)
        finally:
            calls.seconds += time.perf_counter() - began

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(cls, name, wrapper))
        if original_batch is not None:
            patches.enter_context(mock.patch.object(cls, "batch", batch_wrapper))
        yield calls


def _xpub(coin: Bip44Coins) -> str:
    seed = Bip39SeedGenerator(Bip39MnemonicGenerator().FromWordsNumber(12)).Generate()
    return str(Bip44.FromSeed(seed, coin).Purpose().Coin().Account(0).PublicKey().ToExtended())


def _setup_aws(endpoint: str) -> None:
    point_at_moto(endpoint, TABLE)
    os.environ.update(
        {
            "PUBLIC_BASE_URL": "https://pay.example.com",
            "POWERTOOLS_METRICS_DISABLED": "1",
            "POWERTOOLS_TRACE_DISABLED": "1",
        }
    )


def _enable(name: str, spec: dict[str, Any]) -> None:
    """Make `name` the one enabled network (chain ids must be unique among enabled networks)."""
    from usdt_gateway import config

    os.environ["ENABLED_NETWORKS"] = name
    os.environ["NETWORKS_CONFIG"] = json.dumps({name: spec})
    config.reset()


def _open_orders(merchant: str, network: str, orders: int, new_address: Callable[[], str]) -> list[str]:
    """`orders` open orders on `network`; returns the addresses of those made by create_order."""
    from usdt_gateway import aws, store
    from usdt_gateway import orders as orders_api
    from usdt_gateway.schemas import CreateOrderRequest
    from usdt_gateway.watchlist import watch_part

    run = uuid.uuid4().hex[:6]
    paid = []
    for i in range(min(orders, PAID_ORDERS)):
        view, _ = orders_api.create_order(
            merchant,
            CreateOrderRequest.model_validate(
                {"network": network, "currency": "USDT", "amount": ORDER_AMOUNT, "orderId": f"rpc-{run}-{i}"}
            ),
        )
        paid.append(view.address)
    rng = random.Random()
    now = int(time.time() * 1000)
    units = usdt(ORDER_AMOUNT)
    items = []
    for i in range(orders - len(paid)):
        created = now - rng.randint(60_000, 20 * 60_000)
        expires = created + 30 * 60_000
        order = {
            "pk": store.order_key(merchant, f"rpc-{run}-bulk-{i}")[0],
            "merchantId": merchant,
            "address": new_address(),
            "amountUnits": units,
            "createdAt": created,
            "expiresAt": expires,
            "watchUntil": expires + 3600 * 1000,
        }
        items.append(watch_part(network=network, order=order, mode="xpub")["Put"]["Item"])
    ddb = aws.client("dynamodb")
    for start in range(0, len(items), BATCH):
        pending: dict[str, Any] = {TABLE: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH]]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return paid


def _catch_up(scanner: Any) -> Any:
    """Take the lease and cycle until the scanner has caught up (the cursor then exists)."""
    from usdt_gateway import cursor

    state = cursor.acquire(scanner.network.name, scanner.owner, now=scanner._now(), lease_ms=scanner.lease_ms)
    assert state is not None
    for _ in range(20):
        state, caught_up = scanner.cycle(state)
        if caught_up:
            return state
    raise AssertionError("the scanner did not catch up")


def _measure(
    chain: str, orders: int, scenario: tuple[int, int, bool], scanner: Any, state: Any, client: type, method: str
) -> Measured:
    """One Scanner.cycle(), its client calls counted."""
    from usdt_gateway import cursor
    from usdt_gateway.observability import metrics

    before = dataclasses.replace(scanner.report)
    scanner._last_check = scanner.clock()  # the 30 s endpoint check is no part of a cycle's cost
    _DYNAMODB.clear()
    _DYNAMODB_S.clear()
    with counted(client, method) as rpc:
        began = time.perf_counter()
        after, _caught_up = scanner.cycle(state)
        elapsed = time.perf_counter() - began
    dynamodb, dynamodb_s = Counter(_DYNAMODB), dict(_DYNAMODB_S)
    cursor.release(scanner.network.name, scanner.owner)
    metrics.clear_metrics()  # the metrics are not what is measured; keep Powertools from flushing them
    seen_from = max(state.seen_block or 0, after.final_block) + 1
    return Measured(
        chain,
        orders,
        *scenario,
        rpc.by_method,
        rpc.batched,
        rpc.by_endpoint,
        dynamodb,
        dynamodb_s,
        elapsed,
        rpc.seconds,
        final_blocks=after.final_block - state.final_block,
        seen_blocks=max(0, (after.seen_block or 0) - seen_from + 1),
        credited=scanner.report.credited - before.credited,
        seen=scanner.report.seen - before.seen,
        unmatched=scanner.report.unmatched - before.unmatched,
    )


def _specs(url: str, endpoints: int) -> list[Any]:
    """`endpoints` endpoint specs of the one node at `url`, told apart by name."""
    from usdt_gateway.chain.rpc_config import EndpointSpec

    return [EndpointSpec(url=url, label=f"endpoint{i + 1}") for i in range(endpoints)]


def evm_cycle(merchant: str, orders: int, endpoints: int) -> list[Measured]:
    from usdt_gateway import config
    from usdt_gateway.address_codec import to_checksum_address
    from usdt_gateway.chain.jsonrpc import JsonRpc
    from usdt_gateway.chain.readers import reader_for
    from usdt_gateway.scanner import Scanner

    with start_anvil() as anvil:
        w3 = anvil.web3()
        accounts = [str(a) for a in w3.eth.accounts]
        owner, payer = accounts[0], accounts[1]
        token = deploy_token(w3, owner)
        mint(token, payer, usdt("1000000"), owner=owner)
        name = f"bench-evm-{orders}"
        _enable(
            name,
            {
                "family": "evm",
                "chainId": 31337,
                "displayName": "Anvil",
                "tokenContract": token.address,
                "decimals": 6,
                "blockTimeMs": 1000,
                "finality": {"mode": "confirmations", "confirmations": EVM_CONFIRMATIONS},
            },
        )
        paid = _open_orders(merchant, name, orders, lambda: to_checksum_address(secrets.token_bytes(20)))
        scanner = Scanner(reader_for(config.networks()[name], _specs(anvil.url, endpoints)))
        measured = []
        for scenario in SCENARIOS:
            blocks, paying, idle = scenario
            if idle:
                anvil.rpc("anvil_mine", [hex(SETTLE_BLOCKS["EVM"])])
            state = _catch_up(scanner)
            head = w3.eth.block_number
            for i in range(paying):  # automine: each transfer is a block of its own
                tx = token.functions.transfer(Web3.to_checksum_address(paid[i % len(paid)]), usdt(PAYMENT)).transact(
                    {"from": payer}
                )
                w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.01)
            if blocks > paying:
                anvil.rpc("anvil_mine", [hex(blocks - paying)])
            assert w3.eth.block_number == head + blocks
            measured.append(_measure("EVM", orders, scenario, scanner, state, JsonRpc, "call"))
        return measured


def tron_cycle(merchant: str, orders: int, endpoints: int) -> list[Measured]:
    from usdt_gateway import config
    from usdt_gateway.address_codec import tron_address_from_body
    from usdt_gateway.chain.readers import TronNode, reader_for
    from usdt_gateway.scanner import Scanner

    def address() -> str:
        return tron_address_from_body(secrets.token_bytes(20))

    token, payer = address(), address()
    with start_tron_node(blocks=3) as node:
        name = f"bench-tron-{orders}"
        _enable(
            name,
            {
                "family": "tron",
                "chainId": 1_000_000 + orders,
                "displayName": "Fake Tron",
                "tokenContract": token,
                "decimals": 6,
                "blockTimeMs": 3000,
                "finality": {"mode": "solidified"},
            },
        )
        paid = _open_orders(merchant, name, orders, address)
        node.mine(30)  # a solid head above the genesis block
        scanner = Scanner(reader_for(config.networks()[name], _specs(node.url, endpoints)))
        measured = []
        for scenario in SCENARIOS:
            blocks, paying, idle = scenario
            if idle:
                node.mine(SETTLE_BLOCKS["Tron"])
            state = _catch_up(scanner)
            for i in range(blocks):
                node.add_block([Trc20Transfer(token, payer, paid[i % len(paid)], usdt(PAYMENT))] if i < paying else [])
            measured.append(_measure("Tron", orders, scenario, scanner, state, TronNode, "make_request"))
        return measured


def _label(m: Measured) -> str:
    return f"{m.new_blocks}/{m.paying}" + ("*" if m.idle else "")


def _calls(m: Measured, endpoints: int) -> str:
    listed = ", ".join(f"{method.removeprefix('wallet/')} {n}" for method, n in sorted(m.rpc.items()))
    if m.batched:
        listed += " [in batches: " + ", ".join(f"{method} {n}" for method, n in sorted(m.batched.items())) + "]"
    if endpoints > 1:
        names = [f"endpoint{i + 1}" for i in range(endpoints)]
        listed += "; by endpoint: " + ", ".join(f"{name} {m.by_endpoint[name]}" for name in names)
    return listed


def _order_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated counts, not {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("each count must be at least 1")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description="RPC calls of one scan cycle, EVM and Tron")
    parser.add_argument(
        "--endpoints",
        type=int,
        choices=(1, 2),
        default=1,
        help="RPC endpoints per network (2: a second one confirms each deposit credited)",
    )
    parser.add_argument(
        "--orders", type=_order_counts, default=ORDERS, metavar="N,N", help="open orders per measured network"
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    results: list[Measured] = []
    try:
        _setup_aws(f"http://{host}:{port}")
        from usdt_gateway import aws, config, merchants
        from usdt_gateway.observability import logger

        logger.setLevel(logging.WARNING)
        _enable("local", {})  # a valid configuration for the merchant calls
        events = aws.client("dynamodb").meta.events
        events.register("before-call.dynamodb", _dynamodb_before)
        events.register("after-call.dynamodb", _dynamodb_after)
        merchant = merchants.create_merchant("bench")["merchantId"]
        merchants.configure_xpub(merchant, "evm", _xpub(Bip44Coins.ETHEREUM))
        merchants.configure_xpub(merchant, "tron", _xpub(Bip44Coins.TRON))
        for cycle in (evm_cycle, tron_cycle):
            for orders in args.orders:
                results.extend(cycle(merchant, orders, args.endpoints))
        config.reset()
    finally:
        server.stop()

    print(
        f"one Scanner.cycle() after N new blocks, of which P with one {PAYMENT} USDT payment each; "
        f"{'one endpoint' if args.endpoints == 1 else f'{args.endpoints} endpoints'}; "
        f"EVM: anvil, {EVM_CONFIRMATIONS} confirmations, default maxLogRange; Tron: fake full node, "
        f"solidified; python {sys.version.split()[0]}"
    )
    print(
        f"{'chain':5s} {'orders':>6s} {'N/P':>5s} {'blocks final+seen':>17s} {'RPC calls':>9s} "
        f"{'cycle (in RPC)':>16s} {'credited/seen':>13s} {'per-address polling':>19s}  calls by method"
    )
    for m in results:
        print(
            f"{m.chain:5s} {m.orders:>6,} {_label(m):>5s} {m.final_blocks:>10} + "
            f"{m.seen_blocks:<4} {m.total:>9,} {m.seconds * 1000:>5.0f} ms ({m.rpc_seconds * 1000:>4.0f} ms) "
            f"{m.credited:>6}/{m.seen:<6} {m.orders:>19,}  {_calls(m, args.endpoints)}"
            + (f"; unmatched {m.unmatched}" if m.unmatched else "")
        )
    print(
        "\nDynamoDB calls of the same cycles (context: the watch-list refresh, the deposit writes, the cursor; "
        "moto's time, not DynamoDB's):"
    )
    for m in results:
        timed = ", ".join(
            f"{op} {n} in {m.dynamodb_seconds.get(op, 0) * 1000:.0f} ms" for op, n in sorted(m.dynamodb.items())
        )
        print(
            f"  {m.chain:5s} {m.orders:>6,} {_label(m)}: {sum(m.dynamodb.values())} calls, "
            f"{sum(m.dynamodb_seconds.values()) * 1000:.0f} ms ({timed})"
        )

    print(
        "\ngrowth with orders (the 10-order cycle after the same new blocks as the base; requests, and calls "
        "inside batches):"
    )
    for chain in ("EVM", "Tron"):
        for scenario in SCENARIOS:
            rows = [m for m in results if m.chain == chain and (m.new_blocks, m.paying, m.idle) == scenario]
            base = rows[0]
            for m in rows[1:]:
                extra = {k: m.rpc[k] - base.rpc[k] for k in m.rpc.keys() | base.rpc.keys() if m.rpc[k] != base.rpc[k]}
                extra |= {
                    f"{k} in batches": m.batched[k] - base.batched[k]
                    for k in m.batched.keys() | base.batched.keys()
                    if m.batched[k] != base.batched[k]
                }
                which = f" ({', '.join(f'{k} {v:+d}' for k, v in sorted(extra.items()))})" if extra else ""
                print(
                    f"  {chain} {_label(m)} {m.orders:>6,}: {m.total - base.total:+d} calls"
                    f"{which} -> {'independent of orders' if not extra else 'GROWS with orders'}"
                )


if __name__ == "__main__":
    main()
