"""The stored items of a merchant, typed: the profile (MERCHANT#/PROFILE), its API keys
(APIKEY#/KEY), its receiving-address configuration per chain family (MERCHANT#/ADDRCFG#) and an
xpub's remembered derivation index (XPUB#/INDEX). `from_item` reads an item as store.get returns
it; `to_item` writes the same attributes back (None attributes are left out by store.put*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from usdt_gateway import store
from usdt_gateway.networks import Family


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class DisabledUrl:
    """An entry of the profile's webhookDisabledUrls map (url -> this)."""

    disabled_at: int
    reason: str

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DisabledUrl:
        return cls(int(item["disabledAt"]), str(item["reason"]))

    def to_item(self) -> dict[str, Any]:
        return {"disabledAt": self.disabled_at, "reason": self.reason}


@dataclass(frozen=True)
class MerchantProfile:
    merchant_id: str
    name: str
    webhook_secret_cipher: str
    created_at: int
    webhook_url: str | None = None
    webhook_url_updated_at: int | None = None
    # The secret signing next to the current one until previous_webhook_secret_until (a rotation).
    previous_webhook_secret_cipher: str | None = None
    previous_webhook_secret_until: int | None = None
    webhook_secret_rotated_at: int | None = None
    disabled_urls: Mapping[str, DisabledUrl] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> MerchantProfile:
        return cls(
            merchant_id=item["merchantId"],
            name=item["name"],
            webhook_secret_cipher=item["webhookSecretCipher"],
            created_at=int(item["createdAt"]),
            webhook_url=item.get("webhookUrl") or None,
            webhook_url_updated_at=_opt_int(item.get("webhookUrlUpdatedAt")),
            previous_webhook_secret_cipher=item.get("previousWebhookSecretCipher") or None,
            previous_webhook_secret_until=_opt_int(item.get("previousWebhookSecretUntil")),
            webhook_secret_rotated_at=_opt_int(item.get("webhookSecretRotatedAt")),
            disabled_urls={u: DisabledUrl.from_item(d) for u, d in (item.get("webhookDisabledUrls") or {}).items()},
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.merchant_key(self.merchant_id)
        return {
            "pk": pk,
            "sk": sk,
            "merchantId": self.merchant_id,
            "name": self.name,
            "webhookUrl": self.webhook_url,
            "webhookUrlUpdatedAt": self.webhook_url_updated_at,
            "webhookSecretCipher": self.webhook_secret_cipher,
            "previousWebhookSecretCipher": self.previous_webhook_secret_cipher,
            "previousWebhookSecretUntil": self.previous_webhook_secret_until,
            "webhookSecretRotatedAt": self.webhook_secret_rotated_at,
            # The map is created by its first entry (store.set_map_entry), so a new profile has none.
            "webhookDisabledUrls": {u: d.to_item() for u, d in self.disabled_urls.items()} or None,
            "createdAt": self.created_at,
        }

    def previous_secret_signs(self, now_ms: int) -> bool:
        """Whether the previous secret still signs next to the current one (a rotation's overlap)."""
        return bool(self.previous_webhook_secret_cipher) and (self.previous_webhook_secret_until or 0) > now_ms


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ApiKey:
    """An API key. The rate-limit meter's attributes on the same item (rlWindow, rlCount,
    blockedUntil) belong to store.meter and are not part of it."""

    api_key: str
    merchant_id: str
    scopes: tuple[str, ...]
    status: KeyStatus
    secret_cipher: str
    created_at: int
    label: str = ""
    rate_limit: int | None = None  # requests a minute; None: the deployment's default
    v2_only: bool = False  # set at creation: V1 does not bind method and path (docs/signing.md)
    v1_everywhere: bool = False  # set at creation: V1 on every route, not only create and get (unsafe)
    v1_recv_window_ms: int | None = None  # a V1 request's longest receive window; None: the default
    expires_at: int | None = None  # set by a rotation: the end of its overlap
    rotated_to: str | None = None
    revoked_at: int | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ApiKey:
        return cls(
            api_key=item["apiKey"],
            merchant_id=item["merchantId"],
            scopes=tuple(item.get("scopes") or ()),
            status=KeyStatus(item["status"]),
            secret_cipher=item["secretCipher"],
            created_at=int(item["createdAt"]),
            label=str(item.get("label") or ""),
            rate_limit=_opt_int(item.get("rateLimit")),
            v2_only=bool(item.get("v2Only")),
            v1_everywhere=bool(item.get("v1Everywhere")),
            v1_recv_window_ms=_opt_int(item.get("v1RecvWindow")),
            expires_at=_opt_int(item.get("expiresAt")),
            rotated_to=item.get("rotatedTo"),
            revoked_at=_opt_int(item.get("revokedAt")),
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.api_key_key(self.api_key)
        return {
            "pk": pk,
            "sk": sk,
            "apiKey": self.api_key,
            "merchantId": self.merchant_id,
            "scopes": sorted(self.scopes),
            "status": self.status.value,
            "label": self.label,
            "rateLimit": self.rate_limit,
            "createdAt": self.created_at,
            "v2Only": self.v2_only,
            "v1Everywhere": self.v1_everywhere,
            "v1RecvWindow": self.v1_recv_window_ms,
            "secretCipher": self.secret_cipher,
            "expiresAt": self.expires_at,
            "rotatedTo": self.rotated_to,
            "revokedAt": self.revoked_at,
            # The merchant's keys, oldest first (list_api_keys).
            "gsi1pk": store.keys_index_pk(self.merchant_id),
            "gsi1sk": f"{self.created_at:013d}#{self.api_key}",
        }


def _config_merchant(item: Mapping[str, Any]) -> str:
    """The merchant of an ADDRCFG item: its partition key names it (the item has no merchantId)."""
    merchant_id = str(item["pk"]).removeprefix("MERCHANT#")
    assert store.address_config_key(merchant_id, item["family"]) == (item["pk"], item["sk"]), item["pk"]
    return merchant_id


@dataclass(frozen=True)
class XpubConfig:
    """Each order gets the next address derived from an account-level xpub (watch-only)."""

    merchant_id: str
    family: Family
    xpub: str
    next_index: int
    updated_at: int
    mode: Literal["xpub"] = "xpub"

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.address_config_key(self.merchant_id, self.family)
        return {
            "pk": pk,
            "sk": sk,
            "mode": self.mode,
            "family": self.family,
            "xpub": self.xpub,
            "updatedAt": self.updated_at,
            "nextIndex": self.next_index,
        }


@dataclass(frozen=True)
class FixedConfig:
    """One receiving address; concurrent orders get amounts that differ by a tag step."""

    merchant_id: str
    family: Family
    address: str
    tag_step: str  # a decimal in plain notation (an older config may hold "1E-7")
    max_tags: int
    updated_at: int
    mode: Literal["fixed"] = "fixed"

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.address_config_key(self.merchant_id, self.family)
        return {
            "pk": pk,
            "sk": sk,
            "mode": self.mode,
            "family": self.family,
            "address": self.address,
            "tagStep": self.tag_step,
            "maxTags": self.max_tags,
            "updatedAt": self.updated_at,
        }


AddressConfig = XpubConfig | FixedConfig


# How long a swept deposit address waits in the reuse pool, watched, before another order may
# take it (deposit_pool.py): late payers mostly pay within hours; three days also covers a
# weekend's queued exchange withdrawals. Its cost is not gas (the pool refills at the order rate)
# but a longer warm-up and more addresses on the scanner's watch list (docs/settlement.md).
DEFAULT_REUSE_QUARANTINE_S = 72 * 3600
MAX_REUSE_QUARANTINE_S = 30 * 86_400


@dataclass(frozen=True)
class ContractConfig:
    """A merchant's network in contract mode: each order gets the CREATE2 address of a deposit
    clone under the merchant's DepositFactory (create2.py), swept to the factory's treasury.
    Set per network (a factory lives on one chain), after the factory was checked on chain.
    `reuse`: orders take swept deposit contracts back from the reuse pool after their quarantine
    (off: a fresh address per order, each clone deployed by its first sweep)."""

    merchant_id: str
    network: str
    factory: str  # EIP-55 on EVM networks, base58check (T...) on Tron
    implementation: str
    treasury: str
    owner: str
    updated_at: int
    mode: Literal["contract"] = "contract"
    reuse: bool = True
    reuse_quarantine_s: int = DEFAULT_REUSE_QUARANTINE_S

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ContractConfig:
        merchant_id = str(item["pk"]).removeprefix("MERCHANT#")
        quarantine = item.get("reuseQuarantineSeconds")
        return cls(
            merchant_id,
            item["network"],
            item["factory"],
            item["implementation"],
            item["treasury"],
            item["owner"],
            int(item["updatedAt"]),
            reuse=bool(item.get("reuse", True)),
            reuse_quarantine_s=DEFAULT_REUSE_QUARANTINE_S if quarantine is None else int(quarantine),
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.contract_config_key(self.merchant_id, self.network)
        return {
            "pk": pk,
            "sk": sk,
            "mode": self.mode,
            "network": self.network,
            "factory": self.factory,
            "implementation": self.implementation,
            "treasury": self.treasury,
            "owner": self.owner,
            "updatedAt": self.updated_at,
            "reuse": self.reuse,
            "reuseQuarantineSeconds": self.reuse_quarantine_s,
        }


def address_config_from_item(item: Mapping[str, Any]) -> AddressConfig:
    merchant_id = _config_merchant(item)
    if item["mode"] == "xpub":
        return XpubConfig(merchant_id, item["family"], item["xpub"], int(item["nextIndex"]), int(item["updatedAt"]))
    return FixedConfig(
        merchant_id,
        item["family"],
        item["address"],
        str(item["tagStep"]),
        int(item["maxTags"]),
        int(item["updatedAt"]),
    )


@dataclass(frozen=True)
class XpubIndex:
    """The next derivation index an xpub may hand out, kept across address configs."""

    family: Family
    fingerprint: str
    next_index: int

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> XpubIndex:
        fingerprint = str(item["pk"]).split("#", 2)[2]
        return cls(item["family"], fingerprint, int(item["nextIndex"]))

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.xpub_index_key(self.family, self.fingerprint)
        return {"pk": pk, "sk": sk, "family": self.family, "nextIndex": self.next_index}
