"""Detection latency when many payments arrive in one block: from the block's visibility to each
order's `confirmed`, for 1, 50 and 200 payments in one block, with the scanner writing deposits
one at a time (`Scanner.workers` 1, what it did before) and with its deposit workers (8, the
default), in the same run.

    .venv/bin/python -m bench.burst [--sizes 1,50,200] [--workers 1,8] [--singles 10] [--rtt-ms 0]

Setup as in bench/detection_latency.py, all in this process: an AtomicMotoServer (the table from
template.yaml, a KMS key) plus an SQS webhook queue, so each credit also hands its events to the
queue as deployed; anvil mining a block every second with the test USDT; network `local` with 2
confirmations and blockTimeMs 1000; a merchant with a fresh EVM xpub; the gateway's Scanner over
EvmReader/Endpoints/JsonRpc, in `Scanner.run()` in a thread with its real idle sleep.

A round of size k: k orders (orders.create_order, random amounts), then anvil's interval mining
is paused (`evm_setIntervalMining 0`), the k token transfers are sent, one `evm_mine` puts them
all in one block, and interval mining resumes (the next block, the second confirmation, comes
1 s later). t0 is when that block's receipts are visible; t1 of a payment is when the
`deposits.credit_final` call that confirmed its order returned (its transaction committed and
its events were handed to the queue), recorded by a wrapper in this process, so no polling
competes with the scanner for the DynamoDB server. The rounds of each size are interleaved
between the worker counts; single payments are repeated `--singles` times, spread between the
bursts. Every order is then read back: confirmed, with exactly one deposit. "moto busy" is the
share of a round (t0 to its last credit) during which moto held its one-request-at-a-time lock.

moto serves one request at a time, in this process: the deposit workers' requests queue at its
lock and their threads contend with it for the GIL. `--rtt-ms` adds a wait before every DynamoDB
and SQS request (a model of the network round trip a deployed scanner waits on, which the
in-process server does not have; not a measurement of DynamoDB).

Goal: 50 payments in one block confirm at a p50 at most 1.5 x a single payment's p50, measured
in the same run (with the default worker count).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
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

import boto3

from bench.detection_latency import BLOCK_TIME_S, CONFIRMATIONS, NETWORK, _percentile, _setup_aws, _token_on, _xpub
from devstack import moto_server
from devstack.evm import Anvil, start_anvil, usdt
from devstack.moto_server import AtomicMotoServer

GOAL_RATIO = 1.5
TIMEOUT_S = 300.0
SETTLE_S = 1.5  # after a round: the scanner back to idle, the next round's block well apart


@dataclasses.dataclass
class Round:
    size: int
    workers: int
    latencies: list[float]  # s, block visible -> confirmed, one per payment
    confirming: list[float]  # s, block visible -> confirming (the seen pass), one per payment
    moto_busy: float  # share of the time from the block's visibility to its last credit moto was serving


class MotoMeter:
    """Time the moto server spends serving requests, inside its one-at-a-time lock (it serves
    one request at a time: a request waiting for the lock waits for it, not for DynamoDB)."""

    busy_s = 0.0

    @classmethod
    def install(cls) -> None:
        def timed(door: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            with door._lock:
                started = time.perf_counter()
                try:
                    return list(door._app(environ, start_response))
                finally:
                    cls.busy_s += time.perf_counter() - started

        moto_server._OneAtATime.__call__ = timed  # type: ignore[method-assign,assignment]


def _add_round_trip(rtt_ms: float) -> None:
    """A wait of `rtt_ms` before every DynamoDB and SQS request (a model of the network round trip
    an in-process emulator does not have; the thread waits without holding the GIL)."""
    from usdt_gateway import aws

    def wait(**_: Any) -> None:
        time.sleep(rtt_ms / 1000)

    for service in ("dynamodb", "sqs"):
        aws.client(service).meta.events.register("before-send", wait)


class Timings:
    """When each transfer (by txid) was recorded as seen and credited: wrappers around the two
    deposits functions the scanner calls, taking the time once they return."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.credited: dict[str, float] = {}
        self.lock = threading.Lock()

    def install(self) -> None:
        from usdt_gateway import deposits

        record_seen, credit_final = deposits.record_seen, deposits.credit_final

        def timed_seen(t: Any, *args: Any, **kwargs: Any) -> Any:
            applied = record_seen(t, *args, **kwargs)
            if applied.order is not None:
                with self.lock:
                    self.seen.setdefault(t.txid, time.time())
            return applied

        def timed_credit(t: Any, *args: Any, **kwargs: Any) -> Any:
            outcome = credit_final(t, *args, **kwargs)
            if outcome[0] == deposits.Outcome.CREDITED:
                with self.lock:
                    self.credited.setdefault(t.txid, time.time())
            return outcome

        deposits.record_seen = timed_seen
        deposits.credit_final = timed_credit


def _one_block(anvil: Anvil, token: Any, payer: str, payments: list[tuple[str, str]]) -> tuple[list[str], float]:
    """Send the transfers with interval mining paused, mine them into one block, resume 1 s
    blocks; returns the txids and when the block's receipts were visible."""
    from web3 import Web3

    anvil.rpc("evm_setIntervalMining", [0])
    try:
        sent = [
            "0x"
            + bytes(
                token.functions.transfer(Web3.to_checksum_address(to), usdt(amount)).transact({"from": payer})
            ).hex()
            for to, amount in payments
        ]
        anvil.rpc("evm_mine")
    finally:
        anvil.rpc("evm_setIntervalMining", [BLOCK_TIME_S])
    while anvil.rpc("eth_getTransactionReceipt", [sent[-1]]) is None:
        time.sleep(0.005)
    t0 = time.time()
    blocks = {int(anvil.rpc("eth_getTransactionReceipt", [tx])["blockNumber"], 16) for tx in (sent[0], sent[-1])}
    assert len(blocks) == 1, "the transfers did not fit one block"
    return sent, t0


def _round(
    size: int,
    workers: int,
    *,
    scanner: Any,
    timings: Timings,
    anvil: Anvil,
    token: Any,
    payer: str,
    merchant: str,
    rng: random.Random,
    run: str,
) -> Round:
    from usdt_gateway import orders, store
    from usdt_gateway.schemas import CreateOrderRequest

    scanner.workers = workers  # read by the scanner's next pass; it is idle now
    made = []
    for _ in range(size):
        amount = f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"
        order_id = f"burst-{run}-{uuid.uuid4().hex[:10]}"
        view, _ = orders.create_order(
            merchant,
            CreateOrderRequest.model_validate(
                {"network": NETWORK, "currency": "USDT", "amount": amount, "orderId": order_id}
            ),
        )
        made.append(view)
    txids, t0 = _one_block(anvil, token, payer, [(v.address, v.amount) for v in made])
    busy_from = MotoMeter.busy_s
    deadline = time.time() + TIMEOUT_S
    while not all(tx in timings.credited for tx in txids):
        if time.time() > deadline:
            raise TimeoutError(
                f"{sum(tx in timings.credited for tx in txids)} of {size} payments credited within {TIMEOUT_S:g} s"
            )
        time.sleep(0.02)
    busy = (MotoMeter.busy_s - busy_from) / (max(timings.credited[tx] for tx in txids) - t0)
    for view in made:  # exactly once: each order confirmed by its one payment
        order = store.get(store.order_key(merchant, view.order_id)[0], "ORDER")
        assert order is not None and order["status"] == "confirmed", view.order_id
        assert len(order["deposits"]) == 1, f"{view.order_id}: {len(order['deposits'])} deposits"
    time.sleep(SETTLE_S)
    return Round(
        size,
        workers,
        [timings.credited[tx] - t0 for tx in txids],
        [timings.seen[tx] - t0 for tx in txids if tx in timings.seen],
        busy,
    )


def _schedule(sizes: list[int], workers: list[int], singles: int) -> list[tuple[int, int]]:
    """(size, workers) rounds: single payments `singles` times, the bursts spread between them,
    each size run with every worker count back to back."""
    bursts = [s for s in sizes if s > 1]
    rounds: list[tuple[int, int]] = []
    for k in range(max(singles, len(bursts))):
        if 1 in sizes and k < singles:
            rounds += [(1, w) for w in workers]
        if k < len(bursts):
            rounds += [(bursts[k], w) for w in workers]
    return rounds


def _summary(rounds: list[Round], sizes: list[int], workers: list[int]) -> None:
    def pooled(size: int, w: int, field: Callable[[Round], list[float]]) -> list[float]:
        return [v for r in rounds if (r.size, r.workers) == (size, w) for v in field(r)]

    print(
        f"{'payments in the block':>21s} {'workers':>7s} {'samples':>7s} {'p50':>7s} {'p90':>7s} {'max':>7s} "
        f"{'confirming p50':>14s} {'moto busy':>9s}"
    )
    for size in sizes:
        for w in workers:
            values = pooled(size, w, lambda r: r.latencies)
            if not values:
                continue
            confirming = pooled(size, w, lambda r: r.confirming)
            busy = statistics.mean(r.moto_busy for r in rounds if (r.size, r.workers) == (size, w))
            print(
                f"{size:>21} {w:>7} {len(values):>7} {statistics.median(values):6.2f}s "
                f"{_percentile(values, 90):6.2f}s {max(values):6.2f}s "
                f"{statistics.median(confirming) if confirming else float('nan'):13.2f}s {busy:>8.0%}"
            )
    if 1 not in sizes:
        return
    from usdt_gateway.scanner import DEPOSIT_WORKERS

    for w in workers:
        single = statistics.median(pooled(1, w, lambda r: r.latencies))
        ratios = ", ".join(
            f"{size}: {statistics.median(pooled(size, w, lambda r: r.latencies)) / single:.2f}"
            for size in sizes
            if size > 1
        )
        print(f"workers {w}: p50 / single-payment p50 ({single:.2f} s) -> {ratios}")
    if 50 in sizes and DEPOSIT_WORKERS in workers:
        ratio = statistics.median(pooled(50, DEPOSIT_WORKERS, lambda r: r.latencies)) / statistics.median(
            pooled(1, DEPOSIT_WORKERS, lambda r: r.latencies)
        )
        print(
            f"goal: 50 in one block at most {GOAL_RATIO:g} x the single payment's p50 with {DEPOSIT_WORKERS} "
            f"workers (the default): {'met' if ratio <= GOAL_RATIO else 'NOT met'} ({ratio:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,50,200", help="payments per block, comma-separated")
    parser.add_argument("--workers", default="1,8", help="Scanner.workers values to compare, comma-separated")
    parser.add_argument("--singles", type=int, default=10, help="rounds of a single payment per worker count")
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0.0,
        help="wait this long before every DynamoDB/SQS request (a model of a network round trip)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    rng = random.Random()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    MotoMeter.install()
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    anvil = start_anvil(block_time=BLOCK_TIME_S)
    stop = threading.Event()
    emf = io.StringIO()
    rounds: list[Round] = []
    began = time.time()
    try:
        _setup_aws(f"http://{host}:{port}")
        os.environ["WEBHOOK_QUEUE_URL"] = boto3.client("sqs").create_queue(QueueName="bench-burst")["QueueUrl"]
        token, payer = _token_on(anvil, "100000000")

        from usdt_gateway import config, merchants
        from usdt_gateway.chain.endpoints import Endpoints
        from usdt_gateway.chain.jsonrpc import JsonRpc
        from usdt_gateway.chain.readers import EvmReader
        from usdt_gateway.scanner import Scanner

        merchant = merchants.create_merchant("bench")["merchantId"]
        merchants.configure_xpub(merchant, "evm", _xpub())
        timings = Timings()
        timings.install()
        if args.rtt_ms:
            _add_round_trip(args.rtt_ms)
        scanner = Scanner(EvmReader(config.networks()[NETWORK], Endpoints([(anvil.url, JsonRpc(anvil.url))])))
        # Powertools prints an EMF blob whenever a metric reaches 100 values: kept off the report.
        with contextlib.redirect_stdout(emf):
            thread = threading.Thread(target=lambda: scanner.run(until=time.time() + 3600, stop=stop), daemon=True)
            thread.start()
            try:
                while scanner.report.cycles == 0:
                    time.sleep(0.05)
                run = uuid.uuid4().hex[:6]
                for size, w in _schedule(sizes, workers, args.singles):
                    rounds.append(
                        _round(
                            size,
                            w,
                            scanner=scanner,
                            timings=timings,
                            anvil=anvil,
                            token=token,
                            payer=payer,
                            merchant=merchant,
                            rng=rng,
                            run=run,
                        )
                    )
                    print(
                        f"{size} payment(s), {w} worker(s): p50 {statistics.median(rounds[-1].latencies):.2f} s",
                        file=sys.stderr,
                    )
            finally:
                stop.set()
                thread.join(timeout=60)
        report = scanner.report
    finally:
        stop.set()
        anvil.stop()
        server.stop()
    print(
        f"payments in one block on anvil (--block-time {BLOCK_TIME_S}), {CONFIRMATIONS} confirmations, one "
        f"Scanner.run(); python {sys.version.split()[0]}; {os.cpu_count()} CPUs; {time.time() - began:.0f} s"
        + (f"; {args.rtt_ms:g} ms added before every AWS request" if args.rtt_ms else "")
    )
    print(f"scanner: {report.cycles} cycles, credited {report.credited}, seen {report.seen}, errors {report.errors}")
    _summary(rounds, list(dict.fromkeys(sizes)), workers)


if __name__ == "__main__":
    main()
