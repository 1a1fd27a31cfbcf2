"""The client's settlement and refund calls (contract mode) against the scripted HTTP server of
test_client_retries: what each sends (method, path, exact body, a signature the gateway's own
check accepts), how its answer is typed, and which failures it repeats."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from refund_data import SETTLEMENT, refund_json, typed_data
from test_client_retries import Reply, Scripted, assert_v2_valid, client_for
from usdt_gateway_client import (
    ConflictError,
    FundsLocation,
    NotFoundError,
    Order,
    Refund,
    RefundStatus,
    ServerError,
    Settlement,
    SettlementStatus,
    TransportError,
    WebhookEvent,
)

Serve = Callable[..., Scripted]
REFUND = refund_json(typed_data(deadline=1764720000))
SIGNATURE = "0x" + "11" * 32 + "22" * 32 + "1b"


@pytest.fixture
def serve() -> Iterator[Serve]:
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


# --- settlements ------------------------------------------------------------------------------


def test_settlements_are_listed_page_by_page_and_typed(serve: Serve) -> None:
    # Given two pages of settlements
    second = {**SETTLEMENT, "settlementId": "stl_" + "cd" * 12, "status": "failed", "txHash": None, "gasPaid": "0"}
    server = serve(
        Reply(200, {"settlements": [SETTLEMENT], "nextCursor": "c/1+"}),
        Reply(200, {"settlements": [{**second, "reason": "reverted"}], "nextCursor": None}),
    )
    # When every settlement is iterated, one per page
    settlements = list(client_for(server).iter_settlements(page_size=1))
    # Then both pages were read with signed GETs, the second from the first's cursor
    first_seen, second_seen = server.seen
    assert [(s.method, s.path, s.body) for s in server.seen] == [("GET", "/v1/settlements", b"")] * 2
    assert first_seen.query == [("limit", "1")]
    assert sorted(second_seen.query) == [("cursor", "c/1+"), ("limit", "1")]
    for seen in server.seen:
        assert_v2_valid(seen)
    # And each is typed: the amount exact, the gas in wei, the times aware
    done, failed = settlements
    assert done == Settlement(
        settlement_id="stl_" + "ab" * 12,
        network="eth",
        status=SettlementStatus.COMPLETED,
        factory=SETTLEMENT["factory"],
        token_contract=SETTLEMENT["tokenContract"],
        amount=Decimal("150.000001"),
        orders=("o-1", "o-2"),
        deposits=("eth:0x1:0", "eth:0x2:3"),
        tx_hash=SETTLEMENT["txHash"],
        gas_paid=123456789012345678,
        reason=None,
        created_at=datetime(2025, 12, 1, 14, 23, 20, tzinfo=UTC),
        closed_at=datetime(2025, 12, 1, 14, 24, 20, 123000, tzinfo=UTC),
    )
    assert (failed.status, failed.tx_hash, failed.gas_paid, failed.reason) == ("failed", None, 0, "reverted")
    assert failed.raw["reason"] == "reverted"


def test_a_settlement_is_read_by_its_id(serve: Serve) -> None:
    server = serve(
        Reply(200, SETTLEMENT),
        Reply(404, {"code": "SETTLEMENT_NOT_FOUND", "message": "no settlement with settlementId 'stl_x'"}),
    )
    client = client_for(server)
    assert client.get_settlement("stl_" + "ab" * 12).amount == Decimal("150.000001")
    with pytest.raises(NotFoundError) as missing:
        client.get_settlement("stl_" + "00" * 12)
    assert missing.value.code == "SETTLEMENT_NOT_FOUND"
    assert [s.path for s in server.seen] == ["/v1/settlements/stl_" + "ab" * 12, "/v1/settlements/stl_" + "00" * 12]


# --- refunds ----------------------------------------------------------------------------------


def test_create_refund_posts_the_recipient_and_amount_and_types_the_answer(serve: Serve) -> None:
    # Given a gateway that prepares the refund
    server = serve(Reply(201, REFUND), Reply(201, REFUND))
    client = client_for(server)
    # When a refund of 12.5 is created, then one of all that is refundable
    refund = client.create_refund("o-1", "0x" + "be" * 20, Decimal("12.50"))
    client.create_refund("o-1", "0x" + "be" * 20)
    # Then each is a signed POST of exactly these bytes: no amount for all of it
    with_amount, whole = server.seen
    assert (with_amount.method, with_amount.path) == ("POST", "/v1/payment/order/o-1/refunds")
    assert with_amount.body == b'{"to":"0x' + b"be" * 20 + b'","amount":"12.50"}'
    assert json.loads(whole.body) == {"to": "0x" + "be" * 20}
    assert with_amount.headers["content-type"] == "application/json"
    for seen in server.seen:
        assert_v2_valid(seen)
    # And the answer is a typed Refund that keeps the typed data exactly as sent
    assert refund.refund_id == REFUND["refundId"] and refund.status is RefundStatus.AWAITING_SIGNATURE
    assert refund.amount == Decimal("12.5") and refund.to == "0x" + "be" * 20
    assert refund.deadline == 1764720000 and refund.deadline_at == datetime(2025, 12, 3, tzinfo=UTC)
    assert refund.typed_data == REFUND["typedData"] and refund.digest == REFUND["digest"]
    assert (refund.owner, refund.factory, refund.deposit_address) == (
        REFUND["owner"],
        REFUND["factory"],
        REFUND["depositAddress"],
    )
    assert (refund.tx_hash, refund.gas_paid, refund.reason) == (None, None, None)


@pytest.mark.parametrize("failure", [Reply(503, {"code": "UNAVAILABLE", "message": "x"}), Reply(hang_up=True)])
def test_create_refund_is_not_repeated_when_its_outcome_is_unknown(serve: Serve, failure: Reply) -> None:
    # Given a gateway that fails the first request (a 5xx, or no answer at all)
    server = serve(failure, Reply(201, REFUND))
    # When a refund is created, Then the failure is raised after one request: it may have been made
    with pytest.raises((ServerError, TransportError)):
        client_for(server).create_refund("o-1", "0x" + "be" * 20, "12.5")
    assert len(server.seen) == 1


def test_create_refund_refusals_keep_their_codes(serve: Serve) -> None:
    # The contract's error form {"error": {...}} reads as the flat one
    server = serve(Reply(409, {"error": {"code": "REFUND_IN_PROGRESS", "message": "one is awaiting signature"}}))
    with pytest.raises(ConflictError) as refused:
        client_for(server).create_refund("o-1", "0x" + "be" * 20)
    assert (refused.value.code, refused.value.message) == ("REFUND_IN_PROGRESS", "one is awaiting signature")
    assert len(server.seen) == 1


def test_a_signature_is_submitted_and_repeated_after_a_5xx(serve: Serve) -> None:
    # Given a gateway that fails once, then takes the signature
    submitted = {**REFUND, "status": "submitted", "txHash": "0x" + "99" * 32}
    server = serve(Reply(503, {"code": "UNAVAILABLE", "message": "x"}), Reply(202, submitted))
    # When the signature is submitted (as bytes)
    refund = client_for(server).submit_refund_signature("o-1", REFUND["refundId"], bytes.fromhex(SIGNATURE[2:]))
    # Then it was posted twice, the same body, each attempt signed anew
    first, second = server.seen
    assert first.path == f"/v1/payment/order/o-1/refunds/{REFUND['refundId']}/signature" == second.path
    assert first.body == second.body == json.dumps({"signature": SIGNATURE}, separators=(",", ":")).encode()
    assert first.headers["request-nonce"] != second.headers["request-nonce"]
    for seen in server.seen:
        assert_v2_valid(seen)
    assert refund.status is RefundStatus.SUBMITTED and refund.tx_hash == "0x" + "99" * 32


def test_a_refund_is_read_and_an_orders_refunds_listed(serve: Serve) -> None:
    completed = {**REFUND, "status": "completed", "txHash": "0x" + "99" * 32, "gasPaid": "21000000000000"}
    server = serve(
        Reply(200, completed),
        Reply(200, {"items": [completed, {**REFUND, "refundId": "rfd_" + "0d" * 12, "status": "a_future_status"}]}),
        Reply(404, {"code": "REFUND_NOT_FOUND", "message": "no such refund"}),
    )
    client = client_for(server)
    refund = client.get_refund("o-1", REFUND["refundId"])
    listed = client.list_refunds("o-1")
    with pytest.raises(NotFoundError) as missing:
        client.get_refund("o-1", "rfd_" + "00" * 12)
    assert [(s.method, s.path) for s in server.seen] == [
        ("GET", f"/v1/payment/order/o-1/refunds/{REFUND['refundId']}"),
        ("GET", "/v1/payment/order/o-1/refunds"),
        ("GET", "/v1/payment/order/o-1/refunds/rfd_" + "00" * 12),
    ]
    assert refund.status is RefundStatus.COMPLETED and refund.gas_paid == 21_000_000_000_000
    assert [r.status for r in listed] == [RefundStatus.COMPLETED, "a_future_status"]
    assert missing.value.code == "REFUND_NOT_FOUND"


def test_the_typed_data_is_a_copy_of_what_arrived() -> None:
    # Changing the raw answer leaves the typed data to be checked and signed as it arrived
    data = refund_json()
    refund = Refund.from_dict(data)
    data["typedData"]["message"]["to"] = "0x" + "ee" * 20
    assert refund.typed_data == typed_data() and refund.deadline == 2**40


# --- events and orders ------------------------------------------------------------------------


def test_refund_and_settlement_events_are_typed() -> None:
    # Given the events as the gateway sends them (a refund's without its typed data)
    event_refund = {k: v for k, v in REFUND.items() if k != "typedData"}
    event_refund.update(status="completed", txHash="0x" + "99" * 32)
    refunded = WebhookEvent.from_dict({"id": "evt_1", "type": "refund.completed", "createdAt": 1, "data": event_refund})
    swept = WebhookEvent.from_dict({"id": "evt_2", "type": "settlement.completed", "createdAt": 1, "data": SETTLEMENT})
    # Then each gives its object, and only its own
    assert refunded.refund is not None and refunded.refund.status is RefundStatus.COMPLETED
    assert refunded.refund.typed_data is None and refunded.settlement is None and refunded.order is None
    assert swept.settlement is not None and swept.settlement.orders == ("o-1", "o-2")
    assert swept.refund is None and swept.deposit is None


def test_an_order_says_where_its_money_is() -> None:
    from test_client_retries import ORDER

    assert Order.from_dict({**ORDER, "funds": "refunded"}).funds is FundsLocation.REFUNDED
    assert Order.from_dict({**ORDER, "funds": "a_future_place"}).funds == "a_future_place"
    assert Order.from_dict(ORDER).funds is None
