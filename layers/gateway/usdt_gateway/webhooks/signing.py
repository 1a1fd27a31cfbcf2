"""Standard Webhooks signatures (https://www.standardwebhooks.com/), so merchants can verify our
webhooks with any off-the-shelf Standard Webhooks library.

    signed content:      "{webhook-id}.{webhook-timestamp}.{raw body}"
    key:                 base64-decode(secret without its "whsec_" prefix)
    webhook-signature:   "v1," + base64(HMAC-SHA256(key, signed content)), space-separated, one per secret

During a secret rotation the old secret keeps signing next to the new one, so receivers that
still hold the old secret keep verifying until they switch. Errors never quote a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from secrets import token_bytes

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32


def secret_key(secret: str) -> bytes:
    """The HMAC key of a "whsec_" secret. Padding may be left off, as the reference libraries allow."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret must start with '{SECRET_PREFIX}'")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"webhook secret is not valid base64 after '{SECRET_PREFIX}'") from None
    if not key:
        raise ValueError(f"webhook secret has no key after '{SECRET_PREFIX}'")
    return key


def _check_message(msg_id: str, timestamp: int) -> None:
    # The id and timestamp travel as header values: no spaces or control characters.
    if not msg_id or not all("!" <= ch <= "~" for ch in msg_id):
        raise ValueError("webhook id must be non-empty printable ASCII without spaces")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("webhook timestamp must be a non-negative integer (seconds)")


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One "v1,<base64>" signature of body under secret."""
    _check_message(msg_id, timestamp)
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt; secrets[0] is the current secret, the rest are still
    being rotated out and sign too."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("no webhook secret to sign with")
    unique = list(dict.fromkeys(secrets))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in unique),
        "content-type": "application/json",
    }


def new_secret() -> str:
    """A new secret: "whsec_" + base64 of 32 random bytes (the spec asks for 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode()
