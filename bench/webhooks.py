"""Webhook delivery on the local stack: (a) throughput of the WebhookFunction handler, (b) the time
from a state change to its delivery.

    .venv/bin/python -m bench.webhooks [--events 500] [--merchants 5] [--orders 30] [--payments 5]

Everything runs on one local stack (devstack.stack.start_stack, in this process: moto server,
anvil, the template's handlers).

(b) latency, with the stack as `make dev` runs it (scanner, webhook poller, outbox schedule, the
stack's receiver verifying each signature and logging it). For --orders orders of the demo
merchant on `local`, one at a time: create it, cancel it through the API (signed HTTP), wait for
the receiver to get its order.cancelled. Measured from the cancel's HTTP response, and from the
event's createdAt (set just before the commit) to the receiver's arrival time (same clock). Then
a burst: --orders more orders cancelled back to back without waiting. Then --payments orders paid
on the local chain, for the scanner's order.confirming and order.confirmed (createdAt -> arrival).
Goal: p50 under 1 s.

(a) throughput. The scanner, the stack's poller and its outbox schedule are stopped; --merchants
merchants with their default URL on a receiver of the bench that answers 204 at once, one order
each. --events events are committed (events.for_order, in transactions of 50) and handed to the
template's WebhookQueue (outbox.publish), the merchants interleaved; then a new EventSourceMapping
(the stack's own code) feeds them to the WebhookFunction handler (LocalFunction.invoke: one warm
container) until every event is delivered. Where the time goes: every request moto serves is
timed inside its one-at-a-time lock, by operation; every POST to the receiver is timed; deferrals
(no free merchant slot: the event comes back 5-30 s later) are counted. Then the same with every
event from one merchant.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import logging
import os
import platform
import random
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from bip_utils import Bip39MnemonicGenerator, Bip39SeedGenerator, Bip44, Bip44Coins

from devstack import moto_server
from devstack.event_source import EventSourceMapping
from devstack.receiver import Delivery
from devstack.stack import WEBHOOK_FUNCTION, WEBHOOK_QUEUE, Stack, start_stack

GOAL_S = 1.0
WAIT_S = 30.0
TRANSACT_EVENTS = 50  # two items each (event, outbox marker): DynamoDB's 100 per transaction


def _percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def _row(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"| {name} | {statistics.median(ms):.0f} ms | {_percentile(ms, 95):.0f} ms | {max(ms):.0f} ms "
        f"| {min(ms):.0f} ms | {len(ms)} |"
    )


def _table(rows: Iterable[tuple[str, list[float]]]) -> None:
    print("| interval | p50 | p95 | max | min | n |\n| --- | --- | --- | --- | --- | --- |")
    for name, values in rows:
        if values:
            print(_row(name, values))


# --- instruments -----------------------------------------------------------------------------


@dataclass
class MotoMeter:
    """Time moto spends serving each request, inside its one-at-a-time lock, by operation."""

    busy_s: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))

    def install(self) -> None:
        meter = self

        def timed(door: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            target = str(environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO") or "?")
            operation = target.rpartition(".")[2]
            with door._lock:
                started = time.perf_counter()
                body = list(door._app(environ, start_response))
                meter.busy_s[operation] += time.perf_counter() - started
                meter.calls[operation] += 1
            return body

        moto_server._OneAtATime.__call__ = timed  # type: ignore[method-assign,assignment]

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        return dict(self.busy_s), dict(self.calls)


@dataclass
class SenderMeter:
    """POSTs the sender makes (their latency) and its deferrals, counted around the layer's functions."""

    posts_s: list[float] = field(default_factory=list)
    deferrals: int = 0

    def install(self) -> None:
        from usdt_gateway.webhooks import delivery_http, sender

        post, defer, meter = delivery_http.post, sender._defer, self

        def timed_post(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return post(*args, **kwargs)
            finally:
                meter.posts_s.append(time.perf_counter() - started)

        def counted_defer(*args: Any, **kwargs: Any) -> None:
            meter.deferrals += 1
            defer(*args, **kwargs)

        delivery_http.post = timed_post
        sender._defer = counted_defer


class QuickReceiver(ThreadingHTTPServer):
    """Answers every POST 204 at once and notes each webhook-id's first arrival."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _QuickHandler)
        self.arrivals: dict[str, float] = {}
        self.hits = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _QuickHandler(BaseHTTPRequestHandler):
    server: QuickReceiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        with self.server.lock:
            self.server.hits += 1
            self.server.arrivals.setdefault(self.headers.get("webhook-id", ""), time.time())

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- the merchant's API ----------------------------------------------------------------------


@dataclass
class Api:
    """Signed (V2) requests of the demo merchant, with a key of its own allowing more than the
    default 100 requests a minute."""

    base_url: str
    api_key: str
    secret_key: str
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, body: Any = None) -> tuple[dict[str, Any], float]:
        """The JSON answer and when it was complete (time.time())."""
        from usdt_gateway import request_signing

        raw = b"" if body is None else json.dumps(body).encode()
        timestamp = str(int(time.time() * 1000))
        signature = request_signing.sign(self.secret_key, request_signing.v2_message(timestamp, method, path, [], raw))
        headers = {
            "API-Key": self.api_key,
            "Request-Time": timestamp,
            "Signature-V2": signature,
            "Content-Type": "application/json",
        }
        response = self.session.request(method, self.base_url + path, data=raw, headers=headers, timeout=10)
        done = time.time()
        response.raise_for_status()
        return dict(response.json()), done

    def create(self, amount: str = "5.00") -> dict[str, Any]:
        body = {"network": "local", "currency": "USDT", "amount": amount, "orderId": f"bench-{secrets.token_hex(6)}"}
        return self.call("POST", "/v1/payment/order", body)[0]

    def cancel(self, order_id: str) -> float:
        return self.call("POST", f"/v1/payment/order/{order_id}/cancel")[1]


def _demo_api(stack: Stack) -> Api:
    from usdt_gateway import merchants

    key = merchants.create_api_key(stack.merchant["merchantId"], rate_limit=6000, label="bench")
    return Api(stack.base_url, key["apiKey"], key["secretKey"])


# --- (b) latency -----------------------------------------------------------------------------


def _first(stack: Stack, order_id: str, event_type: str) -> Delivery:
    assert stack.receiver is not None

    def match(deliveries: list[Delivery]) -> Delivery | None:
        return next(
            (d for d in deliveries if d.data.get("orderId") == order_id and (d.event or {}).get("type") == event_type),
            None,
        )

    found = match(stack.receiver.wait_for(lambda ds: match(ds) is not None, WAIT_S))
    if found is None:
        raise RuntimeError(f"no {event_type} for {order_id} within {WAIT_S:.0f} s")
    return found


def _created_at(delivery: Delivery) -> float:
    return int((delivery.event or {})["createdAt"]) / 1000


def latency(stack: Stack, orders: int, payments: int) -> None:
    from devstack.pay import Payer
    from usdt_gateway.money import parse_amount, to_base_units

    api = _demo_api(stack)
    assert stack.receiver is not None
    stack.receiver.echo = lambda line: None  # the bench prints tables, not one line per event
    function = stack.functions[WEBHOOK_FUNCTION]
    handler, invocations = function.handler, []

    def timed_handler(event: dict[str, Any], context: Any) -> Any:
        began = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            invocations.append((len(event["Records"]), time.perf_counter() - began))

    function.handler = timed_handler

    from_response, from_commit = [], []
    for _ in range(orders):
        order = api.create()
        time.sleep(random.uniform(0.1, 0.4))  # changes at random moments against the 100 ms polls
        answered = api.cancel(order["orderId"])
        delivery = _first(stack, order["orderId"], "order.cancelled")
        from_response.append(delivery.received_at - answered)
        from_commit.append(delivery.received_at - _created_at(delivery))

    burst = [api.create() for _ in range(orders)]
    burst_answered = {order["orderId"]: api.cancel(order["orderId"]) for order in burst}
    burst_response, burst_commit = [], []
    for order_id, answered in burst_answered.items():
        delivery = _first(stack, order_id, "order.cancelled")
        burst_response.append(delivery.received_at - answered)
        burst_commit.append(delivery.received_at - _created_at(delivery))

    payer, pay_commit = Payer(stack.chain.info), []
    for _ in range(payments):
        order = api.create("5.00")
        units = to_base_units(parse_amount("5.00"), stack.chain.info.decimals)
        payer.wait_mined(payer.transfer(order["address"], units))
        for event_type in ("order.confirming", "order.confirmed"):
            delivery = _first(stack, order["orderId"], event_type)
            pay_commit.append(delivery.received_at - _created_at(delivery))

    print(
        f"\n(b) state change -> delivery on the local stack ({orders} orders one at a time, {orders} in a burst, "
        f"{payments} payments)\n"
    )
    _table(
        [
            ("cancel: API response -> receiver", from_response),
            ("cancel: commit (createdAt) -> receiver", from_commit),
            (f"burst of {orders} cancels: API response -> receiver", burst_response),
            (f"burst of {orders} cancels: commit -> receiver", burst_commit),
            ("payment (scanner): commit -> receiver, confirming and confirmed", pay_commit),
        ]
    )
    function.handler = handler
    single = [seconds for records, seconds in invocations if records == 1]
    print(
        f"\nWebhookFunction invocations: {len(invocations)}, {len(single)} of one record: median "
        f"{statistics.median(single) * 1000:.0f} ms, p95 {_percentile(single, 95) * 1000:.0f} ms; the poller "
        f"receives every {stack.webhooks.poll_interval_s * 1000:.0f} ms while the queue is empty"
    )
    p50s = {
        name: statistics.median(values)
        for name, values in (
            ("cancel, from the response", from_response),
            ("cancel, from the commit", from_commit),
            ("burst, from the commit", burst_commit),
            ("payment, from the commit", pay_commit),
        )
        if values
    }
    met = all(p50 < GOAL_S for p50 in p50s.values())
    print(
        f"Goal p50 under {GOAL_S:.0f} s: {'met' if met else 'NOT met'} ("
        + ", ".join(f"{name} {p50 * 1000:.0f} ms" for name, p50 in p50s.items())
        + ")"
    )


# --- (a) throughput --------------------------------------------------------------------------


def _xpub() -> str:
    """A fresh EVM account xpub (random mnemonic): deposit addresses are unique across merchants."""
    seed = Bip39SeedGenerator(Bip39MnemonicGenerator().FromWordsNumber(12)).Generate()
    return str(Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).PublicKey().ToExtended())


def _merchant_orders(count: int, url: str) -> list[dict[str, Any]]:
    """`count` new merchants with `url` as their webhook URL, one `local` order each (its item)."""
    from usdt_gateway import merchants, orders, store
    from usdt_gateway.schemas import CreateOrderRequest

    items = []
    for index in range(count):
        merchant_id = merchants.create_merchant(f"bench merchant {index}", webhook_url=url)["merchantId"]
        merchants.configure_xpub(merchant_id, "evm", _xpub())
        request = CreateOrderRequest.model_validate(
            {"network": "local", "currency": "USDT", "amount": "1.00", "orderId": f"bench-{secrets.token_hex(6)}"}
        )
        view, _ = orders.create_order(merchant_id, request)
        item = store.get(*store.order_key(merchant_id, view.order_id))
        assert item is not None
        items.append(item)
    return items


def _commit_events(order: dict[str, Any], count: int) -> list[str]:
    from usdt_gateway import events, store
    from usdt_gateway.records import Order

    types = list(itertools.islice(itertools.cycle(events.ORDER_EVENT_TYPES), count))
    ids: list[str] = []
    for start in range(0, count, TRANSACT_EVENTS):
        batch_ids, parts = events.for_order(
            Order.from_item(order), types[start : start + TRANSACT_EVENTS], first_sequence=start + 1, head=None
        )
        store.transact(parts)
        ids += batch_ids
    return ids


def throughput(stack: Stack, moto: MotoMeter, meter: SenderMeter, total: int, merchant_count: int, label: str) -> None:
    from usdt_gateway import outbox

    shop = QuickReceiver()
    order_items = _merchant_orders(merchant_count, shop.url)
    per_merchant = [_commit_events(o, total // merchant_count) for o in order_items]
    interleaved = [e for group in itertools.zip_longest(*per_merchant) for e in group if e]
    started = time.perf_counter()
    published = outbox.publish(interleaved)
    publish_s = time.perf_counter() - started
    assert len(published) == len(interleaved)

    busy_before, calls_before = moto.snapshot()
    posts_before, deferrals_before = len(meter.posts_s), meter.deferrals
    function = stack.functions[WEBHOOK_FUNCTION]
    handler_s: list[float] = []

    def timed_invoke(event: dict[str, Any]) -> Any:
        began = time.perf_counter()
        try:
            return function.invoke(event)
        finally:
            handler_s.append(time.perf_counter() - began)

    mapping = EventSourceMapping(stack.queue_urls[WEBHOOK_QUEUE], timed_invoke, name="bench-webhooks")
    started, started_at = time.perf_counter(), time.time()
    mapping.start()
    deadline = time.monotonic() + 180
    while len(shop.arrivals) < len(interleaved) and time.monotonic() < deadline:
        time.sleep(0.01)
    wall_s = time.perf_counter() - started
    mapping.stop()
    shop.shutdown()
    shop.server_close()
    delivered = len(shop.arrivals)

    busy_after, calls_after = moto.snapshot()
    busy = {op: busy_after[op] - busy_before.get(op, 0.0) for op in busy_after}
    calls = {op: calls_after[op] - calls_before.get(op, 0) for op in calls_after}
    posts = meter.posts_s[posts_before:]
    deferrals = meter.deferrals - deferrals_before
    moto_s = sum(busy.values())
    print(
        f"\n(a) {label}: {delivered} of {len(interleaved)} events delivered in {wall_s:.2f} s = "
        f"**{delivered / wall_s:.0f} events/s** ({mapping.invocations} invocations of up to 10, "
        f"{deferrals} deferrals, {shop.hits} POSTs)"
    )
    if deferrals:
        undeferred = sorted(shop.arrivals.values())[max(delivered - deferrals, 1) - 1] - started_at
        print(
            f"    the first {delivered - deferrals} arrived within {undeferred:.2f} s; the {deferrals} deferred came "
            "back 5-30 s later (the sender's DEFER_SECONDS)"
        )
    print(
        f"    publishing them (outbox.publish, batches of 10): {publish_s:.2f} s = "
        f"{len(interleaved) / publish_s:.0f} events/s"
    )
    print(
        f"    handler per invocation: median {statistics.median(handler_s) * 1000:.0f} ms, "
        f"{sum(handler_s) / wall_s:.0%} of the wall time"
    )
    print(
        f"    moto busy (requests served one at a time): {moto_s:.2f} s = {moto_s / wall_s:.0%} of the wall time, "
        f"{sum(calls.values())} requests, {sum(calls.values()) / max(delivered, 1):.1f} per event"
    )
    print(
        f"    POSTs to the receiver: median {statistics.median(posts) * 1000:.1f} ms, sum {sum(posts):.2f} s "
        f"(concurrent: up to 10 at once)\n"
    )
    print("| moto operation | requests | per event | busy | mean |\n| --- | --- | --- | --- | --- |")
    for operation, seconds in sorted(busy.items(), key=lambda kv: -kv[1]):
        if not calls[operation]:
            continue
        print(
            f"| {operation} | {calls[operation]} | {calls[operation] / max(delivered, 1):.2f} | "
            f"{seconds:.2f} s | {seconds / calls[operation] * 1000:.2f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--merchants", type=int, default=5)
    parser.add_argument("--orders", type=int, default=30)
    parser.add_argument("--payments", type=int, default=5)
    args = parser.parse_args()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.WARNING)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {platform.python_version()}, {os.cpu_count()} CPUs")

    moto, meter = MotoMeter(), SenderMeter()
    moto.install()
    with tempfile.TemporaryDirectory() as state_dir:
        stack = start_stack(state_dir=Path(state_dir))
        try:
            meter.install()
            latency(stack, args.orders, args.payments)
            for loop in (stack.webhooks, stack.outbox, stack.settlement, stack.scanner):
                loop.stop()
            throughput(
                stack,
                moto,
                meter,
                args.events,
                args.merchants,
                f"{args.events} events across {args.merchants} merchants",
            )
            throughput(stack, moto, meter, args.events // 5, 1, f"{args.events // 5} events of one merchant")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
