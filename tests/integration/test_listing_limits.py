"""What a request can make the gateway ask of DynamoDB: ids from the path and list cursors are
checked before they become keys (DynamoDB refuses a partition key over 2,048 bytes with an
error, which would be a 500), cursors are the gateway's own (signed, bound to their listing),
and a filtered listing does a bounded amount of work per request, whatever the filter matches."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.apiclient import ApiClient, Reply
from tests.integration.conftest import Merchant, new_merchant, table_item_count
from tests.integration.webhooks import DELIVERIES, cancelled_order
from usdt_gateway import aws, orders, store
from usdt_gateway.observability import logger
from usdt_gateway.schemas import OrderStatus

ORDERS = "/v1/payment/orders"
LONG = "o" * 2100  # a partition key made of it would be over DynamoDB's 2,048 bytes

pytestmark = pytest.mark.usefixtures("dns")


@pytest.fixture
def query_calls() -> Iterator[list[str]]:
    """The DynamoDB Query calls made meanwhile (the handler runs in this process)."""
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb.Query", count)
    yield calls
    events.unregister("before-call.dynamodb.Query", count)


def _pages(
    api: ApiClient, path: str, key: str, query: list[tuple[str, str]], query_calls: list[str]
) -> tuple[list[dict[str, Any]], list[int], list[int]]:
    """Every item of a listing, following nextCursor to its end; with the size of each page and
    the Query calls each request made."""
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    calls: list[int] = []
    cursor: str | None = None
    while True:
        before = len(query_calls)
        reply = api.request("GET", path, query=query + ([("cursor", cursor)] if cursor else []))
        assert reply.status == 200, reply.body
        calls.append(len(query_calls) - before)
        sizes.append(len(reply.body[key]))
        items += reply.body[key]
        cursor = reply.body.get("nextCursor")
        if not cursor:
            return items, sizes, calls
        assert len(calls) < 50, "the listing does not end"


# --- ids in the path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "code", "name"),
    [
        ("GET", f"/v1/payment/order/{LONG}", "INVALID_ORDER_ID", "orderId"),
        ("POST", f"/v1/payment/order/{LONG}/cancel", "INVALID_ORDER_ID", "orderId"),
        ("GET", "/v1/payment/order/caf\u00e9", "INVALID_ORDER_ID", "orderId"),
        ("POST", f"{DELIVERIES}/evt_{LONG}/resend", "INVALID_DELIVERY_ID", "deliveryId"),
        ("POST", f"/v1/deposits/tron:{LONG}:0/attach", "INVALID_DEPOSIT_ID", "depositId"),
    ],
)
def test_an_id_that_cannot_exist_is_refused_before_any_read(
    api: ApiClient, method: str, path: str, code: str, name: str
) -> None:
    # Given an id in the path no order, delivery or deposit can have (too long, or characters
    # no id is made of)
    count = table_item_count()
    # When it is asked for
    reply = api.request(method, path, {"orderId": "o-1"} if path.endswith("/attach") else None)
    # Then it is a 400 naming the id, no key is made of it (the limit checker would fail the test)
    # and nothing is written
    assert (reply.status, reply.body["code"]) == (400, code), reply.body
    assert reply.body["message"].startswith(f"{name} must")
    assert table_item_count() == count


def test_a_path_id_that_cannot_exist_never_reaches_a_log_line(api: ApiClient) -> None:
    # Given every line the gateway logs, collected
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    collect = Collect()
    collect.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.name).addHandler(collect)
    try:
        # When a 2,100-character orderId is asked for and cancelled
        for method, path in [("GET", f"/v1/payment/order/{LONG}"), ("POST", f"/v1/payment/order/{LONG}/cancel")]:
            assert api.request(method, path).status == 400
    finally:
        logging.getLogger(logger.name).removeHandler(collect)
    # Then lines were logged, and none of them carries it
    assert lines and not any(LONG in line for line in lines)


def test_a_public_id_that_cannot_exist_is_not_found_without_a_read(handler: object) -> None:
    # Given a public id far over any key limit
    # When a payer's page asks for it
    reply = ApiClient(handler).request("GET", f"/v1/public/orders/{LONG}", sign="none")
    # Then it is the page's ordinary 404, and no key was made of it
    assert (reply.status, reply.body["code"]) == (404, "ORDER_NOT_FOUND")


# --- cursors -----------------------------------------------------------------------------------


def _unsigned_cursor(merchant: Merchant, order_pk: str, gsi1sk: str) -> str:
    """A cursor as a client could make one if cursors were the plain key of the last item."""
    key = {
        "pk": {"S": order_pk},
        "sk": {"S": "ORDER"},
        "gsi1pk": {"S": store.orders_index_pk(merchant.merchant_id)},
        "gsi1sk": {"S": gsi1sk},
    }
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def _flip(cursor: str, at: int) -> str:
    swapped = "A" if cursor[at] != "A" else "B"
    return cursor[:at] + swapped + cursor[at + 1 :]


def _list(api: ApiClient, *query: tuple[str, str]) -> Reply:
    return api.request("GET", ORDERS, query=list(query))


def test_cursors_the_gateway_did_not_make_are_refused(api: ApiClient, merchant: Merchant) -> None:
    # Given three orders and a real cursor after the first
    created = [api.create(network="tron").body for _ in range(3)]
    cursor = _list(api, ("limit", "1")).body["nextCursor"]
    assert cursor
    # And cursors made by hand: one pointing inside the merchant's own listing, one with a key
    # over DynamoDB's limits, and the real one with a character changed here and there
    newest = created[-1]
    forged = [
        _unsigned_cursor(
            merchant,
            store.order_key(merchant.merchant_id, newest["orderId"])[0],
            f"{newest['createdAt']:013d}#{newest['orderId']}",
        ),
        _unsigned_cursor(merchant, "ORDER#" + LONG, f"{newest['createdAt']:013d}#{LONG}"),
        _flip(cursor, 0),
        _flip(cursor, len(cursor) // 2),
        _flip(cursor, len(cursor) - 1),
        cursor + "A",
        cursor[:-1],
        "x" * 5000,
    ]
    # When each is used to list
    replies = [_list(api, ("limit", "1"), ("cursor", c)) for c in forged]
    # Then each is a 400 INVALID_CURSOR (not a page, not a 500), and the real one still works
    assert [(r.status, r.body["code"]) for r in replies] == [(400, "INVALID_CURSOR")] * len(forged)
    assert "nextCursor" in replies[0].body["message"]
    assert _list(api, ("limit", "1"), ("cursor", cursor)).status == 200


def test_a_cursor_works_only_in_the_listing_it_came_from(api: ApiClient, handler: object) -> None:
    # Given orders, one cancelled, and cursors of several listings
    created = [api.create(network="tron").body for _ in range(4)]
    assert api.request("POST", f"/v1/payment/order/{created[0]['orderId']}/cancel").status == 200
    window = [("from", str(created[1]["createdAt"])), ("to", str(created[3]["createdAt"]))]
    plain = _list(api, ("limit", "1")).body["nextCursor"]
    pending = _list(api, ("status", "pending"), ("limit", "1")).body["nextCursor"]
    windowed = _list(api, *window, ("limit", "1")).body["nextCursor"]
    other = new_merchant()
    stranger = ApiClient(handler, other.api_key, other.secret)
    for _ in range(2):
        stranger.create(network="tron")
    foreign = _list(stranger, ("limit", "1")).body["nextCursor"]
    assert plain and pending and windowed and foreign
    # When each is used in another listing: another filter, another window, another endpoint,
    # another merchant
    replies = [
        _list(api, ("status", "cancelled"), ("limit", "1"), ("cursor", pending)),
        _list(api, ("from", "0"), ("to", str(created[0]["createdAt"])), ("limit", "1"), ("cursor", windowed)),
        _list(api, ("status", "pending"), ("limit", "1"), ("cursor", plain)),
        api.request("GET", DELIVERIES, query=[("cursor", plain)]),
        api.request("GET", "/v1/deposits", query=[("cursor", plain)]),
        _list(api, ("limit", "1"), ("cursor", foreign)),
    ]
    # Then each is refused, never a page of another listing or a 500
    assert [(r.status, r.body["code"]) for r in replies] == [(400, "INVALID_CURSOR")] * len(replies)
    # And each works where it came from, whatever the page size
    assert _list(api, ("status", "pending"), ("limit", "3"), ("cursor", pending)).status == 200
    assert _list(api, *window, ("cursor", windowed)).status == 200


# --- bounded work --------------------------------------------------------------------------------


@pytest.fixture
def short_reads(monkeypatch: pytest.MonkeyPatch) -> int:
    """A filtered page reads ahead 3 items per call instead of hundreds: the bound shows on a
    listing of 20 (the bound's shape is what is tested, not its size)."""
    monkeypatch.setattr(store, "READ_AHEAD", 3, raising=False)
    return 3


def test_a_rare_status_is_found_in_short_pages_of_bounded_work(
    api: ApiClient, short_reads: int, query_calls: list[str]
) -> None:
    # Given 20 orders, of which only the oldest is cancelled
    created = [api.create(network="tron").body for _ in range(20)]
    assert api.request("POST", f"/v1/payment/order/{created[0]['orderId']}/cancel").status == 200
    # When the cancelled ones are listed one per page, following nextCursor to its end
    found, sizes, calls = _pages(api, ORDERS, "orders", [("status", "cancelled"), ("limit", "1")], query_calls)
    # Then every request made at most 3 Query calls, so pages before the match are empty with a
    # cursor; the match is found once, and the last page has no cursor
    assert max(calls) <= 3
    assert [o["orderId"] for o in found] == [created[0]["orderId"]]
    assert sizes.count(0) >= 1 and sum(sizes) == 1
    # And an unfiltered page is still one Query call
    before = len(query_calls)
    page = _list(api, ("limit", "5")).body
    assert len(page["orders"]) == 5 and len(query_calls) - before == 1


def test_a_page_makes_at_most_three_dynamodb_calls_in_a_new_container(
    api: ApiClient, merchant: Merchant, short_reads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 12 orders, none cancelled, and the deployment's listing key, made by an earlier listing
    for _ in range(12):
        api.create(network="tron")
    assert api.request("GET", ORDERS, query=[("limit", "1")]).body["nextCursor"]
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = aws.client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    per_page, cursor = [], None
    try:
        for _ in range(2):
            # When each page is read by a container that has not read the listing key yet
            monkeypatch.setattr(store, "_LISTING_SECRETS", {})
            before = len(calls)
            page = orders.list_orders(
                merchant.merchant_id,
                status=OrderStatus.CANCELLED,
                created_from=None,
                created_to=None,
                limit=1,
                cursor=cursor,
            )
            per_page.append(calls[before:])
            cursor = page.next_cursor
            assert cursor and page.orders == []
    finally:
        events.unregister("before-call.dynamodb", count)
    # Then each page made at most 3 DynamoDB calls, the key read included
    assert [len(c) for c in per_page] == [3, 3], per_page
    assert [c.count("GetItem") for c in per_page] == [1, 1]


@pytest.mark.usefixtures("webhook_queues")
def test_a_filtered_delivery_log_does_bounded_work(api: ApiClient, short_reads: int, query_calls: list[str]) -> None:
    # Given 16 cancelled orders, each with its one order.cancelled event
    cancelled = [cancelled_order(api) for _ in range(16)]
    oldest_order, oldest_event = cancelled[0]
    # When the log is filtered on the oldest order, one entry per page, to its end
    found, _, calls = _pages(api, DELIVERIES, "deliveries", [("orderId", oldest_order), ("limit", "1")], query_calls)
    # Then each request made at most 3 Query calls, and the one event is found
    assert max(calls) <= 3
    assert [d["deliveryId"] for d in found] == [oldest_event]


def _unmatched_deposit(merchant_id: str, n: int, *, unmatched: bool) -> None:
    """A final deposit as the scanner records it, listed under the merchant (deposits._final_deposit)."""
    txid = f"{n:064x}"
    pk, sk = store.deposit_key("tron", txid, 0)
    store.put(
        {
            "pk": pk,
            "sk": sk,
            "depositId": f"tron:{txid}:0",
            "network": "tron",
            "txid": txid,
            "logIndex": 0,
            "blockNumber": 1000 + n,
            "blockHash": "0x" + "ab" * 32,
            "blockTime": 1_700_000_000_000 + n * 3000,
            "sender": "T" + "1" * 33,
            "recipient": "T" + "2" * 33,
            "units": 5_000_000,
            "decimals": 6,
            "depositStatus": "unmatched" if unmatched else "credited",
            "recordedAt": 1,
            "merchantId": merchant_id,
            "orderPk": None if unmatched else f"ORDER#{merchant_id}#o-{n}",
            "unmatched": unmatched,
            "gsi1pk": store.deposits_index_pk(merchant_id),
            "gsi1sk": f"{1_700_000_000_000 + n * 3000:013d}#{txid}#0",
        }
    )


def test_unmatched_deposits_are_listed_with_bounded_work(
    api: ApiClient, merchant: Merchant, short_reads: int, query_calls: list[str]
) -> None:
    # Given 20 final deposits, of which only the oldest is unmatched
    for n in range(20):
        _unmatched_deposit(merchant.merchant_id, n, unmatched=n == 0)
    # When the unmatched ones are listed one per page, to the end
    found, _, calls = _pages(api, "/v1/deposits", "deposits", [("unmatched", "true"), ("limit", "1")], query_calls)
    # Then each request made at most 3 Query calls, and the one is found
    assert max(calls) <= 3
    assert [d["txid"] for d in found] == [f"{0:064x}"]
