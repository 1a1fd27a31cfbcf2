"""The order API end to end: create, read, list, cancel, the public endpoints and error bodies,
through the Lambda handler against DynamoDB and KMS on the moto server."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import uuid
from typing import Any

import boto3
import png
import pytest
import zxingcpp
from bip_utils import Bip44, Bip44Changes, Bip44Coins
from coincurve import PrivateKey
from Crypto.Hash import keccak

from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient, v1_signature_of_body
from tests.integration.conftest import TABLE, Merchant, new_merchant, table_item_count

# notifyUrls must resolve to public addresses: shop.example.com does, through the fake resolver.
pytestmark = pytest.mark.usefixtures("dns")
PNG_PREFIX = "data:image/png;base64,"
DEFAULT_EXPIRES_MS = 1800 * 1000
ORDER_PATH = "/v1/payment/order"
CONTRACTS = {
    "tron": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
    "eth": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
    "bsc": "0x55d398326f99059fF775485246999027B3197955",
    "polygon": "0xc2132D05D31c914a87C6611C10748AEb04B58e8F",
}
CHAIN_IDS = {"tron": 728126428, "eth": 1, "bsc": 56, "polygon": 137}
DECIMALS = {"tron": 6, "eth": 6, "bsc": 18, "polygon": 6}


def now_ms() -> int:
    return int(time.time() * 1000)


def new_order_id() -> str:
    return f"o-{uuid.uuid4().hex[:12]}"


def expected_address(xpub: str, coin: Bip44Coins, index: int) -> str:
    """Deposit address `index` of an account xpub, derived independently with bip_utils."""
    chain = Bip44.FromExtendedKey(xpub, coin).Change(Bip44Changes.CHAIN_EXT)
    address: str = chain.AddressIndex(index).PublicKey().ToAddress()
    return address


def random_evm_address() -> str:
    """An EIP-55 address of a random key, made at run time."""
    point = PrivateKey(secrets.token_bytes(32)).public_key.format(compressed=False)[1:]
    body = keccak.new(digest_bits=256, data=point).digest()[12:].hex()
    digest = keccak.new(digest_bits=256, data=body.encode()).hexdigest()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(body, digest[:40], strict=True))


def decode_qr(data_uri: str) -> list[str]:
    """Scan the PNG data URI with zxing-cpp (1-bit greyscale rows -> 8-bit buffer)."""
    assert data_uri.startswith(PNG_PREFIX)
    width, height, rows, _ = png.Reader(bytes=base64.b64decode(data_uri[len(PNG_PREFIX) :])).asDirect()
    pixels = bytearray()
    for row in rows:
        pixels.extend(255 if value else 0 for value in row)
    image = memoryview(bytes(pixels)).cast("B", (height, width))
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def assert_promised_fields(
    body: dict[str, Any], *, order_id: str, network: str, amount: str, address: str, units: int, before: int, after: int
) -> None:
    """Every field the create response promises, checked against independently computed values."""
    assert body["orderId"] == order_id
    assert body["network"] == network
    assert body["chainId"] == CHAIN_IDS[network]
    assert body["tokenContract"] == CONTRACTS[network]
    assert body["currency"] == "USDT"
    assert body["amount"] == amount
    assert body["requestedAmount"] == amount
    assert body["address"] == address
    assert body["paymentUrl"] == f"{os.environ['PUBLIC_BASE_URL']}/pay/{body['publicId']}"
    assert len(body["publicId"]) >= 16 and body["publicId"] != order_id
    if network == "tron":
        assert body["paymentUri"] == address
    else:
        assert body["paymentUri"] == (
            f"ethereum:{CONTRACTS[network]}@{CHAIN_IDS[network]}/transfer?address={address}&uint256={units}"
        )
    assert decode_qr(body["qrCodeData"]) == [body["paymentUri"]]
    assert before <= body["createdAt"] <= after
    assert before + DEFAULT_EXPIRES_MS <= body["expiresAt"] <= after + DEFAULT_EXPIRES_MS
    assert body["status"] == "pending"
    assert body["paidAmount"] == "0.00"
    assert body["txid"] is None
    assert body["confirmedAt"] is None
    assert body["exception"] is None
    assert body["deposits"] == []


def create_timed(api: ApiClient, **fields: Any) -> tuple[Any, int, int]:
    before = now_ms()
    reply = api.create(**fields)
    return reply, before, now_ms()


# --- create -------------------------------------------------------------------------------


def test_create_tron_orders_use_consecutive_xpub_addresses(api: ApiClient, merchant: Merchant) -> None:
    # Given a merchant with a Tron account xpub
    first_id, second_id = new_order_id(), new_order_id()
    # When two Tron orders are created
    first, before1, after1 = create_timed(api, network="tron", amount="12.50", orderId=first_id)
    second, before2, after2 = create_timed(api, network="tron", amount="3.00", orderId=second_id)
    # Then each is 201 with every promised field, at base58 addresses 0 and 1 of the xpub
    assert first.status == 201 and second.status == 201
    assert_promised_fields(
        first.body,
        order_id=first_id,
        network="tron",
        amount="12.50",
        address=expected_address(merchant.tron_xpub, Bip44Coins.TRON, 0),
        units=12_500_000,
        before=before1,
        after=after1,
    )
    assert_promised_fields(
        second.body,
        order_id=second_id,
        network="tron",
        amount="3.00",
        address=expected_address(merchant.tron_xpub, Bip44Coins.TRON, 1),
        units=3_000_000,
        before=before2,
        after=after2,
    )
    assert first.body["address"].startswith("T") and len(first.body["address"]) == 34


def test_create_eth_then_bsc_share_the_evm_xpub(api: ApiClient, merchant: Merchant) -> None:
    # Given a merchant with one EVM account xpub for every EVM network
    eth_id, bsc_id = new_order_id(), new_order_id()
    # When an Ethereum order and then a BSC order are created
    eth, before1, after1 = create_timed(api, network="eth", amount="50.00", orderId=eth_id)
    bsc, before2, after2 = create_timed(api, network="bsc", amount="7.25", orderId=bsc_id)
    # Then they get EIP-55 addresses 0 and 1, with EIP-681 URIs in each token's base units
    assert eth.status == 201 and bsc.status == 201
    assert_promised_fields(
        eth.body,
        order_id=eth_id,
        network="eth",
        amount="50.00",
        address=expected_address(merchant.evm_xpub, Bip44Coins.ETHEREUM, 0),
        units=50_000_000,
        before=before1,
        after=after1,
    )
    assert_promised_fields(
        bsc.body,
        order_id=bsc_id,
        network="bsc",
        amount="7.25",
        address=expected_address(merchant.evm_xpub, Bip44Coins.ETHEREUM, 1),
        units=7_250_000_000_000_000_000,
        before=before2,
        after=after2,
    )


def test_create_by_chain_id(api: ApiClient, merchant: Merchant) -> None:
    # Given a create naming the chain by id only (56 = BSC)
    payload = {"chainId": 56, "currency": "USDT", "amount": "9.00", "orderId": new_order_id()}
    # When it is sent
    reply = api.request("POST", ORDER_PATH, payload)
    # Then the order is on BSC
    assert reply.status == 201
    assert (reply.body["network"], reply.body["chainId"]) == ("bsc", 56)
    assert reply.body["address"] == expected_address(merchant.evm_xpub, Bip44Coins.ETHEREUM, 0)


def test_network_and_chain_id_must_agree_and_one_is_required(api: ApiClient) -> None:
    # Given a create with a mismatching chainId, and one with neither network nor chainId
    before = table_item_count()
    mismatch = api.create(network="tron", chainId=1)
    matching = {"currency": "USDT", "amount": "1.00", "orderId": new_order_id()}
    neither = api.request("POST", ORDER_PATH, matching)
    # Then both are refused with their own code and nothing is written
    assert (mismatch.status, mismatch.body["code"]) == (400, "NETWORK_MISMATCH")
    assert (neither.status, neither.body["code"]) == (400, "NETWORK_REQUIRED")
    assert table_item_count() == before


def test_bsc_accepts_eighteen_decimals_exactly(api: ApiClient) -> None:
    # Given an amount with 18 decimals, beyond float precision
    # When a BSC order is created with it
    reply = api.create(network="bsc", amount="1.000000000000000001")
    # Then the amount and the URI's base units are exact
    assert reply.status == 201
    assert reply.body["amount"] == "1.000000000000000001"
    assert reply.body["paymentUri"].endswith("&uint256=1000000000000000001")


def test_tron_rejects_seven_decimals(api: ApiClient) -> None:
    # Given an amount finer than Tron USDT's 6 decimals
    before = table_item_count()
    # When it is sent
    reply = api.create(network="tron", amount="1.0000001")
    # Then it is refused and nothing is written
    assert (reply.status, reply.body["code"]) == (400, "INVALID_AMOUNT")
    assert "6 decimal" in reply.body["message"]
    assert table_item_count() == before


def _send_raw_v1(api: ApiClient, raw_body: bytes) -> Any:
    """V1 signs the parsed JSON, sorted, with each number written as in the body."""
    ts = str(now_ms())
    headers = {
        "API-Key": api.api_key,
        "Request-Time": ts,
        "Signature-V1": v1_signature_of_body(api.secret, ts, raw_body),
    }
    return api.request("POST", ORDER_PATH, sign="none", headers=headers, raw_body=raw_body)


def test_amount_as_json_number_keeps_its_exact_text(api: ApiClient) -> None:
    # Given amounts sent as JSON numbers: 12.50 (a float would lose the trailing zero) and 1e3
    order_id = new_order_id()
    decimal_body = f'{{"network": "eth", "currency": "USDT", "amount": 12.50, "orderId": "{order_id}"}}'
    exponent_body = f'{{"network": "eth", "currency": "USDT", "amount": 1e3, "orderId": "{new_order_id()}"}}'
    # When they are sent
    reply = _send_raw_v1(api, decimal_body.encode())
    exponent = _send_raw_v1(api, exponent_body.encode())
    # Then 12.50 is taken from its text, never through a float, and the exponent form is refused
    assert reply.status == 201
    assert reply.body["amount"] == "12.50"
    assert reply.body["paymentUri"].endswith("&uint256=12500000")
    assert (exponent.status, exponent.body["code"]) == (400, "INVALID_AMOUNT")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1.0e1", "plain notation"),  # 10, written with an exponent
        ("1E2", "plain notation"),
        ("-5", "plain notation"),
        ("0.0000001", "more than 6 decimal places"),  # the form is fine: too precise for the token
        ("1.0000000000000000001", "more than 6 decimal places"),
    ],
)
@pytest.mark.parametrize("as_number", [True, False], ids=["number", "string"])
def test_an_amount_follows_one_rule_as_a_json_number_and_as_a_string(
    api: ApiClient, text: str, fragment: str, as_number: bool
) -> None:
    # Given an amount sent as a JSON number, or as a string with the same text
    amount = text if as_number else json.dumps(text)
    raw = f'{{"network": "tron", "currency": "USDT", "amount": {amount}, "orderId": "{new_order_id()}"}}'.encode()
    before = table_item_count()
    # When the order is created with it
    reply = api.request("POST", ORDER_PATH, raw_body=raw, sign="v2")
    # Then both get the same answer, the one the text deserves, and nothing is written
    assert (reply.status, reply.body["code"]) == (400, "INVALID_AMOUNT"), reply.body
    assert fragment in reply.body["message"]
    assert table_item_count() == before


@pytest.mark.parametrize("amount", ["12.50", '"12.50"'])
def test_a_plain_amount_is_accepted_as_a_json_number_and_as_a_string(api: ApiClient, amount: str) -> None:
    raw = f'{{"network": "tron", "currency": "USDT", "amount": {amount}, "orderId": "{new_order_id()}"}}'.encode()
    reply = api.request("POST", ORDER_PATH, raw_body=raw, sign="v2")
    assert reply.status == 201 and reply.body["amount"] == "12.50", reply.body


def _metadata(n: int) -> dict[str, str]:
    return {f"k{i}": "v" for i in range(n)}


@pytest.mark.parametrize(
    ("changes", "code", "fragment"),
    [
        ({"colour": "red"}, "VALIDATION_ERROR", "colour"),
        ({"orderId": None}, "VALIDATION_ERROR", "orderId"),
        ({"currency": "USDC"}, "VALIDATION_ERROR", "currency"),
        ({"amount": "-1"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "1e3"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "abc"}, "INVALID_AMOUNT", "amount"),
        ({"amount": "0"}, "INVALID_AMOUNT", "greater than zero"),
        ({"amount": "1000000.01"}, "AMOUNT_OUT_OF_RANGE", "1000000"),
        ({"amount": "0.001"}, "AMOUNT_OUT_OF_RANGE", "0.01"),
        ({"network": "solana"}, "UNSUPPORTED_NETWORK", "solana"),
        ({"orderId": "has spaces"}, "VALIDATION_ERROR", "orderId"),
        ({"orderId": "x" * 65}, "VALIDATION_ERROR", "orderId"),
        ({"notifyUrl": "http://shop.example.com/hook"}, "INVALID_URL", "notifyUrl"),
        ({"notifyUrl": "https://u:p@x.com"}, "INVALID_URL", "credentials"),
        ({"returnUrl": "ftp://x"}, "INVALID_URL", "returnUrl"),
        ({"returnUrl": 'https://"onerror=alert(1)//'}, "INVALID_URL", "returnUrl: the URL's host"),
        ({"returnUrl": "https://shop'.example.com/back"}, "INVALID_URL", "returnUrl: the URL's host"),
        ({"returnUrl": "https://shop.example.com<b>/back"}, "INVALID_URL", "returnUrl: the URL's host"),
        ({"returnUrl": "https://[v1.shop]/back"}, "INVALID_URL", "returnUrl: the URL's host"),
        ({"returnUrl": "https://[2001:db8::1%25eth0]/back"}, "INVALID_URL", "returnUrl: the URL's host"),
        ({"returnUrl": "https://2130706433/back"}, "INVALID_URL", "returnUrl: the URL's host"),
        ({"returnUrl": "https://shop.example.com:99999/back"}, "INVALID_URL", "returnUrl: the URL's port"),
        ({"returnUrl": "https://shop.example.com:0/back"}, "INVALID_URL", "returnUrl: the URL's port"),
        ({"returnUrl": "https://shop.example.com/\nback"}, "INVALID_URL", "returnUrl: "),
        ({"notifyUrl": "https://[2606:4700::1%25eth0]/hook"}, "INVALID_URL", "notifyUrl: the URL's host"),
        ({"notifyUrl": "https://[v1.shop.example.com]/hook"}, "INVALID_URL", "notifyUrl: the URL's host"),
        ({"expiresIn": 10}, "INVALID_EXPIRES_IN", "expiresIn"),
        ({"expiresIn": 10**7}, "INVALID_EXPIRES_IN", "expiresIn"),
        ({"metadata": {"cart": {"sku": "a"}}}, "VALIDATION_ERROR", "metadata"),
        ({"metadata": _metadata(21)}, "VALIDATION_ERROR", "metadata"),
        ({"metadata": {"n": 10**40}}, "VALIDATION_ERROR", "metadata"),
        ({"metadata": {"n": 2.5}}, "VALIDATION_ERROR", "metadata"),
        ({"metadata": {"n": 1e38}}, "VALIDATION_ERROR", "metadata"),
    ],
)
def test_invalid_create_is_refused_and_writes_nothing(
    api: ApiClient, changes: dict[str, Any], code: str, fragment: str
) -> None:
    # Given a valid create with one field spoiled (None: the field left out)
    payload = {"network": "tron", "currency": "USDT", "amount": "10.00", "orderId": new_order_id()} | changes
    payload = {k: v for k, v in payload.items() if v is not None}
    before = table_item_count()
    # When it is sent
    reply = api.request("POST", ORDER_PATH, payload)
    # Then it is a 400 with a stable code and a message naming the problem, and nothing is written
    assert reply.status == 400
    assert set(reply.body) == {"code", "message"}
    assert reply.body["code"] == code
    assert fragment in reply.body["message"]
    assert table_item_count() == before


@pytest.mark.parametrize(
    "return_url",
    [
        "https://shop.example.com/thanks?order=1&lang=en#done",
        "https://SHOP.example.com:8443/thanks",
        "https://b\u00fccher.example/danke",
        "https://xn--bcher-kva.example/danke",
        "https://93.184.215.14/back",
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443/back",
        "https://shop_1.example.com./back",
    ],
)
def test_a_return_url_with_a_proper_host_is_accepted(api: ApiClient, return_url: str) -> None:
    # Given a returnUrl whose host is a host name (internationalised too) or an IP literal
    # When an order is created with it
    reply = api.create(returnUrl=return_url)
    # Then it is kept as given
    assert reply.status == 201, reply.body
    assert reply.body["returnUrl"] == return_url


def test_body_must_be_a_json_object(api: ApiClient) -> None:
    # Given a JSON array (V1-signed) and a body that is not JSON at all (V2 signs raw bytes)
    before = table_item_count()
    array = api.request("POST", ORDER_PATH, [{"network": "tron", "amount": "1.00"}])
    broken = api.request("POST", ORDER_PATH, sign="v2", raw_body=b'{"network": "tron", "amount": ')
    # Then both are 400 INVALID_JSON and nothing is written
    assert (array.status, array.body["code"]) == (400, "INVALID_JSON")
    assert (broken.status, broken.body["code"]) == (400, "INVALID_JSON")
    assert set(broken.body) == {"code", "message"}
    assert table_item_count() == before


def test_wrong_content_type_and_oversized_body(api: ApiClient) -> None:
    # Given a correctly signed create sent as text/plain, and one larger than 16 KiB
    before = table_item_count()
    payload = {"network": "tron", "currency": "USDT", "amount": "1.00", "orderId": new_order_id()}
    text = api.request("POST", ORDER_PATH, payload, headers={"Content-Type": "text/plain"})
    huge = api.request("POST", ORDER_PATH, payload | {"metadata": {"note": "x" * 17_000}})
    # Then they get 415 and 413 with error bodies, and nothing is written
    assert (text.status, text.body["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert (huge.status, huge.body["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert set(text.body) == set(huge.body) == {"code", "message"}
    assert table_item_count() == before


# --- idempotency --------------------------------------------------------------------------


def test_identical_repeat_returns_the_same_order(api: ApiClient, merchant: Merchant) -> None:
    # Given a created order
    fields = {"network": "tron", "amount": "20.00", "orderId": new_order_id(), "metadata": {"cart": "c-1"}}
    first = api.create(**fields)
    count = table_item_count()
    # When exactly the same request is sent again
    again = api.create(**fields)
    # Then it answers 200 with the same order and writes nothing new
    assert first.status == 201 and again.status == 200
    assert again.body == first.body
    assert table_item_count() == count
    # And the repeat used no address index: the next order gets index 1
    nxt = api.create(network="tron")
    assert nxt.body["address"] == expected_address(merchant.tron_xpub, Bip44Coins.TRON, 1)


def test_same_order_id_with_other_parameters_conflicts(api: ApiClient) -> None:
    # Given a created order
    order_id = new_order_id()
    first = api.create(network="tron", amount="20.00", orderId=order_id)
    count = table_item_count()
    # When the orderId is reused with another amount
    other = api.create(network="tron", amount="21.00", orderId=order_id)
    # Then it is 409 ORDER_ID_CONFLICT, nothing is written and the original is unchanged
    assert first.status == 201
    assert (other.status, other.body["code"]) == (409, "ORDER_ID_CONFLICT")
    assert table_item_count() == count
    assert api.request("GET", f"{ORDER_PATH}/{order_id}").body["amount"] == "20.00"


def test_an_integer_written_with_a_fraction_is_metadata_int(api: ApiClient) -> None:
    # Given metadata integers written as JSON Schema allows them (-6004801.0 is an integer there)
    created = api.create(metadata={"qty": 3.0, "ref": -6004801.0, "big": 99999999999999999999999999999999999999})
    # Then the order keeps them as the integers they are
    assert created.status == 201, created.body
    assert created.body["metadata"] == {"qty": 3, "ref": -6004801, "big": 10**38 - 1}
    assert all(type(v) is int for v in created.body["metadata"].values())


# --- get ----------------------------------------------------------------------------------


def test_get_order(api: ApiClient, handler: object) -> None:
    # Given an order of this merchant, and another merchant
    created = api.create(
        network="eth",
        amount="15.00",
        notifyUrl="https://shop.example.com/hook",
        metadata={"cart": "c-9", "qty": 3, "gift": True},
    )
    order_id = created.body["orderId"]
    other = new_merchant()
    stranger = ApiClient(handler, other.api_key, other.secret)
    # When it is read by its owner, an unknown id is read, and the other merchant reads it
    got = api.request("GET", f"{ORDER_PATH}/{order_id}")
    unknown = api.request("GET", f"{ORDER_PATH}/no-such-order")
    foreign = stranger.request("GET", f"{ORDER_PATH}/{order_id}")
    # Then the owner gets the same order, the others a 404 that reveals nothing
    assert got.status == 200 and got.body == created.body
    assert got.body["metadata"] == {"cart": "c-9", "qty": 3, "gift": True}
    assert got.body["notifyUrl"] == "https://shop.example.com/hook"
    assert (unknown.status, unknown.body["code"]) == (404, "ORDER_NOT_FOUND")
    assert (foreign.status, foreign.body["code"]) == (404, "ORDER_NOT_FOUND")
    assert set(foreign.body) == {"code", "message"}


# --- list ---------------------------------------------------------------------------------


def _list(api: ApiClient, *query: tuple[str, str]) -> Any:
    return api.request("GET", "/v1/payment/orders", query=list(query))


def _create_five(api: ApiClient, clock: FakeClock) -> list[dict[str, Any]]:
    created = []
    for _ in range(5):
        reply = api.create(network="tron")
        assert reply.status == 201
        created.append(reply.body)
        clock.advance(3)  # distinct createdAt milliseconds
    return created


def test_list_pages_through_every_order_newest_first(api: ApiClient, fake_clock: FakeClock) -> None:
    # Given five orders
    created = _create_five(api, fake_clock)
    # When they are listed two at a time, following nextCursor
    pages: list[list[str]] = []
    seen: list[dict[str, Any]] = []
    reply = _list(api, ("limit", "2"))
    while True:
        assert reply.status == 200
        assert len(reply.body["orders"]) <= 2
        pages.append([o["orderId"] for o in reply.body["orders"]])
        seen.extend(reply.body["orders"])
        if not reply.body["nextCursor"]:
            break
        reply = _list(api, ("limit", "2"), ("cursor", reply.body["nextCursor"]))
    # Then all five are seen once, newest first, over at least three pages
    order_ids = [o["orderId"] for o in seen]
    assert order_ids == [o["orderId"] for o in reversed(created)]
    assert len(set(order_ids)) == 5
    assert len([p for p in pages if p]) >= 3
    assert [o["createdAt"] for o in seen] == sorted((o["createdAt"] for o in seen), reverse=True)


def test_list_filters_by_status_and_time(api: ApiClient, fake_clock: FakeClock) -> None:
    # Given five orders, one of them cancelled
    created = _create_five(api, fake_clock)
    cancelled_id = created[1]["orderId"]
    assert api.request("POST", f"{ORDER_PATH}/{cancelled_id}/cancel").status == 200
    window_from, window_to = created[1]["createdAt"], created[3]["createdAt"]
    # When they are listed by status and by a creation-time window
    cancelled = _list(api, ("status", "cancelled"))
    pending = _list(api, ("status", "pending"))
    windowed = _list(api, ("from", str(window_from)), ("to", str(window_to)))
    # Then each filter returns exactly the matching orders
    assert [o["orderId"] for o in cancelled.body["orders"]] == [cancelled_id]
    assert cancelled.body["orders"][0]["status"] == "cancelled"
    assert {o["orderId"] for o in pending.body["orders"]} == {o["orderId"] for o in created} - {cancelled_id}
    assert [o["orderId"] for o in windowed.body["orders"]] == [o["orderId"] for o in reversed(created[1:4])]


@pytest.mark.parametrize(
    ("query", "code", "fragment"),
    [
        (("status", "paid"), "INVALID_PARAMETER", "status"),
        (("limit", "0"), "INVALID_PARAMETER", "limit"),
        (("limit", "101"), "INVALID_PARAMETER", "limit"),
        (("limit", "ten"), "INVALID_PARAMETER", "limit"),
        (("from", "-5"), "INVALID_PARAMETER", "from"),
        (("limit", "\u00b2"), "INVALID_PARAMETER", "limit"),
        (("from", "\u00b9\u00b2"), "INVALID_PARAMETER", "from"),
        (("to", "10000000000000"), "INVALID_PARAMETER", "to"),
        (("cursor", "not-a-cursor"), "INVALID_CURSOR", "cursor"),
        (("sort", "asc"), "UNKNOWN_PARAMETER", "sort"),
    ],
)
def test_list_rejects_bad_parameters(api: ApiClient, query: tuple[str, str], code: str, fragment: str) -> None:
    # Given a list request with one bad query parameter
    # When it is sent
    reply = _list(api, query)
    # Then it is a 400 naming the parameter
    assert reply.status == 400
    assert reply.body["code"] == code
    assert fragment in reply.body["message"]


def test_list_time_bounds_at_the_far_future(api: ApiClient) -> None:
    # Given two orders
    created = {api.create(network="tron").body["orderId"] for _ in range(2)}
    # When listed up to, and from, the largest time the API accepts
    until_max = _list(api, ("to", "9999999999999"))
    from_max = _list(api, ("from", "9999999999999"))
    # Then the first holds every order and the second none
    assert {o["orderId"] for o in until_max.body["orders"]} == created
    assert from_max.status == 200 and from_max.body["orders"] == []


def test_non_ascii_digits_in_auth_headers_are_refused(api: ApiClient) -> None:
    # Given headers whose values are digits to str.isdigit() but not to int() (superscripts)
    # When a list request carries them
    stamp = api.request("GET", "/v1/payment/orders", timestamp="\u00b2")
    window = api.request("GET", "/v1/payment/orders", headers={"Recv-Window": "\u00b2"})
    # Then each is an ordinary client error, not a 500
    assert (stamp.status, stamp.body["code"]) == (401, "INVALID_TIMESTAMP")
    assert (window.status, window.body["code"]) == (400, "INVALID_RECV_WINDOW")


def _recode(cursor: str, change: Any) -> str:
    """The cursor with its position (a signed payload) changed and its signature kept."""
    payload, _, signature = cursor.partition(".")
    position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return base64.urlsafe_b64encode(json.dumps(change(position)).encode()).decode().rstrip("=") + "." + signature


def test_list_refuses_a_tampered_cursor(api: ApiClient) -> None:
    # Given a real cursor, and copies of it with its position moved, cut or wrapped, or unsigned
    for _ in range(2):
        api.create(network="tron")
    cursor = _list(api, ("limit", "1")).body["nextCursor"]
    assert cursor
    tampered = [
        _recode(cursor, lambda k: [*k[:2], "9999999999999#o-zzz"]),
        _recode(cursor, lambda k: k[:2]),
        _recode(cursor, lambda k: [k]),
        cursor.partition(".")[0],
    ]
    # When each is used to list
    replies = [_list(api, ("cursor", c)) for c in tampered]
    # Then each is refused as an invalid cursor, not a 500, while the real one still works
    assert [(r.status, r.body["code"]) for r in replies] == [(400, "INVALID_CURSOR")] * len(tampered)
    assert _list(api, ("limit", "1"), ("cursor", cursor)).status == 200


def test_list_refuses_another_merchants_cursor(api: ApiClient, handler: object) -> None:
    # Given a cursor from another merchant's listing
    other = new_merchant()
    stranger = ApiClient(handler, other.api_key, other.secret)
    for _ in range(2):
        stranger.create(network="tron")
    foreign_cursor = _list(stranger, ("limit", "1")).body["nextCursor"]
    assert foreign_cursor
    # When this merchant lists with it
    reply = _list(api, ("cursor", foreign_cursor))
    # Then it is refused rather than reading the other merchant's index
    assert (reply.status, reply.body["code"]) == (400, "INVALID_CURSOR")


# --- cancel -------------------------------------------------------------------------------


def test_cancel_pending_order_twice(api: ApiClient) -> None:
    # Given a pending order
    order_id = api.create(network="tron").body["orderId"]
    # When it is cancelled twice
    first = api.request("POST", f"{ORDER_PATH}/{order_id}/cancel")
    second = api.request("POST", f"{ORDER_PATH}/{order_id}/cancel")
    # Then both answer 200 with status cancelled, and a read agrees
    assert (first.status, first.body["status"]) == (200, "cancelled")
    assert (second.status, second.body["status"]) == (200, "cancelled")
    assert api.request("GET", f"{ORDER_PATH}/{order_id}").body["status"] == "cancelled"


def test_cancel_unknown_order(api: ApiClient) -> None:
    # Given no such order
    # When it is cancelled
    reply = api.request("POST", f"{ORDER_PATH}/never-created/cancel")
    # Then 404
    assert (reply.status, reply.body["code"]) == (404, "ORDER_NOT_FOUND")


def test_cancel_refused_once_a_payment_is_seen(api: ApiClient, merchant: Merchant) -> None:
    # Given an order that has moved on to confirming
    order_id = api.create(network="tron").body["orderId"]
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"ORDER#{merchant.merchant_id}#{order_id}"}, "sk": {"S": "ORDER"}},
        UpdateExpression="SET #st = :c",
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues={":c": {"S": "confirming"}},
    )
    # When it is cancelled
    reply = api.request("POST", f"{ORDER_PATH}/{order_id}/cancel")
    # Then it is 409 and the order keeps its status
    assert (reply.status, reply.body["code"]) == (409, "ORDER_NOT_CANCELLABLE")
    assert api.request("GET", f"{ORDER_PATH}/{order_id}").body["status"] == "confirming"


# --- public endpoints ---------------------------------------------------------------------


def _public_client(handler: object) -> ApiClient:
    return ApiClient(handler, source_ip=f"198.51.100.{secrets.randbelow(250) + 1}")


def test_networks_are_public_with_cors(handler: object, api: ApiClient) -> None:
    # Given a browser request without any API key
    public = _public_client(handler)
    origin = {"Origin": "https://shop.example.org"}
    # When the networks are listed (and, for contrast, a private route is called from a browser)
    reply = public.request("GET", "/v1/networks", sign="none", headers=origin)
    private = api.request("GET", "/v1/payment/orders", headers=origin)
    # Then every enabled network is described, with CORS open on the public route only
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in private.headers
    nets = {n["network"]: n for n in reply.body["networks"]}
    assert set(nets) == {"tron", "eth", "bsc", "polygon"}
    for name, net in nets.items():
        assert net["chainId"] == CHAIN_IDS[name]
        assert net["tokenContract"] == CONTRACTS[name]
        assert net["decimals"] == DECIMALS[name]
        assert (net["minAmount"], net["maxAmount"]) == ("0.01", "1000000")
        assert net["currency"] == "USDT"
    assert nets["tron"]["finality"] == "solidified"
    assert nets["eth"]["finality"] == nets["bsc"]["finality"] == "finalized"


def test_public_order_shows_what_a_payer_needs_only(handler: object, api: ApiClient, merchant: Merchant) -> None:
    # Given an order with private details
    created = api.create(
        network="bsc",
        amount="33.30",
        notifyUrl="https://shop.example.com/secret-hook",
        returnUrl="https://shop.example.com/thanks",
        metadata={"customer": "alice@example.com"},
    )
    public = _public_client(handler)
    # When the payer's page reads it by publicId, without a key, and reads an unknown id
    reply = public.request("GET", f"/v1/public/orders/{created.body['publicId']}", sign="none")
    unknown = public.request("GET", "/v1/public/orders/no-such-payment", sign="none")
    # Then it gets the payment details and nothing that identifies the merchant's order
    assert reply.status == 200
    body = reply.body
    for name in ("amount", "address", "network", "expiresAt", "status", "paymentUri", "chainId", "tokenContract"):
        assert body[name] == created.body[name]
    assert body["decimals"] == 18 and body["returnUrl"] == "https://shop.example.com/thanks"
    for name in ("merchantId", "orderId", "metadata", "notifyUrl"):
        assert name not in body
    text = json.dumps(body)
    for private in (created.body["orderId"], merchant.merchant_id, "alice@example.com", "secret-hook"):
        assert private not in text
    assert (unknown.status, unknown.body["code"]) == (404, "ORDER_NOT_FOUND")


# --- internal errors ----------------------------------------------------------------------


def test_internal_error_leaks_nothing(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from usdt_gateway import orders

    # Given a failure deep inside the domain whose message holds internals
    def broken(merchant_id: str, order_id: str) -> None:
        raise RuntimeError("db password hunter2 at /var/task/x.py")

    monkeypatch.setattr(orders, "get_order", broken)
    # When the order is read
    reply = api.request("GET", f"{ORDER_PATH}/any-order")
    # Then it is a bare 500 with a stable code and none of the internals
    assert reply.status == 500
    assert reply.body["code"] == "INTERNAL_ERROR"
    assert set(reply.body) == {"code", "message"}
    text = json.dumps(reply.body)
    for leak in ("hunter2", "/var/task", "RuntimeError", "Traceback"):
        assert leak not in text


# --- fixed-address mode -------------------------------------------------------------------


def test_fixed_address_tags_amounts_per_network(handler: object) -> None:
    # Given a merchant receiving on one fixed EVM address
    address = random_evm_address()
    fixed = new_merchant(fixed_evm=address.lower())
    client = ApiClient(handler, fixed.api_key, fixed.secret)
    # When two BSC orders and one Ethereum order of 25.00 are created
    first = client.create(network="bsc", amount="25.00")
    second = client.create(network="bsc", amount="25.00")
    eth = client.create(network="eth", amount="25.00")
    # Then the BSC orders get distinct tagged amounts on the same (EIP-55) address
    assert (first.status, second.status, eth.status) == (201, 201, 201)
    assert (first.body["amount"], second.body["amount"]) == ("25.00", "25.01")
    assert second.body["requestedAmount"] == "25.00"
    assert first.body["address"] == second.body["address"] == eth.body["address"] == address
    assert second.body["paymentUri"].endswith(f"address={address}&uint256=25010000000000000000")
    # And Ethereum has its own reservations, so its order keeps the untagged amount
    assert eth.body["amount"] == "25.00"
    assert eth.body["paymentUri"].endswith("&uint256=25000000")


def test_numeric_fields_are_not_coerced(api: ApiClient) -> None:
    # Given a chainId given as a boolean and an expiresIn given as a string
    before = table_item_count()
    as_bool = api.create(network=None, chainId=True)
    as_text = api.create(expiresIn="600")
    # Then both are refused by name, and nothing is written
    assert as_bool.status == 400 and "chainId" in as_bool.body["message"]
    assert as_text.status == 400 and "expiresIn" in as_text.body["message"]
    assert table_item_count() == before
