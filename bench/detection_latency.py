"""Detection latency on a live chain: from the block that carries a payment to its order's status
`confirmed`, with the scanner running as the Lambda runs it (Scanner.run with its real idle
sleep, in a thread) against anvil mining a block every second, and DynamoDB on a moto server.

    .venv/bin/python -m bench.detection_latency [--payments 20] [--scan-seconds S]

Setup, all in this process: an AtomicMotoServer on a free port (the table from template.yaml, a
KMS key), anvil with `--block-time 1` and the test USDT, network `local` with 2 confirmations and
blockTimeMs 1000, a merchant with a fresh EVM xpub (random mnemonic, made at run time). Per
payment: an order (orders.create_order), a random pause, then the token transfer; t0 is the wall
time its receipt is first visible (polled every 10 ms), t1 the first time a consistent read of
the order (every 20 ms) shows `confirmed`. Also recorded: when the order first showed
`confirming`, when the next block (the second confirmation) became visible, the block's own
timestamp (whole seconds on anvil), and the values of the scanner's own DetectionLatency metric
(credit time minus block timestamp, taken from the EMF output Powertools prints).

Goal: within (confirmations + 1) block times + 1 s = 4 s for 2 confirmations at 1 s blocks.

With --scan-seconds S the scanner is run as the schedule runs it (template.yaml: rate(1 minute),
SCAN_SECONDS; scan_jobs.handle): an invocation every 60 s, each one `Scanner.run(until=its start
+ S)` in a thread of its own with a fresh ScanReport. An invocation goes to a free "container" (a
Scanner object kept warm between invocations, with its own owner id, reader and watch list) or, if
every container is still busy, to a new one, as Lambda does. With S above 60 two invocations
overlap: the newer one waits for the cursor lease (Scanner.run retries it every 1 s) until the
older one releases it at the end of its run. The bench prints each invocation (container, when it
got the lease, its last cycle) and the longest time during which no cycle ran. Without
--scan-seconds, one run() spans the whole benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import itertools
import json
import logging
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bip_utils import Bip39MnemonicGenerator, Bip39SeedGenerator, Bip44, Bip44Coins
from web3 import Web3

from bench.local_aws import point_at_moto
from devstack.evm import Anvil, deploy_token, mint, start_anvil, usdt
from devstack.moto_server import AtomicMotoServer

TABLE = "bench-detection"
NETWORK = "local"
CONFIRMATIONS = 2
BLOCK_TIME_S = 1
GOAL_S = (CONFIRMATIONS + 1) * BLOCK_TIME_S + 1.0
RECEIPT_POLL_S = 0.01
ORDER_POLL_S = 0.02
TIMEOUT_S = 75.0  # a payment in the gap between two scheduled runs waits for the next one


@dataclasses.dataclass
class Sample:
    block: int
    block_time: float  # the block's timestamp (s), whole seconds on anvil
    t0: float  # receipt first visible (wall clock, s)
    next_block: float  # block + 1 first visible
    confirming: float | None  # first read showing `confirming` (None: went straight to confirmed)
    t1: float  # first read showing `confirmed`


def _xpub() -> str:
    seed = Bip39SeedGenerator(Bip39MnemonicGenerator().FromWordsNumber(12)).Generate()
    return str(Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PublicKey().ToExtended())


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def _emf_values(text: str, name: str) -> list[float]:
    values: list[float] = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            values += [float(v) for v in json.loads(line).get(name, [])]
    return values


def _setup_aws(endpoint: str) -> None:
    point_at_moto(endpoint, TABLE)


def _token_on(anvil: Anvil, funds: str) -> tuple[Any, str]:
    """TestUSDT deployed on `anvil` by its first account, `funds` minted to its second (the
    payer), and network `local` configured with it; returns (token, payer)."""
    w3 = anvil.web3()
    accounts = [str(a) for a in w3.eth.accounts]
    owner, payer = accounts[0], accounts[1]
    token = deploy_token(w3, owner)
    mint(token, payer, usdt(funds), owner=owner)
    _configure(str(token.address))
    return token, payer


def _configure(token: str) -> None:
    from usdt_gateway import config

    os.environ.update(
        {
            "TABLE_NAME": TABLE,
            "ENABLED_NETWORKS": NETWORK,
            "PUBLIC_BASE_URL": "https://pay.example.com",
            "NETWORKS_CONFIG": json.dumps(
                {
                    NETWORK: {
                        "tokenContract": token,
                        "blockTimeMs": BLOCK_TIME_S * 1000,
                        "finality": {"mode": "confirmations", "confirmations": CONFIRMATIONS},
                    }
                }
            ),
            "POWERTOOLS_METRICS_DISABLED": "1",
            "POWERTOOLS_TRACE_DISABLED": "1",
        }
    )
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the scanner's warnings still show
    config.reset()


@dataclasses.dataclass
class Invocation:
    """One scheduled invocation: which container served it, when, and its report."""

    container: int
    owner: str
    invoked: float  # wall clock, s
    returned: float
    report: Any  # ScanReport


def _scan_once(scanner: Any, stop: threading.Event, reports: list[Any]) -> None:
    """One Scanner.run() for the whole bench."""
    reports.append(scanner.run(until=time.time() + 3600, stop=stop))


def _schedule(
    new_scanner: Callable[[], Any], stop: threading.Event, scan_seconds: float, invocations: list[Invocation]
) -> None:
    """rate(1 minute): an invocation every 60 s, each `run(until=start + scan_seconds)` in its own
    thread on a free warm container (a kept Scanner), or on a new one while all are busy."""
    from usdt_gateway.scanner import ScanReport

    containers: list[Any] = []
    busy: set[int] = set()
    lock = threading.Lock()
    threads: list[threading.Thread] = []

    def invoke(index: int, begin: float) -> None:
        scanner = containers[index]
        scanner.report = ScanReport()  # as scan_jobs.handle does
        try:
            report = scanner.run(until=begin + scan_seconds, stop=stop)
            invocations.append(Invocation(index, scanner.owner, begin, time.time(), report))
        finally:
            with lock:
                busy.discard(index)

    start = time.time()
    for k in itertools.count():
        begin = start + 60 * k
        if stop.wait(max(0.0, begin - time.time())):
            break
        with lock:
            index = next((i for i in range(len(containers)) if i not in busy), len(containers))
            if index == len(containers):
                containers.append(new_scanner())
            busy.add(index)
        thread = threading.Thread(target=invoke, args=(index, time.time()), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout=15)


def _pay_and_watch(anvil: Anvil, token: Any, payer: str, address: str, amount: str, order_pk: str) -> Sample:
    from usdt_gateway import store

    tx = token.functions.transfer(Web3.to_checksum_address(address), usdt(amount)).transact({"from": payer})
    deadline = time.time() + TIMEOUT_S
    while (receipt := anvil.rpc("eth_getTransactionReceipt", ["0x" + bytes(tx).hex()])) is None:
        if time.time() > deadline:
            raise TimeoutError("the transfer was not mined")
        time.sleep(RECEIPT_POLL_S)
    t0 = time.time()
    assert int(receipt["status"], 16) == 1
    block = int(receipt["blockNumber"], 16)
    block_time = int(anvil.rpc("eth_getBlockByNumber", [hex(block), False])["timestamp"], 16)
    next_block: float | None = None
    confirming: float | None = None
    while time.time() < deadline:
        if next_block is None and int(anvil.rpc("eth_blockNumber"), 16) > block:
            next_block = time.time()
        order = store.get(order_pk, "ORDER")
        now = time.time()
        assert order is not None
        if order["status"] == "confirming" and confirming is None:
            confirming = now
        if order["status"] == "confirmed":
            return Sample(block, block_time, t0, next_block or now, confirming, now)
        time.sleep(ORDER_POLL_S)
    raise TimeoutError(f"order {order_pk} was not confirmed within {TIMEOUT_S:g} s")


def _print_schedule(invocations: list[Invocation], cycles: list[tuple[str, float, float]]) -> None:
    """Each invocation and the handovers between them; the longest stretch without a cycle."""
    start = invocations[0].invoked
    print(
        f"{'invocation':>10s} {'container':>9s} {'invoked':>8s} {'lease from':>10s} {'last cycle end':>14s} "
        f"{'returned':>8s} {'waited for lease':>16s} {'cycles':>6s} {'credited':>8s} {'seen':>4s}"
    )
    for k, inv in enumerate(invocations):
        own = [c for c in cycles if c[0] == inv.owner and inv.invoked <= c[1] <= inv.returned]
        first, last = (own[0][1], own[-1][2]) if own else (float("nan"), float("nan"))
        print(
            f"{k:>10} {chr(ord('A') + inv.container):>9s} {inv.invoked - start:>7.1f}s {first - start:>9.1f}s "
            f"{last - start:>13.1f}s {inv.returned - start:>7.1f}s {'yes' if inv.report.lease_busy else 'no':>16s} "
            f"{inv.report.cycles:>6} {inv.report.credited:>8} {inv.report.seen:>4}"
        )
    overlapping = sum(1 for a, b in itertools.pairwise(cycles) if b[1] < a[2])
    gaps = [(b[1] - a[2], a[0] != b[0]) for a, b in itertools.pairwise(cycles)]
    handovers = [g for g, changed in gaps if changed]
    print(
        f"cycles that overlapped another: {overlapping}; scanner changes: {len(handovers)}, "
        f"gap at a change {min(handovers, default=0):.2f}-{max(handovers, default=0):.2f} s; "
        f"longest time without a cycle: {max(g for g, _ in gaps):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=20)
    parser.add_argument(
        "--scan-seconds", type=float, default=None, help="run the scanner as the schedule does: S seconds every minute"
    )
    args = parser.parse_args()
    rng = random.Random()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    anvil = start_anvil(block_time=BLOCK_TIME_S)
    stop = threading.Event()
    emf = io.StringIO()
    try:
        _setup_aws(f"http://{host}:{port}")
        token, payer = _token_on(anvil, "1000000")

        from usdt_gateway import config, merchants, orders, store
        from usdt_gateway.chain.endpoints import Endpoints
        from usdt_gateway.chain.jsonrpc import JsonRpc
        from usdt_gateway.chain.readers import EvmReader
        from usdt_gateway.scanner import Scanner
        from usdt_gateway.schemas import CreateOrderRequest

        merchant = merchants.create_merchant("bench")["merchantId"]
        merchants.create_api_key(merchant)
        merchants.configure_xpub(merchant, "evm", _xpub())

        cycles: list[tuple[str, float, float]] = []  # (owner, start, end)

        class TimedScanner(Scanner):
            """Records when each cycle starts and ends; otherwise the gateway's Scanner."""

            def cycle(self, state: Any) -> Any:
                began = time.time()
                try:
                    return super().cycle(state)
                finally:
                    cycles.append((self.owner, began, time.time()))

        network = config.networks()[NETWORK]

        def new_scanner() -> Scanner:
            """A Lambda container's scanner: its own owner id, endpoints and watch list."""
            return TimedScanner(EvmReader(network, Endpoints([(anvil.url, JsonRpc(anvil.url))])))

        reports: list[Any] = []
        invocations: list[Invocation] = []
        samples: list[Sample] = []
        # The scanner's metrics: Powertools prints an EMF blob whenever a metric reaches 100
        # values, POWERTOOLS_METRICS_DISABLED or not; kept aside for the DetectionLatency figures.
        with contextlib.redirect_stdout(emf):
            if args.scan_seconds is None:
                thread = threading.Thread(target=_scan_once, args=(new_scanner(), stop, reports), daemon=True)
            else:
                thread = threading.Thread(
                    target=_schedule, args=(new_scanner, stop, args.scan_seconds, invocations), daemon=True
                )
            thread.start()
            try:
                while not cycles:  # the first cycle has started the cursor
                    time.sleep(0.05)
                run = uuid.uuid4().hex[:6]
                for i in range(args.payments):
                    amount = f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"
                    view, _ = orders.create_order(
                        merchant,
                        CreateOrderRequest.model_validate(
                            {"network": NETWORK, "currency": "USDT", "amount": amount, "orderId": f"lat-{run}-{i}"}
                        ),
                    )
                    time.sleep(rng.uniform(0.5, 2.5))  # payments land at random points of the block interval
                    samples.append(
                        _pay_and_watch(
                            anvil, token, payer, view.address, view.amount, store.order_key(merchant, view.order_id)[0]
                        )
                    )
            finally:
                stop.set()
                thread.join(timeout=20)
            reports += [i.report for i in sorted(invocations, key=lambda i: i.invoked)]
        from usdt_gateway.observability import metrics

        metric_ms = _emf_values(emf.getvalue(), "DetectionLatency")
        metric_ms += list(metrics.metric_set.get("DetectionLatency", {}).get("Value", []))
    finally:
        stop.set()
        anvil.stop()
        server.stop()

    idle = min(3.0, max(0.2, network.block_time_ms / 2000))
    durations = [(end - began) * 1000 for _owner, began, end in cycles]
    mode = (
        f"scanner as scheduled: a {args.scan_seconds:g} s run starting every 60 s"
        if args.scan_seconds is not None
        else "one Scanner.run() for the whole bench"
    )
    print(
        f"{len(samples)} payments on anvil (--block-time {BLOCK_TIME_S}), {CONFIRMATIONS} confirmations, {mode}; "
        f"python {sys.version.split()[0]}"
    )
    total = {k: sum(getattr(r, k) for r in reports) for k in ("cycles", "credited", "seen", "errors")}
    print(
        f"scanner: {len(reports)} run(s), {total['cycles']} cycles, "
        f"median cycle {statistics.median(durations):.0f} ms "
        f"(p95 {_percentile(durations, 95):.0f} ms), idle sleep {idle * 1000:.0f} ms after a caught-up cycle; "
        f"credited {total['credited']}, seen {total['seen']}, errors {total['errors']}"
    )
    if invocations:
        _print_schedule(sorted(invocations, key=lambda i: i.invoked), sorted(cycles, key=lambda c: c[1]))
    series = {
        "block visible -> confirmed (t1 - t0)": [s.t1 - s.t0 for s in samples],
        "block timestamp -> confirmed": [s.t1 - s.block_time for s in samples],
        "block timestamp -> block visible": [s.t0 - s.block_time for s in samples],
        "block visible -> next block visible": [s.next_block - s.t0 for s in samples],
        "next block visible -> confirmed": [s.t1 - s.next_block for s in samples],
        "block visible -> confirming": [s.confirming - s.t0 for s in samples if s.confirming is not None],
        "gateway's DetectionLatency metric": [v / 1000 for v in metric_ms],
    }
    print(f"{'':40s} {'p50':>7s} {'p95':>7s} {'max':>7s}")
    for name, values in series.items():
        if values:
            print(f"{name:40s} {statistics.median(values):6.2f}s {_percentile(values, 95):6.2f}s {max(values):6.2f}s")
    worst = max(series["block visible -> confirmed (t1 - t0)"])
    worst_ts = max(series["block timestamp -> confirmed"])
    verdict = "met" if worst <= GOAL_S and worst_ts <= GOAL_S else "NOT met"
    over = sum(1 for s in samples if s.t1 - s.t0 > GOAL_S)
    print(
        f"goal: confirmed within ({CONFIRMATIONS} + 1) x {BLOCK_TIME_S} s + 1 s = {GOAL_S:g} s of the block: "
        f"{verdict} "
        f"(max {worst:.2f} s from visibility, {worst_ts:.2f} s from the block timestamp; "
        f"{over} of {len(samples)} over {GOAL_S:g} s)"
    )


if __name__ == "__main__":
    main()
