"""Webhook delivery end to end: events committed by the gateway, a real SQS queue and DLQ (moto),
the webhook function fed as Lambda's event source mapping feeds it, and a real HTTP receiver on
127.0.0.1. Signatures are checked with the independent `standardwebhooks` package."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import PUBLIC_IP, FakeDns, Merchant, WebhookQueues, new_merchant
from tests.integration.sqs_lambda import EventSourceMapping
from tests.integration.webhook_receiver import Hit, Reply, receiver
from tests.integration.webhooks import (
    DELIVERIES,
    ENDPOINT,
    DocumentedReceiver,
    cancelled_order,
    event,
    order_events,
    overpay,
    queue_bodies,
    set_url,
    settled,
    status,
)
from usdt_gateway import config, merchants, outbox
from usdt_gateway.webhooks import delivery_http, sender

pytestmark = pytest.mark.usefixtures("webhook_queues")


def attempts(event_id: str) -> list[dict[str, Any]]:
    return list(event(event_id).get("attempts") or [])


def test_an_event_is_delivered_once_signed_with_its_stored_body(
    api: ApiClient, merchant: Merchant, lambda_sqs: EventSourceMapping, webhook_queues: WebhookQueues
) -> None:
    with receiver() as shop:
        # Given a merchant's webhook URL and an order it cancels
        set_url(api, shop.url())
        _, event_id = cancelled_order(api)
        # When the queue is processed
        processed_from = int(time.time())
        lambda_sqs.run_until(settled(event_id))
        # Then the receiver got the event once: the stored body byte for byte, Standard Webhooks
        # headers that verify with the merchant's secret, webhook-id the event id, signed at the
        # time of sending (seconds)
        (hit,) = shop.hits
        assert hit.body == event(event_id)["body"].encode()
        assert Webhook(merchant.webhook_secret).verify(hit.body, hit.headers)["type"] == "order.cancelled"
        assert hit.webhook_id == event_id and processed_from <= int(hit.headers["webhook-timestamp"]) <= hit.at
        assert hit.headers["content-type"] == "application/json"
        # And the attempt is in the log, the message gone from the queue, nothing in the DLQ
        (entry,) = api.request("GET", DELIVERIES).body["deliveries"]
        assert (entry["deliveryId"], entry["status"], entry["nextAttemptAt"]) == (event_id, "delivered", None)
        assert [(a["n"], a["statusCode"], a["error"], a["url"]) for a in entry["attempts"]] == [
            (1, 200, None, shop.url())
        ]
        assert queue_bodies(webhook_queues.queue) == queue_bodies(webhook_queues.dlq) == []
        # And a duplicate from the outbox is not sent again
        outbox.publish([event_id])
        lambda_sqs.run_until(lambda: queue_bodies(webhook_queues.queue) == [])
        assert len(shop.hits) == 1 and len(attempts(event_id)) == 1


def test_server_errors_are_retried_with_the_same_webhook_id(
    api: ApiClient, merchant: Merchant, lambda_sqs: EventSourceMapping, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[float | None] = []

    def recorded_delay(retry: int, outcome: delivery_http.Outcome) -> float | None:
        delays.append(retry_delay(retry, outcome))
        return delays[-1]

    retry_delay = sender._retry_delay
    monkeypatch.setattr(sender, "_retry_delay", recorded_delay)
    with receiver() as shop:
        # Given a receiver failing twice
        shop.answer(Reply(500), Reply(502))
        set_url(api, shop.url())
        _, event_id = cancelled_order(api)
        # When the queue is processed until the event settles
        lambda_sqs.run_until(settled(event_id))
        # Then it was delivered on the third attempt, with one webhook-id and one body, signed anew
        # each time
        assert status(event_id) == "delivered"
        assert [(a["n"], a["statusCode"], a["error"]) for a in attempts(event_id)] == [
            (1, 500, "HTTP 500"),
            (2, 502, "HTTP 502"),
            (3, 200, None),
        ]
        assert {h.webhook_id for h in shop.hits} == {event_id} and len({h.body for h in shop.hits}) == 1
        # And each retry was planned by the schedule (0.5 s, whole seconds for SQS: 1 s) and came
        # no sooner than planned (a loaded machine only makes it later)
        assert delays == [1.0, 1.0]
        gaps = [b.at - a.at for a, b in zip(shop.hits, shop.hits[1:], strict=False)]
        assert all(d is not None and g >= 0.9 * d for g, d in zip(gaps, delays, strict=True)), gaps
        for hit in shop.hits:
            Webhook(merchant.webhook_secret).verify(hit.body, hit.headers)


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    api: ApiClient, lambda_sqs: EventSourceMapping, settings_env: pytest.MonkeyPatch
) -> None:
    settings_env.setenv("WEBHOOK_TIMEOUT_SECONDS", "1")
    config.reset()
    with receiver() as shop:
        # Given a receiver that holds its first answer until the test ends
        done = threading.Event()
        shop.answer(Reply(200, hold=(done,)))
        set_url(api, shop.url())
        _, event_id = cancelled_order(api)
        # When the queue is processed
        lambda_sqs.run_until(settled(event_id))
        done.set()
        # Then the first attempt gave up (after 1 s at the least) and the retry was delivered
        first, second = attempts(event_id)
        assert (first["code"], first["error"], first["statusCode"]) == ("TIMEOUT", "timeout after 1 s", None)
        assert first["latencyMs"] >= 1000
        assert second["statusCode"] == 200 and status(event_id) == "delivered"


def test_retry_after_keeps_the_message_hidden_at_least_that_long(
    api: ApiClient, lambda_sqs: EventSourceMapping
) -> None:
    with receiver() as shop:
        # Given a receiver asking to be left alone for 3 s
        shop.answer(Reply(429, {"Retry-After": "3"}))
        set_url(api, shop.url())
        _, event_id = cancelled_order(api)
        # When the queue is processed
        lambda_sqs.run_until(lambda: len(attempts(event_id)) == 1)
        first = event(event_id)
        lambda_sqs.run_until(settled(event_id))
        # Then the next attempt was due, and came, no sooner than 3 s later (not the schedule's 0.5 s)
        assert first["deliveryStatus"] == "failing" and first["nextAttemptAt"] - first["attempts"][0]["at"] >= 3000
        assert shop.hits[1].at - shop.hits[0].at >= 3
        assert [a["statusCode"] for a in attempts(event_id)] == [429, 200]


def test_410_disables_the_url_until_it_is_re_enabled(api: ApiClient, lambda_sqs: EventSourceMapping) -> None:
    with receiver() as shop:
        # Given a receiver that answers 410 Gone
        shop.answer(Reply(410))
        set_url(api, shop.url())
        _, gone = cancelled_order(api)
        lambda_sqs.run_until(settled(gone))
        # Then the event is disabled, not retried, and the endpoint shows the URL disabled
        assert status(gone) == "disabled" and len(shop.hits) == 1
        endpoint = api.request("GET", ENDPOINT).body
        assert endpoint["enabled"] is False
        assert [(d["url"], d["reason"]) for d in endpoint["disabledUrls"]] == [
            (shop.url(), "the receiver answered 410 Gone")
        ]
        # And a later event to it is marked disabled without being sent, nor can it be resent
        _, later = cancelled_order(api)
        lambda_sqs.run_until(settled(later))
        assert status(later) == "disabled" and attempts(later) == [] and len(shop.hits) == 1
        refused = api.request("POST", f"{DELIVERIES}/{later}/resend")
        assert (refused.status, refused.body["code"]) == (409, "WEBHOOK_URL_DISABLED")
        # When the merchant re-enables it and resends both
        assert api.request("PUT", ENDPOINT, {"enabled": True}).body["enabled"] is True
        for event_id in (gone, later):
            resent = api.request("POST", f"{DELIVERIES}/{event_id}/resend")
            assert (resent.status, resent.body["status"]) == (202, "pending")
        lambda_sqs.run_until(settled(gone, later))
        # Then both are delivered, the attempts numbered on
        assert status(gone) == status(later) == "delivered"
        assert [(a["n"], a["statusCode"]) for a in attempts(gone)] == [(1, 410), (2, 200)]
        assert [(a["n"], a["statusCode"]) for a in attempts(later)] == [(1, 200)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_receiver_down_for_a_while_gets_the_event_when_it_is_back(
    api: ApiClient, lambda_sqs: EventSourceMapping
) -> None:
    # Given a URL nothing listens on yet
    port = _closed_port()
    set_url(api, f"http://127.0.0.1:{port}/hook")
    _, event_id = cancelled_order(api)
    # When two attempts have failed, the receiver comes up
    lambda_sqs.run_until(lambda: len(attempts(event_id)) == 2)
    with receiver(port) as shop:
        lambda_sqs.run_until(settled(event_id))
        # Then the third attempt delivers it
        assert [(a["code"], a["error"]) for a in attempts(event_id)[:2]] == [
            ("CONNECTION_REFUSED", "connection refused")
        ] * 2
        assert attempts(event_id)[2]["statusCode"] == 200 and len(shop.hits) == 1


def test_after_the_last_attempt_the_event_is_dead_and_in_the_dlq(
    api: ApiClient, lambda_sqs: EventSourceMapping, webhook_queues: WebhookQueues, caplog: pytest.LogCaptureFixture
) -> None:
    with receiver() as shop:
        # Given a receiver that always fails
        shop.default = Reply(503)
        set_url(api, shop.url())
        _, event_id = cancelled_order(api)
        # When the queue is processed until the event settles
        lambda_sqs.run_until(settled(event_id))
        # Then the four attempts of the schedule were made with one webhook-id, the event is dead,
        # its message is in the DLQ and no longer in the queue
        assert status(event_id) == "dead"
        assert [(a["n"], a["statusCode"]) for a in attempts(event_id)] == [(n, 503) for n in range(1, 5)]
        assert {h.webhook_id for h in shop.hits} == {event_id} and len(shop.hits) == 4
        assert queue_bodies(webhook_queues.dlq) == [{"eventId": event_id}]
        assert queue_bodies(webhook_queues.queue) == []
        (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
        fields = vars(error)  # the log call's extra keys
        assert (fields["attempt"], fields["status_code"], fields["outcome"]) == (4, 503, "dead")
        dead = api.request("GET", DELIVERIES, query=[("outcome", "dead")]).body["deliveries"]
        assert [d["deliveryId"] for d in dead] == [event_id]
        # When the receiver is fixed and the event resent
        shop.default = Reply(200)
        assert api.request("POST", f"{DELIVERIES}/{event_id}/resend").status == 202
        lambda_sqs.run_until(settled(event_id, states=("delivered",)))
        # Then it is delivered as attempt 5, the same event again
        assert [(a["n"], a["statusCode"]) for a in attempts(event_id)][-1] == (5, 200)
        assert shop.hits[-1].webhook_id == event_id and shop.hits[-1].body == shop.hits[0].body


def test_a_receiver_applying_sequence_ends_in_the_latest_state(api: ApiClient, lambda_sqs: EventSourceMapping) -> None:
    with receiver() as shop:
        # Given an order's two events, the older one failing on its first attempt
        refused: list[Any] = []

        def first_try_of_sequence_1_fails(hit: Any) -> Reply:
            if json.loads(hit.body)["sequence"] == 1 and not refused:
                refused.append(hit)
                return Reply(500)
            return Reply(200)

        shop.policy = first_try_of_sequence_1_fails
        set_url(api, shop.url())
        order_id, ids = order_events(api, ["order.confirming", "order.confirmed"])
        # When both are delivered (the retry of the older one arriving after the newer)
        lambda_sqs.run_until(settled(*ids))
        # Then each body carries its sequence, the older one was accepted last, and a receiver
        # that keeps the highest sequence per order (docs/webhooks.md) ends with the order confirmed
        accepted = [json.loads(h.body) for h in shop.hits if h not in refused]
        assert sorted((b["sequence"], b["type"]) for b in accepted) == [(1, "order.confirming"), (2, "order.confirmed")]
        assert accepted[-1]["sequence"] == 1
        latest: dict[str, dict[str, Any]] = {}
        for b in accepted:
            if b["sequence"] > latest.get(b["data"]["orderId"], {}).get("sequence", 0):
                latest[b["data"]["orderId"]] = b
        assert latest[order_id]["type"] == "order.confirmed"


def accepting_in_order(
    sequences: list[int], shop: DocumentedReceiver, taken: list[tuple[Hit, str]]
) -> Callable[[Hit], Reply]:
    """A receiver policy that answers 500 to every delivery but the next of `sequences`, which it
    hands to `shop` (noting what `shop` made of it) and answers 204: the retries bring the events
    to `shop` in exactly that order, however the sender's threads happen to interleave."""
    planned = list(sequences)

    def policy(hit: Hit) -> Reply:
        if not planned or json.loads(hit.body)["sequence"] != planned[0]:
            return Reply(500)
        planned.pop(0)
        taken.append((hit, shop.receive(hit.headers, hit.body)))
        return Reply(204)

    return policy


@pytest.mark.parametrize(
    ("late", "types"),
    [
        (False, ["order.confirmed", "order.overpaid"]),
        (True, ["order.expired", "order.confirmed", "order.paid_late", "order.overpaid"]),
    ],
)
def test_a_receiver_following_the_documentation_ships_a_paid_order_whatever_the_delivery_order(
    api: ApiClient,
    merchant: Merchant,
    lambda_sqs: EventSourceMapping,
    settings_env: pytest.MonkeyPatch,
    late: bool,
    types: list[str],
) -> None:
    # Enough attempts for each event to wait for the ones planned before it
    settings_env.setenv("WEBHOOK_RETRY_SCHEDULE", ",".join(["0.5"] * 11))
    config.reset()
    with receiver() as endpoint:
        # Given an order overpaid by one payment (late: after it expired), whose change makes
        # several events at once
        shop = DocumentedReceiver(merchant.webhook_secret)
        taken: list[tuple[Hit, str]] = []
        set_url(api, endpoint.url())
        order_id, ids = overpay(api, late=late)
        bodies = [json.loads(event(e)["body"]) for e in ids]
        assert [(b["type"], b["sequence"]) for b in bodies] == [(t, n) for n, t in enumerate(types, 1)]
        # When the sender delivers them concurrently and they reach the receiver newest first
        newest_first = [b["sequence"] for b in reversed(bodies)]
        endpoint.policy = accepting_in_order(newest_first, shop, taken)
        lambda_sqs.run_until(settled(*ids))
        # Then the receiver accepted the first and dropped every later one as stale, and has
        # shipped the order
        assert [(json.loads(h.body)["sequence"], verdict) for h, verdict in taken] == [
            (n, "accepted" if n == len(types) else "stale") for n in newest_first
        ]
        assert shop.shipped == [order_id] and shop.highest == {order_id: len(types)}
        # And every event of the paying change carries the whole order, paid, with both of a late
        # overpayment's exceptions
        paying = bodies[-(3 if late else 2) :]
        assert all(b["data"] == paying[0]["data"] for b in paying)
        assert paying[0]["data"]["paid"] is True and paying[0]["data"]["status"] == "confirmed"
        assert paying[0]["data"]["excessAmount"] == "3.00"
        assert paying[0]["data"]["exceptions"] == (["paid_late", "overpaid"] if late else ["overpaid"])
        assert all(b["data"]["paid"] is False for b in bodies[: -len(paying)])
        # And the same deliveries in any other order, each twice, ship it too
        for order in itertools.permutations(h for h, _ in taken):
            other = DocumentedReceiver(merchant.webhook_secret)
            for hit in [*order, *order]:
                other.receive(hit.headers, hit.body)
            assert other.shipped == [order_id], [json.loads(h.body)["sequence"] for h in order]
        # And GET shows the order as the events do
        got = api.request("GET", f"/v1/payment/order/{order_id}").body
        assert (got["paid"], got["exceptions"]) == (True, paying[0]["data"]["exceptions"])


def test_a_rotated_secret_signs_next_to_the_previous_one_during_the_overlap(
    api: ApiClient, merchant: Merchant, lambda_sqs: EventSourceMapping
) -> None:
    with receiver() as shop:
        set_url(api, shop.url())
        # Given a rotation with an hour of overlap
        rotated = merchants.rotate_webhook_secret(merchant.merchant_id, overlap_seconds=3600)
        new_secret = rotated["webhookSecret"]
        _, event_id = cancelled_order(api)
        lambda_sqs.run_until(settled(event_id))
        # Then the delivery carries two signatures, and each secret alone verifies it
        (hit,) = shop.hits
        assert len(hit.headers["webhook-signature"].split(" ")) == 2
        for secret in (merchant.webhook_secret, new_secret):
            assert Webhook(secret).verify(hit.body, hit.headers)["id"] == event_id
        rotation = api.request("GET", ENDPOINT).body["secretRotation"]
        assert rotation == {"previousValidUntil": rotated["previousValidUntil"]}
        # When it is rotated again without overlap
        newest = merchants.rotate_webhook_secret(merchant.merchant_id, overlap_seconds=0)["webhookSecret"]
        _, second = cancelled_order(api)
        lambda_sqs.run_until(settled(second))
        # Then only the newest secret signs
        last = shop.hits[-1]
        assert len(last.headers["webhook-signature"].split(" ")) == 1
        assert Webhook(newest).verify(last.body, last.headers)["id"] == second
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret).verify(last.body, last.headers)
        assert api.request("GET", ENDPOINT).body["secretRotation"] is None


def test_a_slow_merchant_holds_only_its_own_slots(
    handler: object,
    api: ApiClient,
    lambda_sqs: EventSourceMapping,
    settings_env: pytest.MonkeyPatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given at most 2 deliveries in flight per merchant and a timeout of 30 s, merchant A with a
    # slow receiver and six events, merchant B with a fast one and one event. A's receiver answers
    # none of A's deliveries before it holds two at once and B's receiver has B's event.
    settings_env.setenv("WEBHOOK_MERCHANT_CONCURRENCY", "2")
    settings_env.setenv("WEBHOOK_TIMEOUT_SECONDS", "30")
    config.reset()
    monkeypatch.setattr(sender, "DEFER_SECONDS", (1, 1))
    other = new_merchant()
    api_b = ApiClient(handler, other.api_key, other.secret)
    a_full, b_arrived = threading.Event(), threading.Event()

    def slow_answer(hit: Hit) -> Reply:
        if slow.in_flight >= 2:
            a_full.set()
        return Reply(200, hold=(a_full, b_arrived))

    def fast_answer(hit: Hit) -> Reply:
        b_arrived.set()
        return Reply(200)

    with receiver() as slow, receiver() as fast:
        slow.policy, fast.policy = slow_answer, fast_answer
        set_url(api, slow.url())
        set_url(api_b, fast.url())
        a_events = [cancelled_order(api)[1] for _ in range(6)]
        _, b_event = cancelled_order(api_b)
        # When two Lambda instances work the queue at once
        pollers = [threading.Thread(target=lambda_sqs.run_until, args=(settled(*a_events, b_event),)) for _ in range(2)]
        for p in pollers:
            p.start()
        for p in pollers:
            p.join()
        # Then A never had more than 2 in flight, and B's event did not wait for A's slots: had it
        # waited, A's held deliveries would have timed out (30 s) and been retried. And waiting for
        # a slot counted no attempt.
        assert slow.max_in_flight == 2 and len(slow.hits) == 6 and len(fast.hits) == 1
        assert all([a["n"] for a in attempts(e)] == [1] and status(e) == "delivered" for e in a_events)


def test_a_batch_of_one_merchants_events_takes_turns_instead_of_waiting_seconds(
    api: ApiClient, lambda_sqs: EventSourceMapping, settings_env: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given at most 2 deliveries in flight per merchant, and six of its events in one batch, to a
    # receiver that answers none before it holds two at once
    settings_env.setenv("WEBHOOK_MERCHANT_CONCURRENCY", "2")
    settings_env.setenv("WEBHOOK_TIMEOUT_SECONDS", "30")
    config.reset()
    deferred: list[str] = []
    defer = sender._defer

    def recorded_defer(event: Any, message_id: str) -> None:
        deferred.append(message_id)
        defer(event, message_id)

    monkeypatch.setattr(sender, "_defer", recorded_defer)
    two_at_once = threading.Event()

    def answer(hit: Hit) -> Reply:
        if quick.in_flight >= 2:
            two_at_once.set()
        return Reply(200, hold=(two_at_once,))

    with receiver() as quick:
        quick.policy = answer
        set_url(api, quick.url())
        events = [cancelled_order(api)[1] for _ in range(6)]
        # When one sender takes the batch
        lambda_sqs.run_until(settled(*events))
        # Then they went two at a time, one wave after another, none put back for 5-30 s
        assert quick.max_in_flight == 2 and len(quick.hits) == 6
        assert deferred == []
        assert all(status(e) == "delivered" for e in events)


def test_a_name_that_resolves_privately_at_delivery_is_not_called(
    api: ApiClient, dns: FakeDns, lambda_sqs: EventSourceMapping
) -> None:
    # Given a URL whose name was public when it was configured
    dns.names["hooks.shop.example.com"] = [PUBLIC_IP]
    set_url(api, "https://hooks.shop.example.com/webhooks")
    # When it resolves to a private address by the time of the delivery (DNS rebinding)
    dns.names["hooks.shop.example.com"] = ["10.0.0.7"]
    _, event_id = cancelled_order(api)
    lambda_sqs.run_until(lambda: len(attempts(event_id)) == 1)
    # Then the attempt is refused before any connection, recorded as a failure to retry
    (first,) = attempts(event_id)
    assert (first["code"], first["statusCode"]) == ("URL_NOT_PUBLIC", None)
    assert first["error"] == "refused: resolves to 10.0.0.7, a private address"
    assert status(event_id) == "failing"


def test_without_a_url_the_attempt_fails_until_one_is_set(api: ApiClient, lambda_sqs: EventSourceMapping) -> None:
    # Given a merchant without a webhook URL
    _, event_id = cancelled_order(api)
    lambda_sqs.run_until(lambda: len(attempts(event_id)) == 1)
    (first,) = attempts(event_id)
    assert (first["error"], first["url"], status(event_id)) == ("no webhook URL configured", None, "failing")
    # When it sets one before the next attempt
    with receiver() as shop:
        set_url(api, shop.url())
        lambda_sqs.run_until(settled(event_id))
        # Then that attempt delivers the event
        assert [a["statusCode"] for a in attempts(event_id)] == [None, 200] and len(shop.hits) == 1


def test_a_message_without_a_known_event_goes_to_the_dlq(
    lambda_sqs: EventSourceMapping, webhook_queues: WebhookQueues
) -> None:
    # Given messages that name no event
    sqs = boto3.client("sqs")
    bodies = {"not json", '{"eventId": "evt_never_written"}'}
    for body in bodies:
        sqs.send_message(QueueUrl=webhook_queues.queue, MessageBody=body)
    # When they are handled, then they leave the queue for the DLQ, unchanged
    lambda_sqs.run_until(lambda: _dlq_bodies(webhook_queues.dlq) == bodies)
    assert queue_bodies(webhook_queues.queue) == []


def _dlq_bodies(url: str) -> set[str]:
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        .get("Messages", [])
    )
    return {m["Body"] for m in messages}
