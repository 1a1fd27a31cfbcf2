"""Helpers of the webhook tests: making events the way the gateway makes them, and reading what
became of them."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.integration.apiclient import ApiClient
from usdt_gateway import events, outbox, store

ENDPOINT = "/v1/webhooks/endpoint"
DELIVERIES = "/v1/webhooks/deliveries"


def set_url(api: ApiClient, url: str) -> dict[str, Any]:
    reply = api.request("PUT", ENDPOINT, {"url": url})
    assert reply.status == 200, reply.body
    return reply.body


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
    items, _ = store.query_index(store.events_index_pk(merchant_id), sk_from="0", sk_to="~", limit=100,
                                 filters={"orderId": order_id}, newest_first=False)
    return [i["eventId"] for i in items]


def order_events(api: ApiClient, types: list[str]) -> tuple[str, list[str]]:
    """A new order and events of `types` for it, committed and published as a state change's are."""
    order_id = api.create().body["orderId"]
    item = store.get(*store.order_key(_merchant(api), order_id))
    assert item is not None
    ids, parts = events.for_order(item, types, first_sequence=1)
    store.transact(parts)
    outbox.publish(ids)
    return order_id, ids


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
