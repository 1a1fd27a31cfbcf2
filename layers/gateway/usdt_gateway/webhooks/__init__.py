"""Webhook delivery building blocks: Standard Webhooks signing (signing), the SSRF guard for
merchant URLs (urlguard) and a single, pinned, deadline-bound POST (delivery_http). Every order
state change reaches the merchant through these; the receiving side lives in sdk/python."""
