"""Request signatures, as the gateway checks them (docs/signing.md).

Signature-V2 (the default) signs six lines joined by "\\n": "v2", Request-Time, the method in
upper case, the path from /v1 on exactly as sent, the canonical query and the hex SHA-256 of the
exact body bytes sent; then "recv-window:<Recv-Window>" when that header is sent, and
"request-nonce:<Request-Nonce>" when that one is. Signature-V1 signs Request-Time followed by
json.dumps(body, sort_keys=True) of the parsed body ('""' without a body); it binds neither the
method, the path, the query nor Recv-Window, so the gateway takes it only to create and to get an
order. Both are lowercase hex HMAC-SHA256 keyed with the secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["canonical_query", "sign_v1", "sign_v2", "v1_message", "v2_message"]

_UNRESERVED = "-_.~"


def _encode(value: str) -> str:
    """RFC 3986 percent-encoding: letters, digits and -_.~ kept, all else %XX of its UTF-8 bytes."""
    return quote(value, safe=_UNRESERVED)


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """The parameters sorted by name then value, each percent-encoded, joined as name=value with &.
    The client sends its query string in this very form, so what the server decodes is what was signed."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def v2_message(
    timestamp: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    body: bytes,
    *,
    recv_window: str | None = None,
    request_nonce: str | None = None,
) -> str:
    """The string to sign; `recv_window` and `request_nonce` are the Recv-Window and Request-Nonce
    header values when the request sends them (each then adds its line)."""
    digest = hashlib.sha256(body).hexdigest()
    lines = ["v2", timestamp, method.upper(), path, canonical_query(query), digest]
    if recv_window is not None:
        lines.append(f"recv-window:{recv_window}")
    if request_nonce is not None:
        lines.append(f"request-nonce:{request_nonce}")
    return "\n".join(lines)


def v1_message(timestamp: str, body: bytes) -> str:
    """What V1 signs for these body bytes: the server parses them and re-serializes with
    json.dumps(..., sort_keys=True), so the same is done here with the bytes about to be sent."""
    parsed = json.loads(body) if body.strip() else ""
    return f"{timestamp}{json.dumps(parsed, sort_keys=True)}"


def _hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_v2(
    secret: str,
    timestamp: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    body: bytes,
    *,
    recv_window: str | None = None,
    request_nonce: str | None = None,
) -> str:
    return _hmac(
        secret, v2_message(timestamp, method, path, query, body, recv_window=recv_window, request_nonce=request_nonce)
    )


def sign_v1(secret: str, timestamp: str, body: bytes) -> str:
    return _hmac(secret, v1_message(timestamp, body))
