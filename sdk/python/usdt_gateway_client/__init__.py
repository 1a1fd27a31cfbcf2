"""Merchant-side client for the usdt-gateway, standard library only: signed API calls
(`Client`), typed results, and verification of the webhooks the gateway sends (`verify_webhook`).

    from usdt_gateway_client import Client, verify_webhook

    client = Client("https://pay.example.com", "ak_...", "sk_...")
    order = client.create_order(order_id="order_123", amount="50.00", network="tron")
    print(order.payment_url)
    ...
    event = verify_webhook(request.headers, request.body, "whsec_...")

Contract-mode refunds are checked and signed with usdt_gateway_client.refunds (sign_refund).
"""

from ._version import __version__
from .client import Amount, Client
from .errors import (
    AuthError,
    ConflictError,
    GatewayError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
)
from .models import (
    DeliveryAttempt,
    DeliveryStatus,
    Deposit,
    DepositRecord,
    DisabledUrl,
    FundsLocation,
    Network,
    Order,
    OrderException,
    OrderStatus,
    Page,
    Refund,
    RefundStatus,
    Settlement,
    SettlementStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookTestResult,
    XpubAddress,
    XpubDeposit,
    XpubSweep,
)
from .retry import RetryPolicy
from .signing import sign_v1, sign_v2
from .webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "Amount",
    "AuthError",
    "Client",
    "ConflictError",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Deposit",
    "DepositRecord",
    "DisabledUrl",
    "FundsLocation",
    "GatewayError",
    "Network",
    "NotFoundError",
    "Order",
    "OrderException",
    "OrderStatus",
    "Page",
    "RateLimitedError",
    "Refund",
    "RefundStatus",
    "RetryPolicy",
    "ServerError",
    "Settlement",
    "SettlementStatus",
    "TransportError",
    "ValidationError",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookTestResult",
    "WebhookVerificationError",
    "XpubAddress",
    "XpubDeposit",
    "XpubSweep",
    "__version__",
    "sign_v1",
    "sign_v2",
    "verify_webhook",
]
