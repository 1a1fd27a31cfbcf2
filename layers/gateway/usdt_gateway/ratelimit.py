"""Rate limits: a fixed one-minute window counted atomically in DynamoDB, so every concurrent
Lambda sees the same count. Over the limit: 429 with Retry-After. A caller that keeps sending
while limited (more than RATE_LIMIT_BLOCK_AFTER extra requests in a window) is blocked: 418 for
RATE_LIMIT_BLOCK_SECONDS. API Gateway's stage throttling sits in front of this (template.yaml)."""

from __future__ import annotations

import math
import time

from usdt_gateway import store
from usdt_gateway.config import settings
from usdt_gateway.errors import Blocked, RateLimited

WINDOW_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def window_of(ms: int) -> int:
    return ms // WINDOW_MS


def enforce(meter: store.Meter, *, limit: int, pk: str, sk: str, at_ms: int, who: str) -> None:
    """Raise when the counted request is over the limit; block callers that keep hammering."""
    s = settings()
    if meter.blocked_until > at_ms:
        raise Blocked(f"{who} is blocked after repeated requests over the rate limit; retry later",
                      headers={"Retry-After": str(math.ceil((meter.blocked_until - at_ms) / 1000))})
    if meter.count <= limit:
        return
    if meter.count > limit + s.rate_limit_block_after:
        until = at_ms + s.rate_limit_block_seconds * 1000
        store.block(pk, sk, until)
        raise Blocked(f"{who} kept sending while rate limited and is blocked for {s.rate_limit_block_seconds} s",
                      headers={"Retry-After": str(s.rate_limit_block_seconds)})
    retry = math.ceil(((window_of(at_ms) + 1) * WINDOW_MS - at_ms) / 1000)
    raise RateLimited(f"rate limit of {limit} requests per minute exceeded; retry after {retry} s",
                      headers={"Retry-After": str(max(retry, 1))})


def check_ip(ip: str) -> None:
    """Per-source-IP limit for the public endpoints."""
    at = now_ms()
    pk, sk = f"RATE#{ip or 'unknown'}", "RATE"
    ttl = at // 1000 + 2 * settings().rate_limit_block_seconds + 120
    meter = store.meter(pk, sk, window_of(at), require_active=False, ttl=ttl)
    assert meter is not None  # without require_active the meter always counts
    enforce(meter, limit=settings().public_rate_limit_per_minute, pk=pk, sk=sk, at_ms=at, who="this address")
