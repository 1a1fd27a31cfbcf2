"""POST /v1/webhooks/test: a signed `webhook.test` event, sent at once from the API and answered
with the outcome. It is signed like any event and shows in the delivery log, but is attempted
once (delivered or dead), not queued, and a 410 does not disable the URL. Each merchant may
send a few a minute (WEBHOOK_TEST_RATE_LIMIT_PER_MINUTE)."""

from __future__ import annotations

from usdt_gateway import clock, events, merchants, ratelimit, store
from usdt_gateway.config import settings
from usdt_gateway.errors import InvalidRequest
from usdt_gateway.schemas import DeliveryStatus, WebhookTestResult
from usdt_gateway.webhooks import endpoints, sender
from usdt_gateway.webhooks.records import Attempt, Delivery, DeliveryState
from usdt_gateway.webhooks.urlguard import UnsafeUrl

# The API function has 10 s in all: the receiver gets at most this much of it.
TIMEOUT_S = 5.0
MESSAGE = "A test event from your USDT gateway: your endpoint receives and verifies its webhooks."


def send_test(merchant_id: str, url: str | None) -> WebhookTestResult:
    ratelimit.check_webhook_test(merchant_id)  # first: a refused URL counts too
    profile = merchants.get_merchant(merchant_id)
    target = url or profile.webhook_url
    if not target:
        raise InvalidRequest(
            "no webhook URL: set one with PUT /v1/webhooks/endpoint, or give `url`", code="WEBHOOK_URL_REQUIRED"
        )
    # The default URL too: one set under a wider policy (ports) is refused, not reported on.
    try:
        endpoints.check(target)
    except UnsafeUrl as exc:
        raise InvalidRequest(f"{'url' if url else 'your webhook URL'}: {exc.message}", code=exc.code) from None
    item = {**events.webhook_test(merchant_id, MESSAGE), "notifyUrl": url}  # a resend goes where this went
    event = Delivery.from_item(item)
    started = clock.now_ms()
    outcome = sender.send(profile, event, target, timeout_s=min(TIMEOUT_S, settings().webhook_timeout_seconds))
    state = DeliveryState(
        DeliveryStatus.DELIVERED if outcome.ok else DeliveryStatus.DEAD,
        attempt_count=1,
        attempts=(Attempt.of(1, started, target, outcome),),
        last_attempt_at=started,
    )
    # none -> delivered|dead: a new random event id.
    store.put_new({**item, **state.to_item()})
    return WebhookTestResult(
        delivery_id=event.event_id,
        url=target,
        ok=outcome.ok,
        status_code=outcome.status,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
    )
