"""The merchant's client of the gateway's HTTP API, standard library only.

    client = Client("https://pay.example.com", "ak_...", "sk_...")
    order = client.create_order(order_id="order_123", amount="50.00", network="tron")
    print(order.payment_url, order.amount, order.address)

Every private request is signed (Signature-V2 by default, docs/signing.md) over the exact bytes
sent, with a fresh Request-Nonce, and signed again, with a fresh Request-Time and nonce, for every
attempt: the gateway refuses a signature a write has already used (a replay).

Retries (RetryPolicy: exponential backoff with jitter, Retry-After honoured and capped):
- 429 on any request: a refused request writes nothing, so repeating it is always safe;
- 5xx, connection errors and timeouts only on idempotent requests: reads, PUT of the webhook
  endpoint, creating an order (idempotent on orderId: an identical repeat returns the same
  order, 200), cancelling one (cancelling a cancelled order changes nothing) and submitting a
  refund's signature (the same signature again returns the refund as it is);
- 409 CREATE_CONTENTION, which asks for the same request again.
Resending a webhook, sending a test webhook, attaching a deposit and creating a refund are not
repeated after a 5xx or a lost answer: their outcome is then unknown (TransportError /
ServerError).
Redirects are never followed: a signature is bound to its path.
"""

from __future__ import annotations

import json
import platform
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from email.message import Message
from enum import Enum
from http.client import HTTPException
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

from ._version import __version__
from .errors import ConflictError, GatewayError, RateLimitedError, TransportError, error_for_status
from .models import (
    DeliveryStatus,
    DepositRecord,
    Network,
    Order,
    OrderStatus,
    Page,
    Refund,
    Settlement,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookTestResult,
    XpubAddress,
    XpubSweep,
    to_ms,
)
from .retry import RetryPolicy, parse_retry_after
from .signing import canonical_query, sign_v1, sign_v2

__all__ = ["Amount", "Client"]

Amount = Decimal | str | int
T = TypeVar("T")
SignatureVersion = Literal["v2", "v1"]
_UNSET: Any = object()
MAX_ERROR_BODY = 64 * 1024


def _amount(value: Any) -> str:
    """An amount as the decimal string the API takes; floats are refused, they are not exact."""
    if isinstance(value, float):
        raise TypeError(
            "amount must be a Decimal or a decimal string such as '50.00', not a float "
            "(floats cannot hold most decimal amounts exactly)"
        )
    if isinstance(value, bool) or not isinstance(value, (Decimal, str, int)):
        raise TypeError(f"amount must be a Decimal or a decimal string, not {type(value).__name__}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"amount must be a finite number, not {value}")
        return format(value, "f")
    return str(value)


def _segment(value: str) -> str:
    """A path parameter, percent-encoded; ids of the API's alphabet (A-Z a-z 0-9 _ - . :) stay as they are."""
    if not isinstance(value, str) or not value:
        raise ValueError("an id must be a non-empty string")
    return quote(value, safe="-_.~:")


def _text(value: Enum | str) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # the 3xx surfaces as an HTTPError, then a GatewayError


class Client:
    """A merchant's client: one per API key; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        secret_key: str,
        *,
        timeout: float = 15.0,
        max_retries: int = 3,
        signature_version: SignatureVersion = "v2",
        user_agent: str | None = None,
        recv_window_ms: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """base_url: where the API is served, e.g. https://<id>.execute-api.<region>.amazonaws.com/live
        or a custom domain; paths from /v1 on are appended (and signed without the stage prefix).
        timeout: seconds per attempt. max_retries: further attempts after the first (see the module
        docstring for which); retry_policy overrides it and the delays. recv_window_ms: how long a
        signed request stays valid (the gateway's default is 5000, at most 60000). signature_version
        "v1" signs creating and getting an order with Signature-V1, the only requests the gateway
        takes it for (by default), and every other request with V2."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"base_url must be an http(s) URL without query or fragment, not {base_url!r}")
        if signature_version not in ("v2", "v1"):
            raise ValueError("signature_version must be 'v2' or 'v1'")
        if not api_key or not secret_key:
            raise ValueError("api_key and secret_key are required")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._secret_key = secret_key
        self.timeout = timeout
        self.signature_version: SignatureVersion = signature_version
        self.user_agent = user_agent or (f"usdt-gateway-client/{__version__} Python/{platform.python_version()}")
        self.recv_window_ms = recv_window_ms
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, api_key={self.api_key!r}, signature_version={self.signature_version!r})"

    # --- orders -------------------------------------------------------------------------------

    def create_order(
        self,
        *,
        order_id: str,
        amount: Amount,
        network: str | None = None,
        chain_id: int | None = None,
        currency: str = "USDT",
        notify_url: str | None = None,
        return_url: str | None = None,
        expires_in: int | timedelta | None = None,
        metadata: Mapping[str, str | int | bool | None] | None = None,
    ) -> Order:
        """Create a payment order, or get the same order back for an identical repeat (so a
        retried create never makes two). The same order_id with other parameters raises
        ConflictError (ORDER_ID_CONFLICT). Give network (see list_networks) or chain_id."""
        body: dict[str, Any] = {"currency": currency, "amount": _amount(amount), "orderId": order_id}
        if network is not None:
            body["network"] = network
        if chain_id is not None:
            body["chainId"] = chain_id
        if notify_url is not None:
            body["notifyUrl"] = notify_url
        if return_url is not None:
            body["returnUrl"] = return_url
        if expires_in is not None:
            body["expiresIn"] = int(expires_in.total_seconds()) if isinstance(expires_in, timedelta) else expires_in
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return self._call("POST", "/v1/payment/order", body=body, idempotent=True, parse=Order.from_dict, v1=True)

    def get_order(self, order_id: str) -> Order:
        return self._call("GET", f"/v1/payment/order/{_segment(order_id)}", parse=Order.from_dict, v1=True)

    def list_orders(
        self,
        *,
        status: OrderStatus | str | None = None,
        created_from: datetime | int | None = None,
        created_to: datetime | int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Order]:
        """One page of orders, newest first; created_from/created_to are inclusive (datetime, or ms
        since the epoch); limit 1-100 (the API's default: 20)."""
        query = self._query(
            status=None if status is None else _text(status),
            **{
                "from": None if created_from is None else str(to_ms(created_from)),
                "to": None if created_to is None else str(to_ms(created_to)),
            },
            limit=limit,
            cursor=cursor,
        )
        return self._call(
            "GET",
            "/v1/payment/orders",
            query=query,
            parse=lambda data: Page(tuple(Order.from_dict(o) for o in data["orders"]), data.get("nextCursor")),
        )

    def iter_orders(
        self,
        *,
        status: OrderStatus | str | None = None,
        created_from: datetime | int | None = None,
        created_to: datetime | int | None = None,
        page_size: int | None = None,
    ) -> Iterator[Order]:
        """Every matching order, newest first, fetching page after page as the iteration goes."""
        return self._pages(
            lambda cursor: self.list_orders(
                status=status, created_from=created_from, created_to=created_to, limit=page_size, cursor=cursor
            )
        )

    def cancel_order(self, order_id: str) -> Order:
        """Cancel an order that has received nothing (ConflictError ORDER_NOT_CANCELLABLE otherwise);
        cancelling a cancelled order again changes nothing."""
        path = f"/v1/payment/order/{_segment(order_id)}/cancel"
        return self._call("POST", path, idempotent=True, parse=Order.from_dict)

    # --- deposits -----------------------------------------------------------------------------

    def list_deposits(
        self, *, unmatched: bool | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[DepositRecord]:
        """Final deposits to your addresses, newest first; unmatched=True: only those no order took."""
        query = self._query(
            unmatched=None if unmatched is None else ("true" if unmatched else "false"), limit=limit, cursor=cursor
        )
        return self._call(
            "GET",
            "/v1/deposits",
            query=query,
            parse=lambda data: Page(
                tuple(DepositRecord.from_dict(d) for d in data["deposits"]), data.get("nextCursor")
            ),
        )

    def iter_deposits(self, *, unmatched: bool | None = None, page_size: int | None = None) -> Iterator[DepositRecord]:
        return self._pages(lambda cursor: self.list_deposits(unmatched=unmatched, limit=page_size, cursor=cursor))

    def attach_deposit(self, deposit_id: str, order_id: str) -> Order:
        """Credit an unmatched deposit to one of your orders; the order as it is then."""
        path = f"/v1/deposits/{_segment(deposit_id)}/attach"
        return self._call("POST", path, body={"orderId": order_id}, parse=Order.from_dict)

    # --- settlements (contract mode) ------------------------------------------------------------

    def list_settlements(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Settlement]:
        """Sweeps of your deposit addresses to your treasury, newest first; limit 1-100 (the API's
        default: 20)."""
        return self._call(
            "GET",
            "/v1/settlements",
            query=self._query(limit=limit, cursor=cursor),
            parse=lambda data: Page(
                tuple(Settlement.from_dict(s) for s in data["settlements"]), data.get("nextCursor")
            ),
        )

    def iter_settlements(self, *, page_size: int | None = None) -> Iterator[Settlement]:
        return self._pages(lambda cursor: self.list_settlements(limit=page_size, cursor=cursor))

    def get_settlement(self, settlement_id: str) -> Settlement:
        return self._call("GET", f"/v1/settlements/{_segment(settlement_id)}", parse=Settlement.from_dict)

    # --- xpub mode: your own sweeps (usdt_gateway_client.sweep) -----------------------------------

    def list_xpub_addresses(self, network: str | None = None) -> list[XpubAddress]:
        """Your xpub deposit addresses holding final money not recorded as swept, by network then
        derivation index."""
        return self._call(
            "GET",
            "/v1/xpub/addresses",
            query=self._query(network=network),
            parse=lambda data: [XpubAddress.from_dict(a) for a in data["addresses"]],
        )

    def record_xpub_sweep(self, network: str, address: str, txid: str, units: int) -> XpubSweep:
        """Record your sweep of an xpub address (the token transfer `txid` moved `units` from it), so
        they no longer show as unswept. Idempotent on the txid, so it is repeated after a 5xx or a
        lost answer; a different record under the same txid is a ConflictError."""
        body = {"network": network, "address": address, "txid": txid, "units": str(int(units))}
        return self._call("POST", "/v1/xpub/sweeps", body=body, idempotent=True, parse=XpubSweep.from_dict)

    # --- refunds (contract mode) ----------------------------------------------------------------

    def create_refund(self, order_id: str, to: str, amount: Amount | None = None) -> Refund:
        """Prepare a refund of money the order did not take (an excess, an unpaid order's money,
        late or unmatched payments to its deposit address) to `to`; amount None: all that is
        refundable. It waits for your owner key's signature: check and sign it with
        usdt_gateway_client.refunds.sign_refund, then submit_refund_signature. Not repeated after
        a 5xx or a lost answer: list_refunds shows whether it was made, and the gateway refuses a
        second one while one is in progress (ConflictError REFUND_IN_PROGRESS)."""
        body: dict[str, Any] = {"to": to}
        if amount is not None:
            body["amount"] = _amount(amount)
        return self._call("POST", f"/v1/payment/order/{_segment(order_id)}/refunds", body=body, parse=Refund.from_dict)

    def submit_refund_signature(self, order_id: str, refund_id: str, signature: str | bytes) -> Refund:
        """Hand the owner's signature (0x r||s||v, or its 65 bytes) to the gateway, which checks it
        and submits the refund. The same signature again returns the refund as it is, so this is
        repeated after a 5xx or a lost answer."""
        if isinstance(signature, bytes):
            signature = "0x" + signature.hex()
        path = f"/v1/payment/order/{_segment(order_id)}/refunds/{_segment(refund_id)}/signature"
        return self._call("POST", path, body={"signature": signature}, idempotent=True, parse=Refund.from_dict)

    def get_refund(self, order_id: str, refund_id: str) -> Refund:
        path = f"/v1/payment/order/{_segment(order_id)}/refunds/{_segment(refund_id)}"
        return self._call("GET", path, parse=Refund.from_dict)

    def list_refunds(self, order_id: str) -> list[Refund]:
        """The order's refunds, newest first."""
        return self._call(
            "GET",
            f"/v1/payment/order/{_segment(order_id)}/refunds",
            parse=lambda data: [Refund.from_dict(r) for r in data["items"]],
        )

    # --- networks (public) --------------------------------------------------------------------

    def list_networks(self) -> list[Network]:
        """The enabled networks: chain id, token contract, decimals, finality, amount bounds."""
        return self._call(
            "GET", "/v1/networks", signed=False, parse=lambda data: [Network.from_dict(n) for n in data["networks"]]
        )

    # --- webhooks -----------------------------------------------------------------------------

    def list_webhook_deliveries(
        self,
        *,
        order_id: str | None = None,
        type: str | None = None,
        outcome: DeliveryStatus | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[WebhookDelivery]:
        """The delivery log, one entry per event with every attempt, newest first."""
        query = self._query(
            orderId=order_id, type=type, outcome=None if outcome is None else _text(outcome), limit=limit, cursor=cursor
        )
        return self._call(
            "GET",
            "/v1/webhooks/deliveries",
            query=query,
            parse=lambda data: Page(
                tuple(WebhookDelivery.from_dict(d) for d in data["deliveries"]), data.get("nextCursor")
            ),
        )

    def iter_webhook_deliveries(
        self,
        *,
        order_id: str | None = None,
        type: str | None = None,
        outcome: DeliveryStatus | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[WebhookDelivery]:
        return self._pages(
            lambda cursor: self.list_webhook_deliveries(
                order_id=order_id, type=type, outcome=outcome, limit=page_size, cursor=cursor
            )
        )

    def resend_webhook_delivery(self, delivery_id: str) -> WebhookDelivery:
        """Send an event again now: the same webhook-id and body, attempts numbered on."""
        path = f"/v1/webhooks/deliveries/{_segment(delivery_id)}/resend"
        return self._call("POST", path, parse=WebhookDelivery.from_dict)

    def send_test_webhook(self, url: str | None = None) -> WebhookTestResult:
        """Send a signed webhook.test to `url` (default: your webhook URL) now; what it answered."""
        body = {} if url is None else {"url": url}
        return self._call("POST", "/v1/webhooks/test", body=body, parse=WebhookTestResult.from_dict)

    def get_webhook_endpoint(self) -> WebhookEndpoint:
        return self._call("GET", "/v1/webhooks/endpoint", parse=WebhookEndpoint.from_dict)

    def update_webhook_endpoint(
        self, *, url: str | None = _UNSET, enabled: bool | None = None, enable_urls: Iterable[str] | None = None
    ) -> WebhookEndpoint:
        """Set the default webhook URL (url=None removes it), enable or disable it, re-enable other
        disabled URLs (e.g. an order's notify_url that answered 410). Only what is given changes."""
        body: dict[str, Any] = {}
        if url is not _UNSET:
            body["url"] = url
        if enabled is not None:
            body["enabled"] = enabled
        if enable_urls is not None:
            body["enableUrls"] = list(enable_urls)
        return self._call("PUT", "/v1/webhooks/endpoint", body=body, idempotent=True, parse=WebhookEndpoint.from_dict)

    # --- plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _query(**params: Any) -> list[tuple[str, str]]:
        return [(name, str(value)) for name, value in params.items() if value is not None]

    @staticmethod
    def _pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def _headers(
        self, method: str, path: str, query: list[tuple[str, str]], body: bytes | None, signed: bool, v1: bool
    ) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if not signed:
            return headers
        timestamp = str(time.time_ns() // 1_000_000)
        raw = body or b""
        headers["API-Key"] = self.api_key
        headers["Request-Time"] = timestamp
        window = None if self.recv_window_ms is None else str(self.recv_window_ms)
        if window is not None:
            headers["Recv-Window"] = window
        if self.signature_version == "v1" and v1:
            # V1 does not sign Recv-Window: the gateway caps a V1 request's window (5000 ms by default).
            headers["Signature-V1"] = sign_v1(self._secret_key, timestamp, raw)
            return headers
        nonce = secrets.token_hex(16)
        headers["Request-Nonce"] = nonce
        headers["Signature-V2"] = sign_v2(
            self._secret_key, timestamp, method, path, query, raw, recv_window=window, request_nonce=nonce
        )
        return headers

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, Message, bytes]:
        # S310: the scheme is http(s), checked in __init__.
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read(MAX_ERROR_BODY)

    def _call(
        self,
        method: str,
        path: str,
        *,
        parse: Callable[[Any], T],
        query: list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
        signed: bool = True,
        idempotent: bool | None = None,
        v1: bool = False,
    ) -> T:
        """Send (and, as the policy allows, resend) one API request; its JSON answer, parsed.
        `v1`: the gateway takes Signature-V1 here (create and get order), so a client made with
        signature_version="v1" signs it so; every other request is signed with V2."""
        pairs = list(query or [])
        raw = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        qs = canonical_query(pairs)
        url = f"{self.base_url}{path}" + (f"?{qs}" if qs else "")
        retry_transport = method in ("GET", "HEAD", "PUT") if idempotent is None else idempotent
        retry = 0
        while True:
            headers = self._headers(method, path, pairs, raw, signed, v1)  # a fresh Request-Time each attempt
            try:
                status, response_headers, data = self._send(method, url, headers, raw)
            except (OSError, HTTPException) as exc:  # URLError, timeouts and resets are OSErrors
                # A certificate that does not verify will not verify on the next attempt either.
                lasting = isinstance(getattr(exc, "reason", exc), ssl.SSLCertVerificationError)
                wait = self.retry_policy.delay(retry, None) if retry_transport and not lasting else None
                if wait is None:
                    raise TransportError(f"{method} {path}: no answer from {self.base_url}: {exc}") from exc
                time.sleep(wait)
                retry += 1
                continue
            if 200 <= status < 300:
                try:
                    return parse(json.loads(data, parse_float=Decimal) if data.strip() else {})
                except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
                    raise GatewayError(
                        status,
                        "INVALID_RESPONSE",
                        f"{method} {path}: unexpected answer ({exc!r}): {data[:200].decode('utf-8', 'replace')}",
                        request_id=_request_id(response_headers),
                    ) from exc
            error = _error(status, response_headers, data)
            wait = None
            if self._retryable(error, retry_transport):
                # A 429 says how long to wait; so may a 503.
                retry_after = parse_retry_after(response_headers.get("Retry-After"), time.time())
                wait = self.retry_policy.delay(retry, retry_after)
            if wait is None:
                raise error
            time.sleep(wait)
            retry += 1

    @staticmethod
    def _retryable(error: GatewayError, idempotent: bool) -> bool:
        if error.status == 429:
            return True  # nothing was written
        if isinstance(error, ConflictError):
            return error.code == "CREATE_CONTENTION"
        return error.status >= 500 and idempotent


def _request_id(headers: Message) -> str | None:
    return headers.get("x-amzn-RequestId") or headers.get("x-request-id")


def _error(status: int, headers: Message, data: bytes) -> GatewayError:
    code, message = None, ""
    try:
        parsed = json.loads(data, parse_float=Decimal)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        parsed = parsed["error"]  # {"error": {"code", "message"}} reads as the flat form
    if isinstance(parsed, dict):
        code = parsed.get("code") if isinstance(parsed.get("code"), str) else None
        message = str(parsed.get("message") or "")
    if not message:
        message = data[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    kind = error_for_status(status)
    common: dict[str, Any] = {"request_id": _request_id(headers), "headers": dict(headers.items())}
    if kind is RateLimitedError:
        retry_after = parse_retry_after(headers.get("Retry-After"), time.time())
        return RateLimitedError(status, code, message, retry_after=retry_after, **common)
    return kind(status, code, message, **common)
