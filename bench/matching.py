"""Matching throughput of the deposit scanner against 100,000 watched entries: how many transfers
per second its in-memory path (decode the node's answer, attach block refs, match each transfer
to an order) gets through, plus the memory of the 100k watch list and the fixed in-memory cost a
100k list adds to every scan cycle. No network, no DynamoDB, no HTTP is timed.

    .venv/bin/python -m bench.matching [--runs 7] [--entries 100000]

How the pieces are built:

- Watch list: one WATCH item per order, made by the gateway's own `watchlist.watch_part`, put on
  the wire as DynamoDB JSON, parsed back with `json` and `store._load` (what `query_partition`
  returns), then loaded with `WatchList.refresh()` itself; the one seam is `store.query_partition`,
  patched for the call to return those items. 99% xpub orders (one derived address each, EIP-55 /
  base58), 1% fixed-address orders (10 addresses x 100 tagged amounts, step 0.01), created over
  the last 80 minutes with 30-minute expiries (so the list also holds orders in the late-payment
  grace window, as a real one does).
- EVM (bsc, 18 decimals): `eth_getLogs` result dicts in the exact shape anvil 1.7 returns
  (address, topics [Transfer, padded from, padded to], data, blockHash, blockNumber,
  blockTimestamp, transactionHash, transactionIndex, logIndex, removed), 100 logs per block:
  50 to xpub addresses (hit), 20 to fixed addresses with a tagged amount (hit), 15 to fixed
  addresses with an amount no order has (unmatched: the merchant is known), 15 to unwatched
  addresses (a miss; the node's topic-2 filter would not return these, they exercise the cheap
  path). Timed: `chain.evm.transfers` (decode, `removed` filter, sort) over a fake JsonRpc that
  hands back the dicts (or `json.loads` of the reply body, like JsonRpc.call), then
  `Scanner._with_blocks` (block refs from memory) and `WatchList.match` per transfer.
- Tron (6 decimals): `gettransactioninfobyblocknum` arrays rendered by the fake full node's
  renderer (`devstack.tron_node.render_transaction_info`), 400 transactions per block as on
  mainnet (see TRON_* below): 80 USDT transfers (6 to xpub addresses, 2 fixed hits, 2 fixed
  wrong amounts, 70 to unwatched addresses), 5 failed USDT transfers, 215 TRX transfers, 100
  transfers of another TRC-20 token. Timed: `chain.tron.transfers` against the 100k-address
  recipient set (a provider object returns the array, or `json.loads` of it, like tronpy's
  `resp.json()`), then `Scanner._with_blocks` and `WatchList.match`.

Each run processes the same batch; the figure is the median of the runs. Memory: tracemalloc,
what stays allocated once the item dicts are gone (entries, their strings and ints, the indexes).

Fixed cost per scan cycle (`cycle_costs`): what a cycle does with the whole list whatever the chain
brings, timed on the loaded 100k list: `WatchList.refresh()` when the query returns nothing new,
the expiry sweep with nothing due, and per pass (final and seen) `addresses()` plus the reader's
work on it (EVM: `evm.transfers` building its topic lists, over a JsonRpc answering `[]`; Tron: the
recipient set). Apart, and last: `refresh()` when the query returns one new order, which makes it
rebuild its address index (it does whenever an entry arrives or lapses).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import random
import secrets
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any
from unittest import mock

from devstack.tron_node import FakeChain, Trc20Transfer, TrxTransfer, render_transaction_info
from usdt_gateway import config, cursor, store
from usdt_gateway.address_codec import to_checksum_address, tron_address_from_body
from usdt_gateway.chain import evm, tron
from usdt_gateway.chain.endpoints import Endpoints
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.chain.readers import BlockRef, EvmReader, Heads, TronReader
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, Transfer
from usdt_gateway.networks import Network, load_networks
from usdt_gateway.scanner import Scanner
from usdt_gateway.watchlist import CLOCK_SKEW_MS, WatchList, watch_part

FIXED_ADDRESSES = 10
TAGS_PER_ADDRESS = 100  # the default maxTags of a fixed address
MERCHANTS = 200
EXPIRES_S = 1800
GRACE_S = 3600
EVM_BLOCKS, EVM_LOGS_PER_BLOCK = 100, 100
TRON_BLOCKS = 20

# Context (third-party figures, not verified here):
# - BSC: 12-14 million USDT transfers a day (CryptoOnchain, Binance Square, autumn 2025:
#   https://www.binance.bh/fr-AF/square/post/30792899177810), peak 19.4 million; 0.45 s blocks
#   (the gateway's blockTimeMs) = 192,000 blocks a day.
# - Tron: 2-2.5 million USDT transfers a day (same source); 341.9 million transactions in January
#   2026 (TRON DAO via https://www.binance.bh/ar-AE/square/post/301872773592689) = 11.0 million a
#   day; 3 s blocks = 28,800 a day.
BSC_USDT_PER_DAY, BSC_USDT_PEAK_PER_DAY, BSC_BLOCK_S = 14_000_000, 19_400_000, 0.45
TRON_USDT_PER_DAY, TRON_TX_PER_DAY, TRON_BLOCK_S = 2_500_000, 341_900_000 // 31, 3.0


@dataclasses.dataclass(frozen=True)
class Book:
    """The watched orders of one network, as the bench needs them to build transfers."""

    items: list[dict[str, Any]]  # WATCH items as query_partition returns them
    xpub: list[tuple[str, int]]  # (address, units) of xpub orders
    fixed: list[tuple[str, list[int]]]  # (address, tagged units) of fixed addresses
    now: int


def _merchant_ids(rng: random.Random) -> list[str]:
    return [f"m_{rng.getrandbits(64):016x}" for _ in range(MERCHANTS)]


def build_book(network: Network, entries: int, new_address: Callable[[], str], rng: random.Random) -> Book:
    """WATCH items made by the gateway's watch_part, through DynamoDB JSON and back."""
    now = int(time.time() * 1000)
    merchants = _merchant_ids(rng)
    unit = 10**network.decimals
    fixed_count = FIXED_ADDRESSES * TAGS_PER_ADDRESS
    xpub = [
        (new_address(), rng.randint(1, 500) * unit + rng.randint(0, 99) * unit // 100)
        for _ in range(entries - fixed_count)
    ]
    step = unit // 100
    fixed = [(new_address(), [25 * unit + k * step for k in range(TAGS_PER_ADDRESS)]) for _ in range(FIXED_ADDRESSES)]
    orders = [(a, u, "xpub", merchants[i % MERCHANTS]) for i, (a, u) in enumerate(xpub)]
    orders += [(a, u, "fixed", merchants[j]) for j, (a, tags) in enumerate(fixed) for u in tags]
    wire = []
    for i, (address, units, mode, merchant) in enumerate(orders):
        created = now - rng.randint(0, 80 * 60_000)
        expires = created + EXPIRES_S * 1000
        order = {
            "pk": store.order_key(merchant, f"order-{i:06d}")[0],
            "merchantId": merchant,
            "address": address,
            "amountUnits": units,
            "createdAt": created,
            "expiresAt": expires,
            "watchUntil": expires + GRACE_S * 1000,
        }
        item = watch_part(network=network.name, order=order, mode=mode)["Put"]["Item"]
        if expires < now:
            item["closed"] = {"BOOL": True}  # what expiry.close writes to the WATCH item
        wire.append(item)
    # botocore parses the Query answer from JSON: every item has strings of its own.
    parsed = json.loads(json.dumps({"Items": wire}))["Items"]
    items = [i for i in (store._load(raw) for raw in parsed) if i]
    return Book(items, xpub, fixed, now)


def load_watch_list(network: Network, items: list[dict[str, Any]], now: int) -> WatchList:
    """WatchList.refresh() as the scanner calls it, its DynamoDB query answered with `items`."""
    watch = WatchList(network.name)
    window = (EXPIRES_S + GRACE_S) * 1000 * 2

    def query(pk: str, *, sk_from: str) -> list[dict[str, Any]]:
        return items

    with mock.patch.object(store, "query_partition", query):
        watch.refresh(first_from=now - window, keep_from=now - CLOCK_SKEW_MS)
    return watch


class MemoryBlocks:
    """A ChainReader whose block refs come from memory (no RPC): enough for Scanner._with_blocks."""

    def __init__(self, network: Network, refs: dict[int, BlockRef]) -> None:
        self.network = network
        self.endpoints: Endpoints[Any] = Endpoints([("memory", None)])
        self.scan_range = 1000
        self.source: str | None = None
        self.refs = refs

    def heads(self) -> Heads:
        raise NotImplementedError

    def block(self, number: int) -> BlockRef | None:
        return self.refs.get(number)

    def transfers(self, recipients: Collection[str], from_block: int, to_block: int) -> list[Transfer]:
        raise NotImplementedError

    def located(self, txid: str) -> int | None:
        return None

    def check_endpoints(self) -> None:
        raise NotImplementedError


def _scanner(network: Network, watch: WatchList, refs: dict[int, BlockRef]) -> Scanner:
    scanner = Scanner(MemoryBlocks(network, refs))
    scanner.watch = watch
    return scanner


def _match_all(scanner: Scanner, found: list[Transfer], counts: Counter[str]) -> None:
    """What the scanner's final pass does per transfer before its DynamoDB write."""
    found, _ = scanner._with_blocks(found, set())
    for t in found:
        entry, owner = scanner.watch.match(t.recipient, t.units, t.block_time)
        counts["hit" if entry is not None else "unmatched" if owner is not None else "miss"] += 1


# -- EVM -----------------------------------------------------------------------------------------


def _topic(address: str) -> str:
    return "0x" + "0" * 24 + address[2:].lower()


def _hash32(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(256):064x}"


def evm_logs(book: Book, network: Network, rng: random.Random) -> tuple[list[dict[str, Any]], dict[int, BlockRef]]:
    """eth_getLogs result dicts (anvil's shape), EVM_BLOCKS blocks of EVM_LOGS_PER_BLOCK logs."""
    token = network.token_contract.lower()
    senders = [to_checksum_address(secrets.token_bytes(20)) for _ in range(1000)]
    unit = 10**network.decimals
    logs: list[dict[str, Any]] = []
    refs: dict[int, BlockRef] = {}
    first = 40_000_000
    plan = ["xpub"] * 50 + ["fixed"] * 20 + ["fixed-wrong"] * 15 + ["unwatched"] * 15
    for number in range(first, first + EVM_BLOCKS):
        block_hash, ts = _hash32(rng), book.now // 1000 + (number - first)
        refs[number] = BlockRef(number, block_hash, ts * 1000)
        kinds = plan * (EVM_LOGS_PER_BLOCK // len(plan))
        rng.shuffle(kinds)
        for index, kind in enumerate(kinds):
            if kind == "xpub":
                to, units = rng.choice(book.xpub)
            elif kind == "fixed":
                to, tags = rng.choice(book.fixed)
                units = rng.choice(tags)
            elif kind == "fixed-wrong":
                to, _ = rng.choice(book.fixed)
                units = 13 * unit + 5 * unit // 1000
            else:
                to, units = to_checksum_address(secrets.token_bytes(20)), rng.randint(1, 10_000) * unit
            logs.append(
                {
                    "address": token,
                    "topics": ["0x" + TRANSFER_TOPIC, _topic(rng.choice(senders)), _topic(to)],
                    "data": f"0x{units:064x}",
                    "blockHash": block_hash,
                    "blockNumber": hex(number),
                    "blockTimestamp": hex(ts),
                    "transactionHash": _hash32(rng),
                    "transactionIndex": hex(index),
                    "logIndex": hex(index),
                    "removed": False,
                }
            )
    return logs, refs


class LogsRpc(JsonRpc):
    """Answers every eth_getLogs with the prepared logs: as dicts, or parsed from the reply body."""

    def __init__(self, logs: list[dict[str, Any]], *, parse: bool) -> None:
        super().__init__("http://memory")
        self.logs = logs
        self.body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": logs}).encode()
        self.parse = parse

    def call(self, method: str, params: list[Any]) -> Any:
        assert method == "eth_getLogs"
        return json.loads(self.body).get("result") if self.parse else self.logs


class EmptyRpc(JsonRpc):
    def __init__(self) -> None:
        super().__init__("http://memory")
        self.calls = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self.calls += 1
        return []


def evm_run(scanner: Scanner, rpc: JsonRpc, refs: dict[int, BlockRef], probe: str) -> tuple[float, Counter[str]]:
    counts: Counter[str] = Counter()
    first, last = min(refs), max(refs)
    began = time.perf_counter()
    # One recipient: its topic list is built once; the node's answer is the prepared batch.
    found = evm.transfers(
        rpc,
        network=scanner.network.name,
        token=scanner.network.token_contract,
        recipients=[probe],
        from_block=first,
        to_block=last,
        max_range=last - first + 1,
    )
    _match_all(scanner, found, counts)
    return time.perf_counter() - began, counts


# -- Tron ----------------------------------------------------------------------------------------


def tron_blocks(book: Book, network: Network, rng: random.Random) -> tuple[dict[int, list[Any]], dict[int, BlockRef]]:
    """gettransactioninfobyblocknum arrays from the fake node's renderer."""
    chain = FakeChain(start_timestamp=book.now // 3000 * 3000)
    other_token = tron_address_from_body(secrets.token_bytes(20))
    people = [tron_address_from_body(secrets.token_bytes(20)) for _ in range(2000)]
    unit = 10**network.decimals
    usdt = network.token_contract
    infos: dict[int, list[Any]] = {}
    refs: dict[int, BlockRef] = {}
    for _ in range(TRON_BLOCKS):
        txs: list[Trc20Transfer | TrxTransfer] = []
        for _ in range(6):
            to, units = rng.choice(book.xpub)
            txs.append(Trc20Transfer(usdt, rng.choice(people), to, units))
        for _ in range(2):
            to, tags = rng.choice(book.fixed)
            txs.append(Trc20Transfer(usdt, rng.choice(people), to, rng.choice(tags)))
        for _ in range(2):
            to, _ = rng.choice(book.fixed)
            txs.append(Trc20Transfer(usdt, rng.choice(people), to, 13 * unit + 5 * unit // 1000))
        txs += [
            Trc20Transfer(usdt, rng.choice(people), rng.choice(people), rng.randint(1, 10**4) * unit) for _ in range(70)
        ]
        txs += [Trc20Transfer(usdt, rng.choice(people), rng.choice(people), unit, failed=True) for _ in range(5)]
        txs += [TrxTransfer(rng.choice(people), rng.choice(people), rng.randint(1, 10**9)) for _ in range(215)]
        txs += [Trc20Transfer(other_token, rng.choice(people), rng.choice(people), unit) for _ in range(100)]
        rng.shuffle(txs)
        number = chain.add_block(txs)
        block = chain.block(number)
        assert block is not None
        infos[number] = [render_transaction_info(tx, block, visible=False) for tx in block.transactions]
        refs[number] = BlockRef(number, block.block_id, block.timestamp)
    return infos, refs


class InfosProvider:
    """Stands in for tronpy's HTTPProvider: the block's array, or json.loads of its body."""

    def __init__(self, infos: dict[int, list[Any]], *, parse: bool) -> None:
        self.infos = infos
        self.bodies = {n: json.dumps(v).encode() for n, v in infos.items()}
        self.parse = parse

    def make_request(self, method: str, params: Any = None) -> Any:
        assert method == "wallet/gettransactioninfobyblocknum"
        number = params["num"]
        return json.loads(self.bodies[number]) if self.parse else self.infos[number]


def tron_run(
    scanner: Scanner, provider: InfosProvider, watched: set[str], refs: dict[int, BlockRef]
) -> tuple[float, Counter[str]]:
    counts: Counter[str] = Counter()
    began = time.perf_counter()
    for number in sorted(refs):
        found = tron.transfers(
            provider,
            network=scanner.network.name,
            token=scanner.network.token_contract,
            recipients=watched,
            number=number,
            block_hash="",
        )
        _match_all(scanner, found, counts)
    return time.perf_counter() - began, counts


# -- the fixed cost of a 100k list per scan cycle ------------------------------------------------


def _median_s(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


REFRESH_NEW = "refresh (one new order since the last)"
PREP_SAME = "reader prep per pass, address set unchanged"
PREP_CHANGED = "reader prep, address set changed (once)"


def _new_items(network: Network, count: int, new_address: Callable[[], str], now: int) -> list[dict[str, Any]]:
    """`count` WATCH items of new xpub orders, as query_partition returns them."""
    wire = []
    for _ in range(count):
        order = {
            "pk": store.order_key("m_new", secrets.token_hex(8))[0],
            "merchantId": "m_new",
            "address": new_address(),
            "amountUnits": 10**network.decimals,
            "createdAt": now,
            "expiresAt": now + EXPIRES_S * 1000,
            "watchUntil": now + (EXPIRES_S + GRACE_S) * 1000,
        }
        wire.append(watch_part(network=network.name, order=order, mode="xpub")["Put"]["Item"])
    return [i for i in (store._load(raw) for raw in json.loads(json.dumps(wire))) if i]


def cycle_costs(scanner: Scanner, family: str, runs: int, new_address: Callable[[], str]) -> dict[str, float]:
    """Per scan cycle, whatever the chain brings: the refresh (nothing new), the expiry sweep
    (nothing due), and per pass (final and seen: two a cycle) the address list and what the
    reader prepares from it before any RPC call: EVM topic lists, a Tron recipient set. The
    readers keep that on the identity of the address tuple, so it is built once when the set
    changed (an order arrived or left) and reused otherwise. Also, apart: a refresh that reads
    one new order."""
    watch = scanner.watch

    def refresh() -> None:
        with mock.patch.object(store, "query_partition", lambda pk, *, sk_from: []):
            watch.refresh(first_from=0, keep_from=0)

    idle = cursor.Cursor(final_block=1, final_hash=None, final_time=0, seen_block=None)
    costs = {
        "refresh (nothing new)": _median_s(refresh, runs),
        "expiry sweep (nothing due)": _median_s(lambda: scanner._close_expired(idle), runs),
        "addresses()": _median_s(watch.addresses, runs),
    }
    addresses = watch.addresses()
    endpoints = Endpoints([("none", EmptyRpc())])
    if family == "evm":
        evm_reader = EvmReader(scanner.network, endpoints)  # type: ignore[arg-type]
        prepare: Callable[[tuple[str, ...]], object] = evm_reader._recipient_bloom
    else:
        prepare = TronReader(scanner.network, endpoints)._recipient_set  # type: ignore[arg-type]

    prepare(addresses)
    costs[PREP_SAME] = _median_s(lambda: prepare(addresses), runs)
    # tuple(a_tuple) is the same object; one built from an iterator is new, as after a change
    costs[PREP_CHANGED] = _median_s(lambda: prepare(tuple(iter(addresses))), runs)
    fresh = iter(_new_items(scanner.network, runs, new_address, int(time.time() * 1000)))

    def refresh_new() -> None:
        item = next(fresh)
        with mock.patch.object(store, "query_partition", lambda pk, *, sk_from: [item]):
            watch.refresh(first_from=0, keep_from=0)

    costs[REFRESH_NEW] = _median_s(refresh_new, runs)  # last: it grows the list by `runs` entries
    return costs


# -- memory --------------------------------------------------------------------------------------


def watch_list_memory(network: Network, entries: int, new_address: Callable[[], str]) -> int:
    """Bytes still allocated once only the watch list is kept (its entries, their strings and
    ints, the by-address index). The bench's loading peak is not reported: it holds every item
    and its JSON at once, which the scanner's paged query does not."""
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    book = build_book(network, entries, new_address, random.Random(7))
    watch = load_watch_list(network, book.items, book.now)
    del book
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(watch) == entries
    return kept - base


# -- main ----------------------------------------------------------------------------------------


def _evm_address() -> str:
    return to_checksum_address(secrets.token_bytes(20))


def _tron_address() -> str:
    return tron_address_from_body(secrets.token_bytes(20))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    # watch_part names the table (store.put_part); nothing here talks to DynamoDB.
    os.environ.setdefault("TABLE_NAME", "bench-matching")
    os.environ.setdefault("KMS_KEY_ID", "unused")
    config.reset()
    nets = load_networks("bsc,tron")
    bsc, trx = nets["bsc"], nets["tron"]
    rng = random.Random(1)

    rows: list[tuple[str, int, str, float, Counter[str]]] = []
    cycle: dict[str, dict[str, float]] = {}

    book = build_book(bsc, args.entries, _evm_address, rng)
    watch = load_watch_list(bsc, book.items, book.now)
    assert len(watch) == args.entries
    logs, refs = evm_logs(book, bsc, rng)
    scanner = _scanner(bsc, watch, refs)
    for parse in (False, True):
        rpc = LogsRpc(logs, parse=parse)
        evm_run(scanner, rpc, refs, book.xpub[0][0])  # warm-up
        times, counts = [], Counter[str]()
        for _ in range(args.runs):
            elapsed, counts = evm_run(scanner, rpc, refs, book.xpub[0][0])
            times.append(elapsed)
        rows.append(
            (
                "EVM (bsc)",
                len(logs),
                "JSON parse + decode + match" if parse else "decode + match",
                statistics.median(times),
                counts,
            )
        )
    cycle["EVM"] = cycle_costs(scanner, "evm", max(3, args.runs // 2), _evm_address)
    del book, watch, scanner, logs

    book = build_book(trx, args.entries, _tron_address, rng)
    watch = load_watch_list(trx, book.items, book.now)
    infos, refs = tron_blocks(book, trx, rng)
    scanner = _scanner(trx, watch, refs)
    watched = set(watch.addresses())  # what TronReader.transfers hands tron.transfers
    tx_count = sum(len(v) for v in infos.values())
    for parse in (False, True):
        provider = InfosProvider(infos, parse=parse)
        tron_run(scanner, provider, watched, refs)  # warm-up
        times, counts = [], Counter[str]()
        for _ in range(args.runs):
            elapsed, counts = tron_run(scanner, provider, watched, refs)
            times.append(elapsed)
        rows.append(
            (
                "Tron",
                tx_count,
                "JSON parse + decode + match" if parse else "decode + match",
                statistics.median(times),
                counts,
            )
        )
    cycle["Tron"] = cycle_costs(scanner, "tron", max(3, args.runs // 2), _tron_address)
    del book, watch, scanner, infos, watched

    evm_mem = watch_list_memory(bsc, args.entries, _evm_address)
    tron_mem = watch_list_memory(trx, args.entries, _tron_address)

    print(
        f"{args.entries:,} watched entries ({args.entries - FIXED_ADDRESSES * TAGS_PER_ADDRESS:,} xpub, "
        f"{FIXED_ADDRESSES} fixed addresses x {TAGS_PER_ADDRESS} amounts); median of {args.runs} runs; "
        f"python {sys.version.split()[0]}"
    )
    print(f"{'chain':10s} {'path':28s} {'batch':>7s} {'median':>9s} {'items/s':>10s}  outcomes")
    for chain, n, path, elapsed, counts in rows:
        unit = "logs" if chain.startswith("EVM") else "txs"
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"{chain:10s} {path:28s} {n:>7,} {elapsed * 1000:>7.1f} ms {n / elapsed:>10,.0f}  {unit}; {outcome}")
    tron_usdt = TRON_BLOCKS * 80
    for _chain, _n, path, elapsed, _counts in rows[2:]:
        print(
            f"Tron {path}: {TRON_BLOCKS / elapsed:,.0f} blocks/s of 400 txs = {tron_usdt / elapsed:,.0f} "
            "USDT transfers/s"
        )

    print("\nwatch list memory (tracemalloc: what stays allocated once the item dicts are gone)")
    for name, kept in (("EVM", evm_mem), ("Tron", tron_mem)):
        print(f"  {name:5s} {kept / 2**20:7.1f} MiB = {kept / args.entries:,.0f} B/entry")

    print(f"\nfixed in-memory cost per scan cycle at {args.entries:,} entries (median)")
    for name, costs in cycle.items():
        passes = 2 * (costs["addresses()"] + costs[PREP_SAME])
        rest = costs["expiry sweep (nothing due)"] + passes
        block_s = BSC_BLOCK_S if name == "EVM" else TRON_BLOCK_S
        for what, seconds in costs.items():
            print(f"  {name:5s} {what:52s} {seconds * 1000:8.1f} ms")
        for label, refresh in (
            ("nothing new", costs["refresh (nothing new)"]),
            ("one new order", costs[REFRESH_NEW] + costs[PREP_CHANGED]),
        ):
            total = refresh + rest
            print(
                f"  {name:5s} {'per cycle, ' + label + ' (refresh + sweep + 2 passes)':52s} {total * 1000:8.1f} ms "
                f"= {total / block_s:.2f} x a {block_s:g} s block"
            )

    print("\ncontext (third-party daily figures, see the module)")
    evm_rate = rows[0][1] / rows[0][3]
    for label, per_day, block_s in (
        ("BSC USDT transfers, typical", BSC_USDT_PER_DAY, BSC_BLOCK_S),
        ("BSC USDT transfers, peak day", BSC_USDT_PEAK_PER_DAY, BSC_BLOCK_S),
    ):
        per_block = per_day / (86_400 / block_s)
        need = per_day / 86_400
        print(
            f"  {label:30s} {per_block:6.0f} per {block_s:g} s block = {need:6.0f}/s; "
            f"EVM decode + match {evm_rate:,.0f}/s = {evm_rate / need:,.0f}x, even if every one paid an order"
        )
    tron_rate = rows[2][1] / rows[2][3]
    need_tx = TRON_TX_PER_DAY / 86_400
    print(
        f"  {'Tron transactions':30s} {TRON_TX_PER_DAY / 28_800:6.0f} per 3 s block = {need_tx:6.0f}/s; "
        f"Tron path {tron_rate:,.0f} txs/s = {tron_rate / need_tx:,.0f}x"
    )
    print(f"  {'Tron USDT transfers':30s} {TRON_USDT_PER_DAY / 28_800:6.0f} per 3 s block (inside those transactions)")


if __name__ == "__main__":
    main()
