"""The client against the local stack (`make dev` in-process: the API handler behind the API
Gateway stand-in, moto, anvil, the scanner loop and webhook delivery): every call here reaches
the real gateway over HTTP, as a merchant's backend does."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from usdt_gateway_client import (
    AuthError,
    Client,
    ConflictError,
    DeliveryStatus,
    GatewayError,
    NotFoundError,
    Order,
    OrderStatus,
    RateLimitedError,
    RetryPolicy,
    ValidationError,
    WebhookEvent,
    verify_webhook,
)

from devstack.receiver import Delivery
from devstack.stack import Stack
from devstack.template import REPO_ROOT
from tests.integration.test_devstack_chain import run_pay

# A guard against a hung test when waiting for the stack's deliveries: they take a second or two,
# longer on a loaded machine.
WEBHOOKS_WITHIN_S = 60


def new_id(prefix: str = "sdk") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@pytest.fixture(scope="module")
def sdk_key(stack: Stack) -> dict[str, str]:
    """A key of the demo merchant for this module's clients, with the same scopes as the one in
    merchant.json. That one is `devstack pay`'s and the example's: the module's own requests
    would otherwise spend its 100 a minute, and pay would wait out the rest of the minute."""
    from usdt_gateway import merchants

    return merchants.create_api_key(stack.merchant["merchantId"], label="sdk-tests")


@pytest.fixture(scope="module", params=["v2", "v1"])
def client(request: pytest.FixtureRequest, stack: Stack, sdk_key: dict[str, str]) -> Client:
    """The demo merchant's client, signing with Signature-V2 (the default) or V1."""
    if request.param == "v2":
        return Client(stack.base_url, sdk_key["apiKey"], sdk_key["secretKey"])
    return Client(stack.base_url, sdk_key["apiKey"], sdk_key["secretKey"], signature_version="v1")


@pytest.fixture(scope="module")
def v2(stack: Stack, sdk_key: dict[str, str]) -> Client:
    return Client(stack.base_url, sdk_key["apiKey"], sdk_key["secretKey"])


@dataclass(frozen=True)
class RecordedPolicy(RetryPolicy):
    """The policy, remembering each wait it decided (None: no retry) and the Retry-After it got."""

    decided: list[tuple[float | None, float | None]] = field(default_factory=list)

    def delay(self, retry: int, retry_after: float | None) -> float | None:
        wait = super().delay(retry, retry_after)
        self.decided.append((wait, retry_after))
        return wait


def deliveries_for(stack: Stack, order_id: str, count: int) -> list[Delivery]:
    assert stack.receiver is not None
    found = stack.receiver.wait_for(
        lambda ds: len([d for d in ds if d.data.get("orderId") == order_id]) >= count, WEBHOOKS_WITHIN_S
    )
    return [d for d in found if d.data.get("orderId") == order_id]


# --- orders ---------------------------------------------------------------------------------


def test_create_get_list_cancel(client: Client) -> None:
    # Given three new orders, made between two instants
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    made = [
        client.create_order(
            order_id=new_id(),
            amount=amount,
            network="local",
            expires_in=timedelta(minutes=20),
            return_url="https://shop.example.com/thanks",
            metadata={"cart": "42", "items": 3},
        )
        for amount in (Decimal("10.50"), "11", 12)
    ]
    after = datetime.now(UTC) + timedelta(milliseconds=5)

    # Then each is a typed pending order with what the payer needs, amounts exact
    first = made[0]
    assert isinstance(first, Order) and first.status is OrderStatus.PENDING
    assert first.status == "pending"  # type: ignore[comparison-overlap]  # a str enum equals its value
    assert (first.amount, first.requested_amount, first.paid_amount) == (Decimal("10.50"), Decimal("10.50"), Decimal(0))
    assert [o.amount for o in made] == [Decimal("10.50"), Decimal("11.00"), Decimal("12.00")]
    assert first.network == "local" and first.chain_id == 31337 and first.address.startswith("0x")
    assert first.payment_url.endswith(first.public_id) and first.qr_code_data.startswith("data:image/png;base64,")
    assert first.created_at is not None and before <= first.created_at <= after
    assert first.expires_at is not None and first.expires_at - first.created_at == timedelta(minutes=20)
    assert first.metadata == {"cart": "42", "items": 3} and first.return_url == "https://shop.example.com/thanks"
    assert not first.is_paid and first.raw["orderId"] == first.order_id

    # When one is read back, listed page by page and through the iterator
    fetched = client.get_order(first.order_id)
    page = client.list_orders(status=OrderStatus.PENDING, created_from=before, created_to=after, limit=2)
    rest = client.list_orders(status="pending", created_from=before, created_to=after, limit=2, cursor=page.next_cursor)
    every = list(client.iter_orders(created_from=before, created_to=after, page_size=1))

    # Then the pages split the three, newest first, and the iterator walks all of them
    assert fetched == first
    assert [o.order_id for o in page] == [made[2].order_id, made[1].order_id] and page.next_cursor
    assert [o.order_id for o in rest] == [made[0].order_id] and rest.next_cursor is None
    assert [o.order_id for o in every] == [o.order_id for o in reversed(made)]

    # When one is cancelled, twice
    cancelled = client.cancel_order(made[1].order_id)
    again = client.cancel_order(made[1].order_id)

    # Then it is cancelled (the second changes nothing), and the status filter sees it
    assert cancelled.status is OrderStatus.CANCELLED and again.status is OrderStatus.CANCELLED
    listed = client.list_orders(status=OrderStatus.CANCELLED, created_from=before, created_to=after)
    assert [o.order_id for o in listed] == [made[1].order_id]
    pending = list(client.iter_orders(status="pending", created_from=before, created_to=after))
    assert {o.order_id for o in pending} == {made[0].order_id, made[2].order_id}


def test_identical_create_returns_the_same_order_and_different_parameters_conflict(client: Client) -> None:
    # Given an order
    order_id = new_id()
    created = client.create_order(order_id=order_id, amount="20.00", network="local")
    # When the same create is repeated (as a retry after a lost answer would), amount spelled otherwise
    repeated = client.create_order(order_id=order_id, amount=Decimal("20"), network="local")
    # Then it is the same order: same address and payment page
    assert (repeated.public_id, repeated.address, repeated.payment_url) == (
        created.public_id,
        created.address,
        created.payment_url,
    )
    # And the same orderId with another amount is a conflict with the API's code
    with pytest.raises(ConflictError) as conflict:
        client.create_order(order_id=order_id, amount="21.00", network="local")
    assert (conflict.value.status, conflict.value.code) == (409, "ORDER_ID_CONFLICT")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"amount": "1.0000001", "network": "local"}, "INVALID_AMOUNT"),
        ({"amount": "5.00", "network": "dogecoin"}, "UNSUPPORTED_NETWORK"),
        ({"amount": "5.00"}, "NETWORK_REQUIRED"),
        ({"amount": "5.00", "network": "local", "expires_in": 5}, "INVALID_EXPIRES_IN"),
        ({"amount": "5.00", "network": "local", "metadata": {"bad key!": "x"}}, "VALIDATION_ERROR"),
    ],
    ids=["too-precise", "unknown-network", "no-network", "expiry-too-short", "bad-metadata-key"],
)
def test_invalid_create_raises_validation_error_with_the_api_code(
    v2: Client, kwargs: dict[str, Any], code: str
) -> None:
    # Given a create the API refuses
    order_id = new_id()
    # When it is sent
    with pytest.raises(ValidationError) as refused:
        v2.create_order(order_id=order_id, **kwargs)
    # Then the error carries the status, the stable code, the message and the request id
    error = refused.value
    assert (error.status, error.code) == (400, code), error
    assert error.message and error.request_id
    # And nothing was written
    with pytest.raises(NotFoundError) as missing:
        v2.get_order(order_id)
    assert missing.value.code == "ORDER_NOT_FOUND"


def test_invalid_query_parameter_raises_validation_error(v2: Client) -> None:
    with pytest.raises(ValidationError) as refused:
        v2.list_orders(limit=500)
    assert refused.value.code == "INVALID_PARAMETER" and "limit" in refused.value.message


def test_float_amount_is_refused_before_anything_is_sent(v2: Client) -> None:
    order_id = new_id()
    with pytest.raises(TypeError, match="not a float"):
        v2.create_order(order_id=order_id, amount=50.1, network="local")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        v2.get_order(order_id)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_wrong_secret_or_key_raises_auth_error_with_the_code(stack: Stack, version: Any) -> None:
    # Given clients with a wrong secret and with an unknown key
    m = stack.merchant
    bad_secret = Client(m["baseUrl"], m["apiKey"], "sk_wrong", signature_version=version)
    unknown_key = Client(m["baseUrl"], "ak_unknown", m["secretKey"], signature_version=version)
    # When they read and write
    # Then each is refused with 401 and the code that says why
    calls: tuple[Callable[[Client], object], ...] = (
        lambda c: c.get_order("whatever"),
        lambda c: c.create_order(order_id=new_id(), amount="5.00", network="local"),
    )
    for call in calls:
        with pytest.raises(AuthError) as wrong:
            call(bad_secret)
        assert (wrong.value.status, wrong.value.code) == (401, "INVALID_SIGNATURE")
        with pytest.raises(AuthError) as unknown:
            call(unknown_key)
        assert (unknown.value.status, unknown.value.code) == (401, "INVALID_API_KEY")


def test_key_without_the_scope_raises_auth_error_403(stack: Stack) -> None:
    # Given a read-only key of the demo merchant
    from usdt_gateway import merchants

    key = merchants.create_api_key(stack.merchant["merchantId"], ("orders:read",), label="sdk-read-only")
    reader = Client(stack.base_url, key["apiKey"], key["secretKey"])
    # When it reads, then creates
    assert reader.list_orders(limit=1) is not None
    with pytest.raises(AuthError) as refused:
        reader.create_order(order_id=new_id(), amount="5.00", network="local")
    # Then the write is refused with 403 MISSING_SCOPE
    assert (refused.value.status, refused.value.code) == (403, "MISSING_SCOPE")


def test_unknown_order_raises_not_found(v2: Client) -> None:
    with pytest.raises(NotFoundError) as missing:
        v2.cancel_order(new_id())
    assert (missing.value.status, missing.value.code) == (404, "ORDER_NOT_FOUND")


def test_settlements_are_read_from_the_gateway(v2: Client) -> None:
    # The settlement routes as the gateway serves them: a page (empty or not), an unknown id
    page = v2.list_settlements(limit=1)
    assert len(page) <= 1 and all(s.settlement_id.startswith("stl_") for s in page)
    with pytest.raises(NotFoundError) as missing:
        v2.get_settlement("stl_" + "0" * 24)
    assert (missing.value.status, missing.value.code) == (404, "SETTLEMENT_NOT_FOUND")
    with pytest.raises(ValidationError) as malformed:
        v2.get_settlement("not-a-settlement")
    assert (malformed.value.status, malformed.value.code) == (400, "INVALID_SETTLEMENT_ID")


def test_rate_limit_raises_with_retry_after_when_it_is_beyond_the_cap(stack: Stack) -> None:
    # Given a key limited to 2 requests a minute, and a client that waits at most 0.5 s for a retry
    from usdt_gateway import merchants

    key = merchants.create_api_key(stack.merchant["merchantId"], rate_limit=2, label="sdk-limited")
    policy = RecordedPolicy(max_retry_after=0.5)
    limited = Client(stack.base_url, key["apiKey"], key["secretKey"], retry_policy=policy)
    # When it keeps sending: within 5 requests one minute (the gateway's window) gets a third,
    # whenever the requests start and however slowly they go
    errors: list[RateLimitedError] = []
    for _ in range(5):
        try:
            limited.list_orders(limit=1)
        except RateLimitedError as exc:
            errors.append(exc)
            break
    # Then the gateway's 429 is raised with its Retry-After (seconds to the next window), at once:
    # the client decided not to wait for it
    (error,) = errors
    assert (error.status, error.code) == (429, "RATE_LIMITED")
    assert error.retry_after is not None and 1 <= error.retry_after <= 60
    assert policy.decided == [(None, float(error.retry_after))]


# --- networks -------------------------------------------------------------------------------


def test_networks(v2: Client, stack: Stack) -> None:
    networks = {n.network: n for n in v2.list_networks()}
    assert list(networks) == ["local", "tron", "eth", "bsc"]
    local = networks["local"]
    assert (local.chain_id, local.decimals, local.confirmations, local.family) == (31337, 6, 2, "evm")
    assert local.token_contract == stack.chain.info.token_contract
    assert isinstance(local.min_amount, Decimal) and local.min_amount < local.max_amount
    assert networks["bsc"].decimals == 18 and networks["tron"].family == "tron"


# --- payment, webhooks ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def paid_order(stack: Stack, v2: Client) -> Iterator[Order]:
    """An order on `local` paid in full with `python -m devstack pay`."""
    order = v2.create_order(order_id=new_id("paid"), amount="12.50", network="local")
    result = run_pay(stack, order.order_id)
    assert result.returncode == 0, result.stdout + result.stderr
    yield order


def test_paid_order_reads_confirmed(stack: Stack, client: Client, paid_order: Order) -> None:
    # Given an order paid on the local chain
    # When it is read
    order = client.get_order(paid_order.order_id)
    # Then it is confirmed, with the final deposit that paid it
    assert order.status is OrderStatus.CONFIRMED and order.is_paid
    assert order.paid_amount == Decimal("12.50") and order.pending_amount == 0 and order.exception is None
    assert order.confirmed_at is not None and order.created_at is not None and order.confirmed_at > order.created_at
    (deposit,) = order.deposits
    assert (deposit.txid, deposit.amount, deposit.final) == (order.txid, Decimal("12.50"), True)
    assert deposit.confirmations >= 2 and deposit.sender.lower() == stack.chain.info.payer.lower()
    # And it can no longer be cancelled
    with pytest.raises(ConflictError) as refused:
        client.cancel_order(order.order_id)
    assert (refused.value.status, refused.value.code) == (409, "ORDER_NOT_CANCELLABLE")


def test_webhook_deliveries_listed_filtered_and_resent(stack: Stack, v2: Client, paid_order: Order) -> None:
    # Given the paid order's two events, delivered to the stack's receiver
    order_id = paid_order.order_id
    delivered = deliveries_for(stack, order_id, 2)
    assert [d.event["type"] for d in delivered if d.event] == ["order.confirming", "order.confirmed"]
    deadline = time.monotonic() + WEBHOOKS_WITHIN_S
    while True:
        page = v2.list_webhook_deliveries(order_id=order_id)
        if all(d.status is DeliveryStatus.DELIVERED for d in page) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    # Then the log lists both, newest first, with their attempts
    assert [d.type for d in page] == ["order.confirmed", "order.confirming"]
    confirmed = page.items[0]
    assert confirmed.status is DeliveryStatus.DELIVERED and confirmed.order_id == order_id
    assert confirmed.delivery_id == delivered[1].webhook_id
    assert [(a.n, a.status_code, a.error) for a in confirmed.attempts] == [(1, 204, None)]
    assert confirmed.attempts[0].url == stack.webhook_url and confirmed.next_attempt_at is None
    # And the filters narrow it, and pages of one walk it
    only = v2.list_webhook_deliveries(order_id=order_id, type="order.confirmed", outcome=DeliveryStatus.DELIVERED)
    assert [d.delivery_id for d in only] == [confirmed.delivery_id]
    assert list(v2.list_webhook_deliveries(order_id=order_id, outcome="dead")) == []
    one = v2.list_webhook_deliveries(order_id=order_id, limit=1)
    assert len(one) == 1 and one.next_cursor
    walked = list(v2.iter_webhook_deliveries(order_id=order_id, page_size=1))
    assert [d.delivery_id for d in walked] == [d.delivery_id for d in page]

    # When order.confirmed is resent
    resent = v2.resend_webhook_delivery(confirmed.delivery_id)

    # Then it is queued again and arrives again: same webhook-id and body, verified by the SDK
    assert resent.delivery_id == confirmed.delivery_id and resent.status is DeliveryStatus.PENDING
    third = deliveries_for(stack, order_id, 3)[2]
    assert third.webhook_id == confirmed.delivery_id and third.body == delivered[1].body
    event = WebhookEvent.from_dict(verify_webhook(third.headers, third.body, stack.merchant["webhookSecret"]))
    assert event.id == confirmed.delivery_id and event.type == "order.confirmed" and event.sequence == 2
    assert event.order is not None and event.order.is_paid and event.order.paid_amount == Decimal("12.50")
    deadline = time.monotonic() + WEBHOOKS_WITHIN_S
    while len((after := v2.list_webhook_deliveries(order_id=order_id, type="order.confirmed")).items[0].attempts) < 2:
        assert time.monotonic() < deadline, after
        time.sleep(0.2)
    assert [a.n for a in after.items[0].attempts] == [1, 2]

    # And an id that is not the merchant's is a 404
    with pytest.raises(NotFoundError):
        v2.resend_webhook_delivery("evt_not_mine")


def test_unmatched_deposit_listed_and_attached(stack: Stack, v2: Client, paid_order: Order) -> None:
    # Given a second payment to the paid order's address: no order takes it
    result = run_pay(stack, paid_order.order_id, "--amount", "3.00", "--no-wait")
    assert result.returncode == 0, result.stdout + result.stderr
    txid = re.findall(r"^txid (0x[0-9a-f]{64})", result.stdout, flags=re.MULTILINE)[0]
    deadline = time.monotonic() + WEBHOOKS_WITHIN_S
    while not (unmatched := [d for d in v2.iter_deposits(unmatched=True) if d.txid == txid]):
        assert time.monotonic() < deadline, "the deposit was not listed as unmatched"
        time.sleep(0.2)

    # Then it is listed as unmatched, typed, and its deposit.unmatched webhook carries the same
    (deposit,) = unmatched
    assert (deposit.amount, deposit.unmatched, deposit.order_id) == (Decimal("3.00"), True, None)
    assert deposit.recipient.lower() == paid_order.address.lower() and deposit.network == "local"
    assert deposit.deposit_id == f"local:{txid}:{deposit.log_index}"
    assert stack.receiver is not None
    events = [
        WebhookEvent.from_dict(d.event)
        for d in stack.receiver.wait_for(
            lambda ds: any(
                d.event and d.event["type"] == "deposit.unmatched" and d.data.get("txid") == txid for d in ds
            ),
            WEBHOOKS_WITHIN_S,
        )
        if d.event and d.event["type"] == "deposit.unmatched"
    ]
    (event,) = [e for e in events if e.deposit is not None and e.deposit.txid == txid]
    assert event.deposit == deposit and event.order is None

    # When it is attached to a new order of that amount
    order = v2.create_order(order_id=new_id("attach"), amount="3.00", network="local")
    attached = v2.attach_deposit(deposit.deposit_id, order.order_id)

    # Then that order is paid by it, the deposit is no longer unmatched, and a second attach conflicts
    assert attached.order_id == order.order_id and attached.is_paid and attached.paid_amount == Decimal("3.00")
    assert [d.txid for d in attached.deposits] == [txid]
    assert all(d.txid != txid for d in v2.iter_deposits(unmatched=True))
    assert [d.order_id for d in v2.iter_deposits() if d.txid == txid] == [order.order_id]
    with pytest.raises(ConflictError) as again:
        v2.attach_deposit(deposit.deposit_id, order.order_id)
    assert again.value.code == "DEPOSIT_NOT_UNMATCHED"


def test_test_webhook_and_endpoint(stack: Stack, client: Client) -> None:
    # When a test webhook is sent to the default URL
    result = client.send_test_webhook()
    # Then the stack's receiver took it (verified) and the log shows it
    assert result.ok and result.status_code == 204 and result.url == stack.webhook_url and result.error is None
    assert stack.receiver is not None
    (got,) = [
        d
        for d in stack.receiver.wait_for(lambda ds: any(d.webhook_id == result.delivery_id for d in ds), 5)
        if d.webhook_id == result.delivery_id
    ]
    assert got.event is not None and got.event["type"] == "webhook.test"
    logged = client.list_webhook_deliveries(type="webhook.test", limit=1)
    assert logged.items[0].delivery_id == result.delivery_id

    # And the endpoint shows the default URL, enabled; setting it again changes nothing
    endpoint = client.get_webhook_endpoint()
    assert (endpoint.url, endpoint.enabled, endpoint.disabled_urls) == (stack.webhook_url, True, ())
    assert client.update_webhook_endpoint(url=stack.webhook_url, enabled=True) == endpoint


def test_refused_webhook_url_raises_validation_error(v2: Client) -> None:
    with pytest.raises(ValidationError) as refused:
        v2.update_webhook_endpoint(url="ftp://shop.example.com/hooks")
    assert refused.value.code == "URL_SCHEME"
    assert isinstance(refused.value, GatewayError)


# --- the example -----------------------------------------------------------------------------


def test_integration_example_creates_an_order_and_sees_it_paid(stack: Stack) -> None:
    # Given examples/integration.py running against the stack
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(stack.state_dir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "examples/integration.py", "--amount", "7.25", "--timeout", "60"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not (lines and lines[-1].startswith("pay it")):
            line = process.stdout.readline()
            assert line, "".join(lines) + (process.stderr.read() if process.stderr else "")
            lines.append(line)
        fields = {line[:12].strip(): line[12:].strip() for line in lines}  # "label       value"
        order_id = fields["orderId"]
        # When the order it created is paid
        paid = run_pay(stack, order_id)
        assert paid.returncode == 0, paid.stdout + paid.stderr
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Then it had checked its receiver, shown what to pay, and saw the verified confirmation
    output = "".join(lines) + out
    assert process.returncode == 0, output + err
    assert "webhook.test evt_" in fields["receiver"] and "verified" in fields["receiver"]
    assert fields["pay"].startswith("7.25 USDT on local to 0x")
    assert fields["paymentUrl"].startswith(stack.base_url)
    assert "webhook     order.confirmed  status confirmed  paid 7.25" in output
    assert "status      confirmed (paid 7.25 of 7.25)" in output
