"""DynamoDB calls per request of a filtered listing: a rare status among 100,000 orders.

    .venv/bin/python -m bench.list_filters [--orders 100000] [--limit 20]

Setup, all in this process: an AtomicMotoServer with the table from template.yaml and a KMS key
(bench.local_aws), a merchant with a Tron xpub (random mnemonic made at run time), and one order
made by orders.create_order. Its item is the pattern of the others: each a copy with its own
orderId, publicId, paymentUrl, createdAt (one ms apart, the newest now) and index sort key,
exactly the attributes create_order writes, batch-written with BatchWriteItem (25 a call). The
PUBLIC#, ADDR# and WATCH# items of the copies are not written: a listing never reads them. The
oldest order is cancelled; every other one is pending.

Measured through orders.list_orders (what GET /v1/payment/orders runs once the request is
authenticated; authentication adds its own GetItem and UpdateItem), every DynamoDB call counted
by operation with botocore's before-call event, its time (moto's, not DynamoDB's) and the items
each Query read (ScannedCount):

1. status=cancelled, --limit per page, following nextCursor to the end, in a warm container;
2. the first page of 1 again in a new container (the listing key not read yet);
3. one unfiltered page; 4. one page of status=pending (nearly every order matches).

Goal: at most 3 DynamoDB calls per request. For comparison, the loop listings had before (a
Query of the page's remaining size, repeated until the page was full; store.query_index before
this bench was added), replayed here on the newest 2,000 orders (a `from` time bound), whose
status=cancelled page it read to the end of the window.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bip_utils import Bip39MnemonicGenerator, Bip39SeedGenerator, Bip44, Bip44Coins

from bench.local_aws import point_at_moto
from devstack.moto_server import AtomicMotoServer

TABLE = "bench-list-filters"
BATCH = 25  # BatchWriteItem's limit
BEFORE_WINDOW = 2_000  # orders the replay of the old loop reads (the review's figure)
GOAL_CALLS = 3


@dataclass
class Request:
    calls: Counter[str] = field(default_factory=Counter)
    scanned: int = 0
    seconds: float = 0.0
    size: int = 0
    cursor: bool = False

    @property
    def total(self) -> int:
        return sum(self.calls.values())


_CURRENT: list[Request] = []


def _before_call(model: Any, **_: Any) -> None:
    if _CURRENT:
        _CURRENT[-1].calls[model.name] += 1


def _after_call(model: Any, parsed: dict[str, Any], **_: Any) -> None:
    if _CURRENT and model.name == "Query":
        _CURRENT[-1].scanned += int(parsed.get("ScannedCount", 0))


def _xpub() -> str:
    seed = Bip39SeedGenerator(Bip39MnemonicGenerator().FromWordsNumber(12)).Generate()
    return str(Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0).PublicKey().ToExtended())


def _write_orders(merchant: str, count: int) -> tuple[list[int], int]:
    """`count` orders as create_order writes them, oldest first; returns their creation times and
    the size of one item (its DynamoDB JSON, about what DynamoDB counts)."""
    from usdt_gateway import aws, store
    from usdt_gateway import orders as orders_api
    from usdt_gateway.schemas import CreateOrderRequest

    run = uuid.uuid4().hex[:6]
    view, _ = orders_api.create_order(
        merchant,
        CreateOrderRequest.model_validate(
            {"network": "tron", "currency": "USDT", "amount": "25.00", "orderId": f"bench-{run}-pattern"}
        ),
    )
    pattern = store.get(*store.order_key(merchant, view.order_id))
    assert pattern is not None
    now = int(time.time() * 1000)
    created_at, batch = [], []
    ddb = aws.client("dynamodb")
    for i in range(count):
        order_id = f"bench-{run}-{i:06d}"
        created = now - (count - i)
        public_id = secrets.token_urlsafe(16)
        item = {
            **pattern,
            "pk": store.order_key(merchant, order_id)[0],
            "orderId": order_id,
            "publicId": public_id,
            "paymentUrl": f"https://pay.example.com/pay/{public_id}",
            "createdAt": created,
            "expiresAt": created + 1_800_000,
            "watchUntil": created + 5_400_000,
            "status": "cancelled" if i == 0 else "pending",
            "gsi1sk": f"{created:013d}#{order_id}",
        }
        created_at.append(created)
        batch.append({"PutRequest": {"Item": store._dump(item)}})  # the store's own serialization
        if len(batch) == BATCH or i == count - 1:
            pending: dict[str, Any] = {TABLE: batch}
            while pending:
                pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch = []
    size = len(json.dumps(store._dump(pattern)))
    return created_at, size


def _page(
    merchant: str, *, status: Any, limit: int, cursor: str | None, created_from: int | None = None
) -> tuple[Request, Any]:
    from usdt_gateway import orders

    request = Request()
    _CURRENT.append(request)
    began = time.perf_counter()
    try:
        page = orders.list_orders(
            merchant, status=status, created_from=created_from, created_to=None, limit=limit, cursor=cursor
        )
    finally:
        request.seconds = time.perf_counter() - began
        _CURRENT.pop()
    request.size, request.cursor = len(page.orders), page.next_cursor is not None
    return request, page


def _walk(merchant: str, status: Any, limit: int) -> tuple[list[Request], int | None]:
    """Every page to the end; the number of the request whose page held a match."""
    requests: list[Request] = []
    found_at = None
    cursor = None
    while True:
        request, page = _page(merchant, status=status, limit=limit, cursor=cursor)
        requests.append(request)
        if page.orders and found_at is None:
            found_at = len(requests)
        cursor = page.next_cursor
        if cursor is None:
            return requests, found_at


def _old_loop(merchant: str, status: str, limit: int, created_from: int) -> Request:
    """The listing's loop before bounded pages: a Query of the page's remaining size, repeated
    until the page is full or the range ends."""
    from usdt_gateway import aws, store

    request = Request()
    _CURRENT.append(request)
    kwargs: dict[str, Any] = {
        "TableName": TABLE,
        "IndexName": "gsi1",
        "ScanIndexForward": False,
        "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :from AND :to",
        "FilterExpression": "#f0 = :f0",
        "ExpressionAttributeNames": {"#pk": "gsi1pk", "#sk": "gsi1sk", "#f0": "status"},
        "ExpressionAttributeValues": store._values(
            {
                ":pk": store.orders_index_pk(merchant),
                ":from": f"{created_from:013d}",
                ":to": "9999999999999~",
                ":f0": status,
            }
        ),
    }
    found = 0
    began = time.perf_counter()
    try:
        while True:
            kwargs["Limit"] = limit - found
            resp = aws.client("dynamodb").query(**kwargs)
            found += len(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp or found >= limit:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    finally:
        request.seconds = time.perf_counter() - began
        _CURRENT.pop()
    request.size = found
    return request


def _calls(r: Request) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(r.calls.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description="DynamoDB calls per request of a filtered listing")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        point_at_moto(f"http://{host}:{port}", TABLE)
        os.environ.update(
            {
                "ENABLED_NETWORKS": "tron",
                "PUBLIC_BASE_URL": "https://pay.example.com",
                "POWERTOOLS_METRICS_DISABLED": "1",
                "POWERTOOLS_TRACE_DISABLED": "1",
            }
        )
        from usdt_gateway import aws, config, merchants, store
        from usdt_gateway.observability import logger
        from usdt_gateway.schemas import OrderStatus

        config.reset()
        logger.setLevel(logging.WARNING)
        merchant = merchants.create_merchant("bench")["merchantId"]
        merchants.configure_xpub(merchant, "tron", _xpub())
        began = time.perf_counter()
        created_at, item_size = _write_orders(merchant, args.orders)
        written_s = time.perf_counter() - began
        events = aws.client("dynamodb").meta.events
        events.register("before-call.dynamodb", _before_call)
        events.register("after-call.dynamodb", _after_call)

        _page(merchant, status=None, limit=1, cursor=None)  # the deployment's first listing makes its key
        walk, found_at = _walk(merchant, OrderStatus.CANCELLED, args.limit)
        store._LISTING_SECRETS.clear()  # a new container
        cold, _ = _page(merchant, status=OrderStatus.CANCELLED, limit=args.limit, cursor=None)
        plain, _ = _page(merchant, status=None, limit=args.limit, cursor=None)
        common, _ = _page(merchant, status=OrderStatus.PENDING, limit=args.limit, cursor=None)
        old = _old_loop(merchant, "cancelled", args.limit, created_at[-min(BEFORE_WINDOW, args.orders)])
        config.reset()
    finally:
        server.stop()

    worst = max(walk, key=lambda r: r.total)
    print(
        f"{args.orders:,} orders of one merchant, one cancelled (the oldest); limit {args.limit}; one order item "
        f"~{item_size:,} bytes as DynamoDB JSON; written in {written_s:.0f} s; moto server in this process; python "
        f"{sys.version.split()[0]} on {platform.machine()}"
    )
    print(
        f"\nstatus=cancelled to the end, warm container: {len(walk)} requests, "
        f"{sum(r.total for r in walk):,} DynamoDB calls, {sum(r.scanned for r in walk):,} items read, "
        f"the cancelled order on request {found_at}"
    )
    print(
        f"  calls per request: max {worst.total} ({_calls(worst)}), "
        f"{sum(r.total for r in walk) / len(walk):.2f} on average; items read per request: max "
        f"{max(r.scanned for r in walk):,}, {sum(r.scanned for r in walk) / len(walk):,.0f} on average"
    )
    print(
        f"  page sizes: {Counter(r.size for r in walk)}; time per request (moto): max "
        f"{max(r.seconds for r in walk) * 1000:.0f} ms, {sum(r.seconds for r in walk) / len(walk) * 1000:.0f} ms "
        "on average"
    )
    for label, r in (("first page, new container", cold), ("unfiltered page", plain), ("status=pending page", common)):
        print(
            f"{label}: {r.total} calls ({_calls(r)}), {r.scanned:,} items read, {r.size} orders, "
            f"cursor {'yes' if r.cursor else 'no'}, {r.seconds * 1000:.0f} ms"
        )
    print(
        f"\nthe loop before, status=cancelled over the newest {min(BEFORE_WINDOW, args.orders):,} orders: "
        f"{old.total:,} calls ({_calls(old)}) in one request, {old.seconds * 1000:.0f} ms; at "
        f"{args.orders:,} orders about {math.ceil(args.orders / args.limit):,}"
    )
    every = [*walk, cold, plain, common]
    ok = all(r.total <= GOAL_CALLS for r in every)
    print(
        f"\ngoal: at most {GOAL_CALLS} DynamoDB calls per request -> {'met' if ok else 'NOT met'} "
        f"(max {max(r.total for r in every)})"
    )


if __name__ == "__main__":
    main()
