"""Webhook events are committed with the state change they report and handed to a real SQS queue
(moto): every lifecycle change of an order makes its events in sequence, and a writer that dies
right after its commit, or an SQS outage, loses none of them (the outbox sweeper sends them)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from devstack.evm import start_anvil
from tests.integration.apiclient import ApiClient
from tests.integration.chains import EvmChain, create, drive, evm_scanner, new_chain, status
from tests.integration.conftest import Merchant
from usdt_gateway import config, outbox, store

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef


@pytest.fixture
def queue(settings_env: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh webhook queue on the moto server, named in WEBHOOK_QUEUE_URL. Outbox markers other
    tests left in the shared table (they ran without a queue) are cleared first: the sweeps here
    must see only this test's events."""
    for marker in store.query_index_all(store.OUTBOX_INDEX_PK, sk_to="~"):
        store.delete(*store.outbox_key(marker["eventId"]))
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"webhooks-{time.time_ns()}")["QueueUrl"]
    settings_env.setenv("WEBHOOK_QUEUE_URL", url)
    config.reset()
    yield url
    sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def chain(settings_env: pytest.MonkeyPatch, queue: str) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        yield new_chain(anvil, settings_env)


def queued(url: str) -> list[str]:
    """Event ids waiting in the queue, in the order they were sent (messages stay queued)."""
    sqs = boto3.client("sqs")
    found: list[MessageTypeDef] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["SentTimestamp"]
    ).get("Messages", []):
        fresh = [m for m in batch if m["MessageId"] not in {f["MessageId"] for f in found}]
        if not fresh:
            break
        found += fresh
    found.sort(key=lambda m: int(m["Attributes"]["SentTimestamp"]))
    return [json.loads(m["Body"])["eventId"] for m in found]


def events_of(merchant: Merchant, order_id: str | None = None) -> list[dict[str, Any]]:
    items, _ = store.query_index(
        store.events_index_pk(merchant.merchant_id), sk_from="0", sk_to="~", limit=100, newest_first=False
    )
    return [i for i in items if order_id is None or i.get("orderId") == order_id]


def pending_markers(event_ids: list[str]) -> list[str]:
    return [e for e in event_ids if store.get(*store.outbox_key(e)) is not None]


def test_a_payment_makes_confirming_then_confirmed_in_sequence(
    api: ApiClient, merchant: Merchant, chain: EvmChain, queue: str
) -> None:
    # Given an order, paid and then final
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "25.00")
    drive(scanner)
    chain.mine(1)
    drive(scanner)
    # Then its two events were committed in order, each with the order as GET returns it
    events = events_of(merchant, order["orderId"])
    assert [(e["type"], e["sequence"]) for e in events] == [("order.confirming", 1), ("order.confirmed", 2)]
    bodies = [json.loads(e["body"]) for e in events]
    assert [b["data"]["status"] for b in bodies] == ["confirming", "confirmed"]
    assert bodies[1]["data"] == {**status(api, order), "deposits": bodies[1]["data"]["deposits"]}
    assert all(b["id"] == e["eventId"] and b["sequence"] == e["sequence"] for b, e in zip(bodies, events, strict=True))
    # And both were handed to the queue, in order, their outbox markers gone
    ids = [e["eventId"] for e in events]
    assert queued(queue) == ids
    assert pending_markers(ids) == []


def test_a_reorg_makes_order_reverted(api: ApiClient, merchant: Merchant, chain: EvmChain) -> None:
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    chain.pay(order["address"], "25.00")
    drive(scanner)
    chain.anvil.rpc("anvil_reorg", [1, []])
    chain.mine(2)
    drive(scanner)
    events = events_of(merchant, order["orderId"])
    assert [(e["type"], e["sequence"]) for e in events] == [("order.confirming", 1), ("order.reverted", 2)]
    assert json.loads(events[1]["body"])["data"]["status"] == "pending"


def test_cancel_and_overpayment_and_unmatched_deposit_make_their_events(
    api: ApiClient, merchant: Merchant, chain: EvmChain, queue: str
) -> None:
    cancelled, over = create(api, chain), create(api, chain, "10.00")
    assert api.request("POST", f"/v1/payment/order/{cancelled['orderId']}/cancel").status == 200
    chain.pay(over["address"], "12.00")
    chain.pay(cancelled["address"], "3.00")  # to the cancelled order's address: no order takes it
    chain.mine(1)
    drive(evm_scanner(chain.network, [chain.anvil.url]))
    assert [e["type"] for e in events_of(merchant, cancelled["orderId"])] == ["order.cancelled"]
    assert [e["type"] for e in events_of(merchant, over["orderId"])] == ["order.confirmed", "order.overpaid"]
    (unmatched,) = [e for e in events_of(merchant) if e["type"] == "deposit.unmatched"]
    data = json.loads(unmatched["body"])["data"]
    assert (data["amount"], data["recipient"], data["unmatched"]) == ("3.00", cancelled["address"], True)
    assert set(queued(queue)) == {e["eventId"] for e in events_of(merchant)}


def test_a_writer_dying_right_after_its_commit_loses_no_event(
    api: ApiClient, merchant: Merchant, chain: EvmChain, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a scanner process that dies between committing a state change and publishing its event
    order = create(api, chain)
    chain.pay(order["address"], "25.00")
    chain.mine(1)

    def die(event_ids: list[str]) -> list[str]:
        raise SystemExit("killed after the commit")

    monkeypatch.setattr(outbox, "publish", die)
    with pytest.raises(SystemExit):
        drive(evm_scanner(chain.network, [chain.anvil.url]))
    monkeypatch.undo()
    # Then the change and its event are committed, the event is not in the queue yet...
    assert status(api, order)["status"] == "confirmed"
    (event,) = events_of(merchant, order["orderId"])
    assert event["type"] == "order.confirmed" and queued(queue) == []
    # ...and the sweeper, finding its outbox marker, hands it over
    assert outbox.sweep(now_ms=int(time.time() * 1000), older_than_ms=0) == [event["eventId"]]
    assert queued(queue) == [event["eventId"]] and pending_markers([event["eventId"]]) == []
    assert outbox.sweep(now_ms=int(time.time() * 1000), older_than_ms=0) == []  # once


def test_an_sqs_outage_keeps_events_for_the_sweeper(
    api: ApiClient, merchant: Merchant, queue: str, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a queue that cannot be reached when an order is cancelled
    order = api.create(network="eth", amount="5.00").body
    settings_env.setenv("WEBHOOK_QUEUE_URL", queue + "-gone")
    config.reset()
    assert api.request("POST", f"/v1/payment/order/{order['orderId']}/cancel").status == 200
    (event,) = events_of(merchant, order["orderId"])
    assert pending_markers([event["eventId"]]) == [event["eventId"]]
    # When the queue is back, the sweeper sends what is older than its grace period, not younger
    settings_env.setenv("WEBHOOK_QUEUE_URL", queue)
    config.reset()
    assert outbox.sweep(now_ms=event["createdAt"] + 1_000) == []  # its writer may still publish it
    assert outbox.sweep(now_ms=event["createdAt"] + outbox.SWEEP_AFTER_MS + 1) == [event["eventId"]]
    assert queued(queue) == [event["eventId"]]
