"""The client's own transport logic (retries, backoff, Retry-After, re-signing, redirects,
timeouts) against a tiny scripted HTTP server on 127.0.0.1; and its signatures against the
gateway's own signing code and a hand-computed vector."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from usdt_gateway_client import (
    Client,
    Deposit,
    DepositRecord,
    GatewayError,
    Order,
    OrderException,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationError,
    sign_v1,
    sign_v2,
)
from usdt_gateway_client.retry import parse_retry_after

from usdt_gateway import jsonbody
from usdt_gateway import request_signing as server_signing

API_KEY, SECRET = "ak_test", "sk_test_secret"
# Far beyond any client timeout here, so only the client's own timeout ends the wait.
HOLD_S = 60.0
ORDER = {
    "orderId": "o-1",
    "publicId": "pub",
    "network": "local",
    "chainId": 31337,
    "currency": "USDT",
    "tokenContract": "0xtoken",
    "amount": "50.00",
    "requestedAmount": "50.00",
    "address": "0xabc",
    "paymentUrl": "http://x/pay/pub",
    "paymentUri": "ethereum:0xtoken@31337/transfer",
    "qrCodeData": "data:",
    "status": "pending",
    "paidAmount": "0",
    "pendingAmount": "0",
    "excessAmount": "0",
    "txid": None,
    "confirmedAt": None,
    "expiresAt": 1764600000000,
    "createdAt": 1764599000000,
    "deposits": [],
    "someFieldAddedLater": {"x": 1},
}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    hang_up: bool = False  # close the connection without answering


@dataclass
class Seen:
    at: float  # time.monotonic(), for gaps
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    wall: float = field(default_factory=time.time)  # when it arrived, since the epoch


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next scripted reply (the last one repeats)."""

    daemon_threads = True

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies = replies
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out has gone: writing to it fails, as it should

    def next_reply(self, seen: Seen) -> Reply:
        with self.lock:
            self.seen.append(seen)
            return self.replies[min(len(self.seen), len(self.replies)) - 1]


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        reply = self.server.next_reply(
            Seen(
                time.monotonic(),
                self.command,
                parts.path,
                parse_qsl(parts.query, keep_blank_values=True),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
        )
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.hang_up:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in {"Content-Type": "application/json", **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Scripted] = []

    def start(*replies: Reply) -> Scripted:
        server = Scripted(list(replies))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class RecordedPolicy(RetryPolicy):
    """The policy, remembering each wait it decided (None: no retry) and the Retry-After it got."""

    decided: list[tuple[float | None, float | None]] = field(default_factory=list)

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        wait = super().delay(retry, retry_after)
        self.decided.append((wait, retry_after))
        return wait

    @property
    def waits(self) -> list[float | None]:
        return [wait for wait, _ in self.decided]


def fast(**kwargs: Any) -> RecordedPolicy:
    return RecordedPolicy(**{"max_retries": 3, "base_delay": 0.05, "max_delay": 0.2, "max_retry_after": 5.0, **kwargs})


def client_for(server: Scripted, **kwargs: Any) -> Client:
    return Client(server.url, API_KEY, SECRET, **{"retry_policy": fast(), "timeout": 2.0, **kwargs})


def assert_v2_valid(seen: Seen) -> None:
    """The gateway's own check of the request as it arrived."""
    message = server_signing.v2_message(
        seen.headers["request-time"],
        seen.method,
        seen.path,
        seen.query,
        seen.body,
        recv_window=seen.headers.get("recv-window"),
        request_nonce=seen.headers.get("request-nonce"),
    )
    assert server_signing.matches(SECRET, message, seen.headers["signature-v2"]), seen


def gaps(seen: list[Seen]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(seen)]


# --- retries --------------------------------------------------------------------------------


def test_429_with_retry_after_seconds_is_waited_then_retried_and_resigned(serve: Any) -> None:
    # Given a gateway that answers 429 Retry-After: 1 once, then the order
    server = serve(
        Reply(429, {"code": "RATE_LIMITED", "message": "slow down"}, {"Retry-After": "1"}), Reply(200, ORDER)
    )
    # When an order is created
    policy = fast()
    order = client_for(server, retry_policy=policy).create_order(order_id="o-1", amount="50.00", network="local")
    # Then it took two attempts: the client waited the asked second (not its own shorter backoff,
    # nor longer), and the second came no sooner
    assert order.order_id == "o-1" and len(server.seen) == 2
    assert policy.waits == [1.0] and gaps(server.seen)[0] >= 1.0
    # And each attempt was signed afresh over the same body bytes, both valid
    first, second = server.seen
    assert first.body == second.body and json.loads(first.body)["amount"] == "50.00"
    assert int(second.headers["request-time"]) - int(first.headers["request-time"]) >= 1000
    assert first.headers["signature-v2"] != second.headers["signature-v2"]
    for seen in server.seen:
        assert_v2_valid(seen)


def test_retry_after_as_an_http_date_is_honoured(serve: Any) -> None:
    # Given a 503 whose Retry-After is an HTTP-date two seconds ahead (one-second resolution)
    date = int(time.time()) + 2
    when = format_datetime(datetime.fromtimestamp(date, tz=UTC), usegmt=True)
    server = serve(Reply(503, {"code": "UNAVAILABLE", "message": "later"}, {"Retry-After": when}), Reply(200, ORDER))
    # When an order is read
    policy = fast()
    client_for(server, retry_policy=policy).get_order("o-1")
    # Then the client waited until that date, read as seconds from its own clock, and the retry
    # came after it
    [(wait, retry_after)] = policy.decided
    assert retry_after is not None and retry_after <= 2 and wait is not None and wait >= retry_after
    assert len(server.seen) == 2 and server.seen[1].wall >= date


def test_503_then_200_is_retried_with_backoff(serve: Any) -> None:
    server = serve(
        Reply(503, {"code": "UNAVAILABLE", "message": "x"}),
        Reply(503, b"<html>bad gateway</html>"),
        Reply(200, {"orders": [ORDER], "nextCursor": None}),
    )
    policy = fast()
    page = client_for(server, retry_policy=policy).list_orders(status="pending", limit=5)
    assert [o.order_id for o in page] == ["o-1"] and len(server.seen) == 3
    # backoff: half to all of 0.05 s, then of 0.1 s; each retry no sooner than its wait
    first, second = policy.waits
    assert first is not None and second is not None
    assert 0.025 <= first <= 0.05 and 0.05 <= second <= 0.1
    assert [g >= w for g, w in zip(gaps(server.seen), (first, second), strict=True)] == [True, True]
    assert server.seen[0].query == [("limit", "5"), ("status", "pending")]


def test_retries_are_capped_and_the_last_error_raised(serve: Any) -> None:
    server = serve(Reply(500, {"code": "INTERNAL_ERROR", "message": "boom"}, {"x-amzn-RequestId": "req-1"}))
    with pytest.raises(ServerError) as failed:
        client_for(server, retry_policy=fast(max_retries=2)).get_order("o-1")
    assert len(server.seen) == 3
    assert (failed.value.status, failed.value.code, failed.value.request_id) == (500, "INTERNAL_ERROR", "req-1")


def test_retry_after_beyond_the_cap_raises_at_once(serve: Any) -> None:
    server = serve(Reply(429, {"code": "RATE_LIMITED", "message": "x"}, {"Retry-After": "30"}), Reply(200, ORDER))
    policy = fast()
    with pytest.raises(RateLimitedError) as limited:
        client_for(server, retry_policy=policy).get_order("o-1")
    # Then the client decided against waiting (no sleep at all) and raised the wait it was asked
    assert policy.decided == [(None, 30.0)]
    assert limited.value.retry_after == 30 and len(server.seen) == 1


def test_blocked_418_is_not_retried(serve: Any) -> None:
    server = serve(Reply(418, {"code": "TEMPORARILY_BLOCKED", "message": "x"}, {"Retry-After": "1"}))
    with pytest.raises(RateLimitedError) as blocked:
        client_for(server).get_order("o-1")
    assert (blocked.value.status, blocked.value.code, blocked.value.retry_after) == (418, "TEMPORARILY_BLOCKED", 1)
    assert len(server.seen) == 1


def test_5xx_on_a_request_that_is_not_idempotent_is_not_retried(serve: Any) -> None:
    # Given a gateway failing with 503
    server = serve(Reply(503, {"code": "UNAVAILABLE", "message": "x"}))
    # When a webhook is resent: a repeat could send it twice
    with pytest.raises(ServerError):
        client_for(server).resend_webhook_delivery("evt_1")
    # Then it was tried once
    assert len(server.seen) == 1 and server.seen[0].path == "/v1/webhooks/deliveries/evt_1/resend"


def test_429_on_a_request_that_is_not_idempotent_is_retried(serve: Any) -> None:
    # A refused request writes nothing, so even a resend is repeated after a 429
    delivery = {
        "deliveryId": "evt_1",
        "type": "order.confirmed",
        "orderId": "o-1",
        "createdAt": 1764599000000,
        "status": "pending",
        "attempts": [],
        "nextAttemptAt": None,
    }
    server = serve(Reply(429, {"code": "RATE_LIMITED", "message": "x"}, {"Retry-After": "0"}), Reply(202, delivery))
    assert client_for(server).resend_webhook_delivery("evt_1").delivery_id == "evt_1"
    assert len(server.seen) == 2


def test_client_errors_are_not_retried(serve: Any) -> None:
    server = serve(Reply(400, {"code": "INVALID_AMOUNT", "message": "amount has more than 6 decimal places"}))
    with pytest.raises(ValidationError) as refused:
        client_for(server).create_order(order_id="o-1", amount="1.0000001", network="local")
    assert refused.value.code == "INVALID_AMOUNT" and len(server.seen) == 1


def test_create_contention_is_retried(serve: Any) -> None:
    server = serve(Reply(409, {"code": "CREATE_CONTENTION", "message": "retry the same request"}), Reply(200, ORDER))
    client_for(server).create_order(order_id="o-1", amount="50.00", network="local")
    assert len(server.seen) == 2 and server.seen[0].body == server.seen[1].body


def test_a_lost_answer_is_retried_for_idempotent_requests_only(serve: Any) -> None:
    # Given a gateway that hangs up on the first request of each client
    server = serve(Reply(hang_up=True), Reply(201, ORDER))
    # When an order is created (idempotent on orderId)
    client_for(server).create_order(order_id="o-1", amount="50.00", network="local")
    # Then the create was repeated, same bytes
    assert len(server.seen) == 2 and server.seen[0].body == server.seen[1].body
    # But a test webhook (not idempotent) is not repeated: its outcome is unknown
    other = serve(Reply(hang_up=True), Reply(200, {}))
    with pytest.raises(TransportError):
        client_for(other).send_test_webhook()
    assert len(other.seen) == 1


def test_timeouts_are_transport_errors_after_the_retries(serve: Any) -> None:
    server = serve(Reply(200, ORDER, delay_s=HOLD_S))  # an answer only after the test
    with pytest.raises(TransportError, match="no answer"):
        client_for(server, timeout=0.1, retry_policy=fast(max_retries=1)).get_order("o-1")
    assert len(server.seen) == 2


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", API_KEY, SECRET, retry_policy=fast(max_retries=1))
    with pytest.raises(TransportError):
        client.list_networks()


def test_redirects_are_not_followed(serve: Any) -> None:
    target = serve(Reply(200, ORDER))
    server = serve(Reply(302, b"", {"Location": f"{target.url}/v1/payment/order/o-1"}))
    with pytest.raises(GatewayError) as redirected:
        client_for(server).get_order("o-1")
    assert redirected.value.status == 302 and target.seen == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:05 GMT", 5.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now) == expected


# --- what is sent ---------------------------------------------------------------------------


def test_requests_carry_the_headers_and_exact_bytes_signed(serve: Any) -> None:
    # Given a V2 client with a stage in its base URL and a receive window
    server = serve(Reply(200, {"orders": [], "nextCursor": None}))
    client = Client(f"{server.url}/live/", API_KEY, SECRET, recv_window_ms=10_000, user_agent="shop/1.0")
    # When a list with awkward query values is sent
    client.list_orders(status="pending", created_from=datetime(2026, 1, 1, tzinfo=UTC), cursor="a b/c+d=é")
    (seen,) = server.seen
    # Then the stage is in the URL but not in what is signed, and the gateway's check accepts it
    assert seen.path == "/live/v1/payment/orders"
    assert seen.headers["api-key"] == API_KEY and seen.headers["recv-window"] == "10000"
    assert seen.headers["user-agent"] == "shop/1.0" and "signature-v1" not in seen.headers
    assert sorted(seen.query) == [("cursor", "a b/c+d=é"), ("from", "1767225600000"), ("status", "pending")]
    nonce = seen.headers["request-nonce"]
    message = server_signing.v2_message(
        seen.headers["request-time"],
        "GET",
        "/v1/payment/orders",
        seen.query,
        b"",
        recv_window="10000",
        request_nonce=nonce,
    )
    assert server_signing.matches(SECRET, message, seen.headers["signature-v2"])
    # And the receive window and the nonce are part of what is signed: without them it does not match
    unsigned = server_signing.v2_message(seen.headers["request-time"], "GET", "/v1/payment/orders", seen.query, b"")
    assert not server_signing.matches(SECRET, unsigned, seen.headers["signature-v2"])
    assert len(nonce) == 32


def test_each_attempt_gets_its_own_nonce_and_signature(serve: Any) -> None:
    # Given a gateway that answers 503 once, then the cancelled order
    server = serve(Reply(503, {"code": "UNAVAILABLE", "message": "try again"}), Reply(200, ORDER))
    # When an order is cancelled (idempotent: retried after a 5xx)
    client_for(server).cancel_order("o-1")
    # Then each attempt was signed anew, so the gateway never takes the retry for a replay
    first, second = server.seen
    assert first.headers["request-nonce"] != second.headers["request-nonce"]
    assert first.headers["signature-v2"] != second.headers["signature-v2"]
    for seen in (first, second):
        assert_v2_valid(seen)


def test_v1_client_signs_the_parsed_body_as_the_gateway_does(serve: Any) -> None:
    server = serve(
        Reply(201, ORDER), Reply(200, ORDER), Reply(200, {"orders": [], "nextCursor": None}), Reply(200, ORDER)
    )
    client = client_for(server, signature_version="v1")
    client.create_order(order_id="o-1", amount=Decimal("50.00"), network="local", metadata={"note": "café", "n": 2})
    client.get_order("o-1")
    client.list_orders()
    client.cancel_order("o-1")
    created, fetched, listed, cancelled = server.seen
    for seen in (created, fetched):
        assert "signature-v2" not in seen.headers
        # as the gateway reads the body: numbers by their exact text
        parsed = jsonbody.loads(seen.body) if seen.body else ""
        expected = server_signing.sign(SECRET, server_signing.v1_message(seen.headers["request-time"], parsed))
        assert seen.headers["signature-v1"] == expected
    assert created.headers["content-type"] == "application/json" and fetched.body == b""
    # And the requests the gateway takes V1 for are the only ones signed so: the rest are V2
    for seen in (listed, cancelled):
        assert "signature-v1" not in seen.headers
        assert_v2_valid(seen)


def test_signatures_match_the_documented_construction() -> None:
    # docs/signing.md, computed by hand here
    body = b'{"amount":"50.00","orderId":"x"}'
    message = "\n".join(
        ["v2", "1764600000000", "POST", "/v1/payment/order", "a=1&b=%20%2F~", hashlib.sha256(body).hexdigest()]
    )
    expected = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert sign_v2(SECRET, "1764600000000", "post", "/v1/payment/order", [("b", " /~"), ("a", "1")], body) == expected
    extended = hmac.new(
        SECRET.encode(), (message + "\nrecv-window:10000\nrequest-nonce:n-1").encode(), hashlib.sha256
    ).hexdigest()
    assert (
        sign_v2(
            SECRET,
            "1764600000000",
            "POST",
            "/v1/payment/order",
            [("b", " /~"), ("a", "1")],
            body,
            recv_window="10000",
            request_nonce="n-1",
        )
        == extended
    )
    v1 = hmac.new(SECRET.encode(), b'1764600000000{"amount": "50.00", "orderId": "x"}', hashlib.sha256).hexdigest()
    assert sign_v1(SECRET, "1764600000000", body) == v1
    assert (
        sign_v1(SECRET, "1764600000000", b"")
        == hmac.new(SECRET.encode(), b'1764600000000""', hashlib.sha256).hexdigest()
    )


def test_responses_become_typed_models_tolerating_unknown_fields(serve: Any) -> None:
    odd = {**ORDER, "status": "a_future_status", "exception": "overpaid", "amount": "50.000001"}
    server = serve(Reply(200, odd))
    order = client_for(server).get_order("o-1")
    assert order.status == "a_future_status" and order.exception == "overpaid"
    assert order.amount == Decimal("50.000001") and order.raw["someFieldAddedLater"] == {"x": 1}
    assert order.expires_at == datetime(2025, 12, 1, 14, 40, tzinfo=UTC)


def test_an_order_says_whether_it_is_paid_and_every_exception() -> None:
    # Given a late overpaid order as the gateway sends it, and one from a gateway without `paid`
    late = {
        **ORDER,
        "status": "confirmed",
        "paid": True,
        "exception": "paid_late",
        "exceptions": ["paid_late", "overpaid", "a_future_exception"],
        "excessAmount": "1.50",
    }
    older = {k: v for k, v in late.items() if k not in ("paid", "exceptions")}
    # When they are parsed
    order, old = Order.from_dict(late), Order.from_dict(older)
    # Then both are paid; the new one lists both exceptions, unknown ones kept as strings
    assert order.paid and order.is_paid and old.paid and old.is_paid
    assert order.exceptions == (OrderException.PAID_LATE, OrderException.OVERPAID, "a_future_exception")
    assert order.exception == OrderException.PAID_LATE and old.exceptions == ()
    assert not Order.from_dict(ORDER).paid and not Order.from_dict(ORDER).is_paid


def test_reversed_and_ignored_deposits_are_told_apart() -> None:
    # Given a deposit a deep reorg reversed (in an order) and dust (in the deposits listing)
    gone = {
        "txid": "0x1",
        "logIndex": 0,
        "amount": "25.00",
        "sender": "0xs",
        "blockNumber": 9,
        "blockTime": 1,
        "confirmations": 0,
        "final": True,
        "reversed": True,
    }
    dust = {
        "depositId": "local:0x2:0",
        "network": "local",
        "txid": "0x2",
        "logIndex": 0,
        "blockNumber": 8,
        "blockTime": 1,
        "sender": "0xs",
        "recipient": "0xr",
        "amount": "0.000001",
        "unmatched": False,
        "status": "ignored",
        "reason": "below_minimum",
    }
    older = {k: v for k, v in dust.items() if k not in ("status", "reason")}
    # When they are parsed
    order = Order.from_dict({**ORDER, "deposits": [gone]})
    record, old = DepositRecord.from_dict(dust), DepositRecord.from_dict(older)
    # Then each says what it is; a gateway without `status` reads as before
    assert order.deposits[0].reversed and not Deposit.from_dict({**gone, "reversed": False}).reversed
    assert (record.status, record.reason, record.unmatched) == ("ignored", "below_minimum", False)
    assert (old.status, old.reason) == ("credited", None)


@pytest.mark.parametrize("amount", [50.0, True, None, [1]])
def test_amounts_that_are_not_exact_are_refused(amount: Any) -> None:
    client = Client("http://127.0.0.1:9", API_KEY, SECRET)
    with pytest.raises(TypeError):
        client.create_order(order_id="o-1", amount=amount, network="local")


def test_client_repr_hides_the_secret() -> None:
    assert SECRET not in repr(Client("https://pay.example.com", API_KEY, SECRET))


def test_an_answer_missing_what_the_api_promises_is_a_gateway_error(serve: Any) -> None:
    server = serve(Reply(200, {"orderId": "o-1"}, {"x-amzn-RequestId": "req-2"}))
    with pytest.raises(GatewayError) as odd:
        client_for(server).get_order("o-1")
    assert (odd.value.status, odd.value.code, odd.value.request_id) == (200, "INVALID_RESPONSE", "req-2")
