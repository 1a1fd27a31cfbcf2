"""Delivering one queued webhook event: the SQS message {"eventId"} becomes one signed POST to the
merchant, recorded on the EVENT item (delivery_state), and decides what becomes of the message.

    2xx                      delivered; the message is deleted
    410 Gone                 the URL is disabled for the merchant, the event `disabled`; deleted
    another failure          `failing`; the message stays, hidden until the next attempt (the
                             schedule's delay with +-10% jitter, longer if Retry-After asks, 12 h at most)
    the last attempt failed  `dead`: a copy goes to the dead-letter queue (an alarm), logged at error
    the URL is disabled      `disabled` without an attempt; a resend sends it once re-enabled
    no free merchant slot    records of one batch wait their turn in-process; when other senders hold
                             every slot, no attempt is counted: sent again with a short delay,
                             this message deleted

One message at a time is in charge of an event (its queueMessageId): the outbox may hand an event
over twice, and a resend adds a message while a retry may still wait; any other message for the
event is a duplicate and is deleted. The attempt number is the item's attemptCount, never SQS's
receive count (deferrals and handling errors are not attempts).
"""

from __future__ import annotations

import json
import math
import random
import threading
from enum import StrEnum

from aws_lambda_powertools.metrics import MetricUnit

from usdt_gateway import aws, clock, merchants, outbox, store
from usdt_gateway.config import ConfigError, retry_delays, settings
from usdt_gateway.merchant_records import MerchantProfile
from usdt_gateway.observability import log_keys, logger, metrics, redact_url
from usdt_gateway.schemas import DeliveryStatus
from usdt_gateway.webhooks import delivery_http, delivery_state, endpoints, slots
from usdt_gateway.webhooks.delivery_http import Outcome
from usdt_gateway.webhooks.records import Attempt, Delivery
from usdt_gateway.webhooks.signing import webhook_headers

JITTER = 0.1
# SQS hides a message at most 12 h from its receive, which was up to the function's timeout ago.
MAX_HIDDEN_S = 43_200 - 120
# A delivery waiting for a merchant slot comes back after this many seconds (SQS DelaySeconds).
DEFER_SECONDS = (5, 30)
NO_URL = Outcome(status=None, latency_ms=0, error="no webhook URL configured", code="NO_URL")
_metrics_lock = threading.Lock()  # records of one batch run in threads; Metrics is not thread-safe


class Handled(StrEnum):
    """What became of a queue message (the message is deleted in every case: see KeepMessage)."""

    DELIVERED = "delivered"  # the receiver answered 2xx
    DISABLED = "disabled"  # its URL is disabled: not sent, or disabled now by a 410
    DEAD = "dead"  # every attempt failed: in the dead-letter queue
    DEFERRED = "deferred"  # every merchant slot was held: sent again as a new, delayed message
    DUPLICATE = "duplicate"  # another message is in charge of the event, or nothing is left to send
    SUPERSEDED = "superseded"  # a resend took over while this attempt was made; the attempt is recorded
    REJECTED = "rejected"  # no known event: in the dead-letter queue for the operator


class KeepMessage(Exception):
    """Keep this message on the queue (hidden until its next attempt): the batch processor reports
    it as a batch item failure, so Lambda does not delete it."""


def require_queues() -> None:
    """Cold-start check of the webhook function's configuration."""
    s = settings()
    if not s.webhook_queue_url or not s.webhook_dlq_url:
        raise ConfigError("invalid configuration: WEBHOOK_QUEUE_URL and WEBHOOK_DLQ_URL must be set")


def _count(name: str) -> None:
    with _metrics_lock:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def send(profile: MerchantProfile, event: Delivery, url: str, *, timeout_s: float) -> Outcome:
    """One signed POST of the event's stored body, unchanged, to url."""
    body = event.body.encode()
    now = clock.now_ms()
    headers = webhook_headers(endpoints.signing_secrets(profile, now), event.event_id, now // 1000, body)
    s = settings()
    return delivery_http.post(
        url,
        body,
        headers,
        timeout_s=timeout_s,
        allow_loopback=s.local_mode,
        resolve=endpoints.resolver,
        allowed_ports=s.webhook_ports,
    )


def handle(message_id: str, receipt_handle: str, body: str) -> Handled:
    """Handle one queue message; returns what became of it, or raises KeepMessage. Every line
    logged meanwhile carries message_id and, once the event is read, its event_id, event_type,
    merchant_id and order_id (in this thread only: a batch's records run side by side)."""
    with log_keys(message_id=message_id):
        return _handle(message_id, receipt_handle, body)


def _handle(message_id: str, receipt_handle: str, body: str) -> Handled:
    try:
        event_id = str(json.loads(body)["eventId"])
        item = store.get(*store.event_key(event_id))
    except (ValueError, KeyError, TypeError):
        item = None
    if item is None:
        # Nothing to deliver: kept in the dead-letter queue for the operator, never just dropped.
        logger.error(
            "webhook queue message without a known event; moved to the dead-letter queue", extra={"body": body[:200]}
        )
        aws.client("sqs").send_message(QueueUrl=settings().webhook_dlq_url, MessageBody=body)
        return Handled.REJECTED
    event = Delivery.from_item(item)
    owner = event.state.owner
    if owner not in (None, message_id) or event.state.status in (DeliveryStatus.DELIVERED, DeliveryStatus.DISABLED):
        return Handled.DUPLICATE
    if event.state.status == DeliveryStatus.DEAD:
        _to_dead_letter_queue(event)  # this message's earlier hand-off was cut short
        return Handled.DEAD
    with log_keys(
        event_id=event_id,
        event_type=event.type,
        merchant_id=event.merchant_id,
        order_id=event.order_id,
    ):
        if owner is None:
            claimed = delivery_state.claim(event_id, message_id)
            if claimed is None:
                return Handled.DUPLICATE
            event = claimed
        return _deliver(event, message_id, receipt_handle)


def _deliver(event: Delivery, message_id: str, receipt_handle: str) -> Handled:
    profile = merchants.get_merchant(event.merchant_id)
    url = endpoints.target_url(profile, event)
    if url is not None and endpoints.is_disabled(profile, url):
        delivery_state.mark_disabled(event.event_id, message_id)
        logger.info("webhook not sent: its URL is disabled", extra={"url": redact_url(url, keep_path=True)})
        return Handled.DISABLED
    if url is None:
        return _settle(event, message_id, receipt_handle, url, clock.now_ms(), NO_URL)
    # Records of one merchant in this batch take turns here (no DynamoDB writes while waiting);
    # the slot items then bound the merchant across every running sender.
    with _in_process_turn(event.merchant_id):
        started = clock.now_ms()
        slot = slots.acquire(event.merchant_id, now_ms=started)
        if slot is None:
            _defer(event, message_id)  # other senders hold them all
            return Handled.DEFERRED
        try:
            outcome = send(profile, event, url, timeout_s=settings().webhook_timeout_seconds)
        finally:
            slots.release(slot)
    return _settle(event, message_id, receipt_handle, url, started, outcome)


_turns: dict[str, threading.BoundedSemaphore] = {}
_turns_lock = threading.Lock()


def _in_process_turn(merchant_id: str) -> threading.BoundedSemaphore:
    """At most webhook_merchant_concurrency of this process's threads deliver for one merchant at
    once. Without it, a batch holding more of one merchant's events than it has slots deferred the
    extra ones 5-30 s, however fast the merchant answered."""
    with _turns_lock:
        if merchant_id not in _turns:
            _turns[merchant_id] = threading.BoundedSemaphore(settings().webhook_merchant_concurrency)
        return _turns[merchant_id]


def _defer(event: Delivery, message_id: str) -> None:
    """Every slot of the merchant is held: the event comes back a little later, as a new message
    (this one is deleted, so its receive count keeps meaning deliveries, not waits)."""
    reply = aws.client("sqs").send_message(
        QueueUrl=settings().webhook_queue_url,
        DelaySeconds=random.randint(*DEFER_SECONDS),
        **outbox.message(event.event_id, event.merchant_id),
    )
    delivery_state.hand_over(event.event_id, message_id, reply["MessageId"])


def _retry_delay(retry: int, outcome: Outcome) -> float | None:
    """Seconds until the next attempt after failed attempt number `retry` of this round (1 for
    the first); None when that was the last."""
    delays = retry_delays(settings().webhook_retry_schedule)
    if retry > len(delays):
        return None
    delay = delays[retry - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if outcome.retry_after_s is not None:
        delay = max(delay, outcome.retry_after_s)
    return min(float(math.ceil(delay)), MAX_HIDDEN_S)


def _settle(
    event: Delivery, message_id: str, receipt_handle: str, url: str | None, started: int, outcome: Outcome
) -> Handled:
    n = event.state.attempt_count + 1
    attempt = Attempt.of(n, started, url, outcome)
    delay: float | None = None
    if outcome.ok:
        status = DeliveryStatus.DELIVERED
    elif outcome.status == 410 and url is not None:
        endpoints.disable(event.merchant_id, url, endpoints.GONE)
        status = DeliveryStatus.DISABLED
    else:
        delay = _retry_delay(n - event.state.retry_base, outcome)
        status = DeliveryStatus.DEAD if delay is None else DeliveryStatus.FAILING
    next_at = clock.now_ms() + int(delay * 1000) if delay is not None else None
    _count("WebhookAttempts")
    _count("WebhookDeliveries" if outcome.ok else "WebhookFailures")
    # The URL without its query (a merchant may put a token there); the delivery log has it whole.
    log = {
        "attempt": n,
        "url": redact_url(url, keep_path=True),
        "status_code": outcome.status,
        "latency_ms": outcome.latency_ms,
        "error": outcome.error,
        "outcome": status.value,
    }
    if not delivery_state.record(event, message_id, attempt, status, next_at):
        # A resend put another message in charge while this one was sending: it decides what next.
        delivery_state.record_attempt_only(event.event_id, attempt)
        logger.info("webhook attempt recorded; a resend has taken over the event", extra=log)
        return Handled.SUPERSEDED
    if status == DeliveryStatus.DEAD:
        _count("WebhookDead")
        logger.error("webhook event dead: every attempt failed; in the dead-letter queue", extra=log)
        _to_dead_letter_queue(event)
        return Handled.DEAD
    if status == DeliveryStatus.FAILING:
        assert delay is not None
        logger.info("webhook attempt failed; retrying", extra={**log, "retry_in_seconds": delay})
        aws.client("sqs").change_message_visibility(
            QueueUrl=settings().webhook_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(delay)
        )
        raise KeepMessage(f"attempt {n} failed; next in {int(delay)} s")
    if status == DeliveryStatus.DISABLED:
        logger.warning("webhook URL disabled: the receiver answered 410 Gone", extra=log)
        return Handled.DISABLED
    logger.info("webhook delivered", extra=log)
    return Handled.DELIVERED


def _to_dead_letter_queue(event: Delivery) -> None:
    aws.client("sqs").send_message(
        QueueUrl=settings().webhook_dlq_url, **outbox.message(event.event_id, event.merchant_id)
    )
