"""Merchants, their API keys and receiving-address configuration (operator actions, used by
the admin CLI and the local stack). Secrets are returned once, at creation, and stored
KMS-encrypted."""

from __future__ import annotations

import base64
import secrets
from decimal import Decimal
from typing import Any, Literal

from usdt_gateway import clock, hdwallet, store
from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address
from usdt_gateway.auth import DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS, SCOPES
from usdt_gateway.config import networks
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.money import decimal_places, parse_amount, plain
from usdt_gateway.secretbox import encrypt

Family = Literal["evm", "tron"]


def webhook_secret_context(merchant_id: str) -> dict[str, str]:
    return {"merchantId": merchant_id, "purpose": "webhook"}


def _new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_merchant(name: str, *, webhook_url: str | None = None) -> dict[str, str]:
    merchant_id = "m_" + secrets.token_hex(8)
    webhook_secret = _new_webhook_secret()
    pk, sk = store.merchant_key(merchant_id)
    # none -> created: merchant ids are random, a clash means a retry of this very call.
    store.put_new(
        {
            "pk": pk,
            "sk": sk,
            "merchantId": merchant_id,
            "name": name,
            "webhookUrl": webhook_url,
            "webhookSecretCipher": encrypt(webhook_secret, webhook_secret_context(merchant_id)),
            "createdAt": clock.now_ms(),
        }
    )
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
            "previousWebhookSecretCipher": profile["webhookSecretCipher"],
            "previousWebhookSecretUntil": until,
            "webhookSecretRotatedAt": clock.now_ms(),
        },
        condition="webhookSecretCipher = :read",
        values={":read": profile["webhookSecretCipher"]},
    )
    if done is None:
        raise Conflict("the webhook secret was rotated concurrently; run the rotation again", code="ROTATION_CONFLICT")
    return {"merchantId": merchant_id, "webhookSecret": secret, "previousValidUntil": until}


def get_merchant(merchant_id: str) -> dict[str, Any]:
    item = store.get(*store.merchant_key(merchant_id))
    if item is None:
        raise NotFound(f"no merchant '{merchant_id}'", code="MERCHANT_NOT_FOUND")
    return item


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
    pk, sk = store.api_key_key(api_key)
    created = clock.now_ms()
    store.put_new(
        {
            "pk": pk,
            "sk": sk,
            "apiKey": api_key,
            "merchantId": merchant_id,
            "scopes": sorted(scopes),
            "status": "active",
            "label": label,
            "rateLimit": rate_limit,
            "createdAt": created,
            "v2Only": v2_only,
            "v1Everywhere": v1_everywhere,
            "v1RecvWindow": v1_recv_window_ms,
            "secretCipher": encrypt(secret_key, {"apiKey": api_key, "merchantId": merchant_id}),
            "gsi1pk": store.keys_index_pk(merchant_id),
            "gsi1sk": f"{created:013d}#{api_key}",
        }
    )
    return {"merchantId": merchant_id, "apiKey": api_key, "secretKey": secret_key}


def list_api_keys(merchant_id: str) -> list[dict[str, Any]]:
    items = store.query_index_all(store.keys_index_pk(merchant_id), sk_to="~")  # every key, oldest first
    return [
        {k: i.get(k) for k in ("apiKey", "status", "scopes", "label", "createdAt", "expiresAt")}
        | {
            "v2Only": bool(i.get("v2Only")),
            "v1Everywhere": bool(i.get("v1Everywhere")),
            "v1RecvWindow": i.get("v1RecvWindow"),
        }
        for i in items
    ]


def revoke_api_key(api_key: str) -> None:
    pk, sk = store.api_key_key(api_key)
    # active -> revoked. A revoked key stays revoked.
    done = store.update(
        pk,
        sk,
        set_values={"status": "revoked", "revokedAt": clock.now_ms()},
        condition="#st = :active",
        names={"#st": "status"},
        values={":active": "active"},
    )
    if done is None:
        raise Conflict(f"API key {api_key} is unknown or already revoked", code="KEY_NOT_ACTIVE")


def rotate_api_key(api_key: str, *, overlap_seconds: int = 86_400) -> dict[str, str]:
    """New key with the same merchant and scopes; the old one keeps working for the overlap, so
    clients switch without downtime."""
    pk, sk = store.api_key_key(api_key)
    old = store.get(pk, sk)
    if old is None or old.get("status") != "active":
        raise Conflict(f"API key {api_key} is unknown or not active", code="KEY_NOT_ACTIVE")
    new = create_api_key(
        old["merchantId"],
        tuple(old["scopes"]),
        rate_limit=old.get("rateLimit"),
        label=str(old.get("label") or ""),
        v2_only=bool(old.get("v2Only")),
        v1_everywhere=bool(old.get("v1Everywhere")),
        v1_recv_window_ms=None if old.get("v1RecvWindow") is None else int(old["v1RecvWindow"]),
    )
    # active -> active with an expiry (the rotation's overlap).
    store.update(
        pk,
        sk,
        set_values={"expiresAt": clock.now_ms() + overlap_seconds * 1000, "rotatedTo": new["apiKey"]},
        condition="#st = :active",
        names={"#st": "status"},
        values={":active": "active"},
    )
    return new


def configure_xpub(merchant_id: str, family: Family, xpub: str) -> dict[str, Any]:
    """Each order gets the next address derived from an account-level xpub (watch-only)."""
    get_merchant(merchant_id)
    try:
        hdwallet.parse_xpub(xpub)
    except ValueError as exc:
        raise InvalidRequest(f"xpub: {exc}", code="INVALID_XPUB") from exc
    return _replace_address_config(merchant_id, family, {"mode": "xpub", "family": family, "xpub": xpub})


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
    return _replace_address_config(
        merchant_id,
        family,
        {"mode": "fixed", "family": family, "address": address, "tagStep": plain(step), "maxTags": max_tags},
    )


def _replace_address_config(merchant_id: str, family: Family, config: dict[str, Any]) -> dict[str, Any]:
    """Write a new address config. An xpub's derivation index never goes back: the index of the
    xpub being replaced is remembered under the key's fingerprint (XPUB#), and an xpub set
    (again) resumes at the highest index it ever reached, so no address is handed out twice."""
    pk, sk = store.address_config_key(merchant_id, family)
    for _ in range(5):
        current = store.get(pk, sk)
        item = {"pk": pk, "sk": sk, **config, "updatedAt": clock.now_ms()}
        parts: list[dict[str, Any]] = []
        if current is not None and current.get("mode") == "xpub":
            parts += _remember_index(family, current["xpub"], int(current["nextIndex"]))
        if config["mode"] == "xpub":
            item["nextIndex"] = _resume_index(family, config["xpub"], current)
        parts.insert(0, _config_part(item, current))
        try:
            store.transact(parts)
        except store.TransactionConflict:
            continue  # an order took an index, or another change landed: read again
        return item
    raise Conflict(
        "the address configuration kept changing while it was written; run the command again", code="CONFIG_CONFLICT"
    )


def _config_part(item: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    if current is None:
        return store.put_part(item)  # none -> configured
    # config as read -> replaced; fails if an order took the next index meanwhile (it is then remembered
    # on the next attempt) or another change landed first.
    condition, values = "updatedAt = :read", {":read": current["updatedAt"]}
    if "nextIndex" in current:
        condition += " AND nextIndex = :n"
        values[":n"] = current["nextIndex"]
    return store.put_part(item, condition=condition, values=values)


def _remember_index(family: Family, xpub: str, next_index: int) -> list[dict[str, Any]]:
    """The parts that raise the xpub's remembered index to `next_index` (none if it is there already)."""
    pk, sk = store.xpub_index_key(family, hdwallet.key_fingerprint(xpub))
    known = store.get(pk, sk)
    if known is None:
        # none -> remembered
        return [store.put_part({"pk": pk, "sk": sk, "family": family, "nextIndex": next_index})]
    if int(known["nextIndex"]) >= next_index:
        return []
    # remembered n -> a higher n, only from the value read: the index only ever grows.
    return [
        store.update_part(
            pk,
            sk,
            expression="SET nextIndex = :next",
            condition="nextIndex = :read",
            values={":next": next_index, ":read": known["nextIndex"]},
        )
    ]


def _resume_index(family: Family, xpub: str, current: dict[str, Any] | None) -> int:
    """The highest next index the xpub ever had: in the config being replaced, or remembered."""
    fingerprint = hdwallet.key_fingerprint(xpub)
    live = 0
    if current is not None and current.get("mode") == "xpub":
        live = int(current["nextIndex"]) if hdwallet.key_fingerprint(current["xpub"]) == fingerprint else 0
    known = store.get(*store.xpub_index_key(family, fingerprint))
    return max(live, int(known["nextIndex"]) if known else 0)
