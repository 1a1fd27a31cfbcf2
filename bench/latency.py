"""Warm latency of create and get through the local stack (HTTP -> API Gateway event -> the API
handler -> moto over HTTP), beside a bare DynamoDB PutItem/GetItem on the same moto server.

    .venv/bin/python -m bench.latency [--requests 1000]

The yardstick is what one DynamoDB round trip costs here; a create makes several (key meter,
address config read, the create transaction), a get two (key meter, order read).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from devstack.stack import start_stack


def _percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), q[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    n = parser.parse_args().requests
    stack = start_stack(port=0, state_dir=Path(tempfile.mkdtemp(prefix="usdt-gateway-bench-")))
    try:
        from usdt_gateway import aws, merchants

        # A key without the default 100/min limit, so the benchmark measures latency, not 429s.
        key = merchants.create_api_key(stack.merchant["merchantId"], rate_limit=10**6)
        session = requests.Session()

        def call(method: str, path: str, body: bytes = b"") -> None:
            ts = str(int(time.time() * 1000))
            msg = f"v2\n{ts}\n{method}\n{path}\n\n{hashlib.sha256(body).hexdigest()}"
            sig = hmac.new(key["secretKey"].encode(), msg.encode(), hashlib.sha256).hexdigest()
            headers = {
                "API-Key": key["apiKey"],
                "Request-Time": ts,
                "Signature-V2": sig,
                "Content-Type": "application/json",
            }
            r = session.request(method, stack.base_url + path, data=body or None, headers=headers, timeout=30)
            assert r.status_code in (200, 201), r.text

        run = uuid.uuid4().hex[:8]
        order = {"network": "tron", "currency": "USDT", "amount": "10.00"}
        call("POST", "/v1/payment/order", json.dumps(order | {"orderId": f"warm-{run}"}).encode())  # warm-up
        ddb, table = aws.client("dynamodb"), stack.table_name
        ddb.put_item(TableName=table, Item={"pk": {"S": "BENCH#CFG"}, "sk": {"S": "CFG"}, "nextIndex": {"N": "0"}})

        def bare_create(i: int) -> None:
            """The DynamoDB calls a create makes (key meter, address config, a transaction of three
            conditional puts and one conditional update), bare."""
            key_pk = {"pk": {"S": f"APIKEY#{key['apiKey']}"}, "sk": {"S": "KEY"}}
            ddb.update_item(
                TableName=table,
                Key=key_pk,
                UpdateExpression="SET benchCount = :n",
                ExpressionAttributeValues={":n": {"N": str(i)}},
            )
            ddb.get_item(TableName=table, Key={"pk": {"S": "BENCH#CFG"}, "sk": {"S": "CFG"}}, ConsistentRead=True)
            puts = [
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": f"BENCH#{run}#{i}#{part}"}, "sk": {"S": "B"}, "payload": {"S": "x" * 800}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for part in range(3)
            ]
            bump = {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": "BENCH#CFG"}, "sk": {"S": "CFG"}},
                    "UpdateExpression": "SET nextIndex = :next",
                    "ConditionExpression": "nextIndex = :n",
                    "ExpressionAttributeValues": {":n": {"N": str(i)}, ":next": {"N": str(i + 1)}},
                }
            }
            ddb.transact_write_items(TransactItems=[*puts, bump])

        def bare_get(i: int) -> None:
            key_pk = {"pk": {"S": f"APIKEY#{key['apiKey']}"}, "sk": {"S": "KEY"}}
            ddb.update_item(
                TableName=table,
                Key=key_pk,
                UpdateExpression="SET benchCount = :n",
                ExpressionAttributeValues={":n": {"N": str(i)}},
            )
            ddb.get_item(
                TableName=table, Key={"pk": {"S": f"BENCH#{run}#{i}#0"}, "sk": {"S": "B"}}, ConsistentRead=True
            )

        item = {"sk": {"S": "PLAIN"}, "payload": {"S": "x" * 1500}}
        # Interleaved, so moto's growing table (it copies a table per transaction) and machine
        # noise weigh on each series alike.
        series: dict[str, list[float]] = {name: [] for name in NAMES}

        def measure(name: str, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
            start = time.perf_counter()
            fn(*args, **kwargs)
            series[name].append((time.perf_counter() - start) * 1000)

        for i in range(n):
            body = json.dumps(order | {"orderId": f"b-{run}-{i}"}).encode()
            measure("create", call, "POST", "/v1/payment/order", body)
            measure("bare create calls", bare_create, i)
            measure("PutItem", ddb.put_item, TableName=table, Item=item | {"pk": {"S": f"P#{run}#{i}"}})
        for i in range(n):
            plain = {"pk": {"S": f"P#{run}#{i}"}, "sk": {"S": "PLAIN"}}
            measure("get", call, "GET", f"/v1/payment/order/b-{run}-{i}")
            measure("bare get calls", bare_get, i)
            measure("GetItem", ddb.get_item, TableName=table, Key=plain)
    finally:
        stack.stop()

    print(f"{n} requests each, python {sys.version.split()[0]}")
    for name in NAMES:
        p50, p99 = _percentiles(series[name])
        print(f"{LABELS[name]:52s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    med = {name: _percentiles(series[name])[0] for name in NAMES}
    for op, bare, yardstick in (("create", "bare create calls", "PutItem"), ("get", "bare get calls", "GetItem")):
        overhead = med[op] - med[bare]
        print(
            f"{op}: p50 {med[op] / med[yardstick]:.1f}x {yardstick}; overhead beyond its own DynamoDB calls "
            f"{overhead:.2f} ms = {overhead / med[yardstick]:.2f}x {yardstick}"
        )


NAMES = ("create", "bare create calls", "PutItem", "get", "bare get calls", "GetItem")
LABELS = {
    "create": "create order (HTTP -> handler -> moto, signed V2)",
    "bare create calls": "  the same DynamoDB calls, bare (meter, get, txn)",
    "PutItem": "  bare PutItem (yardstick)",
    "get": "get order (HTTP -> handler -> moto, signed V2)",
    "bare get calls": "  the same DynamoDB calls, bare (meter, get)",
    "GetItem": "  bare GetItem (yardstick)",
}


if __name__ == "__main__":
    main()
