"""Merchants, their API keys and receiving-address configuration (operator actions, used by
the admin CLI and the local stack). Secrets are returned once, at creation, and stored
KMS-encrypted."""

from __future__ import annotations

import base64
import secrets
import time
from decimal import Decimal
from typing import Any, Literal

from usdt_gateway import hdwallet, store
from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address
from usdt_gateway.auth import SCOPES
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.money import parse_amount
from usdt_gateway.secretbox import encrypt

Family = Literal["evm", "tron"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def webhook_secret_context(merchant_id: str) -> dict[str, str]:
    return {"merchantId": merchant_id, "purpose": "webhook"}


def _new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_merchant(name: str, *, webhook_url: str | None = None) -> dict[str, str]:
    merchant_id = "m_" + secrets.token_hex(8)
    webhook_secret = _new_webhook_secret()
    pk, sk = store.merchant_key(merchant_id)
    # none -> created: merchant ids are random, a clash means a retry of this very call.
    store.put_new({
        "pk": pk, "sk": sk, "merchantId": merchant_id, "name": name, "webhookUrl": webhook_url,
        "webhookSecretCipher": encrypt(webhook_secret, webhook_secret_context(merchant_id)),
        "createdAt": _now_ms(),
    })
    return {"merchantId": merchant_id, "webhookSecret": webhook_secret}


def rotate_webhook_secret(merchant_id: str, *, overlap_seconds: int = 86_400) -> dict[str, Any]:
    """A new webhook secret; for `overlap_seconds` the old one signs next to it, so the merchant's
    receiver keeps verifying until it switches. Returned once, like at creation."""
    if not 0 <= overlap_seconds <= 30 * 86_400:
        raise InvalidRequest("overlap must be between 0 and 2592000 seconds (30 days)", code="INVALID_OVERLAP")
    profile = get_merchant(merchant_id)
    secret = _new_webhook_secret()
    until = _now_ms() + overlap_seconds * 1000
    pk, sk = store.merchant_key(merchant_id)
    # secret A -> secret B (A kept as the previous one), only from the secret read: of two
    # concurrent rotations one wins, and the other's secret is never stored.
    done = store.update(pk, sk, set_values={
        "webhookSecretCipher": encrypt(secret, webhook_secret_context(merchant_id)),
        "previousWebhookSecretCipher": profile["webhookSecretCipher"], "previousWebhookSecretUntil": until,
        "webhookSecretRotatedAt": _now_ms(),
    }, condition="webhookSecretCipher = :read", values={":read": profile["webhookSecretCipher"]})
    if done is None:
        raise Conflict("the webhook secret was rotated concurrently; run the rotation again",
                       code="ROTATION_CONFLICT")
    return {"merchantId": merchant_id, "webhookSecret": secret, "previousValidUntil": until}


def get_merchant(merchant_id: str) -> dict[str, Any]:
    item = store.get(*store.merchant_key(merchant_id))
    if item is None:
        raise NotFound(f"no merchant '{merchant_id}'", code="MERCHANT_NOT_FOUND")
    return item


def create_api_key(merchant_id: str, scopes: tuple[str, ...] = SCOPES, *, rate_limit: int | None = None,
                   label: str = "", v2_only: bool = False) -> dict[str, str]:
    """A new key; `v2_only` refuses Signature-V1 requests for it, whose signature binds neither
    method nor path (a captured V1 GET could be replayed as a body-less POST within the window)."""
    get_merchant(merchant_id)
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise InvalidRequest(f"scopes must be a non-empty subset of {', '.join(SCOPES)}", code="INVALID_SCOPES")
    api_key = "ak_" + secrets.token_urlsafe(18)
    secret_key = "sk_" + secrets.token_urlsafe(32)
    pk, sk = store.api_key_key(api_key)
    created = _now_ms()
    store.put_new({
        "pk": pk, "sk": sk, "apiKey": api_key, "merchantId": merchant_id, "scopes": sorted(scopes),
        "status": "active", "label": label, "rateLimit": rate_limit, "createdAt": created, "v2Only": v2_only,
        "secretCipher": encrypt(secret_key, {"apiKey": api_key, "merchantId": merchant_id}),
        "gsi1pk": store.keys_index_pk(merchant_id), "gsi1sk": f"{created:013d}#{api_key}",
    })
    return {"merchantId": merchant_id, "apiKey": api_key, "secretKey": secret_key}


def list_api_keys(merchant_id: str) -> list[dict[str, Any]]:
    items, _ = store.query_index(store.keys_index_pk(merchant_id), sk_from="0", sk_to="~", limit=1000,
                                 newest_first=False)
    return [{k: i.get(k) for k in ("apiKey", "status", "scopes", "label", "createdAt", "expiresAt")}
            | {"v2Only": bool(i.get("v2Only"))} for i in items]


def revoke_api_key(api_key: str) -> None:
    pk, sk = store.api_key_key(api_key)
    # active -> revoked. A revoked key stays revoked.
    done = store.update(pk, sk, set_values={"status": "revoked", "revokedAt": _now_ms()},
                        condition="#st = :active", names={"#st": "status"}, values={":active": "active"})
    if done is None:
        raise Conflict(f"API key {api_key} is unknown or already revoked", code="KEY_NOT_ACTIVE")


def rotate_api_key(api_key: str, *, overlap_seconds: int = 86_400) -> dict[str, str]:
    """New key with the same merchant and scopes; the old one keeps working for the overlap, so
    clients switch without downtime."""
    pk, sk = store.api_key_key(api_key)
    old = store.get(pk, sk)
    if old is None or old.get("status") != "active":
        raise Conflict(f"API key {api_key} is unknown or not active", code="KEY_NOT_ACTIVE")
    new = create_api_key(old["merchantId"], tuple(old["scopes"]), rate_limit=old.get("rateLimit"),
                         label=str(old.get("label") or ""), v2_only=bool(old.get("v2Only")))
    # active -> active with an expiry (the rotation's overlap).
    store.update(pk, sk, set_values={"expiresAt": _now_ms() + overlap_seconds * 1000, "rotatedTo": new["apiKey"]},
                 condition="#st = :active", names={"#st": "status"}, values={":active": "active"})
    return new


def configure_xpub(merchant_id: str, family: Family, xpub: str) -> dict[str, Any]:
    """Each order gets the next address derived from an account-level xpub (watch-only)."""
    get_merchant(merchant_id)
    try:
        hdwallet.parse_xpub(xpub)
    except ValueError as exc:
        raise InvalidRequest(f"xpub: {exc}", code="INVALID_XPUB") from exc
    pk, sk = store.address_config_key(merchant_id, family)
    current = store.get(pk, sk) or {}
    # Re-registering the same xpub keeps its index, so no address is ever handed out twice.
    next_index = int(current.get("nextIndex", 0)) if current.get("xpub") == xpub else 0
    item = {"pk": pk, "sk": sk, "mode": "xpub", "family": family, "xpub": xpub, "nextIndex": next_index,
            "updatedAt": _now_ms()}
    store.put(item)
    return item


def configure_fixed(merchant_id: str, family: Family, address: str, *, tag_step: str = "0.01",
                    max_tags: int = 100) -> dict[str, Any]:
    """One receiving address; concurrent orders get amounts that differ by a tag step."""
    get_merchant(merchant_id)
    try:
        address = normalize_tron_address(address) if family == "tron" else normalize_evm_address(address)
        step = parse_amount(tag_step)
    except ValueError as exc:
        raise InvalidRequest(f"fixed address config: {exc}", code="INVALID_ADDRESS_CONFIG") from exc
    if not 1 <= max_tags <= 10_000 or step > Decimal(1):
        raise InvalidRequest("tag step must be at most 1 and max tags between 1 and 10000",
                             code="INVALID_ADDRESS_CONFIG")
    pk, sk = store.address_config_key(merchant_id, family)
    item = {"pk": pk, "sk": sk, "mode": "fixed", "family": family, "address": address, "tagStep": str(step),
            "maxTags": max_tags, "updatedAt": _now_ms()}
    store.put(item)
    return item
