"""Merchant-side client for the usdt-gateway. For now: verifying the webhooks it sends."""

from .webhooks import WebhookVerificationError, verify_webhook

__all__ = ["WebhookVerificationError", "verify_webhook"]
