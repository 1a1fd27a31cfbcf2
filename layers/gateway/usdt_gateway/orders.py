"""Where an order is created, read, listed and cancelled."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from usdt_gateway import clock, cursor, deposit_addresses, order_views, path_ids, store, transitions, watchlist
from usdt_gateway.config import networks, settings
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.money import parse_amount, plain, to_base_units, tolerance_units
from usdt_gateway.networks import Network

# The views are pure functions of the record (order_views.py); `to_view` stays importable here.
from usdt_gateway.order_views import to_view as to_view
from usdt_gateway.payment_uri import payment_uri
from usdt_gateway.qr import qr_png_data_uri
from usdt_gateway.records import Order
from usdt_gateway.schemas import CreateOrderRequest, OrderListView, OrderStatus, OrderView, PublicOrderView
from usdt_gateway.webhooks import endpoints
from usdt_gateway.webhooks.urlguard import UnsafeUrl, url_host

MAX_CREATE_ATTEMPTS = 25


def resolve_network(name: str | None, chain_id: int | None) -> Network:
    enabled = networks()
    if name is None and chain_id is None:
        raise InvalidRequest('give `network` (e.g. "tron") or `chainId`', code="NETWORK_REQUIRED")
    if name is not None:
        network = enabled.get(name)
        if network is None:
            raise InvalidRequest(
                f"network '{name}' is not enabled; enabled: {', '.join(enabled)}", code="UNSUPPORTED_NETWORK"
            )
        if chain_id is not None and chain_id != network.chain_id:
            raise InvalidRequest(
                f"chainId {chain_id} does not match network '{name}' ({network.chain_id})", code="NETWORK_MISMATCH"
            )
        return network
    match = next((n for n in enabled.values() if n.chain_id == chain_id), None)
    if match is None:
        raise InvalidRequest(f"no enabled network has chainId {chain_id}", code="UNSUPPORTED_NETWORK")
    return match


def _amount_units(text: str, network: Network) -> int:
    try:
        value = parse_amount(text)
        units = to_base_units(value, network.decimals)
    except ValueError as exc:
        raise InvalidRequest(f"amount {exc}", code="INVALID_AMOUNT") from exc
    if not network.min_amount <= value <= network.max_amount:
        raise InvalidRequest(
            f"amount must be between {plain(network.min_amount)} and {plain(network.max_amount)} USDT "
            f"on {network.name}",
            code="AMOUNT_OUT_OF_RANGE",
        )
    return units


def check_url(url: str | None, field: str) -> None:
    """A URL the payer's browser goes to (never one the gateway calls): absolute https, with a
    host a browser reads one way only (the payment page links to it)."""
    if url is None:
        return
    if any(ch < " " or ch == "\x7f" for ch in url):
        raise InvalidRequest(f"{field}: the URL contains control characters", code="INVALID_URL")
    bad_port = f"{field}: the URL's port is not a number in 1-65535"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        message = bad_port if "port" in str(exc).lower() else f"{field}: the URL does not parse"
        raise InvalidRequest(message, code="INVALID_URL") from None
    if port == 0:
        raise InvalidRequest(bad_port, code="INVALID_URL")
    allowed = {"https", "http"} if settings().local_mode else {"https"}
    if parts.scheme not in allowed or not parts.netloc:
        raise InvalidRequest(f"{field} must be an absolute https:// URL", code="INVALID_URL")
    if "@" in parts.netloc:
        raise InvalidRequest(f"{field} must not contain credentials", code="INVALID_URL")
    try:
        url_host(parts)
    except UnsafeUrl as exc:
        raise InvalidRequest(f"{field}: {exc.message}", code="INVALID_URL") from None


def _expires_in(value: int | None) -> int:
    s = settings()
    if value is None:
        return s.default_expires_in
    if not s.min_expires_in <= value <= s.max_expires_in:
        raise InvalidRequest(
            f"expiresIn must be between {s.min_expires_in} and {s.max_expires_in} seconds", code="INVALID_EXPIRES_IN"
        )
    return value


def _fingerprint(req: CreateOrderRequest, network: Network, units: int) -> str:
    """What makes two creates with the same orderId 'identical'."""
    canonical = {
        "network": network.name,
        "units": units,
        "notifyUrl": req.notify_url,
        "returnUrl": req.return_url,
        "expiresIn": req.expires_in,
        "metadata": req.metadata,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def create_order(merchant_id: str, req: CreateOrderRequest) -> tuple[OrderView, bool]:
    """Create the order, or return the existing one for an identical repeat (created=False)."""
    network = resolve_network(req.network, req.chain_id)
    units = _amount_units(req.amount, network)
    endpoints.check_notify_url(req.notify_url, "notifyUrl")  # the gateway will POST to it: SSRF-checked
    check_url(req.return_url, "returnUrl")
    expires_in = _expires_in(req.expires_in)
    fingerprint = _fingerprint(req, network, units)
    pk, sk = store.order_key(merchant_id, req.order_id)
    # No read before writing: the transaction's condition on the order key detects a repeat and
    # hands back the existing order, so the common case (a new order) costs one round trip less.
    for _ in range(MAX_CREATE_ATTEMPTS):
        now = clock.now_ms()
        expires_at = now + expires_in * 1000
        watch_until = expires_at + settings().late_payment_grace_seconds * 1000
        cfg = deposit_addresses.address_config(merchant_id, network)
        for cand in deposit_addresses.candidates(
            cfg, network, units, order_pk=pk, order_id=req.order_id, watch_until=watch_until, now=now
        ):
            order = _new_order(merchant_id, req, network, cand, units, fingerprint, now, expires_at, watch_until)
            item = order.to_item()
            pub_pk, pub_sk = store.public_key(order.public_id)
            parts = [
                store.put_part(item),
                store.put_part({"pk": pub_pk, "sk": pub_sk, "orderPk": pk}),
                *cand.parts,
                watchlist.watch_part(network=network.name, order=item, mode=cfg.mode),
            ]
            try:
                store.transact(parts)
            except store.TransactionConflict as conflict:
                if conflict.reasons[0] == "ConditionalCheckFailed":  # a concurrent identical create won
                    existing = conflict.items[0] or store.get(pk, sk)
                    assert existing is not None  # the condition failed on it: it exists
                    return _replay(Order.from_item(existing), fingerprint), False
                if cfg.mode == "xpub" or "TransactionConflict" in conflict.reasons:
                    break  # the index moved on, or a write raced ours: read the config again
                continue  # this tagged amount is held, or this pooled address taken: the next one
            return to_view(order), True
        else:
            if cfg.mode == "fixed":
                raise deposit_addresses.exhausted(network)
    raise Conflict(
        "the order could not be created under heavy contention; retry the same request", code="CREATE_CONTENTION"
    )


def _replay(existing: Order, fingerprint: str) -> OrderView:
    if existing.fingerprint != fingerprint:
        raise Conflict(
            f"orderId '{existing.order_id}' already exists with different parameters; "
            "use a new orderId or repeat the original request exactly",
            code="ORDER_ID_CONFLICT",
        )
    return to_view(existing)


def _new_order(
    merchant_id: str,
    req: CreateOrderRequest,
    network: Network,
    cand: deposit_addresses.Candidate,
    requested_units: int,
    fingerprint: str,
    now: int,
    expires_at: int,
    watch_until: int,
) -> Order:
    public_id = secrets.token_urlsafe(16)
    uri = payment_uri(
        family=network.family,
        token_contract=network.token_contract,
        chain_id=network.chain_id,
        recipient=cand.address,
        amount_base_units=cand.units,
    )
    return Order(
        merchant_id=merchant_id,
        order_id=req.order_id,
        public_id=public_id,
        payment_url=order_views.payment_url(public_id),
        network=network.name,
        chain_id=network.chain_id,
        token_contract=network.token_contract,
        decimals=network.decimals,
        amount_units=cand.units,
        requested_units=requested_units,
        tolerance_units=tolerance_units(
            cand.units, network.decimals, settings().underpayment_tolerance, settings().underpayment_tolerance_percent
        ),
        address=cand.address,
        address_index=cand.index,
        deposit_salt=cand.salt,
        deposit_factory=cand.factory,
        payment_uri=uri,
        # Rendered once here (about 10 ms) rather than on every read of the order.
        qr_code_data=qr_png_data_uri(uri),
        status=OrderStatus.PENDING,
        expires_at=expires_at,
        watch_until=watch_until,
        created_at=now,
        notify_url=req.notify_url,
        return_url=req.return_url,
        metadata=req.metadata,
        fingerprint=fingerprint,
    )


def _head(order: Order) -> int | None:
    """The network's head for the order's confirmations: read only when it has deposits."""
    return cursor.view_head(order.network) if order_views.needs_head(order) else None


def get_order(merchant_id: str, order_id: str) -> OrderView:
    item = store.get(*store.order_key(merchant_id, path_ids.order_id(order_id)))
    if item is None:
        raise NotFound(f"no order with orderId '{order_id}'", code="ORDER_NOT_FOUND")
    order = Order.from_item(item)
    return to_view(order, _head(order))


def list_orders(
    merchant_id: str,
    *,
    status: OrderStatus | None,
    created_from: int | None,
    created_to: int | None,
    limit: int,
    cursor: str | None,
) -> OrderListView:
    sk_from = f"{created_from or 0:013d}"
    sk_to = f"{created_to if created_to is not None else 9_999_999_999_999:013d}~"
    filters = {"status": status.value} if status else None
    items, next_cursor = store.query_index(
        store.orders_index_pk(merchant_id), sk_from=sk_from, sk_to=sk_to, limit=limit, cursor=cursor, filters=filters
    )
    heads: dict[str, int | None] = {}
    views = []
    for order in map(Order.from_item, items):
        if order_views.needs_head(order) and order.network not in heads:
            heads[order.network] = _head(order)
        views.append(to_view(order, heads.get(order.network)))
    return OrderListView(orders=views, next_cursor=next_cursor)


def cancel_order(merchant_id: str, order_id: str) -> OrderView:
    pk, _ = store.order_key(merchant_id, path_ids.order_id(order_id))

    def cancel(order: Order) -> tuple[Order, list[dict[str, Any]]] | None:
        if order.status == OrderStatus.CANCELLED:
            return None  # cancelling twice is harmless
        if order.status != OrderStatus.PENDING or order.deposits or order.paid_units:
            raise Conflict(
                f"order '{order_id}' is {order.status} and can no longer be cancelled; only an "
                "order that has received nothing can be",
                code="ORDER_NOT_CANCELLABLE",
            )
        # pending -> cancelled (closed now: nothing is expected any more); the state machine's
        # write makes it conditional on the version read and adds its order.cancelled event.
        return replace(order, status=OrderStatus.CANCELLED, closed_at=clock.now_ms()), []

    try:
        applied = transitions.apply(pk, cancel)
    except LookupError as exc:
        raise NotFound(f"no order with orderId '{order_id}'", code="ORDER_NOT_FOUND") from exc
    if applied.order is not None:
        return to_view(applied.order)
    item = store.get(pk, "ORDER")
    assert item is not None  # cancelled before: it exists
    return to_view(Order.from_item(item))


def _public_order(public_id: str) -> Order:
    """The order behind a public id: GetItem on the public pointer, then on the order."""
    pointer = store.get(*store.public_key(public_id), consistent=False) if len(public_id) <= 64 else None
    item = store.get(pointer["orderPk"], "ORDER", consistent=False) if pointer else None
    if item is None:
        raise NotFound("no such payment; check the link", code="ORDER_NOT_FOUND")
    return Order.from_item(item)


def get_public_order(public_id: str) -> PublicOrderView:
    """What the payer's page shows (GET /v1/public/orders/{publicId})."""
    return _public_view(public_id, _public_order(public_id))


def get_payment_page(public_id: str) -> tuple[PublicOrderView, str]:
    """The hosted payment page's data: the public view and the order's QR code (PNG data URI),
    stored at creation, so the page is rendered from the same reads as the public view."""
    order = _public_order(public_id)
    return _public_view(public_id, order), order.qr_code_data or qr_png_data_uri(order.payment_uri)


def _public_view(public_id: str, order: Order) -> PublicOrderView:
    """Reads the network's scan cursor (GetItem) only while the order has deposits, for their
    confirmations."""
    return order_views.public_view(
        public_id, order, _head(order), network=networks().get(order.network), server_time=clock.now_ms()
    )
