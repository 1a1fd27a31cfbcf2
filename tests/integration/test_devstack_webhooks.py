"""Webhooks on the local stack: events committed by the API and the scanner, published to the
template's WebhookQueue, delivered by the WebhookFunction handler fed as Lambda's event source
mapping feeds it, to the stack's receiver. Signatures are checked again, from what the receiver
logged, with the independent `standardwebhooks` package."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from moto.backends import get_backend
from standardwebhooks.webhooks import Webhook

from devstack import stack as stack_module
from devstack.environment import ACCOUNT_ID, DEFAULT_REGION
from devstack.event_source import batch_item_failures
from devstack.functions import LOCAL_RETRY_SCHEDULE
from devstack.receiver import Delivery
from devstack.stack import STACK_NAME, Stack, WebhookUrlRefused, start_stack
from tests.integration.test_devstack_chain import new_order, run_pay
from tests.integration.webhook_receiver import Reply, receiver
from usdt_gateway import events, request_signing, store
from usdt_gateway.records import Order
from usdt_gateway.webhooks import delivery_http, sender

# A guard against a hung test when waiting for a delivery: it takes a second or two, longer on a
# loaded machine.
DELIVERED_WITHIN_S = 60


def call(stack: Stack, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
    """A request of the demo merchant, signed with Signature-V2; the decoded JSON answer."""
    raw = b"" if body is None else json.dumps(body).encode()
    timestamp = str(int(time.time() * 1000))
    message = request_signing.v2_message(timestamp, method, path, list((query or {}).items()), raw)
    headers = {
        "API-Key": stack.merchant["apiKey"],
        "Request-Time": timestamp,
        "Content-Type": "application/json",
        "Signature-V2": request_signing.sign(stack.merchant["secretKey"], message),
    }
    response = requests.request(method, stack.base_url + path, data=raw, params=query, headers=headers, timeout=10)
    assert response.status_code < 300, response.text
    return response.json()


def cancel(stack: Stack, order_id: str) -> None:
    call(stack, "POST", f"/v1/payment/order/{order_id}/cancel")


def logged(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    assert stack.webhook_log is not None
    lines = stack.webhook_log.read_text(encoding="utf-8").splitlines()
    return [entry for line in lines if (entry := json.loads(line))["orderId"] == order_id]


def for_order(order_id: str, count: int) -> Any:
    return lambda deliveries: len([d for d in deliveries if d.data.get("orderId") == order_id]) >= count


def queue_names() -> list[str]:
    queues = get_backend("sqs")[ACCOUNT_ID][DEFAULT_REGION].queues
    return [name for name in queues if name.startswith(f"{STACK_NAME}-")]


@pytest.mark.parametrize(
    ("response", "kept"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, {"m2"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"itemId": "m2"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]}, None),
        ("not an object", None),
    ],
    ids=["none", "empty", "null-list", "empty-list", "one", "empty-id", "null-id", "bad-key", "unknown-id", "string"],
)
def test_partial_batch_responses_are_read_as_lambda_reads_them(response: Any, kept: set[str] | None) -> None:
    # Given a batch of two messages and the function's response
    # When the event source mapping reads it
    # Then it keeps the reported messages, or the whole batch (None) for a response Lambda rejects
    assert batch_item_failures(response, {"m1", "m2"}) == kept


# --- a stack of its own (before the module's stack starts: one stack per process) ------------


def test_stop_ends_the_webhook_loops_and_the_receiver_and_leaves_no_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a running stack that delivered an event to its receiver, whose outbox schedule waits an
    # hour between runs: only a stop that interrupts the wait ends it within its join timeout
    monkeypatch.setattr(stack_module, "OUTBOX_EVERY_S", 3600.0)
    running = start_stack(state_dir=tmp_path)
    assert running.receiver is not None
    order = new_order(running)
    cancel(running, order["orderId"])
    assert running.receiver.wait_for(for_order(order["orderId"], 1), timeout_s=DELIVERED_WITHIN_S)
    assert running.webhooks.invocations >= 1 and running.webhooks.errors == 0
    loops = (running.webhooks, running.outbox, running.scanner)
    assert all(loop.alive for loop in loops)
    assert sorted(queue_names()) == [f"{STACK_NAME}-WebhookDLQ", f"{STACK_NAME}-WebhookQueue"]

    # When it stops
    running.stop()

    # Then the poller, the outbox schedule and the scanner have ended by the time stop returns,
    # the receiver's port is closed and moto keeps none of the stack's queues
    assert not any(loop.alive for loop in loops)
    try:
        requests.post(running.webhook_url, data=b"{}", timeout=2)
        raise AssertionError("the receiver still answers")
    except requests.ConnectionError:
        pass
    assert queue_names() == []


def test_a_webhook_url_given_replaces_the_stacks_receiver(tmp_path: Path) -> None:
    # Given a URL the sender refuses, even in local mode
    # When a stack is started with it
    # Then it does not start, and says why
    with pytest.raises(WebhookUrlRefused, match="private address"):
        start_stack(state_dir=tmp_path, webhook_url="http://10.0.0.1/hooks")
    with receiver() as shop, start_stack(state_dir=tmp_path, webhook_url=shop.url()) as running:
        # Given a stack started with the developer's own receiver (DEVSTACK_WEBHOOK_URL)
        assert running.receiver is None and running.webhook_log is None
        assert running.merchant["webhookUrl"] == running.webhook_url == shop.url()
        saved = json.loads(running.merchant_file.read_text(encoding="utf-8"))
        assert saved["webhookUrl"] == shop.url()
        # When an order is cancelled
        order = new_order(running)
        cancel(running, order["orderId"])
        (hit,) = shop.wait_for(1, timeout_s=DELIVERED_WITHIN_S)
        # Then that receiver got its signed order.cancelled
        event = Webhook(running.merchant["webhookSecret"]).verify(hit.body, hit.headers)
        assert (event["type"], event["data"]["orderId"]) == ("order.cancelled", order["orderId"])


# --- one stack for the rest of the module (the `stack` fixture of conftest.py) ---------------


def test_a_paid_order_reaches_the_receiver_confirming_then_confirmed(stack: Stack) -> None:
    # Given the demo merchant, whose default webhook URL is the stack's receiver, and an order
    assert stack.receiver is not None and stack.merchant["webhookUrl"] == stack.receiver.url == stack.webhook_url
    order = new_order(stack, amount="12.00")

    # When `python -m devstack pay` pays it
    result = run_pay(stack, order["orderId"])
    assert result.returncode == 0, result.stdout + result.stderr
    got = stack.receiver.wait_for(for_order(order["orderId"], 2), timeout_s=DELIVERED_WITHIN_S)

    # Then the receiver got order.confirming then order.confirmed, sequences 1 and 2
    mine = [d for d in got if d.data.get("orderId") == order["orderId"]]
    assert [(d.event or {}).get("type") for d in mine] == ["order.confirming", "order.confirmed"]
    assert [(d.event or {}).get("sequence") for d in mine] == [1, 2]
    assert mine[-1].data["status"] == "confirmed" and mine[-1].data["paidAmount"] == "12.00"
    # And what it logged verifies with the independent Standard Webhooks library: raw body and
    # headers as received, the event id as webhook-id
    entries = logged(stack, order["orderId"])
    assert [(e["type"], e["sequence"], e["status"], e["signature"]) for e in entries] == [
        ("order.confirming", 1, "confirming", "ok"),
        ("order.confirmed", 2, "confirmed", "ok"),
    ]
    for entry in entries:
        event = Webhook(stack.merchant["webhookSecret"]).verify(entry["body"], entry["headers"])
        assert event["id"] == entry["webhookId"] == entry["headers"]["webhook-id"]
        assert event["data"]["orderId"] == order["orderId"]
    # And then its money's sweep to the treasury (contract mode on `local`): settlement.completed
    # naming the order, after order.confirmed; the module's later tests see no delivery of it
    swept = stack.receiver.wait_for(lambda ds: sweep_of(ds, order["orderId"]) is not None, DELIVERED_WITHIN_S)
    settlement = sweep_of(swept, order["orderId"])
    assert settlement is not None and settlement.data["status"] == "completed"
    assert settlement.received_at >= mine[-1].received_at


def sweep_of(deliveries: list[Delivery], order_id: str) -> Delivery | None:
    swept = [d for d in deliveries if (d.event or {}).get("type") == "settlement.completed"]
    return next((d for d in swept if order_id in d.data["orders"]), None)


def test_a_failing_receiver_is_retried_within_seconds_with_the_same_webhook_id(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[float | None] = []

    def recorded_delay(retry: int, outcome: delivery_http.Outcome) -> float | None:
        delays.append(retry_delay(retry, outcome))
        return delays[-1]

    retry_delay = sender._retry_delay
    monkeypatch.setattr(sender, "_retry_delay", recorded_delay)
    with receiver() as shop:
        # Given the merchant pointed at a receiver that answers 500 twice, then 200
        shop.answer(Reply(500), Reply(500))
        call(stack, "PUT", "/v1/webhooks/endpoint", {"url": shop.url()})
        try:
            # When an order is cancelled
            order = new_order(stack)
            cancel(stack, order["orderId"])
            hits = shop.wait_for(3, timeout_s=DELIVERED_WITHIN_S)
        finally:
            call(stack, "PUT", "/v1/webhooks/endpoint", {"url": stack.webhook_url})

    # Then the compressed schedule retried it after about 1 s and 2 s (10 % jitter, whole seconds
    # for SQS), no sooner than planned, and the third attempt delivered it: one webhook-id and
    # one body throughout, each attempt signed anew
    assert LOCAL_RETRY_SCHEDULE.startswith("1,2,")
    assert len(hits) == 3, hits
    (event_id,) = {h.webhook_id for h in hits}
    assert len({h.body for h in hits}) == 1 and json.loads(hits[0].body)["type"] == "order.cancelled"
    for hit in hits:
        Webhook(stack.merchant["webhookSecret"]).verify(hit.body, hit.headers)
    assert len(delays) == 2 and delays[0] in (1.0, 2.0) and delays[1] in (2.0, 3.0), delays
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    assert all(d is not None and g >= 0.9 * d for g, d in zip(gaps, delays, strict=True)), (gaps, delays)
    # And the delivery log shows the three attempts
    log = call(stack, "GET", "/v1/webhooks/deliveries", query={"orderId": order["orderId"]})
    (entry,) = log["deliveries"]
    assert (entry["deliveryId"], entry["status"]) == (event_id, "delivered")
    assert [(a["n"], a["statusCode"]) for a in entry["attempts"]] == [(1, 500), (2, 500), (3, 200)]


def test_the_outbox_schedule_publishes_an_event_its_writer_left(stack: Stack) -> None:
    # Given an event committed with its outbox marker a minute ago, never published (its writer
    # died right after the commit)
    assert stack.receiver is not None
    order = new_order(stack)
    item = store.get(*store.order_key(stack.merchant["merchantId"], order["orderId"]))
    assert item is not None
    (event_id,), parts = events.for_order(Order.from_item(item), ["order.expired"], first_sequence=1, head=None)
    store.transact(parts)
    store.put(events.outbox_marker(event_id, int(time.time() * 1000) - 60_000, 1))

    # When the OutboxFunction's schedule comes (every few seconds locally)
    got = stack.receiver.wait_for(for_order(order["orderId"], 1), timeout_s=DELIVERED_WITHIN_S)

    # Then it is published and delivered, and its marker is gone
    mine: list[Delivery] = [d for d in got if d.data.get("orderId") == order["orderId"]]
    assert [d.webhook_id for d in mine] == [event_id]
    assert stack.outbox.invocations >= 1 and stack.outbox.failures == 0
    assert store.get(*store.outbox_key(event_id)) is None
