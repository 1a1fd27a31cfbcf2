"""Merchant items, typed: what each record writes is what the gateway has always stored, and it
reads back as the same record."""

from __future__ import annotations

from typing import Any

import pytest

from usdt_gateway import store
from usdt_gateway.merchant_records import (
    AddressConfig,
    ApiKey,
    DisabledUrl,
    FixedConfig,
    KeyStatus,
    MerchantProfile,
    XpubConfig,
    XpubIndex,
    address_config_from_item,
)


def stored(item: dict[str, Any]) -> dict[str, Any]:
    """The item as DynamoDB keeps it and store.get gives it back (None attributes left out)."""
    loaded = store._load(store._dump(item))
    assert loaded is not None
    return loaded


def test_a_new_profile_stores_the_attributes_it_always_had() -> None:
    # Given a merchant as create_merchant makes it
    profile = MerchantProfile("m_1", "Shop", "cipher", created_at=1_000, webhook_url="https://shop.example/hook")
    # When it is written and read back
    item = stored(profile.to_item())
    # Then the item holds the same attributes as before, and reads back as the same record
    assert item == {
        "pk": "MERCHANT#m_1",
        "sk": "PROFILE",
        "merchantId": "m_1",
        "name": "Shop",
        "webhookUrl": "https://shop.example/hook",
        "webhookSecretCipher": "cipher",
        "createdAt": 1_000,
    }
    assert MerchantProfile.from_item(item) == profile


def test_a_profile_reads_its_disabled_urls_and_rotation() -> None:
    # Given a profile whose secret was rotated and which has a disabled URL
    item = stored(
        MerchantProfile(
            "m_1",
            "Shop",
            "new",
            created_at=1_000,
            previous_webhook_secret_cipher="old",
            previous_webhook_secret_until=5_000,
            webhook_secret_rotated_at=2_000,
            disabled_urls={"https://a.example/": DisabledUrl(3_000, "gone")},
        ).to_item()
    )
    # When it is read
    profile = MerchantProfile.from_item(item)
    # Then the map keeps its stored shape and the previous secret signs until its end only
    assert item["webhookDisabledUrls"] == {"https://a.example/": {"disabledAt": 3_000, "reason": "gone"}}
    assert profile.disabled_urls["https://a.example/"] == DisabledUrl(3_000, "gone")
    assert (profile.previous_secret_signs(4_999), profile.previous_secret_signs(5_000)) == (True, False)


def test_an_api_key_stores_the_attributes_it_always_had() -> None:
    # Given a key as create_api_key makes it
    key = ApiKey(
        "ak_1",
        "m_1",
        ("orders:write", "orders:read"),
        KeyStatus.ACTIVE,
        "cipher",
        created_at=1_000,
        label="ci",
        v2_only=True,
    )
    # When it is written and read back
    item = stored(key.to_item())
    # Then the attributes are the old ones (scopes sorted, options as booleans) and it reads back
    assert item == {
        "pk": "APIKEY#ak_1",
        "sk": "KEY",
        "apiKey": "ak_1",
        "merchantId": "m_1",
        "scopes": ["orders:read", "orders:write"],
        "status": "active",
        "label": "ci",
        "createdAt": 1_000,
        "v2Only": True,
        "v1Everywhere": False,
        "secretCipher": "cipher",
        "gsi1pk": "MERCHANT#m_1#KEYS",
        "gsi1sk": "0000000001000#ak_1",
    }
    assert ApiKey.from_item(item) == ApiKey(
        "ak_1",
        "m_1",
        ("orders:read", "orders:write"),
        KeyStatus.ACTIVE,
        "cipher",
        created_at=1_000,
        label="ci",
        v2_only=True,
    )


def test_a_key_item_with_its_rate_meter_reads_as_the_key() -> None:
    # Given a key item as the rate-limit meter returns it: rotated, with counters and no options
    item = {
        "pk": "APIKEY#ak_1",
        "sk": "KEY",
        "apiKey": "ak_1",
        "merchantId": "m_1",
        "scopes": ["orders:read"],
        "status": "active",
        "createdAt": 1_000,
        "secretCipher": "cipher",
        "rateLimit": 30,
        "expiresAt": 9_000,
        "rotatedTo": "ak_2",
        "rlWindow": 7,
        "rlCount": 3,
    }
    # When it is read
    key = ApiKey.from_item(item)
    # Then the key's own attributes are there and absent options are off
    assert (key.rate_limit, key.expires_at, key.rotated_to) == (30, 9_000, "ak_2")
    assert (key.v2_only, key.v1_everywhere, key.v1_recv_window_ms, key.label) == (False, False, None, "")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            XpubConfig("m_1", "evm", "xpub6...", next_index=4, updated_at=2_000),
            {"mode": "xpub", "family": "evm", "xpub": "xpub6...", "updatedAt": 2_000, "nextIndex": 4},
        ),
        (
            FixedConfig("m_1", "tron", "T...", "0.01", 100, updated_at=2_000),
            {
                "mode": "fixed",
                "family": "tron",
                "address": "T...",
                "tagStep": "0.01",
                "maxTags": 100,
                "updatedAt": 2_000,
            },
        ),
    ],
)
def test_an_address_config_stores_the_attributes_it_always_had(config: AddressConfig, expected: dict[str, Any]) -> None:
    # When a config is written and read back
    item = stored(config.to_item())
    # Then it has the old attributes, under the merchant's ADDRCFG key, and reads back the same
    assert item == {"pk": "MERCHANT#m_1", "sk": f"ADDRCFG#{config.family}", **expected}
    assert address_config_from_item(item) == config


def test_an_xpub_index_reads_back_with_its_fingerprint() -> None:
    index = XpubIndex("tron", "ab12cd34", 7)
    item = stored(index.to_item())
    assert item == {"pk": "XPUB#tron#ab12cd34", "sk": "INDEX", "family": "tron", "nextIndex": 7}
    assert XpubIndex.from_item(item) == index
