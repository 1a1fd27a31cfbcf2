"""Authentication of private endpoints: API key, signature (V1 or V2), scope, rate limit.

Order of checks (the body's size is checked before any of them, api/app.py): headers -> timestamp
-> key exists -> signature (and its version, for a key created V2-only) -> key active and scoped ->
rate limit. Nothing is counted for a request whose signature fails or uses a version its key
refuses."""

from __future__ import annotations

from dataclasses import dataclass

from usdt_gateway import jsonbody, signing, store
from usdt_gateway.config import settings
from usdt_gateway.errors import Forbidden, InvalidRequest, Unauthorized
from usdt_gateway.http import Request
from usdt_gateway.ratelimit import enforce, now_ms, window_of
from usdt_gateway.secretbox import decrypt

READ, WRITE = "orders:read", "orders:write"
SCOPES = (READ, WRITE)
DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS, MAX_FUTURE_MS = 5000, 60_000, 1000


@dataclass(frozen=True)
class Principal:
    merchant_id: str
    api_key: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _KeySecret:
    merchant_id: str
    secret: str
    v2_only: bool  # set at creation: V1 does not bind method and path (docs/signing.md)


_SECRETS: dict[str, _KeySecret] = {}
_MAX_CACHED = 1024


def _key_secret(api_key: str) -> _KeySecret | None:
    """The immutable part of a key (merchant, secret), cached per container; status and scopes
    are read on every request. Unknown keys are not cached: a key may be created at any time."""
    if (cached := _SECRETS.get(api_key)) is not None:
        return cached
    item = store.get(*store.api_key_key(api_key))
    if item is None:
        return None
    merchant_id = item["merchantId"]
    secret = decrypt(item["secretCipher"], {"apiKey": api_key, "merchantId": merchant_id})
    if len(_SECRETS) >= _MAX_CACHED:
        _SECRETS.pop(next(iter(_SECRETS)))
    _SECRETS[api_key] = found = _KeySecret(merchant_id, secret, bool(item.get("v2Only")))
    return found


def _timestamp(request: Request, at: int) -> str:
    ts = request.header("Request-Time") or ""
    # str.isdigit() also accepts "²", which int() refuses
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 16):
        raise Unauthorized("Request-Time must be the current time in milliseconds since the epoch",
                           code="INVALID_TIMESTAMP")
    raw_window = request.header("Recv-Window")
    window = DEFAULT_RECV_WINDOW_MS
    if raw_window is not None:
        if not (raw_window.isascii() and raw_window.isdigit() and len(raw_window) <= 6) \
                or not 1 <= int(raw_window) <= MAX_RECV_WINDOW_MS:
            raise InvalidRequest(f"Recv-Window must be milliseconds between 1 and {MAX_RECV_WINDOW_MS}",
                                 code="INVALID_RECV_WINDOW")
        window = int(raw_window)
    if int(ts) > at + MAX_FUTURE_MS:
        raise Unauthorized("Request-Time is in the future; check the client's clock", code="TIMESTAMP_IN_FUTURE")
    if at - int(ts) > window:
        raise Unauthorized(f"Request-Time is older than the receive window ({window} ms); sign each request "
                           "just before sending it and check the client's clock", code="TIMESTAMP_EXPIRED")
    return ts


def _signature_ok(request: Request, secret: str, ts: str) -> bool:
    if (v2 := request.header("Signature-V2")) is not None:
        message = signing.v2_message(ts, request.method, request.path, request.query, request.body)
        return signing.matches(secret, message, v2)
    v1 = request.header("Signature-V1") or ""
    try:
        # Read exactly as the handler reads it: numbers by their text, depth bounded.
        body = jsonbody.loads(request.body) if request.body.strip() else ""
    except jsonbody.JsonBodyError as exc:
        raise InvalidRequest(f"body is not valid JSON, so its Signature-V1 cannot be checked: {exc}",
                             code="INVALID_JSON") from None
    return signing.matches(secret, signing.v1_message(ts, body), v1)


def authenticate(request: Request, scope: str) -> Principal:
    api_key = request.header("API-Key")
    if not api_key or not (request.header("Signature-V2") or request.header("Signature-V1")):
        raise Unauthorized("send the headers API-Key, Request-Time and Signature-V2 (or Signature-V1)",
                           code="MISSING_CREDENTIALS")
    at = now_ms()
    ts = _timestamp(request, at)
    if len(api_key) > 128 or not api_key.isascii() or (key := _key_secret(api_key)) is None:
        raise Unauthorized("unknown API key", code="INVALID_API_KEY")
    if not _signature_ok(request, key.secret, ts):
        raise Unauthorized("signature does not match: see docs/signing.md for what to sign",
                           code="INVALID_SIGNATURE")
    if key.v2_only and request.header("Signature-V2") is None:
        raise Unauthorized("this API key accepts Signature-V2 only: see docs/signing.md",
                           code="SIGNATURE_V2_REQUIRED")
    pk, sk = store.api_key_key(api_key)
    meter = store.meter(pk, sk, window_of(at), require_active=True)
    if meter is None:
        raise Forbidden("this API key has been revoked; use an active key", code="KEY_REVOKED")
    expires = int(meter.item.get("expiresAt") or 0)
    if expires and expires <= at:
        raise Forbidden("this API key expired after rotation; use its replacement", code="KEY_EXPIRED")
    scopes = frozenset(meter.item.get("scopes") or ())
    if scope not in scopes:
        raise Forbidden(f"this API key lacks the scope '{scope}'", code="MISSING_SCOPE")
    enforce(meter, limit=int(meter.item.get("rateLimit") or settings().rate_limit_per_minute),
            pk=pk, sk=sk, at_ms=at, who="this API key")
    return Principal(key.merchant_id, api_key, scopes)
