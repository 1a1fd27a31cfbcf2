"""Merchants, their API keys and receiving-address configuration (operator actions, used by
the admin CLI and the local stack). Secrets are returned once, at creation, and stored
KMS-encrypted."""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from decimal import Decimal
from typing import Any

from usdt_gateway import clock, hdwallet, store
from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address
from usdt_gateway.auth import DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS, SCOPES
from usdt_gateway.config import networks
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.merchant_records import (
    AddressConfig,
    ApiKey,
    FixedConfig,
    KeyStatus,
    MerchantProfile,
    XpubConfig,
    XpubIndex,
    address_config_from_item,
)
from usdt_gateway.money import decimal_places, parse_amount, plain
from usdt_gateway.networks import Family
from usdt_gateway.secretbox import encrypt


def webhook_secret_context(merchant_id: str) -> dict[str, str]:
    return {"merchantId": merchant_id, "purpose": "webhook"}


def _new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_merchant(name: str, *, webhook_url: str | None = None) -> dict[str, str]:
    merchant_id = "m_" + secrets.token_hex(8)
    webhook_secret = _new_webhook_secret()
    profile = MerchantProfile(
        merchant_id=merchant_id,
        name=name,
        webhook_url=webhook_url,
        webhook_secret_cipher=encrypt(webhook_secret, webhook_secret_context(merchant_id)),
        created_at=clock.now_ms(),
    )
    # none -> created: merchant ids are random, a clash means a retry of this very call.
    store.put_new(profile.to_item())
    return {"merchantId": merchant_id, "webhookSecret": webhook_secret}


def rotate_webhook_secret(merchant_id: str, *, overlap_seconds: int = 86_400) -> dict[str, Any]:
    """A new webhook secret; for `overlap_seconds` the old one signs next to it, so the merchant's
    receiver keeps verifying until it switches. Returned once, like at creation."""
    if not 0 <= overlap_seconds <= 30 * 86_400:
        raise InvalidRequest("overlap must be between 0 and 2592000 seconds (30 days)", code="INVALID_OVERLAP")
    profile = get_merchant(merchant_id)
    secret = _new_webhook_secret()
    until = clock.now_ms() + overlap_seconds * 1000
    pk, sk = store.merchant_key(merchant_id)
    # secret A -> secret B (A kept as the previous one), only from the secret read: of two
    # concurrent rotations one wins, and the other's secret is never stored.
    done = store.update(
        pk,
        sk,
        set_values={
            "webhookSecretCipher": encrypt(secret, webhook_secret_context(merchant_id)),
            "previousWebhookSecretCipher": profile.webhook_secret_cipher,
            "previousWebhookSecretUntil": until,
            "webhookSecretRotatedAt": clock.now_ms(),
        },
        condition="webhookSecretCipher = :read",
        values={":read": profile.webhook_secret_cipher},
    )
    if done is None:
        raise Conflict("the webhook secret was rotated concurrently; run the rotation again", code="ROTATION_CONFLICT")
    return {"merchantId": merchant_id, "webhookSecret": secret, "previousValidUntil": until}


def get_merchant(merchant_id: str) -> MerchantProfile:
    item = store.get(*store.merchant_key(merchant_id))
    if item is None:
        raise NotFound(f"no merchant '{merchant_id}'", code="MERCHANT_NOT_FOUND")
    return MerchantProfile.from_item(item)


def create_api_key(
    merchant_id: str,
    scopes: tuple[str, ...] = SCOPES,
    *,
    rate_limit: int | None = None,
    label: str = "",
    v2_only: bool = False,
    v1_everywhere: bool = False,
    v1_recv_window_ms: int | None = None,
) -> dict[str, str]:
    """A new key. Signature-V1 binds neither method nor path nor Recv-Window, so by default the key
    takes it only to create and to get an order, with at most the default receive window:
    `v2_only` refuses it everywhere; `v1_everywhere` (unsafe: a captured V1 GET could then be
    replayed as a cancel) takes it on every route; `v1_recv_window_ms` gives V1 requests a longer
    window (unsafe too: a captured V1 request stays usable that long)."""
    get_merchant(merchant_id)
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise InvalidRequest(f"scopes must be a non-empty subset of {', '.join(SCOPES)}", code="INVALID_SCOPES")
    if v2_only and (v1_everywhere or v1_recv_window_ms is not None):
        raise InvalidRequest("a V2-only key takes no Signature-V1 options", code="INVALID_KEY_OPTIONS")
    if v1_recv_window_ms is not None and not DEFAULT_RECV_WINDOW_MS <= v1_recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise InvalidRequest(
            f"the V1 receive window must be between {DEFAULT_RECV_WINDOW_MS} and {MAX_RECV_WINDOW_MS} ms",
            code="INVALID_KEY_OPTIONS",
        )
    api_key = "ak_" + secrets.token_urlsafe(18)
    secret_key = "sk_" + secrets.token_urlsafe(32)
    key = ApiKey(
        api_key=api_key,
        merchant_id=merchant_id,
        scopes=tuple(sorted(scopes)),
        status=KeyStatus.ACTIVE,
        secret_cipher=encrypt(secret_key, {"apiKey": api_key, "merchantId": merchant_id}),
        created_at=clock.now_ms(),
        label=label,
        rate_limit=rate_limit,
        v2_only=v2_only,
        v1_everywhere=v1_everywhere,
        v1_recv_window_ms=v1_recv_window_ms,
    )
    store.put_new(key.to_item())
    return {"merchantId": merchant_id, "apiKey": api_key, "secretKey": secret_key}


def list_api_keys(merchant_id: str) -> list[dict[str, Any]]:
    items = store.query_index_all(store.keys_index_pk(merchant_id), sk_to="~")  # every key, oldest first
    return [
        {
            "apiKey": key.api_key,
            "status": key.status.value,
            "scopes": list(key.scopes),
            "label": key.label,
            "createdAt": key.created_at,
            "expiresAt": key.expires_at,
            "v2Only": key.v2_only,
            "v1Everywhere": key.v1_everywhere,
            "v1RecvWindow": key.v1_recv_window_ms,
        }
        for key in map(ApiKey.from_item, items)
    ]


def revoke_api_key(api_key: str) -> None:
    pk, sk = store.api_key_key(api_key)
    # active -> revoked. A revoked key stays revoked.
    done = store.update(
        pk,
        sk,
        set_values={"status": KeyStatus.REVOKED.value, "revokedAt": clock.now_ms()},
        condition="#st = :active",
        names={"#st": "status"},
        values={":active": KeyStatus.ACTIVE.value},
    )
    if done is None:
        raise Conflict(f"API key {api_key} is unknown or already revoked", code="KEY_NOT_ACTIVE")


def rotate_api_key(api_key: str, *, overlap_seconds: int = 86_400) -> dict[str, str]:
    """New key with the same merchant and scopes; the old one keeps working for the overlap, so
    clients switch without downtime."""
    pk, sk = store.api_key_key(api_key)
    item = store.get(pk, sk)
    old = None if item is None else ApiKey.from_item(item)
    if old is None or old.status != KeyStatus.ACTIVE:
        raise Conflict(f"API key {api_key} is unknown or not active", code="KEY_NOT_ACTIVE")
    new = create_api_key(
        old.merchant_id,
        old.scopes,
        rate_limit=old.rate_limit,
        label=old.label,
        v2_only=old.v2_only,
        v1_everywhere=old.v1_everywhere,
        v1_recv_window_ms=old.v1_recv_window_ms,
    )
    # active -> active with an expiry (the rotation's overlap).
    store.update(
        pk,
        sk,
        set_values={"expiresAt": clock.now_ms() + overlap_seconds * 1000, "rotatedTo": new["apiKey"]},
        condition="#st = :active",
        names={"#st": "status"},
        values={":active": KeyStatus.ACTIVE.value},
    )
    return new


def configure_xpub(merchant_id: str, family: Family, xpub: str) -> dict[str, Any]:
    """Each order gets the next address derived from an account-level xpub (watch-only)."""
    get_merchant(merchant_id)
    try:
        hdwallet.parse_xpub(xpub)
    except ValueError as exc:
        raise InvalidRequest(f"xpub: {exc}", code="INVALID_XPUB") from exc
    # The index and time are set when it is written.
    return _replace_address_config(XpubConfig(merchant_id, family, xpub, next_index=0, updated_at=0))


def configure_fixed(
    merchant_id: str, family: Family, address: str, *, tag_step: str = "0.01", max_tags: int = 100
) -> dict[str, Any]:
    """One receiving address; concurrent orders get amounts that differ by a tag step."""
    get_merchant(merchant_id)
    try:
        address = normalize_tron_address(address) if family == "tron" else normalize_evm_address(address)
        step = parse_amount(tag_step)
    except ValueError as exc:
        raise InvalidRequest(f"fixed address config: {exc}", code="INVALID_ADDRESS_CONFIG") from exc
    if not 1 <= max_tags <= 10_000 or step > Decimal(1):
        raise InvalidRequest(
            "tag step must be at most 1 and max tags between 1 and 10000", code="INVALID_ADDRESS_CONFIG"
        )
    # Each tagged amount must be a whole number of base units on every network it may be used on.
    for network in networks().values():
        if network.family == family and decimal_places(step) > network.decimals:
            raise InvalidRequest(
                f"tag step {plain(step)} is finer than the smallest unit of {network.name} "
                f"({network.decimals} decimals); use a step of at least "
                f"{plain(Decimal(1).scaleb(-network.decimals))}",
                code="INVALID_ADDRESS_CONFIG",
            )
    # Stored in plain notation: str() would write "1E-7", which parse_amount refuses.
    return _replace_address_config(FixedConfig(merchant_id, family, address, plain(step), max_tags, updated_at=0))


def _replace_address_config(config: AddressConfig) -> dict[str, Any]:
    """Write a new address config. An xpub's derivation index never goes back: the index of the
    xpub being replaced is remembered under the key's fingerprint (XPUB#), and an xpub set
    (again) resumes at the highest index it ever reached, so no address is handed out twice."""
    pk, sk = store.address_config_key(config.merchant_id, config.family)
    for _ in range(5):
        item = store.get(pk, sk)
        current = None if item is None else address_config_from_item(item)
        new: AddressConfig = replace(config, updated_at=clock.now_ms())
        parts: list[dict[str, Any]] = []
        if isinstance(current, XpubConfig):
            parts += _remember_index(current.family, current.xpub, current.next_index)
        if isinstance(new, XpubConfig):
            new = replace(new, next_index=_resume_index(new.family, new.xpub, current))
        parts.insert(0, _config_part(new, current))
        try:
            store.transact(parts)
        except store.TransactionConflict:
            continue  # an order took an index, or another change landed: read again
        return new.to_item()
    raise Conflict(
        "the address configuration kept changing while it was written; run the command again", code="CONFIG_CONFLICT"
    )


def _config_part(new: AddressConfig, current: AddressConfig | None) -> dict[str, Any]:
    if current is None:
        return store.put_part(new.to_item())  # none -> configured
    # config as read -> replaced; fails if an order took the next index meanwhile (it is then remembered
    # on the next attempt) or another change landed first.
    condition, values = "updatedAt = :read", {":read": current.updated_at}
    if isinstance(current, XpubConfig):
        condition += " AND nextIndex = :n"
        values[":n"] = current.next_index
    return store.put_part(new.to_item(), condition=condition, values=values)


def _remember_index(family: Family, xpub: str, next_index: int) -> list[dict[str, Any]]:
    """The parts that raise the xpub's remembered index to `next_index` (none if it is there already)."""
    fingerprint = hdwallet.key_fingerprint(xpub)
    pk, sk = store.xpub_index_key(family, fingerprint)
    item = store.get(pk, sk)
    if item is None:
        # none -> remembered
        return [store.put_part(XpubIndex(family, fingerprint, next_index).to_item())]
    known = XpubIndex.from_item(item)
    if known.next_index >= next_index:
        return []
    # remembered n -> a higher n, only from the value read: the index only ever grows.
    return [
        store.update_part(
            pk,
            sk,
            expression="SET nextIndex = :next",
            condition="nextIndex = :read",
            values={":next": next_index, ":read": known.next_index},
        )
    ]


def _resume_index(family: Family, xpub: str, current: AddressConfig | None) -> int:
    """The highest next index the xpub ever had: in the config being replaced, or remembered."""
    fingerprint = hdwallet.key_fingerprint(xpub)
    live = 0
    if isinstance(current, XpubConfig) and hdwallet.key_fingerprint(current.xpub) == fingerprint:
        live = current.next_index
    known = store.get(*store.xpub_index_key(family, fingerprint))
    return max(live, XpubIndex.from_item(known).next_index if known else 0)
