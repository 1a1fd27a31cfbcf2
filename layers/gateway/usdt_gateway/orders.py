"""Where an order is created, read, listed and cancelled."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

from usdt_gateway import clock, cursor, deposit_addresses, path_ids, store, transitions, watchlist
from usdt_gateway.config import networks, settings
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.http import request_base_url
from usdt_gateway.money import format_units, parse_amount, plain, to_base_units, tolerance_units
from usdt_gateway.networks import Network
from usdt_gateway.payment_uri import payment_uri
from usdt_gateway.qr import qr_png_data_uri
from usdt_gateway.schemas import (
    CreateOrderRequest,
    DepositView,
    OrderException,
    OrderListView,
    OrderStatus,
    OrderView,
    PublicDepositView,
    PublicOrderView,
)
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
        for cand in deposit_addresses.candidates(cfg, network, units, order_pk=pk, watch_until=watch_until, now=now):
            order = _order_item(merchant_id, req, network, cand, units, fingerprint, now, expires_at, watch_until)
            pub_pk, pub_sk = store.public_key(order["publicId"])
            parts = [
                store.put_part(order),
                store.put_part({"pk": pub_pk, "sk": pub_sk, "orderPk": pk}),
                *cand.parts,
                watchlist.watch_part(network=network.name, order=order, mode=cfg.mode),
            ]
            try:
                store.transact(parts)
            except store.TransactionConflict as conflict:
                if conflict.reasons[0] == "ConditionalCheckFailed":  # a concurrent identical create won
                    return _replay(conflict.items[0] or store.get(pk, sk) or {}, fingerprint), False
                if cfg.mode == "xpub" or "TransactionConflict" in conflict.reasons:
                    break  # the index moved on, or a write raced ours: read the config again
                continue  # this tagged amount is held: try the next tag
            return to_view(order), True
        else:
            if cfg.mode == "fixed":
                raise deposit_addresses.exhausted(network)
    raise Conflict(
        "the order could not be created under heavy contention; retry the same request", code="CREATE_CONTENTION"
    )


def _replay(existing: dict[str, Any], fingerprint: str) -> OrderView:
    if existing.get("fingerprint") != fingerprint:
        raise Conflict(
            f"orderId '{existing.get('orderId')}' already exists with different parameters; "
            "use a new orderId or repeat the original request exactly",
            code="ORDER_ID_CONFLICT",
        )
    return to_view(existing)


def _order_item(
    merchant_id: str,
    req: CreateOrderRequest,
    network: Network,
    cand: deposit_addresses.Candidate,
    requested_units: int,
    fingerprint: str,
    now: int,
    expires_at: int,
    watch_until: int,
) -> dict[str, Any]:
    pk, sk = store.order_key(merchant_id, req.order_id)
    public_id = secrets.token_urlsafe(16)
    uri = payment_uri(
        family=network.family,
        token_contract=network.token_contract,
        chain_id=network.chain_id,
        recipient=cand.address,
        amount_base_units=cand.units,
    )
    return {
        "pk": pk,
        "sk": sk,
        "merchantId": merchant_id,
        "orderId": req.order_id,
        "publicId": public_id,
        "paymentUrl": _payment_url(public_id),
        "network": network.name,
        "chainId": network.chain_id,
        "tokenContract": network.token_contract,
        "decimals": network.decimals,
        "amountUnits": cand.units,
        "requestedUnits": requested_units,
        "paidUnits": 0,
        "toleranceUnits": tolerance_units(
            cand.units, network.decimals, settings().underpayment_tolerance, settings().underpayment_tolerance_percent
        ),
        "address": cand.address,
        "addressIndex": cand.index,
        "paymentUri": uri,
        # Rendered once here (about 10 ms) rather than on every read of the order.
        "qrCodeData": qr_png_data_uri(uri),
        "status": OrderStatus.PENDING.value,
        "expiresAt": expires_at,
        "watchUntil": watch_until,
        "createdAt": now,
        "notifyUrl": req.notify_url,
        "returnUrl": req.return_url,
        "metadata": req.metadata,
        "fingerprint": fingerprint,
        "version": 0,
        "gsi1pk": store.orders_index_pk(merchant_id),
        "gsi1sk": f"{now:013d}#{req.order_id}",
    }


def _payment_url(public_id: str) -> str:
    base = settings().public_base_url or request_base_url.get()
    return f"{base.rstrip('/')}/pay/{public_id}"


def _deposit_views(item: dict[str, Any], head: int | None) -> list[DepositView]:
    decimals = int(item["decimals"])
    views = []
    for d in sorted((item.get("deposits") or {}).values(), key=lambda d: (d["blockNumber"], d["logIndex"])):
        number = int(d["blockNumber"])
        views.append(
            DepositView(
                txid=d["txid"],
                log_index=int(d["logIndex"]),
                amount=format_units(int(d["units"]), decimals),
                sender=d["sender"],
                block_number=number,
                block_time=int(d["blockTime"]),
                confirmations=max(0, head - number + 1) if head is not None else 0,
                final=bool(d["final"]),
                reversed=bool(d.get("reversed")),
            )
        )
    return views


def scan_head(item: dict[str, Any]) -> int | None:
    """The newest block the scanner saw on the order's network (for confirmations)."""
    if not item.get("deposits"):
        return None
    known = cursor.known_head(item["network"])
    if known is not None:
        return known
    scan = store.get(*store.cursor_key(item["network"]), consistent=False)
    return int(scan["head"]) if scan and scan.get("head") is not None else None


def to_view(item: dict[str, Any], head: int | None = None) -> OrderView:
    decimals = int(item["decimals"])
    deposits = _deposit_views(item, head)
    return OrderView(
        order_id=item["orderId"],
        public_id=item["publicId"],
        network=item["network"],
        chain_id=int(item["chainId"]),
        token_contract=item["tokenContract"],
        amount=format_units(int(item["amountUnits"]), decimals),
        requested_amount=format_units(int(item["requestedUnits"]), decimals),
        address=item["address"],
        # Stored at creation: webhooks built by the scanner have no request to take a base URL from.
        payment_url=item.get("paymentUrl") or _payment_url(item["publicId"]),
        payment_uri=item["paymentUri"],
        qr_code_data=item["qrCodeData"],
        status=OrderStatus(item["status"]),
        paid=item["status"] == OrderStatus.CONFIRMED,
        exception=item.get("exception"),
        exceptions=_exceptions(item),
        paid_amount=format_units(int(item.get("paidUnits") or 0), decimals),
        pending_amount=format_units(int(item.get("seenUnits") or 0), decimals),
        excess_amount=format_units(int(item.get("excessUnits") or 0), decimals),
        txid=item.get("txid"),
        confirmed_at=_int_or_none(item.get("confirmedAt")),
        expires_at=int(item["expiresAt"]),
        created_at=int(item["createdAt"]),
        notify_url=item.get("notifyUrl"),
        return_url=item.get("returnUrl"),
        metadata=item.get("metadata"),
        deposits=deposits,
    )


def _exceptions(item: dict[str, Any]) -> list[OrderException]:
    """The item keeps one `exception` (paid_late wins); an excess is overpaid whatever it says."""
    found = [OrderException.PAID_LATE] if item.get("exception") == OrderException.PAID_LATE else []
    if int(item.get("excessUnits") or 0) > 0:
        found.append(OrderException.OVERPAID)
    return found


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def get_order(merchant_id: str, order_id: str) -> OrderView:
    item = store.get(*store.order_key(merchant_id, path_ids.order_id(order_id)))
    if item is None:
        raise NotFound(f"no order with orderId '{order_id}'", code="ORDER_NOT_FOUND")
    return to_view(item, scan_head(item))


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
    for i in items:
        if i.get("deposits") and i["network"] not in heads:
            heads[i["network"]] = scan_head(i)
        views.append(to_view(i, heads.get(i["network"])))
    return OrderListView(orders=views, next_cursor=next_cursor)


def cancel_order(merchant_id: str, order_id: str) -> OrderView:
    pk, _ = store.order_key(merchant_id, path_ids.order_id(order_id))

    def cancel(order: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        if order["status"] == OrderStatus.CANCELLED.value:
            return None  # cancelling twice is harmless
        if order["status"] != OrderStatus.PENDING.value or order.get("deposits") or order.get("paidUnits"):
            raise Conflict(
                f"order '{order_id}' is {order['status']} and can no longer be cancelled; only an "
                "order that has received nothing can be",
                code="ORDER_NOT_CANCELLABLE",
            )
        # pending -> cancelled (closed now: nothing is expected any more); the state machine's
        # write makes it conditional on the version read and adds its order.cancelled event.
        return {**order, "status": OrderStatus.CANCELLED.value, "closedAt": clock.now_ms()}, []

    try:
        applied = transitions.apply(pk, cancel)
    except LookupError as exc:
        raise NotFound(f"no order with orderId '{order_id}'", code="ORDER_NOT_FOUND") from exc
    return to_view(applied.order if applied.order is not None else store.get(pk, "ORDER") or {})


def _finality(network: Network | None) -> tuple[str, int | None]:
    """How a deposit becomes final on the network, as GET /v1/networks says it; the confirmations
    it needs when they are counted."""
    if network is None:  # disabled since the order was created: its chain's own finality
        return "finalized", None
    if network.finality.mode == "confirmations":
        return f"{network.finality.confirmations} confirmations", network.finality.confirmations
    return network.finality.mode, None


def _public_deposits(item: dict[str, Any], head: int | None) -> list[PublicDepositView]:
    return [
        PublicDepositView(
            txid=d.txid, amount=d.amount, block_time=d.block_time, confirmations=d.confirmations, final=d.final
        )
        for d in _deposit_views(item, head)
        if not d.reversed
    ]


def _public_item(public_id: str) -> dict[str, Any]:
    """The order behind a public id: GetItem on the public pointer, then on the order."""
    pointer = store.get(*store.public_key(public_id), consistent=False) if len(public_id) <= 64 else None
    item = store.get(pointer["orderPk"], "ORDER", consistent=False) if pointer else None
    if item is None:
        raise NotFound("no such payment; check the link", code="ORDER_NOT_FOUND")
    return item


def get_public_order(public_id: str) -> PublicOrderView:
    """What the payer's page shows (GET /v1/public/orders/{publicId})."""
    return _public_view(public_id, _public_item(public_id))


def get_payment_page(public_id: str) -> tuple[PublicOrderView, str]:
    """The hosted payment page's data: the public view and the order's QR code (PNG data URI),
    stored at creation, so the page is rendered from the same reads as the public view."""
    item = _public_item(public_id)
    return _public_view(public_id, item), item.get("qrCodeData") or qr_png_data_uri(item["paymentUri"])


def _public_view(public_id: str, item: dict[str, Any]) -> PublicOrderView:
    """The public view of an order item; reads the network's scan cursor (GetItem) only while the
    order has deposits, for their confirmations."""
    network = networks().get(item["network"])
    decimals = int(item["decimals"])
    amount, paid, seen = int(item["amountUnits"]), int(item.get("paidUnits") or 0), int(item.get("seenUnits") or 0)
    finality, required = _finality(network)
    return PublicOrderView(
        public_id=public_id,
        network=item["network"],
        network_name=network.display_name if network else item["network"],
        chain_id=int(item["chainId"]),
        token_contract=item["tokenContract"],
        decimals=decimals,
        amount=format_units(amount, decimals),
        paid_amount=format_units(paid, decimals),
        pending_amount=format_units(seen, decimals),
        missing_amount=format_units(max(0, amount - paid - seen), decimals),
        excess_amount=format_units(int(item.get("excessUnits") or 0), decimals),
        address=item["address"],
        payment_uri=item["paymentUri"],
        status=OrderStatus(item["status"]),
        exception=item.get("exception"),
        finality=finality,
        confirmations=required,
        deposits=_public_deposits(item, scan_head(item)),
        confirmed_at=_int_or_none(item.get("confirmedAt")),
        expires_at=int(item["expiresAt"]),
        server_time=clock.now_ms(),
        return_url=item.get("returnUrl"),
    )
