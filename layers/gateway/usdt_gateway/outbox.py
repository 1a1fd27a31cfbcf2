"""Handing committed events to the webhook queue.

Every event is written with an OUTBOX marker in the transaction of its change (events.py). The
writer calls `publish` right after its commit; the marker is removed only once SQS has taken the
message. A writer that dies in between, or an SQS outage, leaves the marker, and `sweep` (the
scheduled OutboxFunction) publishes it later. An event may so reach the queue twice; the sender
delivers it once (it checks the event's delivery status), and receivers dedupe on webhook-id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from usdt_gateway import aws, store
from usdt_gateway.config import settings
from usdt_gateway.observability import log_keys, logger
from usdt_gateway.records import OutboxMarker

SQS_BATCH = 10
# A marker younger than this may belong to a writer that is about to publish it itself.
SWEEP_AFTER_MS = 30_000


def message(event_id: str, merchant_id: str | None = None) -> dict[str, Any]:
    """The queue message of an event: its id only (the body to send lives in the event item)."""
    entry: dict[str, Any] = {"MessageBody": json.dumps({"eventId": event_id})}
    if merchant_id:
        entry["MessageAttributes"] = {"merchantId": {"DataType": "String", "StringValue": merchant_id}}
    return entry


# Events committed inside `deferred()`, published together when it ends.
_deferred: ContextVar[list[str] | None] = ContextVar("deferred_events", default=None)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside, `publish` collects the events (from this thread and the threads it starts with
    its context) and they go to the queue when the block ends, ten to a request: a block of
    many payments costs a tenth of the queue requests, and the single payment's event leaves as
    soon as its pass ends. Committed events are published even when the block fails."""
    collected: list[str] = []
    token = _deferred.set(collected)
    try:
        yield
    finally:
        _deferred.reset(token)
        publish(collected)


def publish(event_ids: list[str]) -> list[str]:
    """Send the events to the webhook queue and drop their markers; returns those sent (none yet
    inside `deferred`). Never raises for SQS trouble: what was not sent keeps its marker for the
    sweeper."""
    collecting = _deferred.get()
    if collecting is not None:
        collecting.extend(event_ids)
        return []
    queue = settings().webhook_queue_url
    if not event_ids or not queue:
        return []
    sent: list[str] = []
    for start in range(0, len(event_ids), SQS_BATCH):
        batch = event_ids[start : start + SQS_BATCH]
        try:
            reply = aws.client("sqs").send_message_batch(
                QueueUrl=queue, Entries=[{"Id": str(i), **message(e)} for i, e in enumerate(batch)]
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning(
                "events not handed to the webhook queue; the outbox sweeper will",
                extra={"events": batch, "reason": type(exc).__name__},
            )
            continue
        for ok in reply.get("Successful", []):
            event_id = batch[int(ok["Id"])]
            store.delete(*store.outbox_key(event_id))
            sent.append(event_id)
    return sent


def sweep(*, now_ms: int, older_than_ms: int = SWEEP_AFTER_MS) -> list[str]:
    """Publish the events whose markers are older than `older_than_ms`: their writer did not."""
    hits = store.query_index_all(store.OUTBOX_INDEX_PK, sk_to=f"{now_ms - older_than_ms:013d}~")
    markers = [OutboxMarker.from_item(hit) for hit in hits]
    for marker in markers:
        with log_keys(event_id=marker.event_id, merchant_id=marker.merchant_id, order_id=marker.order_id):
            logger.info("publishing an event its writer did not hand to the queue")
    return publish([m.event_id for m in markers])
