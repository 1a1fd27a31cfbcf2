"""Helpers of the webhook tests: making events the way the gateway makes them, and reading what
became of them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import boto3
from standardwebhooks.webhooks import Webhook

from tests.integration.apiclient import ApiClient
from usdt_gateway import clock, events, outbox, store, transitions
from usdt_gateway.records import Order, OrderDeposit

ENDPOINT = "/v1/webhooks/endpoint"
DELIVERIES = "/v1/webhooks/deliveries"


def set_url(api: ApiClient, url: str) -> dict[str, Any]:
    reply = api.request("PUT", ENDPOINT, {"url": url})
    assert reply.status == 200, reply.body
    endpoint: dict[str, Any] = reply.body
    return endpoint


def cancelled_order(api: ApiClient, **fields: Any) -> tuple[str, str]:
    """(orderId, eventId) of a new order cancelled through the API: its order.cancelled event is
    committed with the change and handed to the queue."""
    order = api.create(**fields).body
    assert api.request("POST", f"/v1/payment/order/{order['orderId']}/cancel").status == 200
    (event_id,) = event_ids(_merchant(api), order["orderId"])
    return order["orderId"], event_id


def _merchant(api: ApiClient) -> str:
    item = store.get(*store.api_key_key(api.api_key))
    assert item is not None
    return str(item["merchantId"])


def event_ids(merchant_id: str, order_id: str) -> list[str]:
    items, _ = store.query_index(
        store.events_index_pk(merchant_id),
        sk_from="0",
        sk_to="~",
        limit=100,
        filters={"orderId": order_id},
        newest_first=False,
    )
    return [i["eventId"] for i in items]


def order_events(api: ApiClient, types: list[str]) -> tuple[str, list[str]]:
    """A new order and events of `types` for it, committed and published as a state change's are."""
    order_id = api.create().body["orderId"]
    item = store.get(*store.order_key(_merchant(api), order_id))
    assert item is not None
    ids, parts = events.for_order(Order.from_item(item), types, first_sequence=1, head=None)
    store.transact(parts)
    outbox.publish(ids)
    return order_id, ids


def overpay(api: ApiClient, *, late: bool, excess_units: int = 3_000_000) -> tuple[str, list[str]]:
    """A new order (10.00 USDT) paid `excess_units` too much by one final deposit, written as the
    scanner writes a credit; `late`: the order expired first and the payment's block time is after
    its expiry (inside the grace window). Returns the orderId and its events, oldest first."""
    order_id = api.create().body["orderId"]
    pk, _ = store.order_key(_merchant(api), order_id)
    if late:
        transitions.apply(pk, lambda order: (replace(order, closed_at=clock.now_ms()), []))

    def credit(order: Order) -> tuple[Order, list[dict[str, Any]]]:
        deposit = OrderDeposit(
            txid="0x" + "cd" * 32,
            log_index=0,
            units=order.amount_units + excess_units,
            block_number=1000,
            block_hash="0x" + "ef" * 32,
            block_time=order.expires_at + (60_000 if late else -60_000),
            sender="T" + "1" * 33,
            final=True,
        )
        return replace(order, deposits={deposit.key: deposit}), []

    transitions.apply(pk, credit)
    return order_id, event_ids(_merchant(api), order_id)


class DocumentedReceiver:
    """A merchant's receiver doing what docs/webhooks.md says, to the letter and nothing more:
    verify the signature, drop duplicates by webhook-id and any event whose sequence is not above
    the highest seen for its order, take the order in each accepted event as its state, and ship
    once that says `paid`."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)
        self.seen_ids: set[str] = set()
        self.highest: dict[str, int] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.shipped: list[str] = []

    def receive(self, headers: Mapping[str, str], body: bytes) -> str:
        """What it did with the delivery: "duplicate", "stale" or "accepted"."""
        event = self._webhook.verify(body, dict(headers))
        if headers["webhook-id"] in self.seen_ids:
            return "duplicate"
        self.seen_ids.add(headers["webhook-id"])
        order = event["data"]
        if event["sequence"] <= self.highest.get(order["orderId"], 0):
            return "stale"
        self.highest[order["orderId"]] = event["sequence"]
        self.orders[order["orderId"]] = order
        if order["paid"] and order["orderId"] not in self.shipped:
            self.shipped.append(order["orderId"])
        return "accepted"


def event(event_id: str) -> dict[str, Any]:
    item = store.get(*store.event_key(event_id))
    assert item is not None
    return item


def status(event_id: str) -> str:
    return str(event(event_id)["deliveryStatus"])


def settled(*event_ids: str, states: tuple[str, ...] = ("delivered", "dead", "disabled")) -> Any:
    return lambda: all(status(e) in states for e in event_ids)


def queue_bodies(url: str) -> list[dict[str, Any]]:
    """Bodies of the messages visible in a queue now (they stay queued)."""
    sqs = boto3.client("sqs")
    seen: dict[str, dict[str, Any]] = {}
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", []):
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        seen |= {m["MessageId"]: json.loads(m["Body"]) for m in fresh}
    return list(seen.values())
