"""A merchant's webhook endpoint: the default URL, the URLs disabled (after a 410 Gone, or by the
merchant), the signing secrets (two while a rotation overlaps), and the SSRF check of a URL when
it is configured. All on the merchant profile, so the sender reads it in one GetItem.

A URL must pass the guard (urlguard) when it is configured (PUT /v1/webhooks/endpoint, an
order's notifyUrl) and again at every delivery. A name that does not resolve is refused when
configured: nothing could be delivered to it, and refusing is the safe side.
"""

from __future__ import annotations

from usdt_gateway import clock, merchants, store
from usdt_gateway.config import settings
from usdt_gateway.errors import InvalidRequest
from usdt_gateway.merchant_records import DisabledUrl, MerchantProfile
from usdt_gateway.schemas import DisabledUrlView, SecretRotationView, WebhookEndpointUpdate, WebhookEndpointView
from usdt_gateway.secretbox import decrypt
from usdt_gateway.webhooks.records import Delivery
from usdt_gateway.webhooks.urlguard import Resolver, Target, UnsafeUrl, check_url, default_resolve

DISABLED = "webhookDisabledUrls"  # url -> {disabledAt, reason}
GONE = "the receiver answered 410 Gone"
BY_MERCHANT = "disabled through PUT /v1/webhooks/endpoint"

# The DNS lookup behind every check of a merchant URL (the tests point it at their own names).
resolver: Resolver = default_resolve


def check(url: str) -> Target:
    """The guard's verdict now (UnsafeUrl when refused); the local stack allows loopback http."""
    s = settings()
    return check_url(url, allow_loopback=s.local_mode, resolve=resolver, allowed_ports=s.webhook_ports)


def check_notify_url(url: str | None, field: str) -> None:
    """An order's notifyUrl, checked when the order is created."""
    if url is None:
        return
    try:
        check(url)
    except UnsafeUrl as exc:
        raise InvalidRequest(f"{field}: {exc.message}", code="INVALID_URL") from None


def signing_secrets(profile: MerchantProfile, now_ms: int) -> list[str]:
    """The current secret first, then the previous one while its rotation overlap lasts."""
    context = merchants.webhook_secret_context(profile.merchant_id)
    secrets = [decrypt(profile.webhook_secret_cipher, context)]
    if profile.previous_webhook_secret_cipher and profile.previous_secret_signs(now_ms):
        secrets.append(decrypt(profile.previous_webhook_secret_cipher, context))
    return secrets


def target_url(profile: MerchantProfile, event: Delivery) -> str | None:
    """Where an event goes: its order's notifyUrl, else the merchant's default URL."""
    return event.notify_url or profile.webhook_url


def is_disabled(profile: MerchantProfile, url: str) -> bool:
    return url in profile.disabled_urls


def disable(merchant_id: str, url: str, reason: str) -> None:
    pk, sk = store.merchant_key(merchant_id)
    store.set_map_entry(pk, sk, DISABLED, url, DisabledUrl(clock.now_ms(), reason).to_item())


def enable(merchant_id: str, url: str) -> None:
    pk, sk = store.merchant_key(merchant_id)
    store.remove_map_entry(pk, sk, DISABLED, url)


def view(profile: MerchantProfile, now_ms: int | None = None) -> WebhookEndpointView:
    now_ms = clock.now_ms() if now_ms is None else now_ms
    url = profile.webhook_url
    disabled = profile.disabled_urls
    until = profile.previous_webhook_secret_until or 0
    rotating = profile.previous_secret_signs(now_ms)
    return WebhookEndpointView(
        url=url,
        enabled=url is not None and url not in disabled,
        disabled_urls=[
            DisabledUrlView(url=u, disabled_at=d.disabled_at, reason=d.reason)
            for u, d in sorted(disabled.items(), key=lambda kv: kv[1].disabled_at)
        ],
        secret_rotation=SecretRotationView(previous_valid_until=until) if rotating else None,
    )


def configure(merchant_id: str, update: WebhookEndpointUpdate) -> WebhookEndpointView:
    """PUT /v1/webhooks/endpoint: set (or remove) the default URL, enable or disable it, re-enable
    other URLs. Everything is checked before anything is written."""
    given = update.model_fields_set
    if not given:
        raise InvalidRequest("give `url`, `enabled` or `enableUrls`", code="VALIDATION_ERROR")
    profile = merchants.get_merchant(merchant_id)
    url = update.url if "url" in given else profile.webhook_url
    if "url" in given and update.url is not None:
        try:
            check(update.url)
        except UnsafeUrl as exc:
            raise InvalidRequest(f"url: {exc.message}", code=exc.code) from None
    if update.enabled is not None and not url:
        raise InvalidRequest("there is no webhook URL to enable or disable: set `url`", code="WEBHOOK_URL_REQUIRED")
    if "url" in given:
        pk, sk = store.merchant_key(merchant_id)
        # The merchant's own setting, replaced as a whole: the last write wins.
        store.update(
            pk,
            sk,
            set_values={"webhookUrl": update.url, "webhookUrlUpdatedAt": clock.now_ms()},
            condition="attribute_exists(pk)",
        )
    if update.enabled is True and url:
        enable(merchant_id, url)
    elif update.enabled is False and url:
        disable(merchant_id, url, BY_MERCHANT)
    for other in update.enable_urls or ():
        enable(merchant_id, other)
    return view(merchants.get_merchant(merchant_id))
