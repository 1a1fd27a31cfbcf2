"""Rate limits: a fixed one-minute window counted atomically in DynamoDB, so every concurrent
Lambda sees the same count. Over the limit: 429 with Retry-After. A caller that keeps sending
while limited (more than RATE_LIMIT_BLOCK_AFTER extra requests in a window) is blocked: 418 for
RATE_LIMIT_BLOCK_SECONDS; the payment page and the public order status are never blocked (many
payers may share one address). API Gateway's per-method throttling sits in front of this
(template.yaml)."""

from __future__ import annotations

import math
import re

from usdt_gateway import clock, store
from usdt_gateway.config import settings
from usdt_gateway.errors import Blocked, RateLimited

WINDOW_MS = 60_000
# Every meter of a source IP lives under this partition key prefix (the page function's IAM
# condition allows its writes there and nowhere else).
PREFIX = "RATE#"
_PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def window_of(ms: int) -> int:
    return ms // WINDOW_MS


def ip_key(ip: str) -> tuple[str, str]:
    """The per-IP meter of the public API endpoints (/v1/networks)."""
    return f"{PREFIX}{ip or 'unknown'}", "RATE"


def page_ip_key(ip: str) -> tuple[str, str]:
    """The per-IP meter of payment page loads (/pay/{publicId}), apart from the API's."""
    return f"{PREFIX}{ip or 'unknown'}#PAGES", "RATE"


def order_status_key(ip: str, public_id: str) -> tuple[str, str]:
    """The meter of one order's status read from one IP (one payer's page)."""
    return f"{PREFIX}{ip or 'unknown'}#ORDER#{public_id}", "RATE"


def order_status_ip_key(ip: str) -> tuple[str, str]:
    """The meter of every order status read from one IP (all the pages behind one address)."""
    return f"{PREFIX}{ip or 'unknown'}#ORDERS", "RATE"


def webhook_test_key(merchant_id: str) -> tuple[str, str]:
    """The meter of a merchant's test events (POST /v1/webhooks/test), next to its profile."""
    return f"MERCHANT#{merchant_id}", "RATE#WEBHOOKTEST"


def enforce(meter: store.Meter, *, limit: int, pk: str, sk: str, at_ms: int, who: str, escalate: bool = True) -> None:
    """Raise when the counted request is over the limit; block callers that keep hammering
    (unless `escalate` is off: then over the limit is always a 429)."""
    s = settings()
    if escalate and meter.blocked_until > at_ms:
        raise Blocked(
            f"{who} is blocked after repeated requests over the rate limit; retry later",
            headers={"Retry-After": str(math.ceil((meter.blocked_until - at_ms) / 1000))},
        )
    if meter.count <= limit:
        return
    if escalate and meter.count > limit + s.rate_limit_block_after:
        until = at_ms + s.rate_limit_block_seconds * 1000
        store.block(pk, sk, until)
        raise Blocked(
            f"{who} kept sending while rate limited and is blocked for {s.rate_limit_block_seconds} s",
            headers={"Retry-After": str(s.rate_limit_block_seconds)},
        )
    retry = math.ceil(((window_of(at_ms) + 1) * WINDOW_MS - at_ms) / 1000)
    raise RateLimited(
        f"rate limit of {limit} requests per minute exceeded; retry after {retry} s",
        headers={"Retry-After": str(max(retry, 1))},
    )


def _count(key: tuple[str, str], *, limit: int, at: int, who: str, escalate: bool) -> None:
    pk, sk = key
    ttl = at // 1000 + 2 * settings().rate_limit_block_seconds + 120
    meter = store.meter(pk, sk, window_of(at), require_active=False, ttl=ttl)
    assert meter is not None  # without require_active the meter always counts
    enforce(meter, limit=limit, pk=pk, sk=sk, at_ms=at, who=who, escalate=escalate)


def check_ip(ip: str) -> None:
    """Per-source-IP limit of /v1/networks, with the 418 escalation."""
    _count(
        ip_key(ip), limit=settings().public_rate_limit_per_minute, at=clock.now_ms(), who="this address", escalate=True
    )


def check_page(ip: str) -> None:
    """Per-source-IP limit of payment page loads, on a meter of their own. Payers often share one
    address (carrier NAT, shop Wi-Fi), so over the limit is a 429, never a 418 block: a busy
    address only waits for the next window, and /v1/networks traffic does not use it up."""
    _count(
        page_ip_key(ip),
        limit=settings().public_page_rate_limit_per_minute,
        at=clock.now_ms(),
        who="this address",
        escalate=False,
    )


def check_order_status(ip: str, public_id: str) -> None:
    """The limit of GET /v1/public/orders/{publicId}, which every open payment page polls: per
    (IP, order), so payers behind one shared address (carrier NAT, shop Wi-Fi) do not use up each
    other's allowance, and a larger cap per IP over all orders, so spreading requests over many
    ids gains nothing. Over either: 429, never a 418 block. An id that cannot exist (it will be a
    404) counts against the per-IP cap only."""
    s, at = settings(), clock.now_ms()
    if _PUBLIC_ID.match(public_id):
        _count(
            order_status_key(ip, public_id),
            limit=s.public_order_rate_limit_per_minute,
            at=at,
            who="this payment page",
            escalate=False,
        )
    _count(
        order_status_ip_key(ip),
        limit=s.public_order_ip_rate_limit_per_minute,
        at=at,
        who="this address",
        escalate=False,
    )


def check_webhook_test(merchant_id: str) -> None:
    """The limit of POST /v1/webhooks/test, per merchant, on a meter of its own: each call connects
    to a URL the merchant chose and reports how that went, so it stays far below the key's
    limit. Over it: 429, never the 418 block (the key's own meter is counted apart, by auth)."""
    limit = settings().webhook_test_rate_limit_per_minute
    try:
        _count(webhook_test_key(merchant_id), limit=limit, at=clock.now_ms(), who="the test endpoint", escalate=False)
    except RateLimited as exc:
        retry = exc.headers["Retry-After"]
        raise RateLimited(f"at most {limit} test events a minute; retry after {retry} s", headers=exc.headers) from None
