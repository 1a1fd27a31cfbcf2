"""Verify a webhook from the usdt-gateway before acting on it.

The gateway signs per Standard Webhooks (https://www.standardwebhooks.com/): headers webhook-id,
webhook-timestamp (Unix seconds) and webhook-signature (space-separated "v1,<base64>" entries),
each signature an HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{raw body}" keyed with the
base64 part of the "whsec_..." secret. Any Standard Webhooks library verifies them as well.

Pass the raw body exactly as received (before any JSON parsing). Several secrets may be given
while you rotate; while the gateway rotates, it sends a signature per secret. Deduplicate
deliveries on webhook-id: a retry repeats the id with a new timestamp and signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["WebhookVerificationError", "verify_webhook"]

_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh webhook: answer it with a 4xx and ignore it."""


def _key(secret: str) -> bytes:
    if not secret.startswith(_PREFIX):
        raise ValueError(f"a webhook secret starts with '{_PREFIX}'")
    encoded = secret[len(_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the webhook secret is not valid base64 after '{_PREFIX}'") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def _signatures(header: str) -> list[bytes]:
    """The v1 signatures of a webhook-signature header; other versions and junk are skipped."""
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | Sequence[str],
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """The webhook's JSON event if a v1 signature verifies under one of the secrets and the
    timestamp is within tolerance_s of now (either way); otherwise WebhookVerificationError.
    A malformed secret is a configuration error: ValueError."""
    keys = [_key(secret)] if isinstance(secret, str) else [_key(s) for s in secret]
    if not keys:
        raise ValueError("no webhook secret given")
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "").strip()
    timestamp = lowered.get("webhook-timestamp", "").strip()
    signature_header = lowered.get("webhook-signature", "")
    if not (msg_id and timestamp and signature_header.strip()):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise WebhookVerificationError("webhook-timestamp is not an integer")
    current = time.time() if now is None else now
    age = current - int(timestamp)
    if age > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if age < -tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too far in the future")

    raw = body.encode() if isinstance(body, str) else bytes(body)
    content = f"{msg_id}.{timestamp}.".encode() + raw
    expected = [hmac.new(key, content, hashlib.sha256).digest() for key in keys]
    # Every candidate is compared (constant time each), whichever matches first.
    matched = False
    for candidate in _signatures(signature_header):
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise WebhookVerificationError("no valid signature")

    try:
        event = json.loads(raw)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return event
