"""Request signatures. Pure functions shared by the server, the tests and client code.

Signature-V1 (compatible with the simple reference client):
    hex(HMAC-SHA256(secret, Request-Time + json.dumps(body, sort_keys=True)))
    where a request without a body signs Request-Time + '""' (json.dumps("")), and each number
    of the body is written exactly as the body writes it (the handler reads that text too).
    Protects: the body's content and the timestamp. Does NOT bind the method, the path, the query
    string or Recv-Window: a captured signature could be replayed against another endpoint that
    takes the same body (every GET shares the body ""). So the gateway accepts it only on create
    order and get order, unless the key opts in (docs/signing.md), and gives a V1 request at most
    the default receive window.

Signature-V2 (recommended):
    hex(HMAC-SHA256(secret, "v2\\n" + Request-Time + "\\n" + METHOD + "\\n" + path + "\\n"
                                   + canonical_query + "\\n" + hex(SHA-256(raw body bytes))
                                   [+ "\\nrecv-window:" + Recv-Window]      when that header is sent
                                   [+ "\\nrequest-nonce:" + Request-Nonce]  when that header is sent))
    Protects: timestamp, method, path, every query parameter, the exact body bytes, and the
    receive window and nonce when sent (a six-line signature is checked with neither header).
    canonical_query: parameters sorted by name then value, each name and value percent-encoded
    (RFC 3986 unreserved characters kept), joined as name=value with '&'; empty when there is none.
    path: the path from /v1 on, as sent (without the stage prefix of an execute-api URL).

Both: the timestamp must lie within the receive window (default 5 s, max 60 s) in the past and
at most 1 s in the future; comparisons are constant-time. Writes that are not idempotent refuse a
signature they have already seen (auth.py), so a replay inside the window changes nothing.
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
    pairs = sorted(
        (quote(k, safe="-_.~", errors="surrogatepass"), quote(v, safe="-_.~", errors="surrogatepass"))
        for k, v in params
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


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
    digest = hashlib.sha256(body).hexdigest()
    message = f"v2\n{timestamp}\n{method.upper()}\n{path}\n{canonical_query(query)}\n{digest}"
    if recv_window is not None:
        message += f"\nrecv-window:{recv_window}"
    if request_nonce is not None:
        message += f"\nrequest-nonce:{request_nonce}"
    return message


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def normalized(signature: str) -> str | None:
    """The signature as compared and remembered (lowercase hex), or None if it cannot be one."""
    candidate = signature.strip().lower()
    return candidate if _HEX_SHA256.fullmatch(candidate) else None


def matches(secret: str, message: str, signature: str) -> bool:
    candidate = normalized(signature)
    return candidate is not None and hmac.compare_digest(sign(secret, message), candidate)
