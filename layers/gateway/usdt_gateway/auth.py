"""Authentication of private endpoints: API key, signature (V1 or V2), replays, scope, rate limit.

Order of checks, cheapest first (the body's size is checked before any of them, api/app.py):
headers -> timestamp -> key exists -> signature version (V1 only where the route or the key allows
it) -> signature -> replay (one-time routes) -> key active and scoped -> rate limit. Nothing is
counted for a request refused before the rate limit: a bad or refused signature, or a replay."""

from __future__ import annotations

import re
from dataclasses import dataclass

from usdt_gateway import clock, jsonbody, request_signing, store
from usdt_gateway.config import settings
from usdt_gateway.errors import Forbidden, GatewayError, InvalidRequest, Unauthorized
from usdt_gateway.http import Request
from usdt_gateway.merchant_records import ApiKey
from usdt_gateway.ratelimit import enforce, window_of
from usdt_gateway.secretbox import decrypt

READ, WRITE = "orders:read", "orders:write"
SCOPES = (READ, WRITE)
DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS, MAX_FUTURE_MS = 5000, 60_000, 1000
# Every replay marker's partition key starts so (the API function may delete only these and OUTBOX#).
REPLAY_PREFIX = "REPLAY#"
# Kept a little past the end of the signature's window: a later replay is refused for its timestamp.
REPLAY_MARGIN_S = 60
NONCE_PATTERN = r"^[A-Za-z0-9._~-]{1,64}$"
_NONCE = re.compile(NONCE_PATTERN)


@dataclass(frozen=True)
class Principal:
    merchant_id: str
    api_key: str
    scopes: frozenset[str]
    # The marker of this request's signature, on a one-time route: removed again if the request
    # is refused, so a refusal leaves nothing behind.
    replay_key: tuple[str, str] | None = None


@dataclass(frozen=True)
class _KeySecret:
    merchant_id: str
    secret: str
    v2_only: bool  # set at creation: V1 does not bind method and path (docs/signing.md)
    v1_everywhere: bool  # set at creation: V1 on every route, not only create and get (unsafe)
    v1_recv_window_ms: int  # the longest receive window of a V1 request (V1 does not sign Recv-Window)


_SECRETS: dict[str, _KeySecret] = {}
_MAX_CACHED = 1024


def replay_key(api_key: str, signature: str) -> tuple[str, str]:
    """The marker of a signature a one-time route has seen (`signature` normalized, lowercase hex)."""
    return f"{REPLAY_PREFIX}{api_key}#{signature}", "REPLAY"


def _key_secret(api_key: str) -> _KeySecret | None:
    """The immutable part of a key (merchant, secret, signing options), cached per container;
    status and scopes are read on every request. Unknown keys are not cached: a key may be
    created at any time."""
    if (cached := _SECRETS.get(api_key)) is not None:
        return cached
    item = store.get(*store.api_key_key(api_key))
    if item is None:
        return None
    key = ApiKey.from_item(item)
    secret = decrypt(key.secret_cipher, {"apiKey": api_key, "merchantId": key.merchant_id})
    if len(_SECRETS) >= _MAX_CACHED:
        _SECRETS.pop(next(iter(_SECRETS)))
    _SECRETS[api_key] = found = _KeySecret(
        key.merchant_id,
        secret,
        v2_only=key.v2_only,
        v1_everywhere=key.v1_everywhere,
        v1_recv_window_ms=key.v1_recv_window_ms or DEFAULT_RECV_WINDOW_MS,
    )
    return found


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()  # str.isdigit() also accepts "²", which int() refuses


def _timestamp(request: Request, at: int) -> tuple[str, int]:
    """Request-Time, and the receive window the request declares (checked against it here)."""
    ts = request.header("Request-Time") or ""
    if not (_digits(ts) and len(ts) <= 16):
        raise Unauthorized(
            "Request-Time must be the current time in milliseconds since the epoch", code="INVALID_TIMESTAMP"
        )
    raw_window = request.header("Recv-Window")
    window = DEFAULT_RECV_WINDOW_MS
    if raw_window is not None:
        if not (_digits(raw_window) and len(raw_window) <= 6) or not 1 <= int(raw_window) <= MAX_RECV_WINDOW_MS:
            raise InvalidRequest(
                f"Recv-Window must be milliseconds between 1 and {MAX_RECV_WINDOW_MS}", code="INVALID_RECV_WINDOW"
            )
        window = int(raw_window)
    if int(ts) > at + MAX_FUTURE_MS:
        hint = _unit_hint(ts, at) or "check the client's clock"
        raise Unauthorized(f"Request-Time is in the future; {hint}", code="TIMESTAMP_IN_FUTURE")
    if at - int(ts) > window:
        hint = _unit_hint(ts, at) or "sign each request just before sending it and check the client's clock"
        raise Unauthorized(
            f"Request-Time is older than the receive window ({window} ms); {hint}", code="TIMESTAMP_EXPIRED"
        )
    return ts, window


def _unit_hint(ts: str, at: int) -> str:
    """What to fix when Request-Time is about now, but in another unit (seconds: a common slip)."""
    for unit, as_ms in (("seconds", int(ts) * 1000), ("microseconds", int(ts) // 1000)):
        if abs(as_ms - at) <= 86_400_000:
            return f"it looks like {unit} since the epoch: send milliseconds (13 digits, e.g. int(time.time() * 1000))"
    return ""


def _v1_allowed(key: _KeySecret, route_accepts_v1: bool) -> None:
    if key.v2_only:
        raise Unauthorized("this API key accepts Signature-V2 only: see docs/signing.md", code="SIGNATURE_V2_REQUIRED")
    if not (route_accepts_v1 or key.v1_everywhere):
        raise Unauthorized(
            "this endpoint needs Signature-V2: Signature-V1 binds neither the method nor the path, "
            "so it is accepted only to create and to get an order; see docs/signing.md",
            code="SIGNATURE_V2_REQUIRED",
        )


def _v1_window(key: _KeySecret, ts: str, window: int, at: int) -> int:
    """V1 does not sign Recv-Window: anyone replaying a V1 request could raise it, so a V1 request
    gets at most the key's V1 window (the default one unless the key was created otherwise)."""
    window = min(window, key.v1_recv_window_ms)
    if at - int(ts) > window:
        raise Unauthorized(
            f"Request-Time is older than {window} ms, the longest receive window of a Signature-V1 "
            "request of this key (V1 does not sign Recv-Window); sign with Signature-V2 for a longer "
            "one, see docs/signing.md",
            code="TIMESTAMP_EXPIRED",
        )
    return window


def _v2_nonce(request: Request) -> str | None:
    nonce = request.header("Request-Nonce")
    if nonce is not None and not _NONCE.fullmatch(nonce):
        raise InvalidRequest(
            "Request-Nonce must be 1-64 characters of A-Z a-z 0-9 . _ ~ -", code="INVALID_REQUEST_NONCE"
        )
    return nonce


def _verified_signature(request: Request, secret: str, ts: str) -> str:
    """The request's signature, normalized, once it matches; Unauthorized otherwise."""
    if (v2 := request.header("Signature-V2")) is not None:
        message = request_signing.v2_message(
            ts,
            request.method,
            request.path,
            request.query,
            request.body,
            recv_window=request.header("Recv-Window"),
            request_nonce=_v2_nonce(request),
        )
        signature = v2
    else:
        signature = request.header("Signature-V1") or ""
        try:
            # Read exactly as the handler reads it: numbers by their text, depth bounded.
            body = jsonbody.loads(request.body) if request.body.strip() else ""
        except jsonbody.JsonBodyError as exc:
            raise InvalidRequest(
                f"body is not valid JSON, so its Signature-V1 cannot be checked: {exc}", code="INVALID_JSON"
            ) from None
        message = request_signing.v1_message(ts, body)
    normalized = request_signing.normalized(signature)
    if normalized is None or not request_signing.matches(secret, message, normalized):
        signed_extras = [h for h in ("Recv-Window", "Request-Nonce") if request.header(h) is not None]
        hint = (
            f" (with Signature-V2, {' and '.join(signed_extras)} must be signed too)"
            if signed_extras and request.header("Signature-V2") is not None
            else ""
        )
        raise Unauthorized(
            f"signature does not match: see docs/signing.md for what to sign{hint}", code="INVALID_SIGNATURE"
        )
    return normalized


def _remember(api_key: str, signature: str, ts: str, window: int) -> tuple[str, str]:
    """Record a one-time route's signature; refuse it if it was seen before (a replay), before
    anything is counted against the key."""
    pk, sk = replay_key(api_key, signature)
    # none -> seen. A conditional put: of two copies of one request, only one gets through.
    if not store.put_new({"pk": pk, "sk": sk, "ttl": (int(ts) + window) // 1000 + 1 + REPLAY_MARGIN_S}):
        raise Unauthorized(
            "this signed request was already received (a replay): sign every request anew, with "
            "its own Request-Time (and Request-Nonce), even when resending it",
            code="REQUEST_REPLAYED",
        )
    return pk, sk


def authenticate(request: Request, scope: str, *, accepts_v1: bool = False, one_time: bool = False) -> Principal:
    """The request's principal. `accepts_v1`: the route takes Signature-V1 from every key (create
    and get order); `one_time`: a write that is not idempotent, whose signature is refused when
    seen again."""
    api_key = request.header("API-Key")
    if not api_key or not (request.header("Signature-V2") or request.header("Signature-V1")):
        raise Unauthorized(
            "send the headers API-Key, Request-Time and Signature-V2 (or Signature-V1)", code="MISSING_CREDENTIALS"
        )
    at = clock.now_ms()
    ts, window = _timestamp(request, at)
    if len(api_key) > 128 or not api_key.isascii() or (key := _key_secret(api_key)) is None:
        raise Unauthorized("unknown API key", code="INVALID_API_KEY")
    if request.header("Signature-V2") is None:
        _v1_allowed(key, accepts_v1)
        window = _v1_window(key, ts, window, at)
    signature = _verified_signature(request, key.secret, ts)
    marker = _remember(api_key, signature, ts, window) if one_time else None
    try:
        pk, sk = store.api_key_key(api_key)
        meter = store.meter(pk, sk, window_of(at), require_active=True)
        if meter is None:
            raise Forbidden("this API key has been revoked; use an active key", code="KEY_REVOKED")
        current = ApiKey.from_item(meter.item)
        if current.expires_at and current.expires_at <= at:
            raise Forbidden("this API key expired after rotation; use its replacement", code="KEY_EXPIRED")
        scopes = frozenset(current.scopes)
        if scope not in scopes:
            raise Forbidden(f"this API key lacks the scope '{scope}'", code="MISSING_SCOPE")
        enforce(
            meter,
            limit=current.rate_limit or settings().rate_limit_per_minute,
            pk=pk,
            sk=sk,
            at_ms=at,
            who="this API key",
        )
    except GatewayError:
        if marker is not None:
            store.delete(*marker)
        raise
    return Principal(key.merchant_id, api_key, scopes, marker)


def release(principal: Principal | None) -> None:
    """Forget the signature of a one-time request that was refused after authentication: a
    refusal writes nothing (and a copy of it is refused again for what it says)."""
    if principal is not None and principal.replay_key is not None:
        store.delete(*principal.replay_key)
