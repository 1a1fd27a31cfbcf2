"""Webhook delivery. Building blocks: Standard Webhooks signing (signing), the SSRF guard for
merchant URLs (urlguard) and a single, pinned, deadline-bound POST (delivery_http). On them: the
sender of queued events (sender, with delivery_state, slots, batch), the merchant's endpoint
settings (endpoints), the delivery log and resend (deliveries) and the test event (ping). The
receiving side lives in sdk/python."""
