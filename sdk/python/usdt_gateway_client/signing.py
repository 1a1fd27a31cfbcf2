"""Request signatures, as the gateway checks them (docs/signing.md).

Signature-V2 (the default) signs six lines joined by "\\n": "v2", Request-Time, the method in
upper case, the path from /v1 on exactly as sent, the canonical query and the hex SHA-256 of the
exact body bytes sent. Signature-V1 signs Request-Time followed by json.dumps(body,
sort_keys=True) of the parsed body ('""' without a body); it binds neither the method, the path
nor the query, so prefer V2. Both are lowercase hex HMAC-SHA256 keyed with the secret key.
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


def v2_message(timestamp: str, method: str, path: str, query: Iterable[tuple[str, str]], body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(["v2", timestamp, method.upper(), path, canonical_query(query), digest])


def v1_message(timestamp: str, body: bytes) -> str:
    """What V1 signs for these body bytes: the server parses them and re-serializes with
    json.dumps(..., sort_keys=True), so the same is done here with the bytes about to be sent."""
    parsed = json.loads(body) if body.strip() else ""
    return f"{timestamp}{json.dumps(parsed, sort_keys=True)}"


def _hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_v2(secret: str, timestamp: str, method: str, path: str, query: Iterable[tuple[str, str]],
            body: bytes) -> str:
    return _hmac(secret, v2_message(timestamp, method, path, query, body))


def sign_v1(secret: str, timestamp: str, body: bytes) -> str:
    return _hmac(secret, v1_message(timestamp, body))
