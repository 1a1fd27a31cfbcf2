"""Request signing: both versions accepted, every rejection path answered with its code, and a
rejected request writes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient, v1_signature, v2_signature
from tests.integration.conftest import Merchant, table_item_count
from tests.integration.webhook_receiver import receiver
from tests.integration.webhooks import DELIVERIES, ENDPOINT, _merchant, event_ids
from usdt_gateway import clock

ORDER = {"network": "tron", "currency": "USDT", "amount": "5.00", "orderId": "auth-1"}


# Every request here is checked against a clock that stands still (tests/fake_clock.py): how
# long the machine takes between signing and checking never moves a request out of its window.
pytestmark = pytest.mark.usefixtures("fake_clock")


def now_ms() -> str:
    """The gateway's clock, which signs and checks every request of these tests."""
    return str(clock.now_ms())


def test_v1_signed_create_and_get(api: ApiClient) -> None:
    # Given a body signed with V1 over Request-Time + json.dumps(body, sort_keys=True)
    # When the order is created and read back (GET signs Request-Time + '""')
    created = api.request("POST", "/v1/payment/order", ORDER)
    got = api.request("GET", "/v1/payment/order/auth-1")
    # Then both succeed
    assert created.status == 201
    assert got.status == 200 and got.body["address"] == created.body["address"]


def test_v2_signed_requests(api: ApiClient) -> None:
    # Given V2 signatures over method, path, query and raw body
    created = api.request("POST", "/v1/payment/order", ORDER | {"orderId": "auth-v2"}, sign="v2")
    listed = api.request("GET", "/v1/payment/orders", sign="v2", query=[("limit", "5"), ("status", "pending")])
    # Then both succeed
    assert created.status == 201
    assert listed.status == 200 and [o["orderId"] for o in listed.body["orders"]] == ["auth-v2"]


def test_v2_binds_method_path_and_query(api: ApiClient) -> None:
    # Given a valid V2 signature for one request
    ts = now_ms()
    good = api.request("GET", "/v1/payment/orders", sign="v2", query=[("limit", "5")], timestamp=ts)
    assert good.status == 200
    sig = v2_signature(api.secret, ts, "GET", "/v1/payment/orders", [("limit", "5")], b"")
    headers = {"API-Key": api.api_key, "Request-Time": ts, "Signature-V2": sig}
    # When it is replayed with another query, path or method
    other_query = api.invoke(
        api.event("GET", "/v1/payment/orders", body=None, headers=headers, query=[("limit", "50")])
    )
    other_path = api.invoke(api.event("GET", "/v1/payment/order/x", body=None, headers=headers))
    other_method = api.invoke(api.event("POST", "/v1/payment/order/x/cancel", body=None, headers=headers))
    # Then each is refused
    for reply in (other_query, other_path, other_method):
        assert reply.status == 401 and reply.body["code"] == "INVALID_SIGNATURE"


def test_v2_tampered_body_refused(api: ApiClient) -> None:
    # Given a V2 signature over one body
    ts = now_ms()
    body = json.dumps(ORDER | {"orderId": "auth-tamper"}).encode()
    sig = v2_signature(api.secret, ts, "POST", "/v1/payment/order", [], body)
    tampered = body.replace(b"5.00", b"0.01")
    before = table_item_count()
    # When a different body is sent with it
    reply = api.invoke(
        api.event(
            "POST",
            "/v1/payment/order",
            body=tampered,
            headers={
                "Content-Type": "application/json",
                "API-Key": api.api_key,
                "Request-Time": ts,
                "Signature-V2": sig,
            },
        )
    )
    # Then it is refused and nothing is written
    assert reply.status == 401 and reply.body["code"] == "INVALID_SIGNATURE"
    assert table_item_count() == before


def test_v1_tampered_body_refused(api: ApiClient) -> None:
    # Given a V1 signature over one body, sent with another
    ts = now_ms()
    sig = v1_signature(api.secret, ts, ORDER)
    before = table_item_count()
    reply = api.request(
        "POST",
        "/v1/payment/order",
        ORDER | {"amount": "0.01"},
        sign="none",
        headers={"API-Key": api.api_key, "Request-Time": ts, "Signature-V1": sig},
    )
    # Then it is refused and nothing is written
    assert reply.status == 401 and reply.body["code"] == "INVALID_SIGNATURE"
    assert table_item_count() == before


@pytest.mark.parametrize(
    ("offset_ms", "recv_window", "code"),
    [
        (-6_000, None, "TIMESTAMP_EXPIRED"),  # older than the default 5 s window
        (-20_000, "10000", "TIMESTAMP_EXPIRED"),  # older than a 10 s window
        (2_000, None, "TIMESTAMP_IN_FUTURE"),  # more than 1 s ahead
    ],
)
def test_timestamp_outside_window(api: ApiClient, offset_ms: int, recv_window: str | None, code: str) -> None:
    # Given a correctly signed request with a stale or future timestamp
    ts = str(clock.now_ms() + offset_ms)
    headers = {"Recv-Window": recv_window} if recv_window else {}
    # When it is sent
    reply = api.request("GET", "/v1/payment/orders", timestamp=ts, headers=headers)
    # Then it is refused with the code that says why
    assert reply.status == 401 and reply.body["code"] == code


def test_recv_window_extends_and_is_bounded(api: ApiClient) -> None:
    # Given a request 8 s old
    ts = str(clock.now_ms() - 8_000)
    # When it declares a 10 s window it passes; a window above 60 s is refused
    ok = api.request("GET", "/v1/payment/orders", timestamp=ts, headers={"Recv-Window": "10000"})
    too_big = api.request("GET", "/v1/payment/orders", headers={"Recv-Window": "60001"})
    garbage = api.request("GET", "/v1/payment/orders", timestamp="yesterday")
    # Then
    assert ok.status == 200
    assert too_big.status == 400 and too_big.body["code"] == "INVALID_RECV_WINDOW"
    assert garbage.status == 401 and garbage.body["code"] == "INVALID_TIMESTAMP"


def test_missing_and_wrong_credentials(api: ApiClient, handler: object) -> None:
    # Given requests without headers, with an unknown key, and with a wrong secret
    bare = api.request("GET", "/v1/payment/orders", sign="none")
    unknown = ApiClient(handler, "ak_unknown", "whatever").request("GET", "/v1/payment/orders")
    wrong_secret = ApiClient(handler, api.api_key, "sk_not-the-secret").request("GET", "/v1/payment/orders")
    # Then each gets 401 with its own stable code
    assert (bare.status, bare.body["code"]) == (401, "MISSING_CREDENTIALS")
    assert (unknown.status, unknown.body["code"]) == (401, "INVALID_API_KEY")
    assert (wrong_secret.status, wrong_secret.body["code"]) == (401, "INVALID_SIGNATURE")


def test_revoked_key_and_missing_scope(handler: object, merchant: Merchant) -> None:
    from usdt_gateway import merchants

    # Given a read-only key and a revoked key of the same merchant
    read_only = merchants.create_api_key(merchant.merchant_id, ("orders:read",))
    revoked = merchants.create_api_key(merchant.merchant_id)
    merchants.revoke_api_key(revoked["apiKey"])
    reader = ApiClient(handler, read_only["apiKey"], read_only["secretKey"])
    before = table_item_count()
    # When the read-only key creates and reads, and the revoked key reads
    create = reader.create()
    read = reader.request("GET", "/v1/payment/orders")
    gone = ApiClient(handler, revoked["apiKey"], revoked["secretKey"]).request("GET", "/v1/payment/orders")
    # Then scope and revocation are enforced with 403, and the refused create wrote nothing
    assert (create.status, create.body["code"]) == (403, "MISSING_SCOPE")
    assert read.status == 200
    assert (gone.status, gone.body["code"]) == (403, "KEY_REVOKED")
    assert table_item_count() - before <= 1  # only the reader's rate-limit counter moved


def test_rotation_keeps_old_key_during_overlap(handler: object, merchant: Merchant) -> None:
    from usdt_gateway import merchants

    # Given a key rotated with a one-hour overlap, and another rotated with none
    new = merchants.rotate_api_key(merchant.api_key, overlap_seconds=3600)
    other = merchants.create_api_key(merchant.merchant_id)
    merchants.rotate_api_key(other["apiKey"], overlap_seconds=0)
    # When old and new keys are used
    old_reply = ApiClient(handler, merchant.api_key, merchant.secret).request("GET", "/v1/payment/orders")
    new_reply = ApiClient(handler, new["apiKey"], new["secretKey"]).request("GET", "/v1/payment/orders")
    expired = ApiClient(handler, other["apiKey"], other["secretKey"]).request("GET", "/v1/payment/orders")
    # Then both work during the overlap; after it the old key is refused
    assert old_reply.status == 200 and new_reply.status == 200
    assert (expired.status, expired.body["code"]) == (403, "KEY_EXPIRED")


def test_a_v2_only_key_refuses_v1_and_keeps_refusing_after_rotation(handler: object, merchant: Merchant) -> None:
    from usdt_gateway import merchants, store

    # Given a key created V2-only (its V1 signatures could be replayed on another path), used once
    key = merchants.create_api_key(merchant.merchant_id, v2_only=True)
    client = ApiClient(handler, key["apiKey"], key["secretKey"])
    assert client.request("GET", "/v1/payment/orders", sign="v2").status == 200
    meter = store.get(*store.api_key_key(key["apiKey"]))
    before = table_item_count()
    # When it sends a correctly signed V1 create, then the same order with V2
    v1 = client.request("POST", "/v1/payment/order", {**ORDER, "orderId": "v2only-1"}, sign="v1")
    after_v1 = (table_item_count(), store.get(*store.api_key_key(key["apiKey"])))
    v2 = client.request("POST", "/v1/payment/order", {**ORDER, "orderId": "v2only-1"}, sign="v2")
    # Then V1 is refused with its own code and writes nothing: no item, not even a rate-limit count
    assert (v1.status, v1.body["code"]) == (401, "SIGNATURE_V2_REQUIRED"), v1.body
    assert meter is not None and after_v1[1] is not None
    assert after_v1[0] == before
    assert (after_v1[1]["rlWindow"], after_v1[1]["rlCount"]) == (meter["rlWindow"], meter["rlCount"])
    assert v2.status == 201, v2.body
    # And its replacement after a rotation is V2-only too, and says so in the key list
    new = merchants.rotate_api_key(key["apiKey"], overlap_seconds=0)
    rotated = ApiClient(handler, new["apiKey"], new["secretKey"]).request("GET", "/v1/payment/orders", sign="v1")
    assert (rotated.status, rotated.body["code"]) == (401, "SIGNATURE_V2_REQUIRED")
    listed = {k["apiKey"]: k["v2Only"] for k in merchants.list_api_keys(merchant.merchant_id)}
    assert listed[new["apiKey"]] is True and listed[merchant.api_key] is False


def test_key_created_after_a_failed_lookup_works(
    handler: object, merchant: Merchant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import merchants

    # Given a container that was asked for a key before the key existed
    chosen = "ak_" + uuid.uuid4().hex
    assert ApiClient(handler, chosen, "sk_unknown").request("GET", "/v1/payment/orders").status == 401
    tokens = iter([chosen.removeprefix("ak_"), "the-secret-part"])
    monkeypatch.setattr("usdt_gateway.merchants.secrets.token_urlsafe", lambda _n: next(tokens))
    # When that key is created
    key = merchants.create_api_key(merchant.merchant_id)
    monkeypatch.undo()
    # Then the same container accepts it (an unknown key is never cached)
    assert key["apiKey"] == chosen
    assert ApiClient(handler, chosen, key["secretKey"]).request("GET", "/v1/payment/orders").status == 200


# --- nothing an outsider sends is a 5xx -----------------------------------------------------


@pytest.mark.parametrize("header", ["Signature-V1", "Signature-V2"])
@pytest.mark.parametrize("signature", ["é" * 64, "\u00ff", "\uff10" * 64, ""])
def test_a_signature_that_is_not_hex_is_refused_not_an_error(api: ApiClient, header: str, signature: str) -> None:
    # Given a request whose signature header holds non-ASCII characters (or nothing)
    headers = {"API-Key": api.api_key, "Request-Time": now_ms(), header: signature}
    # When it is sent
    reply = api.invoke(api.event("GET", "/v1/payment/order/x", body=None, headers=headers))
    # Then it is a 401 that says the signature does not match (or is missing), never a 500
    assert reply.status == 401, reply.body
    assert reply.body["code"] in ("INVALID_SIGNATURE", "MISSING_CREDENTIALS")


@pytest.mark.parametrize("sign", ["v1", "v2"])
def test_a_deeply_nested_body_is_a_400_not_an_error(api: ApiClient, sign: str) -> None:
    # Given a body of 5,000 nested arrays, signed with V1 (which reads the body) or V2
    raw = b"[" * 5000 + b"]" * 5000
    before = table_item_count()
    headers = {}
    if sign == "v1":
        ts = now_ms()
        headers = {"API-Key": api.api_key, "Request-Time": ts, "Signature-V1": v1_signature(api.secret, ts, "")}
    # When it is sent as an order
    reply = api.request(
        "POST", "/v1/payment/order", sign="none" if sign == "v1" else "v2", raw_body=raw, headers=headers
    )
    # Then it is refused as JSON the API does not read, and nothing is written
    assert (reply.status, reply.body["code"]) == (400, "INVALID_JSON"), reply.body
    assert "nest deeper than 32" in reply.body["message"]
    assert table_item_count() == before


def test_an_oversized_body_is_refused_before_it_is_read(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import json as json_module

    # Given a 9.8 MB JSON body with a Signature-V1 header, and a JSON parser that counts its calls
    parsed: list[int] = []
    real_loads = json_module.loads

    def counting_loads(raw: str | bytes, **kw: Any) -> Any:
        parsed.append(len(raw))
        return real_loads(raw, **kw)

    monkeypatch.setattr(json_module, "loads", counting_loads)
    raw = json.dumps({"network": "tron", "metadata": {"note": "x" * 9_800_000}}).encode()
    ts = now_ms()
    headers = {"API-Key": api.api_key, "Request-Time": ts, "Signature-V1": v1_signature(api.secret, ts, "")}
    before = table_item_count()
    # When it is sent
    reply = api.request("POST", "/v1/payment/order", sign="none", raw_body=raw, headers=headers)
    # Then the size alone refuses it: nothing parsed the body, nothing is written
    assert (reply.status, reply.body["code"]) == (413, "PAYLOAD_TOO_LARGE"), reply.body
    assert not [n for n in parsed if n >= len(raw)]
    assert table_item_count() == before


def test_a_v1_signature_covers_numbers_as_the_body_writes_them(api: ApiClient) -> None:
    # Given a V1 signature over a BSC order of 50.0 (a float, as json.dumps writes it)
    payload = {"network": "bsc", "currency": "USDT", "amount": 50.0, "orderId": f"v1n-{uuid.uuid4().hex[:8]}"}
    ts = now_ms()
    headers = {"API-Key": api.api_key, "Request-Time": ts, "Signature-V1": v1_signature(api.secret, ts, payload)}
    before = table_item_count()
    # When it is sent with a body that says 50.000000000000000001 (which a float reads as 50.0)
    changed = json.dumps(payload).replace("50.0", "50.000000000000000001").encode()
    forged = api.request("POST", "/v1/payment/order", sign="none", raw_body=changed, headers=headers)
    # Then the signature does not cover that body: nothing is created
    assert (forged.status, forged.body["code"]) == (401, "INVALID_SIGNATURE"), forged.body
    assert table_item_count() == before
    # And the body it was made for is served, its amount read from the text 50.0
    honest = api.request(
        "POST", "/v1/payment/order", sign="none", raw_body=json.dumps(payload).encode(), headers=headers
    )
    assert honest.status == 201 and honest.body["amount"] == "50.00", honest.body


# --- Signature-V1 only where the seed guide uses it ----------------------------------------


def test_v1_is_taken_only_to_create_and_to_get_an_order(api: ApiClient) -> None:
    # Given an order created and read with V1, as the seed guide does
    order_id = f"v1-{uuid.uuid4().hex[:8]}"
    assert api.request("POST", "/v1/payment/order", ORDER | {"orderId": order_id}, sign="v1").status == 201
    assert api.request("GET", f"/v1/payment/order/{order_id}", sign="v1").status == 200
    before = table_item_count()
    # When a captured V1 GET (its signature covers only Request-Time and "") is replayed as a cancel
    ts = now_ms()
    captured = {"API-Key": api.api_key, "Request-Time": ts, "Signature-V1": v1_signature(api.secret, ts, "")}
    assert api.invoke(api.event("GET", f"/v1/payment/order/{order_id}", body=None, headers=captured)).status == 200
    cancel = api.invoke(api.event("POST", f"/v1/payment/order/{order_id}/cancel", body=None, headers=captured))
    # And a correctly V1-signed list, attach and webhook change are sent
    others = [
        api.request("GET", "/v1/payment/orders", sign="v1"),
        api.request("POST", "/v1/deposits/tron:0xabc:0/attach", {"orderId": order_id}, sign="v1"),
        api.request("PUT", "/v1/webhooks/endpoint", {"url": None}, sign="v1"),
    ]
    # Then each is refused: those routes need V2, which binds method and path
    for reply in (cancel, *others):
        assert (reply.status, reply.body["code"]) == (401, "SIGNATURE_V2_REQUIRED"), reply.body
        assert "Signature-V2" in reply.body["message"]
    # And the order is still pending, and nothing was written (not even a rate-limit count)
    assert api.request("GET", f"/v1/payment/order/{order_id}").body["status"] == "pending"
    assert table_item_count() == before


def test_a_key_created_v1_everywhere_takes_v1_on_every_route(handler: object, merchant: Merchant) -> None:
    from usdt_gateway import merchants

    # Given a key that opts into V1 on every route (unsafe, documented as such)
    key = merchants.create_api_key(merchant.merchant_id, v1_everywhere=True)
    client = ApiClient(handler, key["apiKey"], key["secretKey"])
    order_id = client.create().body["orderId"]
    # When it lists and cancels with V1
    listed = client.request("GET", "/v1/payment/orders", sign="v1")
    cancelled = client.request("POST", f"/v1/payment/order/{order_id}/cancel", sign="v1")
    # Then both are served, and the key list says so
    assert listed.status == 200 and cancelled.status == 200, (listed.body, cancelled.body)
    options = {k["apiKey"]: k["v1Everywhere"] for k in merchants.list_api_keys(merchant.merchant_id)}
    assert options[key["apiKey"]] is True and options[merchant.api_key] is False


# --- replays are useless --------------------------------------------------------------------


def test_v2_signs_the_receive_window(api: ApiClient, fake_clock: FakeClock) -> None:
    # Given a V2 request signed at t without a receive window (5 s by default)
    ts = str(fake_clock.ms)
    order_id = api.create().body["orderId"]
    path = f"/v1/payment/order/{order_id}"
    captured = {
        "API-Key": api.api_key,
        "Request-Time": ts,
        "Signature-V2": v2_signature(api.secret, ts, "GET", path, [], b""),
    }
    # When it is replayed 8 s later with Recv-Window: 60000 added
    fake_clock.advance(8_000)
    stretched = api.invoke(api.event("GET", path, body=None, headers=captured | {"Recv-Window": "60000"}))
    # Then the window is not its to change: the signature does not cover that window
    assert (stretched.status, stretched.body["code"]) == (401, "INVALID_SIGNATURE"), stretched.body
    assert "Recv-Window" in stretched.body["message"]
    # And a request that signs its 10 s window is served 8 s later
    signed = api.request("GET", path, timestamp=ts, headers={"Recv-Window": "10000"})
    assert signed.status == 200, signed.body


def test_v1_gets_at_most_the_default_window(
    handler: object, api: ApiClient, merchant: Merchant, fake_clock: FakeClock
) -> None:
    from usdt_gateway import merchants

    # Given an order, and a V1 GET of it signed at t that asks for a 60 s window, sent 8 s later
    order_id = api.create().body["orderId"]
    ts = str(fake_clock.ms)
    fake_clock.advance(8_000)
    old = api.request("GET", f"/v1/payment/order/{order_id}", sign="v1", timestamp=ts, headers={"Recv-Window": "60000"})
    # Then it is refused: V1 does not sign Recv-Window, so a V1 request gets the default 5 s
    assert (old.status, old.body["code"]) == (401, "TIMESTAMP_EXPIRED"), old.body
    assert "5000 ms" in old.body["message"] and "Signature-V1" in old.body["message"]
    # And a key configured with a 10 s V1 window serves it
    key = merchants.create_api_key(merchant.merchant_id, v1_recv_window_ms=10_000)
    configured = ApiClient(handler, key["apiKey"], key["secretKey"])
    answer = configured.request(
        "GET", f"/v1/payment/order/{order_id}", sign="v1", timestamp=ts, headers={"Recv-Window": "60000"}
    )
    assert answer.status == 200, answer.body


def _captured(api: ApiClient, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
    """An event of a V2-signed request, as an eavesdropper (or a log) would keep it."""
    ts = api.timestamp()
    nonce = uuid.uuid4().hex
    headers = {
        "API-Key": api.api_key,
        "Request-Time": ts,
        "Request-Nonce": nonce,
        "Signature-V2": v2_signature(api.secret, ts, method, path, [], body or b"", request_nonce=nonce),
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    return api.event(method, path, body=body, headers=headers)


@pytest.mark.usefixtures("webhook_queues")
def test_a_replayed_write_is_refused_and_writes_nothing(api: ApiClient) -> None:
    from usdt_gateway import store

    with receiver() as shop:
        # Given a cancel, a webhook URL change, a resend and a test webhook, each signed and served once
        order_id = api.create().body["orderId"]
        writes = [
            _captured(api, "POST", f"/v1/payment/order/{order_id}/cancel"),
            _captured(api, "PUT", ENDPOINT, json.dumps({"url": shop.url()}).encode()),
        ]
        for event in writes:
            assert api.invoke(event).status == 200
        (event_id,) = event_ids(_merchant(api), order_id)
        writes += [
            _captured(api, "POST", f"{DELIVERIES}/{event_id}/resend"),
            _captured(api, "POST", "/v1/webhooks/test"),
        ]
        assert [api.invoke(event).status for event in writes[2:]] == [202, 200]
        before, hits = table_item_count(), len(shop.hits)
        # When each is sent again, as captured
        replays = [api.invoke(event) for event in writes]
    # Then each is refused as a replay, and nothing is written or sent
    for reply in replays:
        assert (reply.status, reply.body["code"]) == (401, "REQUEST_REPLAYED"), reply.body
    assert table_item_count() == before and len(shop.hits) == hits
    # And what remembers a signature is a marker that expires with its window
    signature = writes[0]["headers"]["Signature-V2"]
    marker = store.get(f"REPLAY#{api.api_key}#{signature}", "REPLAY")
    assert marker is not None and 0 < int(marker["ttl"]) - int(writes[0]["headers"]["Request-Time"]) // 1000 <= 120


def test_a_refused_write_leaves_no_marker_and_its_copy_is_judged_again(api: ApiClient) -> None:
    # Given a cancel of an order that does not exist, signed once
    before = table_item_count()
    event = _captured(api, "POST", "/v1/payment/order/no-such-order/cancel")
    # When it is sent twice
    first, second = api.invoke(event), api.invoke(event)
    # Then both are refused for what they ask, and nothing at all is written, not even a replay marker
    for reply in (first, second):
        assert (reply.status, reply.body["code"]) == (404, "ORDER_NOT_FOUND"), reply.body
    assert table_item_count() == before


def test_every_write_that_is_not_idempotent_refuses_replays() -> None:
    import usdt_gateway.api.routes  # noqa: F401  (registers the routes, whichever test ran before)
    from usdt_gateway.api.app import ROUTES

    # Given the API's routes
    one_time = {(r.method, r.path) for r in ROUTES if r.one_time}
    # Then cancel, attach, making a refund, resend, the webhook endpoint change and the test webhook
    # remember signatures (giving a refund's signature again is idempotent: the same answer)
    assert one_time == {
        ("POST", "/v1/payment/order/{orderId}/cancel"),
        ("POST", "/v1/payment/order/{orderId}/refunds"),
        ("POST", "/v1/deposits/{depositId}/attach"),
        ("POST", "/v1/webhooks/deliveries/{deliveryId}/resend"),
        ("POST", "/v1/webhooks/test"),
        ("PUT", "/v1/webhooks/endpoint"),
    }
    # And V1 is taken by default only where the seed guide uses it
    assert {(r.method, r.path) for r in ROUTES if r.accepts_v1} == {
        ("POST", "/v1/payment/order"),
        ("GET", "/v1/payment/order/{orderId}"),
    }


def test_refused_replays_do_not_count_towards_the_block(
    handler: object, merchant: Merchant, settings_env: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import config, merchants

    # Given a key limited to 3 requests a minute, blocked after 2 more while limited
    settings_env.setenv("RATE_LIMIT_BLOCK_AFTER", "2")
    config.reset()
    key = merchants.create_api_key(merchant.merchant_id, rate_limit=3)
    client = ApiClient(handler, key["apiKey"], key["secretKey"])
    order_id = client.create().body["orderId"]
    cancel = _captured(client, "POST", f"/v1/payment/order/{order_id}/cancel")
    assert client.invoke(cancel).status == 200
    # When the captured cancel is replayed 150 times within its window
    replays = [client.invoke(cancel) for _ in range(150)]
    # Then every replay is refused as such, and the key is neither limited nor blocked
    assert {(r.status, r.body["code"]) for r in replays} == {(401, "REQUEST_REPLAYED")}
    assert client.request("GET", f"/v1/payment/order/{order_id}").status == 200


@pytest.mark.parametrize(
    ("timestamp", "code", "unit"),
    [
        (lambda ms: ms // 1000, "TIMESTAMP_EXPIRED", "seconds"),  # time.time(), 10 digits
        (lambda ms: ms * 1000, "TIMESTAMP_IN_FUTURE", "microseconds"),  # 16 digits
    ],
)
def test_a_request_time_in_another_unit_is_told_to_send_milliseconds(
    api: ApiClient, fake_clock: FakeClock, timestamp: Any, code: str, unit: str
) -> None:
    # Given a request signed with the current time in seconds (or microseconds), not milliseconds
    ts = str(timestamp(fake_clock.ms))
    # When it is sent
    reply = api.request("GET", "/v1/payment/orders", timestamp=ts)
    # Then it is refused with the usual code, and the message says what to send instead
    assert (reply.status, reply.body["code"]) == (401, code), reply.body
    assert f"looks like {unit}" in reply.body["message"] and "milliseconds" in reply.body["message"]


def test_a_request_time_off_by_seconds_gets_no_unit_hint(api: ApiClient, fake_clock: FakeClock) -> None:
    # Given requests in milliseconds, 6 s old and 2 s ahead
    stale = api.request("GET", "/v1/payment/orders", timestamp=str(fake_clock.ms - 6_000))
    ahead = api.request("GET", "/v1/payment/orders", timestamp=str(fake_clock.ms + 2_000))
    # Then they are told about the clock, not the unit
    assert (stale.body["code"], ahead.body["code"]) == ("TIMESTAMP_EXPIRED", "TIMESTAMP_IN_FUTURE")
    for reply in (stale, ahead):
        assert "clock" in reply.body["message"] and "looks like" not in reply.body["message"]


@pytest.mark.parametrize("raw", [b'{"network": "tron", "amount": "5.00"', b"{'network': 'tron'}", b"network=tron"])
def test_malformed_json_signed_with_v1_is_told_the_json_is_wrong(api: ApiClient, raw: bytes) -> None:
    # Given a body that is not JSON (cut short, Python's repr, a form), with a Signature-V1 over an order
    ts = now_ms()
    headers = {"API-Key": api.api_key, "Request-Time": ts, "Signature-V1": v1_signature(api.secret, ts, ORDER)}
    before = table_item_count()
    # When it is sent as an order
    reply = api.request("POST", "/v1/payment/order", sign="none", raw_body=raw, headers=headers)
    # Then the answer is about the JSON, not the signature, and nothing is written
    assert (reply.status, reply.body["code"]) == (400, "INVALID_JSON"), reply.body
    assert "not valid JSON" in reply.body["message"] and "does not match" not in reply.body["message"]
    assert table_item_count() == before
