"""The HTTP API's routes. Each is wiring: the decorator authenticates and validates, the body
makes one domain call. The deposit, settlement, refund and webhook-delivery modules are imported by
their routes on first use: most requests (orders, the payer's page) never need them, so init
doesn't load them."""

from __future__ import annotations

import re

from usdt_gateway import events, merchants, orders, path_ids
from usdt_gateway.api.app import Call, Result, RouteSpec, route
from usdt_gateway.auth import READ, WRITE
from usdt_gateway.config import networks
from usdt_gateway.errors import InvalidRequest
from usdt_gateway.money import plain
from usdt_gateway.observability import count_per_network, logger
from usdt_gateway.schemas import (
    AttachDepositRequest,
    CreateOrderRequest,
    DeliveryListView,
    DeliveryStatus,
    DeliveryView,
    DepositListView,
    NetworkListView,
    NetworkView,
    OrderListView,
    OrderStatus,
    OrderView,
    PublicOrderView,
    RefundListView,
    RefundRequest,
    RefundSignatureRequest,
    RefundView,
    SettlementListView,
    SettlementView,
    WebhookEndpointUpdate,
    WebhookEndpointView,
    WebhookTestRequest,
    WebhookTestResult,
    XpubAddressListView,
    XpubSweepRequest,
    XpubSweepView,
)
from usdt_gateway.webhooks import endpoints

PRIVATE_ERRORS = (400, 401, 403, 418, 429)


@route(
    RouteSpec(
        "POST",
        "/v1/payment/order",
        "createOrder",
        "Create a payment order",
        WRITE,
        OrderView,
        body=CreateOrderRequest,
        status=201,
        errors=(*PRIVATE_ERRORS, 409, 413, 415),
        accepts_v1=True,
    )
)
def create_order(call: Call[CreateOrderRequest]) -> Result:
    logger.thread_safe_append_keys(order_id=call.body.order_id)
    view, created = orders.create_order(call.merchant_id, call.body)
    if created:
        count_per_network("OrdersCreated", view.network)
    logger.info(
        "order created" if created else "order create repeated (idempotent)",
        extra={"network": view.network, "amount": view.amount, "status": view.status.value},
    )
    return view, 201 if created else 200


@route(
    RouteSpec(
        "GET",
        "/v1/payment/order/{orderId}",
        "getOrder",
        "Get an order",
        READ,
        OrderView,
        errors=(*PRIVATE_ERRORS, 404),
        accepts_v1=True,
    )
)
def get_order(call: Call) -> Result:
    # Checked before it reaches a log line or a key: a path id can be kilobytes of anything.
    order_id = path_ids.order_id(call.params["orderId"])
    logger.thread_safe_append_keys(order_id=order_id)
    return orders.get_order(call.merchant_id, order_id)


# The index sorts on 13-digit creation times; a 14-digit bound would compare as text out of order.
MAX_TIME_MS = 10**13 - 1
# Every listing: a filter reads a bounded stretch per request (store.query_index), so a page can
# be short, even empty, and still go on.
PAGE_LIMIT = (
    "Most items per page, 1-100 (default 20). A filtered page may hold fewer, even none, and still have a nextCursor."
)
PAGE_CURSOR = (
    "The nextCursor of the previous page, with the other parameters unchanged. A page whose "
    "nextCursor is null is the last."
)
LIST_QUERY = {
    "status": "Only orders in this status.",
    "from": "Created at or after this time (ms since the epoch).",
    "to": "Created at or before this time (ms since the epoch).",
    "limit": PAGE_LIMIT,
    "cursor": PAGE_CURSOR,
}


def _int_param(call: Call, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = call.request.param(name)
    if raw is None:
        return default
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidRequest(
            f"query parameter '{name}' must be an integer between {low} and {high}", code="INVALID_PARAMETER"
        )
    return int(raw)


@route(
    RouteSpec(
        "GET",
        "/v1/payment/orders",
        "listOrders",
        "List orders, newest first",
        READ,
        OrderListView,
        query=LIST_QUERY,
        errors=PRIVATE_ERRORS,
    )
)
def list_orders(call: Call) -> Result:
    raw_status = call.request.param("status")
    if raw_status is not None and raw_status not in OrderStatus._value2member_map_:
        raise InvalidRequest(
            f"status must be one of {', '.join(s.value for s in OrderStatus)}", code="INVALID_PARAMETER"
        )
    return orders.list_orders(
        call.merchant_id,
        status=OrderStatus(raw_status) if raw_status else None,
        created_from=_int_param(call, "from", None, 0, MAX_TIME_MS),
        created_to=_int_param(call, "to", None, 0, MAX_TIME_MS),
        limit=_int_param(call, "limit", 20, 1, 100) or 20,
        cursor=call.request.param("cursor"),
    )


@route(
    RouteSpec(
        "POST",
        "/v1/payment/order/{orderId}/cancel",
        "cancelOrder",
        "Cancel an order that has received nothing",
        WRITE,
        OrderView,
        errors=(*PRIVATE_ERRORS, 404, 409),
        one_time=True,
    )
)
def cancel_order(call: Call) -> Result:
    order_id = path_ids.order_id(call.params["orderId"])
    logger.thread_safe_append_keys(order_id=order_id)
    return orders.cancel_order(call.merchant_id, order_id)


DEPOSITS_QUERY = {
    "unmatched": "`true`: only deposits no order took (attach them to an order).",
    "limit": PAGE_LIMIT,
    "cursor": PAGE_CURSOR,
}


@route(
    RouteSpec(
        "GET",
        "/v1/deposits",
        "listDeposits",
        "Final deposits to your addresses, newest first",
        READ,
        DepositListView,
        query=DEPOSITS_QUERY,
        errors=PRIVATE_ERRORS,
    )
)
def list_deposits(call: Call) -> Result:
    unmatched = call.request.param("unmatched")
    if unmatched not in (None, "true", "false"):
        raise InvalidRequest("unmatched must be true or false", code="INVALID_PARAMETER")
    limit = _int_param(call, "limit", 20, 1, 100) or 20
    from usdt_gateway import deposits

    return deposits.list_deposits(
        call.merchant_id, unmatched_only=unmatched == "true", limit=limit, cursor=call.request.param("cursor")
    )


@route(
    RouteSpec(
        "POST",
        "/v1/deposits/{depositId}/attach",
        "attachDeposit",
        "Credit an unmatched deposit to one of your orders",
        WRITE,
        OrderView,
        body=AttachDepositRequest,
        errors=(*PRIVATE_ERRORS, 404, 409, 413, 415),
        one_time=True,
    )
)
def attach_deposit(call: Call[AttachDepositRequest]) -> Result:
    logger.thread_safe_append_keys(order_id=call.body.order_id, deposit_id=call.params["depositId"])
    from usdt_gateway import deposits

    order = deposits.attach(call.merchant_id, call.params["depositId"], call.body.order_id)
    return orders.to_view(order)


@route(
    RouteSpec(
        "POST",
        "/v1/payment/order/{orderId}/refunds",
        "createRefund",
        "Refund money the order did not take (contract mode): the typed data the owner signs",
        WRITE,
        RefundView,
        body=RefundRequest,
        status=201,
        errors=(*PRIVATE_ERRORS, 404, 409, 413, 415),
        one_time=True,
    )
)
def create_refund(call: Call[RefundRequest]) -> Result:
    order_id = path_ids.order_id(call.params["orderId"])
    logger.thread_safe_append_keys(order_id=order_id)
    from usdt_gateway.settlement import refunds

    return refunds.create_refund(call.merchant_id, order_id, call.body), 201


@route(
    RouteSpec(
        "POST",
        "/v1/payment/order/{orderId}/refunds/{refundId}/signature",
        "submitRefundSignature",
        "Give the owner's signature of a refund: the gateway sends it",
        WRITE,
        RefundView,
        body=RefundSignatureRequest,
        status=202,
        errors=(*PRIVATE_ERRORS, 404, 409, 413, 415),
    )
)
def submit_refund_signature(call: Call[RefundSignatureRequest]) -> Result:
    order_id = path_ids.order_id(call.params["orderId"])
    refund_id = path_ids.refund_id(call.params["refundId"])
    logger.thread_safe_append_keys(order_id=order_id, refund_id=refund_id)
    from usdt_gateway.settlement import refunds

    return refunds.submit_signature(call.merchant_id, order_id, refund_id, call.body.signature)


@route(
    RouteSpec(
        "GET",
        "/v1/payment/order/{orderId}/refunds",
        "listRefunds",
        "An order's refunds, newest first",
        READ,
        RefundListView,
        errors=(*PRIVATE_ERRORS, 404),
    )
)
def list_refunds(call: Call) -> Result:
    order_id = path_ids.order_id(call.params["orderId"])
    logger.thread_safe_append_keys(order_id=order_id)
    from usdt_gateway.settlement import refunds

    return refunds.list_refunds(call.merchant_id, order_id)


@route(
    RouteSpec(
        "GET",
        "/v1/payment/order/{orderId}/refunds/{refundId}",
        "getRefund",
        "Get a refund",
        READ,
        RefundView,
        errors=(*PRIVATE_ERRORS, 404),
    )
)
def get_refund(call: Call) -> Result:
    order_id = path_ids.order_id(call.params["orderId"])
    refund_id = path_ids.refund_id(call.params["refundId"])
    logger.thread_safe_append_keys(order_id=order_id, refund_id=refund_id)
    from usdt_gateway.settlement import refunds

    return refunds.get_refund(call.merchant_id, order_id, refund_id)


SETTLEMENTS_QUERY = {"limit": PAGE_LIMIT, "cursor": PAGE_CURSOR}


@route(
    RouteSpec(
        "GET",
        "/v1/settlements",
        "listSettlements",
        "Sweeps of your deposit addresses to your treasury (contract mode), newest first",
        READ,
        SettlementListView,
        query=SETTLEMENTS_QUERY,
        errors=PRIVATE_ERRORS,
    )
)
def list_settlements(call: Call) -> Result:
    limit = _int_param(call, "limit", 20, 1, 100) or 20
    from usdt_gateway.settlement import views

    return views.list_settlements(call.merchant_id, limit=limit, cursor=call.request.param("cursor"))


@route(
    RouteSpec(
        "GET",
        "/v1/settlements/{settlementId}",
        "getSettlement",
        "Get a settlement",
        READ,
        SettlementView,
        errors=(*PRIVATE_ERRORS, 404),
    )
)
def get_settlement(call: Call) -> Result:
    settlement_id = path_ids.settlement_id(call.params["settlementId"])
    logger.thread_safe_append_keys(settlement_id=settlement_id)
    from usdt_gateway.settlement import views

    return views.get_settlement(call.merchant_id, settlement_id)


@route(
    RouteSpec(
        "GET",
        "/v1/xpub/addresses",
        "listXpubAddresses",
        "Your xpub deposit addresses holding final money not recorded as swept (for your sweep tool)",
        READ,
        XpubAddressListView,
        query={"network": "Only this network's addresses."},
        errors=PRIVATE_ERRORS,
    )
)
def list_xpub_addresses(call: Call) -> Result:
    from usdt_gateway import xpub_sweeps

    return xpub_sweeps.list_unswept(call.merchant_id, call.request.param("network"))


@route(
    RouteSpec(
        "POST",
        "/v1/xpub/sweeps",
        "recordXpubSweep",
        "Record your sweep of an xpub deposit address (idempotent on the txid)",
        WRITE,
        XpubSweepView,
        body=XpubSweepRequest,
        status=201,
        errors=(*PRIVATE_ERRORS, 404, 409, 413, 415),
    )
)
def record_xpub_sweep(call: Call[XpubSweepRequest]) -> Result:
    from usdt_gateway import xpub_sweeps

    view, created = xpub_sweeps.record_sweep(call.merchant_id, call.body)
    logger.info(
        "xpub sweep recorded" if created else "xpub sweep record repeated (idempotent)",
        extra={"network": view.network, "address": view.address, "txid": view.txid, "units": view.units},
    )
    return view, 201 if created else 200


@route(
    RouteSpec(
        "GET", "/v1/networks", "listNetworks", "Enabled networks (public)", None, NetworkListView, errors=(418, 429)
    )
)
def list_networks(call: Call) -> Result:
    views = []
    for n in networks().values():
        counted = n.finality.mode == "confirmations"
        finality = f"{n.finality.confirmations} confirmations" if counted else n.finality.mode
        views.append(
            NetworkView(
                network=n.name,
                name=n.display_name,
                family=n.family,
                chain_id=n.chain_id,
                token_contract=n.token_contract,
                decimals=n.decimals,
                finality=finality,
                confirmations=n.finality.confirmations if n.finality.mode == "confirmations" else None,
                min_amount=plain(n.min_amount),
                max_amount=plain(n.max_amount),
                testnet=n.testnet,
            )
        )
    return NetworkListView(networks=views)


@route(
    RouteSpec(
        "GET",
        "/v1/public/orders/{publicId}",
        "getPublicOrder",
        "What a payer's page needs (public)",
        None,
        PublicOrderView,
        errors=(404, 429),
    )
)  # counted per page, never blocked (ratelimit.py)
def get_public_order(call: Call) -> Result:
    return orders.get_public_order(call.params["publicId"])


DELIVERIES_QUERY = {
    "orderId": "Only this order's events.",
    "type": "Only events of this type, e.g. `order.confirmed`.",
    "outcome": "Only deliveries in this state: `pending`, `delivered`, `failing`, `dead` or `disabled`.",
    "limit": PAGE_LIMIT,
    "cursor": PAGE_CURSOR,
}
ORDER_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")
WEBHOOK_EVENT_TYPES = (*events.EVENT_TYPES, events.TEST)


def _choice(call: Call, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = call.request.param(name)
    if raw is not None and raw not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}", code="INVALID_PARAMETER")
    return raw


@route(
    RouteSpec(
        "GET",
        "/v1/webhooks/deliveries",
        "listWebhookDeliveries",
        "Webhook deliveries, one per event, newest first, with every attempt",
        READ,
        DeliveryListView,
        query=DELIVERIES_QUERY,
        errors=PRIVATE_ERRORS,
    )
)
def list_webhook_deliveries(call: Call) -> Result:
    order_id = call.request.param("orderId")
    if order_id is not None and not ORDER_ID.match(order_id):
        raise InvalidRequest("orderId must be 1-64 characters of A-Z a-z 0-9 _ - . :", code="INVALID_PARAMETER")
    outcome = _choice(call, "outcome", tuple(s.value for s in DeliveryStatus))
    from usdt_gateway.webhooks import deliveries

    return deliveries.list_deliveries(
        call.merchant_id,
        order_id=order_id,
        event_type=_choice(call, "type", WEBHOOK_EVENT_TYPES),
        outcome=DeliveryStatus(outcome) if outcome else None,
        limit=_int_param(call, "limit", 20, 1, 100) or 20,
        cursor=call.request.param("cursor"),
    )


@route(
    RouteSpec(
        "POST",
        "/v1/webhooks/deliveries/{deliveryId}/resend",
        "resendWebhook",
        "Send an event again now (same id and body)",
        WRITE,
        DeliveryView,
        status=202,
        errors=(*PRIVATE_ERRORS, 404, 409),
        one_time=True,
    )
)
def resend_webhook(call: Call) -> Result:
    logger.thread_safe_append_keys(delivery_id=call.params["deliveryId"])
    from usdt_gateway.webhooks import deliveries

    return deliveries.resend(call.merchant_id, call.params["deliveryId"])


@route(
    RouteSpec(
        "POST",
        "/v1/webhooks/test",
        "testWebhook",
        "Send a signed webhook.test event now and answer with the outcome",
        WRITE,
        WebhookTestResult,
        body=WebhookTestRequest,
        body_optional=True,
        errors=(*PRIVATE_ERRORS, 413, 415),
        one_time=True,
    )
)
def send_test_webhook(call: Call[WebhookTestRequest]) -> Result:
    # Imported here: the HTTP client (ssl, http.client) stays off every other request's cold start.
    from usdt_gateway.webhooks import ping

    return ping.send_test(call.merchant_id, call.body.url)


@route(
    RouteSpec(
        "GET",
        "/v1/webhooks/endpoint",
        "getWebhookEndpoint",
        "Your webhook URL, the disabled URLs and the secret rotation",
        READ,
        WebhookEndpointView,
        errors=PRIVATE_ERRORS,
    )
)
def get_webhook_endpoint(call: Call) -> Result:
    return endpoints.view(merchants.get_merchant(call.merchant_id))


@route(
    RouteSpec(
        "PUT",
        "/v1/webhooks/endpoint",
        "putWebhookEndpoint",
        "Set your default webhook URL, re-enable a disabled URL",
        WRITE,
        WebhookEndpointView,
        body=WebhookEndpointUpdate,
        errors=(*PRIVATE_ERRORS, 413, 415),
        one_time=True,
    )
)
def put_webhook_endpoint(call: Call[WebhookEndpointUpdate]) -> Result:
    return endpoints.configure(call.merchant_id, call.body)


# --- what the OpenAPI document says of parameters and refusals (api/openapi.py) -------------

# Parameters by name, as the routes above read them: the same name means the same thing everywhere.
PARAMETER_SCHEMAS: dict[str, dict[str, object]] = {
    "status": {"type": "string", "enum": [s.value for s in OrderStatus]},
    "from": {"type": "integer", "minimum": 0, "maximum": MAX_TIME_MS},
    "to": {"type": "integer", "minimum": 0, "maximum": MAX_TIME_MS},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    "unmatched": {"type": "string", "enum": ["true", "false"]},
    "orderId": {"type": "string", "pattern": ORDER_ID.pattern},
    "settlementId": {"type": "string", "pattern": path_ids.SETTLEMENT_ID_PATTERN},
    "refundId": {"type": "string", "pattern": path_ids.REFUND_ID_PATTERN},
    "type": {"type": "string", "enum": list(WEBHOOK_EVENT_TYPES)},
    "outcome": {"type": "string", "enum": [s.value for s in DeliveryStatus]},
}
# What a webhook URL can be refused for (webhooks/urlguard.py).
URL_RULES = (
    "URL_INVALID",
    "URL_NO_HOST",
    "URL_SCHEME",
    "URL_CREDENTIALS",
    "URL_PORT",
    "URL_PORT_NOT_ALLOWED",
    "URL_UNRESOLVABLE",
    "URL_NOT_PUBLIC",
)
# The 400s a request the document's schemas allow can still get, per operation: rules no schema
# can say (what this deployment enables, what a URL resolves to, what a cursor or id refers to).
# Any other 400 means the request broke the schema; tests/integration/test_api_schema.py holds
# the API to that.
RULES: dict[str, tuple[str, ...]] = {
    "createOrder": (
        "NETWORK_REQUIRED",
        "UNSUPPORTED_NETWORK",
        "NETWORK_MISMATCH",
        "INVALID_AMOUNT",
        "AMOUNT_OUT_OF_RANGE",
        "INVALID_URL",
        "INVALID_EXPIRES_IN",
    ),
    "listOrders": ("INVALID_CURSOR",),
    "listDeposits": ("INVALID_CURSOR",),
    "listSettlements": ("INVALID_CURSOR",),
    # An address the pattern allows but no refund can go to (the zero address, a wrong EIP-55
    # checksum, the deposit address itself), an amount finer than the token or above the refundable.
    "createRefund": ("INVALID_ADDRESS", "INVALID_AMOUNT", "AMOUNT_EXCEEDS_REFUNDABLE"),
    # The owner's signature is checked against the refund's digest, which no schema knows.
    "submitRefundSignature": ("INVALID_SIGNATURE",),
    "attachDeposit": ("INVALID_DEPOSIT_ID",),
    "listWebhookDeliveries": ("INVALID_CURSOR",),
    "resendWebhook": ("INVALID_DELIVERY_ID", "WEBHOOK_URL_REQUIRED", *URL_RULES),
    "testWebhook": ("WEBHOOK_URL_REQUIRED", *URL_RULES),
    "putWebhookEndpoint": ("WEBHOOK_URL_REQUIRED", *URL_RULES),
    # Which networks this deployment enables; an address or txid of the network's own form.
    "listXpubAddresses": ("UNSUPPORTED_NETWORK",),
    "recordXpubSweep": ("UNSUPPORTED_NETWORK", "INVALID_ADDRESS", "INVALID_TXID"),
}
