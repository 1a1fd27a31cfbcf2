"""What 1,000 orders cost on AWS: the billable requests one order makes, counted on the local
stack, times us-east-1 on-demand prices; and the fixed monthly cost of a running deployment.

    .venv/bin/python -m bench.cost [--orders 100] [--poll-seconds 4] [--page-minutes 3] [--pay-group 2]
                                   [--cycle-ms 300]

The template's handlers run on the local stack (devstack.stack.start_stack: moto, anvil, the
stack's webhook receiver), driven one step at a time so each request is attributed to its step
and function. Per order, on the `local` network (xpub mode):

1. the merchant creates it (signed POST through the API Gateway stand-in);
2. the payer opens its payment page (GET /pay/{publicId}, then the page's stylesheet and script
   once), which polls GET /v1/public/orders/{publicId} every --poll-seconds (the page script's
   interval, 4 s) for --page-minutes until the payment is confirmed, and stops there (the
   requests are made back to back: their cost barely depends on their spacing, except that a
   rate meter's first write in a new minute is retried once, which real spacing makes happen
   more often: about 7 WRU an order more for a 3-minute page, estimated in docs/cost.md);
3. the payer pays it on the local chain, in groups of --pay-group orders (payments arrive spread
   out in practice; a group under the merchant's 4 delivery slots is delivered without deferral);
   the ScannerFunction handler scans one cycle at a time until the group's orders are confirmed;
   the WebhookFunction handler delivers their events through an SQS event source mapping to the
   stack's receiver, which verifies every signature;
4. the merchant reads the order once (signed GET).

Counted with botocore event hooks on the gateway's own clients (moto returns no consumed
capacity): every DynamoDB call with the sizes of the items it reads and of the items a write
replaces and leaves (read with a client of the bench's own, outside the count), turned into
request units by DynamoDB's on-demand rules; SQS requests in 64 KB chunks; KMS requests; every
Lambda invocation and its duration (this machine's, not Lambda's CPU); every HTTP request to the
API. The scanner's cycles cost DynamoDB requests whether or not payments come: an idle cycle is
measured first, and the scan step's cost per order is what it spends beyond its cycles at that
idle cost. The scanner's, the outbox sweeper's and the event source mapping's running costs are
fixed per month and reported apart. Prices: PRICES below, with their sources (docs/cost.md).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import re
import secrets
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from bench.webhooks import Api
from devstack.event_source import EventSourceMapping
from devstack.functions import LocalFunction
from devstack.schedule import scheduled_event
from devstack.stack import OUTBOX_FUNCTION, SCANNER_FUNCTION, WEBHOOK_FUNCTION, WEBHOOK_QUEUE, Stack, start_stack
from devstack.template import load_template

# Calls made outside any handler during the flow: the event source mapping's receives and deletes.
OUTSIDE = "event source mapping"
SUBTRACTED = "idle cycles (subtracted)"
MONTH_H = 730  # hours in a month, as AWS prices a month
MINUTES_A_MONTH = MONTH_H * 60

# us-east-1 on-demand prices, free tiers excluded; the sources are in docs/cost.md.
PRICES = {
    "api_rest_per_m": 3.50,  # API Gateway REST API, per million requests (first 333 M)
    "lambda_request_per_m": 0.20,  # Lambda, per million requests
    "lambda_gb_s_x86": 0.0000166667,  # Lambda x86, per GB-second (first 6 B GB-s)
    "ddb_wru_per_m": 0.625,  # DynamoDB on-demand, per million write request units
    "ddb_rru_per_m": 0.125,  # DynamoDB on-demand, per million read request units
    "sqs_per_m": 0.40,  # SQS standard queue, per million requests (64 KB chunks)
    "kms_per_10k": 0.03,  # KMS symmetric requests, per 10,000
    "kms_key_month": 1.00,  # KMS customer managed key, per month (+1 per rotation, first two)
    "xray_trace_per_m": 5.00,  # X-Ray traces recorded, per million
    "logs_ingest_per_gb": 0.50,  # CloudWatch Logs ingestion (standard), per GB
    "cw_alarm_month": 0.10,  # CloudWatch standard-resolution alarm, per alarm metric and month
    "cw_dashboard_month": 3.00,  # CloudWatch custom dashboard, per month
    "cw_metric_month": 0.30,  # CloudWatch custom metric, per metric and month (first 10,000)
}
# The Lambda platform's own lines per invocation (START, END, REPORT with the X-Ray trace id):
# an estimate from their documented format, not measured here.
PLATFORM_LOG_BYTES = 420
# Lambda's SQS event source mapping long-polls the queue with a few pollers even when it is
# empty (20 s waits); assumed here: 5 pollers, 3 empty receives a minute each.
IDLE_POLLERS, IDLE_RECEIVES_PER_MIN = 5, 3


# --- DynamoDB request units -------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def _value_size(value: dict[str, Any]) -> int:
    """An attribute value's size by DynamoDB's rules (developer guide, "Item sizes and formats")."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return _number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(_number_size(n) for n in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_value_size(x) + 1 for x in v)
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + _value_size(value) for name, value in (item or {}).items())


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _read_units(size: int) -> int:
    return max(1, math.ceil(size / 4096))


@dataclass
class Usage:
    """Billable usage of one step, by function."""

    ddb_calls: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    rru: float = 0.0
    wru: float = 0.0  # the table
    index_wru: float = 0.0  # gsi1 (projection ALL): its entries written or removed by a write
    sqs: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # billable requests
    kms: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    invocations: int = 0
    billed_ms: int = 0
    log_bytes: int = 0

    def add(self, other: Usage, factor: float = 1.0) -> None:
        for name in ("rru", "wru", "index_wru"):
            setattr(self, name, getattr(self, name) + factor * getattr(other, name))
        for name in ("ddb_calls", "sqs", "kms"):
            mine: defaultdict[str, float] = getattr(self, name)
            for key, n in getattr(other, name).items():
                mine[key] += n * factor
        self.invocations += int(other.invocations * factor)
        self.billed_ms += int(other.billed_ms * factor)
        self.log_bytes += int(other.log_bytes * factor)


class Meter:
    """Counts billable usage by (step, function) through botocore hooks and handler wrappers."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.usage: dict[tuple[str, str], Usage] = defaultdict(Usage)
        self.step = "setup"
        self.function = OUTSIDE
        self.active = 0
        self.lock = threading.Lock()
        self.memory_mb: dict[str, int] = {}
        self.item_sizes: defaultdict[str, list[int]] = defaultdict(list)  # written items, by pk prefix
        # Reads the items a write touches, before and after, outside the count.
        self._peek = boto3.client("dynamodb")

    def _here(self) -> Usage:
        return self.usage[(self.step, self.function)]

    # -- Lambda --

    def wrap(self, function: LocalFunction) -> None:
        handler, meter = function.handler, self
        self.memory_mb[function.logical_id] = function.memory_mb

        def measured(event: dict[str, Any], context: Any) -> Any:
            with meter.lock:
                meter.active += 1
                if meter.active > 1:
                    raise RuntimeError("two invocations at once: the bench drives one at a time")
                meter.function = function.logical_id
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                elapsed_ms = math.ceil((time.perf_counter() - started) * 1000)
                with meter.lock:
                    usage = meter._here()
                    usage.invocations += 1
                    usage.billed_ms += elapsed_ms
                    usage.log_bytes += PLATFORM_LOG_BYTES
                    meter.active -= 1
                    meter.function = OUTSIDE

        function.handler = measured

    def count_log(self, size: int) -> None:
        with self.lock:
            self._here().log_bytes += size

    # -- botocore --

    def install(self, dynamodb: Any, sqs: Any, kms: Any) -> None:
        # before-parameter-build sees the call's own parameters (before-call sees the HTTP request).
        dynamodb.meta.events.register("before-parameter-build.dynamodb", self._before_dynamodb)
        dynamodb.meta.events.register("after-call.dynamodb", self._after_dynamodb)
        sqs.meta.events.register("before-parameter-build.sqs", self._sqs)
        kms.meta.events.register("before-parameter-build.kms", self._kms)

    def install_event_source(self, sqs: Any) -> None:
        """The event source mapping's own client: its receives and deletes are SQS requests too."""
        sqs.meta.events.register("before-parameter-build.sqs", self._sqs)

    def _writes(self, operation: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if operation in ("PutItem",):
            return [{"pk": params["Item"]["pk"], "sk": params["Item"]["sk"]}]
        if operation in ("UpdateItem", "DeleteItem"):
            return [params["Key"]]
        if operation == "TransactWriteItems":
            keys = []
            for part in params["TransactItems"]:
                ((kind, body),) = part.items()
                keys.append({"pk": body["Item"]["pk"], "sk": body["Item"]["sk"]} if kind == "Put" else body["Key"])
            return keys
        return []

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        reply = self._peek.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = reply.get("Item")
        return item

    def _before_dynamodb(self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        keys = self._writes(model.name, params)
        context["cost_before"] = [(key, self._get(key)) for key in keys]

    def _after_dynamodb(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        operation = model.name
        with self.lock:
            usage = self._here()
            usage.ddb_calls[operation] += 1
            if operation == "GetItem":
                consistent = bool(context.get("cost_consistent", True))
                units = _read_units(item_size(parsed.get("Item")))
                usage.rru += units if consistent else units / 2
            elif operation == "Query":
                size = sum(item_size(i) for i in parsed.get("Items", []))
                scanned, count = parsed.get("ScannedCount", 0), parsed.get("Count", 0)
                if count and scanned > count:  # a filter: billed on what was read, not returned
                    size = size * scanned // count
                units = _read_units(size)
                usage.rru += units if context.get("cost_consistent") else units / 2
        before = context.get("cost_before") or []
        if not before:
            return
        transaction = operation == "TransactWriteItems"
        after = [(key, self._get(key)) for key, _ in before]
        with self.lock:
            usage = self._here()
            for (key, old), (_, new) in zip(before, after, strict=True):
                if new:
                    self.item_sizes[str(key["pk"]["S"]).split("#")[0]].append(item_size(new))
                usage.wru += _write_units(max(item_size(old), item_size(new))) * (2 if transaction else 1)
                usage.index_wru += _index_writes(old, new)

    def _sqs(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        payload = 0
        if model.name == "SendMessage":
            payload = _message_size(params)
        elif model.name == "SendMessageBatch":
            payload = sum(_message_size(e) for e in params["Entries"])
        with self.lock:
            self._here().sqs[model.name] += max(1, math.ceil(payload / 65536))

    def _kms(self, model: Any, **_: Any) -> None:
        with self.lock:
            self._here().kms[model.name] += 1

    def note_read_consistency(self, dynamodb: Any) -> None:
        """GetItem/Query's ConsistentRead, kept for the after-call hook (it sees only the response)."""

        def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["cost_consistent"] = bool(params.get("ConsistentRead")) and "IndexName" not in params

        dynamodb.meta.events.register("before-parameter-build.dynamodb.GetItem", keep)
        dynamodb.meta.events.register("before-parameter-build.dynamodb.Query", keep)

    @contextlib.contextmanager
    def in_step(self, name: str) -> Iterator[None]:
        previous, self.step = self.step, name
        try:
            yield
        finally:
            self.step = previous

    def total(self, step: str | None = None, function: str | None = None) -> Usage:
        total = Usage()
        for (s, f), usage in list(self.usage.items()):
            if (step is None or s == step) and (function is None or f == function):
                total.add(usage)
        return total


def _index_writes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> float:
    """gsi1 write units of one item write: its index entry put, replaced or removed ("Global
    secondary indexes: provisioned throughput considerations": a changed index key is a delete and
    a put)."""

    def keys(item: dict[str, Any] | None) -> tuple[Any, Any] | None:
        if item and "gsi1pk" in item and "gsi1sk" in item:
            return item["gsi1pk"], item["gsi1sk"]
        return None

    k_old, k_new = keys(old), keys(new)
    if k_old is None and k_new is None:
        return 0
    if k_old is None:
        return _write_units(item_size(new))
    if k_new is None:
        return _write_units(item_size(old))
    if k_old == k_new:
        return 0 if old == new else _write_units(max(item_size(old), item_size(new)))
    return _write_units(item_size(old)) + _write_units(item_size(new))


def _message_size(entry: dict[str, Any]) -> int:
    size = len(str(entry.get("MessageBody", "")).encode())
    for name, attr in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(attr.get("DataType", "").encode()) + len(str(attr.get("StringValue", "")))
    return size


class _LogCounter(logging.Handler):
    """Counts the bytes the gateway's logger writes (what CloudWatch Logs ingests)."""

    def __init__(self, meter: Meter, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.meter = meter
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.meter.count_log(len(self.format(record).encode()) + 1)


# --- the flow ---------------------------------------------------------------------------------


@dataclass
class Flow:
    stack: Stack
    meter: Meter
    api: Api
    http: requests.Session = field(default_factory=requests.Session)
    api_requests: Counter[str] = field(default_factory=Counter)

    def signed(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        self.api_requests[self.meter.step] += 1
        return self.api.call(method, path, body)[0]

    def get(self, url: str) -> str:
        self.api_requests[self.meter.step] += 1
        reply = self.http.get(url, timeout=10)
        reply.raise_for_status()
        return reply.text

    def public(self, public_id: str) -> dict[str, Any]:
        self.api_requests[self.meter.step] += 1
        reply = self.http.get(f"{self.stack.base_url}/v1/public/orders/{public_id}", timeout=10)
        reply.raise_for_status()
        return dict(reply.json())

    def scan_once(self) -> dict[str, Any]:
        return dict(self.stack.functions[SCANNER_FUNCTION].invoke({"network": "local"}))


def _status_of(flow: Flow, order_id: str) -> str:
    item = boto3.client("dynamodb").get_item(
        TableName=flow.stack.table_name,
        ConsistentRead=True,
        Key={"pk": {"S": f"ORDER#{flow.stack.merchant['merchantId']}#{order_id}"}, "sk": {"S": "ORDER"}},
    )
    return str(item["Item"]["status"]["S"])


def idle_scanner(flow: Flow, invocations: int, long_scan_s: float) -> tuple[Usage, Usage, float]:
    """(an idle single-cycle invocation's usage, one idle cycle's, the mean cycle duration in s)."""
    with flow.meter.in_step("idle one-cycle"):
        for _ in range(invocations):
            flow.scan_once()
            time.sleep(0.5)
    os.environ["SCAN_SECONDS"] = str(long_scan_s)
    try:
        with flow.meter.in_step("idle long"):
            report = flow.scan_once()
    finally:
        os.environ["SCAN_SECONDS"] = "0"
    one = Usage()
    one.add(flow.meter.total("idle one-cycle"), 1 / invocations)
    long = flow.meter.total("idle long")
    print(
        f"idle: {invocations} one-cycle invocations, each {dict(one.ddb_calls)}; one of {long_scan_s:.0f} s: "
        f"{report['cycles']} cycles, {dict(long.ddb_calls)}"
    )
    per_cycle = Usage()
    cycles = int(report["cycles"])
    per_cycle.add(long, 1 / (cycles - 1))
    per_cycle.add(one, -1 / (cycles - 1))
    from usdt_gateway.config import networks

    local_idle = min(3.0, max(0.2, networks()["local"].block_time_ms / 2000))  # the scanner's pause between cycles
    return one, per_cycle, max(0.0, long_scan_s / cycles - local_idle)


def run_flow(flow: Flow, orders: int, polls: int, group: int, one_cycle: Usage) -> tuple[int, int, float]:
    """Drives the orders through their lives; returns (webhook events delivered, scan invocations, seconds)."""
    from devstack.pay import Payer
    from usdt_gateway.money import parse_amount, to_base_units

    assert flow.stack.receiver is not None
    started = time.perf_counter()
    created = []
    with flow.meter.in_step("create"):
        for _ in range(orders):
            body = {
                "network": "local",
                "currency": "USDT",
                "amount": "25.00",
                "orderId": f"cost-{secrets.token_hex(6)}",
            }
            created.append(flow.signed("POST", "/v1/payment/order", body))
    with flow.meter.in_step("page load"):
        for order in created:
            page = flow.get(order["paymentUrl"])
            for asset in sorted(set(re.findall(r'(?:href|src)="(assets/[^"]+)"', page))):
                flow.get(order["paymentUrl"].rsplit("/", 1)[0] + "/" + asset)  # once: cached as immutable
    with flow.meter.in_step("page polls"):
        for order in created:
            for _ in range(polls - 1):
                flow.public(order["publicId"])
    payer = Payer(flow.stack.chain.info)
    units = to_base_units(parse_amount("25.00"), flow.stack.chain.info.decimals)
    mapping = EventSourceMapping(
        flow.stack.queue_urls[WEBHOOK_QUEUE], flow.stack.functions[WEBHOOK_FUNCTION].invoke, name="bench-cost-webhooks"
    )
    flow.meter.install_event_source(mapping._sqs)
    scans, delivered_before = 0, len(flow.stack.receiver.deliveries)
    with flow.meter.in_step("pay, scan, deliver"):
        for start in range(0, orders, group):
            batch = created[start : start + group]
            for txid in [payer.transfer(o["address"], units) for o in batch]:
                payer.wait_mined(txid)
            deadline = time.monotonic() + 60
            while any(_status_of(flow, o["orderId"]) != "confirmed" for o in batch):
                assert time.monotonic() < deadline, "orders not confirmed within 60 s"
                flow.scan_once()
                scans += 1
                while mapping.poll():
                    pass
                time.sleep(0.3)
            mapping.run_until(_all_confirmed(flow, batch), timeout_s=60)
    with flow.meter.in_step("page polls"):
        for order in created:  # the poll that sees the confirmation; the page stops polling
            assert flow.public(order["publicId"])["status"] == "confirmed"
    with flow.meter.in_step("merchant get"):
        for order in created:
            assert flow.signed("GET", f"/v1/payment/order/{order['orderId']}")["status"] == "confirmed"
    # What the scanner spent beyond its cycles at the idle cost: the deposits' own cost. (Its
    # Lambda time is not the orders': the scanner runs for ScanSeconds a minute either way.)
    idle = Usage(
        defaultdict(float, one_cycle.ddb_calls),
        one_cycle.rru,
        one_cycle.wru,
        one_cycle.index_wru,
        defaultdict(float, one_cycle.sqs),
        defaultdict(float, one_cycle.kms),
        log_bytes=one_cycle.log_bytes,
    )
    flow.meter.usage[("pay, scan, deliver", SUBTRACTED)].add(idle, -scans)
    return len(flow.stack.receiver.deliveries) - delivered_before, scans, time.perf_counter() - started


def _all_confirmed(flow: Flow, batch: list[dict[str, Any]]) -> Callable[[], bool]:
    """Whether the receiver got every order's order.confirmed."""
    receiver, wanted = flow.stack.receiver, {o["orderId"] for o in batch}
    assert receiver is not None

    def done() -> bool:
        return wanted <= {
            d.data.get("orderId") for d in receiver.deliveries if (d.event or {}).get("type") == "order.confirmed"
        }

    return done


def outbox_sweep(flow: Flow, runs: int) -> Usage:
    with flow.meter.in_step("outbox sweep"):
        for _ in range(runs):
            flow.stack.functions[OUTBOX_FUNCTION].invoke(
                scheduled_event("arn:aws:events:us-east-1:123456789012:rule/x")
            )
    one = Usage()
    one.add(flow.meter.total("outbox sweep"), 1 / runs)
    return one


# --- money ------------------------------------------------------------------------------------


def usage_cost(usage: Usage, memory_mb: dict[str, int], function: str | None = None) -> dict[str, float]:
    """Dollars of a usage, by service (Lambda duration at `function`'s memory)."""
    p = PRICES
    gb_s = usage.billed_ms / 1000 * memory_mb.get(function or "", 0) / 1024
    return {
        "Lambda": usage.invocations * p["lambda_request_per_m"] / 1e6 + gb_s * p["lambda_gb_s_x86"],
        "DynamoDB": usage.rru * p["ddb_rru_per_m"] / 1e6 + (usage.wru + usage.index_wru) * p["ddb_wru_per_m"] / 1e6,
        "SQS": sum(usage.sqs.values()) * p["sqs_per_m"] / 1e6,
        "KMS": sum(usage.kms.values()) * p["kms_per_10k"] / 1e4,
        "CloudWatch Logs": usage.log_bytes / 1024**3 * p["logs_ingest_per_gb"],
    }


def _alarm_metrics(alarm: dict[str, Any]) -> int:
    """The metrics an alarm evaluates (a metric-math alarm is billed for each)."""
    queries = alarm["Properties"].get("Metrics")
    return sum(1 for q in queries if "MetricStat" in q) if queries else 1


def _money(x: float) -> str:
    return f"${x:.4f}" if x < 10 else f"${x:,.2f}"


def report(
    flow: Flow,
    orders: int,
    polls: int,
    events: int,
    scans: int,
    wall_s: float,
    idle_one: Usage,
    idle_cycle: Usage,
    cycle_s: float,
    outbox: Usage,
    args: argparse.Namespace,
) -> None:
    meter, per = flow.meter, 1000 / orders
    steps = ["create", "page load", "page polls", "pay, scan, deliver", "merchant get"]
    functions = sorted({f for (s, f) in meter.usage if s in steps and f != SUBTRACTED})
    print(
        f"\n{orders} orders, {polls} page polls each ({args.page_minutes} min at {args.poll_seconds} s), "
        f"paid in groups of {args.pay_group}: {events} webhooks delivered, {scans} scan cycles, {wall_s:.0f} s\n"
    )

    print(
        "Per order, measured (DynamoDB units by on-demand rules; the scanner's invocations are its idle "
        "cycles, paid in the fixed cost):\n"
    )
    print(
        "| step | function | API requests | invocations | billed ms | DynamoDB calls | RRU | WRU table | WRU gsi1 "
        "| SQS requests | KMS |\n" + "| --- " * 11 + "|"
    )
    for step in steps:
        for function in [*functions, SUBTRACTED]:
            u = meter.usage.get((step, function))
            if u is None:
                continue
            api = flow.api_requests[step] / orders if function in ("ApiFunction", "PaymentPageFunction") else 0
            calls = ", ".join(f"{op} {n / orders:.2f}" for op, n in sorted(u.ddb_calls.items()) if n)
            sqs = ", ".join(f"{op} {n / orders:.2f}" for op, n in sorted(u.sqs.items()) if n)
            print(
                f"| {step} | {function} | {api:.2f} | {u.invocations / orders:.2f} | {u.billed_ms / orders:.1f} "
                f"| {calls} | {u.rru / orders:.2f} | {u.wru / orders:.2f} | {u.index_wru / orders:.2f} | {sqs} "
                f"| {sum(u.kms.values()) / orders:.3f} |"
            )

    # Cost per 1,000 orders, by service.
    by_service: defaultdict[str, float] = defaultdict(float)
    total_api = sum(flow.api_requests[s] for s in steps)
    by_service["API Gateway"] += total_api * per * PRICES["api_rest_per_m"] / 1e6
    traces = total_api
    for (step, function), usage in meter.usage.items():
        if step not in steps:
            continue
        for service, dollars in usage_cost(usage, meter.memory_mb, function).items():
            if not (service == "Lambda" and function == SCANNER_FUNCTION):  # fixed: ScanSeconds a minute
                by_service[service] += dollars * per
        if function == WEBHOOK_FUNCTION:
            traces += usage.invocations  # an SQS-triggered invocation starts its own trace
    by_service["X-Ray (every request sampled)"] += traces * per * PRICES["xray_trace_per_m"] / 1e6
    total = sum(by_service.values())
    polls_usage = meter.total("page polls")
    one_poll = (
        sum(usage_cost(polls_usage, meter.memory_mb, "ApiFunction").values()) / (orders * polls)
        + (PRICES["api_rest_per_m"] + PRICES["xray_trace_per_m"]) / 1e6
    )
    per_minute_open = one_poll * 1000 * 60 / args.poll_seconds
    print(
        f"\nCost per 1,000 orders (us-east-1 on-demand, free tier excluded): **{_money(total)}**; each poll "
        f"of the page adds {_money(one_poll * 1000)} per 1,000 orders ({_money(per_minute_open)} per minute "
        "the page stays open)\n"
    )
    print("| service | per 1,000 orders | share |\n| --- | --- | --- |")
    for service, dollars in sorted(by_service.items(), key=lambda kv: -kv[1]):
        print(f"| {service} | {_money(dollars)} | {dollars / total:.0%} |")
    gb_s = {
        f: meter.total(None, f).billed_ms / 1000 * meter.memory_mb[f] / 1024
        for f in functions
        if f in meter.memory_mb and f != SCANNER_FUNCTION
    }
    print(
        "\nLambda GB-s per order (measured durations at the template's memory sizes): "
        + ", ".join(f"{f} {v / orders:.4f}" for f, v in gb_s.items() if v)
    )
    print(
        "\nItems written, size by kind (bytes, DynamoDB's rules): "
        + ", ".join(
            f"{kind}# median {sorted(sizes)[len(sizes) // 2]}, max {max(sizes)}"
            for kind, sizes in sorted(meter.item_sizes.items())
        )
    )

    # Fixed monthly cost.
    print("\nFixed monthly cost (what runs without orders):\n")
    from usdt_gateway.networks import load_networks

    networks = load_networks("tron,eth,bsc", "")
    template = load_template()
    scan_s = float(template["Parameters"]["ScanSeconds"]["Default"])
    scanner_mb = int(template["Resources"]["ScannerFunction"]["Properties"]["MemorySize"])
    fixed: list[tuple[str, float, str]] = []
    for name, network in networks.items():
        idle = min(3.0, max(0.2, network.block_time_ms / 2000))
        cycles_a_minute = scan_s / (idle + max(cycle_s, args.cycle_ms / 1000))
        per_minute = Usage()
        per_minute.add(idle_one)
        per_minute.add(idle_cycle, cycles_a_minute - 1)
        ddb = usage_cost(per_minute, {}, None)["DynamoDB"] * MINUTES_A_MONTH
        lam = MINUTES_A_MONTH * (
            PRICES["lambda_request_per_m"] / 1e6 + scan_s * scanner_mb / 1024 * PRICES["lambda_gb_s_x86"]
        )
        fixed.append(
            (
                f"scanner `{name}`: Lambda ({scan_s:.0f} s x {scanner_mb} MB a minute)",
                lam,
                f"{MINUTES_A_MONTH * scan_s * scanner_mb / 1024:,.0f} GB-s",
            )
        )
        fixed.append(
            (
                f"scanner `{name}`: DynamoDB ({cycles_a_minute:.0f} cycles a minute)",
                ddb,
                f"{(per_minute.rru) * MINUTES_A_MONTH / 1e6:.2f} M RRU, "
                f"{(per_minute.wru + per_minute.index_wru) * MINUTES_A_MONTH / 1e6:.2f} M WRU",
            )
        )
    dispatch = MINUTES_A_MONTH * PRICES["lambda_request_per_m"] / 1e6
    fixed.append(("scanner fan-out invocation, one a minute (duration not measured)", dispatch, "43,800 requests"))
    outbox_cost = sum(usage_cost(outbox, meter.memory_mb, OUTBOX_FUNCTION).values()) * MINUTES_A_MONTH
    fixed.append(
        (
            f"outbox sweeper, one a minute ({outbox.billed_ms:.0f} ms, {outbox.rru:.1f} RRU each)",
            outbox_cost,
            "measured here",
        )
    )
    idle_receives = IDLE_POLLERS * IDLE_RECEIVES_PER_MIN * MINUTES_A_MONTH
    fixed.append(
        (
            "webhook queue: the event source mapping's empty long polls (assumed 5 pollers)",
            idle_receives * PRICES["sqs_per_m"] / 1e6,
            f"{idle_receives:,} requests",
        )
    )
    fixed.append(("KMS key (secrets)", PRICES["kms_key_month"], "+$1 for each of its first two rotations"))
    resources = template["Resources"].values()
    alarms = sum(_alarm_metrics(r) for r in resources if r["Type"] == "AWS::CloudWatch::Alarm")
    dashboards = sum(1 for r in resources if r["Type"] == "AWS::CloudWatch::Dashboard")
    fixed.append(
        (
            f"CloudWatch alarms in the template ({alarms} alarm metrics)",
            alarms * PRICES["cw_alarm_month"],
            "billed per metric an alarm evaluates",
        )
    )
    fixed.append(
        (f"CloudWatch dashboards in the template ({dashboards})", dashboards * PRICES["cw_dashboard_month"], "")
    )
    metrics = len(networks) * (10 + 2 * 2) + 2
    fixed.append(
        (
            f"custom metrics (EMF), about {metrics} (3 networks, 2 endpoints each)",
            metrics * PRICES["cw_metric_month"],
            "only metrics actually emitted are billed",
        )
    )
    traces_fixed = (2 + len(networks)) * MINUTES_A_MONTH
    fixed.append(
        (
            "X-Ray traces of the scheduled invocations",
            traces_fixed * PRICES["xray_trace_per_m"] / 1e6,
            f"{traces_fixed:,} traces",
        )
    )
    print("| item | per month | volume |\n| --- | --- | --- |")
    for item, dollars, volume in fixed:
        print(f"| {item} | {_money(dollars)} | {volume} |")
    print(f"| **total, 3 networks** | **{_money(sum(d for _, d, _ in fixed))}** | |")
    print(
        f"\nScan cycles a minute: ScanSeconds / (the scanner's pause between cycles + a cycle's time, "
        f"taken as {args.cycle_ms:.0f} ms of RPC round trips; {cycle_s * 1000:.0f} ms on anvil here)"
    )
    print(
        f"\nIdle scanner, measured: one single-cycle invocation {idle_one.rru:.1f} RRU + "
        f"{idle_one.wru + idle_one.index_wru:.1f} WRU; each further cycle {idle_cycle.rru:.2f} RRU + "
        f"{idle_cycle.wru + idle_cycle.index_wru:.2f} WRU; calls per cycle: "
        + ", ".join(f"{op} {n:.1f}" for op, n in sorted(idle_cycle.ddb_calls.items()) if n)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--poll-seconds", type=float, default=4.0, help="the payment page's poll interval")
    parser.add_argument("--page-minutes", type=float, default=3.0, help="how long the payer's page stays open")
    parser.add_argument("--pay-group", type=int, default=2, help="orders paid at once")
    parser.add_argument(
        "--cycle-ms",
        type=float,
        default=300.0,
        help="a scan cycle's time on a real chain (its RPC round trips), for the fixed cost",
    )
    args = parser.parse_args()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    polls = max(2, round(args.page_minutes * 60 / args.poll_seconds))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, Python {platform.python_version()}, {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as state_dir:
        stack = start_stack(state_dir=Path(state_dir), local_mode="xpub")  # what the figures are for
        try:
            from usdt_gateway import aws, config, merchants
            from usdt_gateway.observability import logger

            assert stack.receiver is not None
            stack.receiver.echo = lambda line: None
            for loop in (stack.webhooks, stack.outbox, stack.settlement, stack.scanner):
                loop.stop()
            # One scan cycle per invocation, counted; the public limits (the page's per IP, the
            # status poll's per (IP, order) and per IP) out of the way of requests that come back
            # to back from one address (the meters' writes are the same either way).
            os.environ["SCAN_SECONDS"] = "0"
            for name in (
                "PUBLIC_RATE_LIMIT_PER_MINUTE",
                "PUBLIC_PAGE_RATE_LIMIT_PER_MINUTE",
                "PUBLIC_ORDER_RATE_LIMIT_PER_MINUTE",
                "PUBLIC_ORDER_IP_RATE_LIMIT_PER_MINUTE",
            ):
                os.environ[name] = "100000"
            config.reset()
            key = merchants.create_api_key(stack.merchant["merchantId"], rate_limit=100_000, label="bench-cost")
            meter = Meter(stack.table_name)
            for function in stack.functions.values():
                meter.wrap(function)
            dynamodb = aws.client("dynamodb")
            meter.note_read_consistency(dynamodb)
            meter.install(dynamodb, aws.client("sqs"), aws.client("kms"))
            base = logger._logger  # the Logger's standard-library logger: what Lambda would ingest
            counter = _LogCounter(meter, base.handlers[0].formatter if base.handlers else None)
            base.addHandler(counter)
            for handler in base.handlers:  # counted, not printed
                if isinstance(handler, logging.StreamHandler):  # the counter is a plain Handler
                    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
            flow = Flow(stack, meter, Api(stack.base_url, key["apiKey"], key["secretKey"]))

            idle_one, idle_cycle, cycle_s = idle_scanner(flow, invocations=10, long_scan_s=4.0)
            events, scans, wall_s = run_flow(flow, args.orders, polls, args.pay_group, idle_one)
            outbox = outbox_sweep(flow, runs=5)
            report(flow, args.orders, polls, events, scans, wall_s, idle_one, idle_cycle, cycle_s, outbox, args)
            base.removeHandler(counter)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
