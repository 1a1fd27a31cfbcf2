"""Request signatures. Pure functions shared by the server, the tests and client code.

Signature-V1 (compatible with the simple reference client):
    hex(HMAC-SHA256(secret, Request-Time + json.dumps(body, sort_keys=True)))
    where a request without a body signs Request-Time + '""' (json.dumps("")), and each number
    of the body is written exactly as the body writes it (the handler reads that text too).
    Protects: the body's content and the timestamp. Does NOT bind the method, the path or the
    query string: a captured signature can be replayed, inside the receive window, against
    another endpoint that takes the same body (every GET shares the body ""). Its canonical
    JSON is Python's; other languages must reproduce json.dumps' spacing and escaping exactly.

Signature-V2 (recommended):
    hex(HMAC-SHA256(secret, "v2\\n" + Request-Time + "\\n" + METHOD + "\\n" + path + "\\n"
                                   + canonical_query + "\\n" + hex(SHA-256(raw body bytes))))
    Protects: timestamp, method, path, every query parameter and the exact body bytes.
    canonical_query: parameters sorted by name then value, each name and value percent-encoded
    (RFC 3986 unreserved characters kept), joined as name=value with '&'; empty when there is none.
    path: the path from /v1 on, as sent (without the stage prefix of an execute-api URL).

Both: the timestamp must lie within Recv-Window (default 5 s, max 60 s) in the past and at most
1 s in the future; comparisons are constant-time. Neither stops a replay inside the window;
creates are idempotent on orderId and cancels on state, so a replay cannot double an effect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from usdt_gateway import jsonbody

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def v1_message(timestamp: str, body: Any) -> str:
    """`body`: the parsed body (jsonbody.loads, numbers with their text) or plain JSON data."""
    return f"{timestamp}{jsonbody.canonical(body)}"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    # surrogatepass: a malformed value still yields a (non-matching) string, never an exception.
    pairs = sorted((quote(k, safe="-_.~", errors="surrogatepass"), quote(v, safe="-_.~", errors="surrogatepass"))
                   for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def v2_message(timestamp: str, method: str, path: str, query: Iterable[tuple[str, str]], body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"v2\n{timestamp}\n{method.upper()}\n{path}\n{canonical_query(query)}\n{digest}"


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def normalized(signature: str) -> str | None:
    """The signature as compared (lowercase hex), or None if it cannot be one."""
    candidate = signature.strip().lower()
    return candidate if _HEX_SHA256.fullmatch(candidate) else None


def matches(secret: str, message: str, signature: str) -> bool:
    candidate = normalized(signature)
    return candidate is not None and hmac.compare_digest(sign(secret, message), candidate)
