"""The payment page through its Lambda handler (functions/paypage/app.py) against DynamoDB on the
moto server: orders created by the API handler, the page and its assets rendered from them, the
security headers, the languages, escaping, the 404 page, and what the public endpoint adds for it."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import importlib.util
import json
import re
import secrets
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urljoin

import boto3
import pytest

from tests.fake_clock import FakeClock
from tests.integration.apiclient import ROOT, ApiClient, Context
from tests.integration.conftest import Merchant

# notifyUrls must resolve to public addresses: shop.example.com does, through the fake resolver.
pytestmark = pytest.mark.usefixtures("dns")
Page = tuple[int, dict[str, str], str]


@pytest.fixture(scope="module")
def page_handler(gateway_env: dict[str, str]) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location("paypage_function_app", ROOT / "functions/paypage/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[..., Any] = module.lambda_handler
    return handler


@pytest.fixture
def get(page_handler: Callable[..., Any], api: ApiClient) -> Callable[..., Page]:
    """GET a path of the page function with these headers and query: (status, headers, body)."""

    # Each test from an address of its own: the page counts against the source IP's page meter.
    payer = dataclasses.replace(api, source_ip=f"198.18.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}")

    def call(path: str, headers: dict[str, str] | None = None, query: list[tuple[str, str]] | None = None) -> Page:
        event = payer.event("GET", path, body=None, headers=headers or {}, query=query)
        raw = page_handler(event, Context())
        flat = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        for k, values in (raw.get("multiValueHeaders") or {}).items():
            flat.setdefault(k.lower(), ", ".join(values))
        assert raw.get("isBase64Encoded") is False
        return raw["statusCode"], flat, raw["body"]

    return call


def directives(csp: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (d.split() for d in csp.split(";") if d.strip())}


def see_on_chain(merchant: Merchant, order_id: str, *, txid: str, log_index: int) -> None:
    """A 5.00 USDT (bsc, 18 decimals) deposit seen in block 998, not final: the order confirming,
    written as the scanner writes it."""
    from tests.integration.conftest import TABLE

    units = {"N": str(5 * 10**18)}
    deposit = {
        "M": {
            "txid": {"S": txid},
            "logIndex": {"N": str(log_index)},
            "units": units,
            "sender": {"S": "0x" + "11" * 20},
            "blockNumber": {"N": "998"},
            "blockTime": {"N": "1"},
            "final": {"BOOL": False},
        }
    }
    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"ORDER#{merchant.merchant_id}#{order_id}"}, "sk": {"S": "ORDER"}},
        UpdateExpression="SET deposits = :d, seenUnits = :s, #st = :c",
        ExpressionAttributeNames={"#st": "status"},
        ExpressionAttributeValues={":d": {"M": {"k": deposit}}, ":s": units, ":c": {"S": "confirming"}},
    )


def test_page_shows_the_order_to_pay(api: ApiClient, get: Callable[..., Page]) -> None:
    # Given an order on Tron
    order = api.create(network="tron", amount="42.50").body

    # When its payment page is requested
    status, headers, html = get(f"/pay/{order['publicId']}")

    # Then it is HTML with the exact amount, the address, the network and the USDT contract
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>Pay 42.50 USDT</title>" in html
    assert f'<span id="amount-value" data-field="amount">{order["amount"]}</span> USDT' in html
    assert f'<code class="value mono" id="address-value">{order["address"]}</code>' in html
    assert f'<code class="value mono small" id="contract-value">{order["tokenContract"]}</code>' in html
    assert "Send only USDT on <span>Tron (TRC-20)</span>." in html
    # And the QR code the order stores (it encodes the paymentUri), which on Tron is the address only
    assert f'<img id="qr" src="{order["qrCodeData"]}"' in html
    assert "The QR code holds the address only: enter the amount yourself." in html
    # And it polls the public endpoint and loads its files by relative URLs (stage path, custom domain)
    assert f'data-status-url="../v1/public/orders/{order["publicId"]}"' in html
    assert re.search(r'<link rel="stylesheet" href="assets/page\.[0-9a-f]{16}\.css">', html)
    assert re.search(r'<script src="assets/page\.[0-9a-f]{16}\.js" defer></script>', html)
    # And nothing that identifies the merchant's order
    assert order["orderId"] not in html


def test_page_headers_forbid_inline_code_framing_sniffing_referrers_and_caching(
    api: ApiClient, get: Callable[..., Page]
) -> None:
    # Given a payment page
    order = api.create(network="bsc").body
    _, headers, html = get(f"/pay/{order['publicId']}")

    # Then its CSP allows nothing but its own files, its own API and the QR data: image
    csp = directives(headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["data:"] and csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert "unsafe" not in headers["content-security-policy"]
    # And the other headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    # And HTTPS only from the first visit on (API Gateway serves nothing else), and no powerful
    # feature (the copy buttons' clipboard-write keeps its default, this origin)
    assert headers["strict-transport-security"] == "max-age=31536000"
    policy = dict(p.strip().split("=", 1) for p in headers["permissions-policy"].split(","))
    assert {policy[f] for f in ("camera", "microphone", "geolocation", "payment")} == {"()"}
    assert "clipboard-write" not in policy
    # And the HTML has no inline script, style or event handler for the CSP to refuse
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    # And no third-party URL
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)


def test_assets_are_served_by_content_hash_with_a_long_cache(api: ApiClient, get: Callable[..., Page]) -> None:
    # Given the asset names a page links
    _, _, html = get(f"/pay/{api.create().body['publicId']}")
    names = re.findall(r'"assets/(page\.[0-9a-f]{16}\.(?:css|js))"', html)
    assert len(names) == 2
    package = resources.files("usdt_gateway.paypage") / "static"

    for name in names:
        # When each is requested
        status, headers, body = get(f"/pay/assets/{name}")
        # Then it is the package's file, named by its SHA-256, cacheable for a year
        stem, digest, ext = name.split(".")
        assert status == 200
        assert body == (package / f"{stem}.{ext}").read_text(encoding="utf-8")
        assert digest == hashlib.sha256(body.encode()).hexdigest()[:16]
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["content-type"] == {"css": "text/css", "js": "text/javascript"}[ext] + "; charset=utf-8"
        assert headers["x-content-type-options"] == "nosniff"

    # And a name of another release, or of no file, is a 404 nobody caches
    for wrong in ("page.0123456789abcdef.css", "app.py", "..%2Fapp.py"):
        status, headers, body = get(f"/pay/assets/{wrong}")
        assert (status, headers["cache-control"]) == (404, "no-store"), wrong
        assert "usdt_gateway" not in body


@pytest.mark.parametrize(
    ("headers", "query", "lang", "heading"),
    [
        ({}, None, "en", "Pay with USDT"),
        ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, None, "zh-CN", "使用 USDT 付款"),
        ({"accept-language": "fr-CH, fr;q=0.9, zh;q=0.5, en;q=0.4"}, None, "zh-CN", "使用 USDT 付款"),
        ({"Accept-Language": "zh-CN"}, [("lang", "en")], "en", "Pay with USDT"),
        ({"Accept-Language": "en-US"}, [("lang", "zh")], "zh-CN", "使用 USDT 付款"),
        ({"Accept-Language": "en-US"}, [("lang", "<script>")], "en", "Pay with USDT"),
    ],
    ids=["default", "zh-header", "zh-by-q", "switch-to-en", "switch-to-zh", "unknown-switch"],
)
def test_language_from_accept_language_or_the_switch(
    api: ApiClient,
    get: Callable[..., Page],
    headers: dict[str, str],
    query: list[tuple[str, str]] | None,
    lang: str,
    heading: str,
) -> None:
    # Given a payment page
    order = api.create(network="eth").body
    # When it is requested with this Accept-Language and ?lang=
    status, response_headers, html = get(f"/pay/{order['publicId']}", headers, query)
    # Then it is in that language, with a link to the other one, and caches know it varies
    assert status == 200
    assert f'<html lang="{lang}">' in html and f"<h1>{heading}</h1>" in html
    other = "?lang=en" if lang == "zh-CN" else "?lang=zh"
    assert f'<a href="{other}"' in html
    assert "<script>" not in html
    assert response_headers["vary"] == "Accept-Language"


def test_everything_from_data_is_html_escaped(api: ApiClient, get: Callable[..., Page]) -> None:
    # Given an order whose returnUrl (a valid https URL) carries HTML
    evil = 'https://shop.example.com/thanks?a="><script>alert(1)</script>&b=<img src=x onerror=alert(2)>'
    order = api.create(network="tron", returnUrl=evil).body
    # When it is cancelled (the return link shows) and its page rendered
    assert api.request("POST", f"/v1/payment/order/{order['orderId']}/cancel").status == 200
    status, _, html = get(f"/pay/{order['publicId']}")
    # Then the URL is in the link, escaped, and never as markup
    assert status == 200
    assert (
        'href="https://shop.example.com/thanks?a=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;'
        '&amp;b=&lt;img src=x onerror=alert(2)&gt;"'
    ) in html
    assert "<script>alert" not in html and "<img src=x" not in html


def test_network_names_from_configuration_are_escaped(
    api: ApiClient, get: Callable[..., Page], settings_env: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import config

    # Given an operator's network name with markup in it (NETWORKS_CONFIG)
    settings_env.setenv("NETWORKS_CONFIG", '{"polygon": {"displayName": "Polygon <b>PoS</b> & co"}}')
    config.reset()
    order = api.create(network="polygon").body
    # When the page is rendered
    _, _, html = get(f"/pay/{order['publicId']}")
    # Then it shows as text
    assert "Send only USDT on <span>Polygon &lt;b&gt;PoS&lt;/b&gt; &amp; co</span>." in html
    assert "<b>PoS" not in html


@pytest.mark.parametrize(
    ("headers", "title"), [({}, "Payment not found"), ({"Accept-Language": "zh-CN"}, "未找到付款")]
)
def test_unknown_payment_is_a_localized_html_404(get: Callable[..., Page], headers: dict[str, str], title: str) -> None:
    for public_id in ("no-such-payment", "x" * 65, "%3Cscript%3E"):
        # When a payment that does not exist is requested
        status, response_headers, html = get(f"/pay/{public_id}", headers)
        # Then it is a friendly HTML page (not the API's JSON), in the payer's language, with the
        # same headers as the page, and the id is not echoed
        assert status == 404
        assert response_headers["content-type"] == "text/html; charset=utf-8"
        assert f'<h2 class="headline">{title}</h2>' in html
        assert "frame-ancestors 'none'" in response_headers["content-security-policy"]
        assert response_headers["cache-control"] == "no-store"
        assert public_id not in html and not html.lstrip().startswith("{")


def test_cancelled_order_says_so_and_hides_what_to_pay(api: ApiClient, get: Callable[..., Page]) -> None:
    # Given an order the merchant cancelled, with a returnUrl
    order = api.create(network="eth", returnUrl="https://shop.example.com/back").body
    assert api.request("POST", f"/v1/payment/order/{order['orderId']}/cancel").status == 200
    # When its page is rendered
    _, _, html = get(f"/pay/{order['publicId']}")
    # Then the cancelled message shows, the pay details do not, and the way back does
    assert 'data-state="cancelled"' in html
    assert '<div class="panel cancelled" data-panel="cancelled" data-show="cancelled">' in html
    assert '<section class="pay" data-show="pending underpaid" hidden>' in html
    assert '<a class="button" data-return href="https://shop.example.com/back">Return to merchant</a>' in html


def _allowed_keys(action: str) -> list[str]:
    """The dynamodb:LeadingKeys patterns of the page function's statements granting `action`."""
    from devstack.template import load_template

    statements = load_template()["Resources"]["PaymentPageFunction"]["Properties"]["Policies"][0]["Statement"]
    return [
        pattern
        for s in statements
        if s["Action"] == action
        for pattern in s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    ]


def test_page_costs_its_rate_meter_and_two_reads_within_its_iam_condition(
    api: ApiClient, get: Callable[..., Page], merchant: Merchant
) -> None:
    from usdt_gateway import aws

    # Given an order seen on chain (its page also reads the scan cursor), and every DynamoDB call
    # of the process recorded with the partition key it touches
    order = api.create(network="bsc", amount="5.00").body
    see_on_chain(merchant, order["orderId"], txid="0x" + "cd" * 32, log_index=1)
    calls: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        calls.append((model.name, params["Key"]["pk"]["S"]))

    client = aws.client("dynamodb")
    client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        # When its page is rendered
        status, _, html = get(f"/pay/{order['publicId']}")
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", record)
    # Then it counted the request on the source IP's meter of page loads, then read the public
    # pointer, the order and the cursor, nothing else
    # (a meter's first request of a minute takes two conditional updates: same window, new window)
    assert status == 200 and 'data-state="confirming"' in html
    updates = [pk for name, pk in calls if name == "UpdateItem"]
    reads = [pk.split("#")[0] for name, pk in calls if name == "GetItem"]
    assert 1 <= len(updates) <= 2 and len(set(updates)) == 1
    assert updates[0].startswith("RATE#") and updates[0].endswith("#PAGES")
    assert reads == ["PUBLIC", "ORDER", "CURSOR"]
    assert {name for name, _ in calls} == {"UpdateItem", "GetItem"}
    # And every key it touched is one the template's dynamodb:LeadingKeys condition allows for
    # that action: the condition does not break the page
    for name, pk in calls:
        assert any(fnmatch.fnmatchcase(pk, p) for p in _allowed_keys(f"dynamodb:{name}")), (name, pk)


def test_page_loads_have_their_own_per_ip_limit_answered_with_a_localized_429_never_a_block(
    api: ApiClient,
    handler: object,
    page_handler: Callable[..., Any],
    settings_env: pytest.MonkeyPatch,
    fake_clock: FakeClock,
) -> None:
    from usdt_gateway import config

    # Given page loads limited to 3 a minute per source IP, /v1/networks to 1, and a caller that
    # sends 1 more while limited blocked (418) - for the endpoints that escalate; the clock stands
    # still inside one fixed one-minute window
    settings_env.setenv("PUBLIC_PAGE_RATE_LIMIT_PER_MINUTE", "3")
    settings_env.setenv("PUBLIC_RATE_LIMIT_PER_MINUTE", "1")
    settings_env.setenv("RATE_LIMIT_BLOCK_AFTER", "1")
    config.reset()
    order = api.create(network="tron").body
    ip = f"198.19.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"

    def page(source_ip: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        client = dataclasses.replace(api, source_ip=source_ip)
        raw = page_handler(
            client.event("GET", f"/pay/{order['publicId']}", body=None, headers=headers or {}), Context()
        )
        flat = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        for k, values in (raw.get("multiValueHeaders") or {}).items():
            flat.setdefault(k.lower(), ", ".join(values))
        return raw["statusCode"], flat, raw["body"]

    # When one address uses up /v1/networks (its 2nd request is a 429)
    networks = [ApiClient(handler, source_ip=ip).request("GET", "/v1/networks", sign="none").status for _ in range(2)]
    # And then loads the page eight times in the minute
    replies = [page(ip, {"Accept-Language": "zh-CN"}) for _ in range(8)]

    # Then the pages are counted apart from /v1/networks: the first three are served
    assert networks == [200, 429]
    assert [r[0] for r in replies] == [200] * 3 + [429] * 5
    # And over the limit each is a 429 (well past the block threshold: never a 418), an HTML page
    # in the payer's language with the page's headers and a Retry-After to the next window
    for _, headers, html in replies[3:]:
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert '<h2 class="headline">请求过多</h2>' in html
        assert 1 <= int(headers["retry-after"]) <= 60
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    # And another address still gets the page
    assert page(f"198.19.251.{secrets.randbelow(250) + 1}")[0] == 200


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        ("/pay/{id}/", None, "../{id}"),
        ("/pay/{id}/", [("lang", "zh")], "../{id}?lang=zh"),
    ],
)
def test_a_trailing_slash_redirects_to_the_page(
    api: ApiClient, get: Callable[..., Page], path: str, query: list[tuple[str, str]] | None, location: str
) -> None:
    # Given an order
    public_id = api.create(network="eth").body["publicId"]
    # When its page is requested with a trailing slash (API Gateway routes it to the same resource)
    status, headers, body = get(path.format(id=public_id), query=query)
    # Then it is a permanent redirect to the URL without it (where the relative assets/... and
    # ../v1/... resolve), relative, so it works under the stage path and on a custom domain alike
    assert (status, headers["location"]) == (308, location.format(id=public_id))
    for base in ("https://abc.execute-api.us-east-1.amazonaws.com/live", "https://pay.example.com"):
        requested = base + path.format(id=public_id)
        target = urljoin(requested, headers["location"])
        assert target.split("?")[0] == f"{base}/pay/{public_id}"
    assert headers["cache-control"] == "no-store" and body == ""
    # And the page itself is not redirected
    assert get(f"/pay/{public_id}")[0] == 200


def test_public_order_adds_what_the_page_needs_and_nothing_secret(
    handler: object, api: ApiClient, merchant: Merchant, fake_clock: FakeClock
) -> None:
    # Given an order with private details
    order = api.create(
        network="tron",
        amount="12.30",
        metadata={"customer": "alice@example.com"},
        notifyUrl="https://shop.example.com/secret-hook",
    ).body
    public = ApiClient(handler, source_ip=f"198.51.100.{secrets.randbelow(250) + 1}")
    # When the page's script reads the public endpoint
    fake_clock.advance(1_234)
    reply = public.request("GET", f"/v1/public/orders/{order['publicId']}", sign="none")
    # Then it has the amounts as strings, what is still missing, the finality and the server's clock
    assert reply.status == 200
    body = reply.body
    assert (body["amount"], body["paidAmount"], body["pendingAmount"], body["missingAmount"], body["excessAmount"]) == (
        "12.30",
        "0.00",
        "0.00",
        "12.30",
        "0.00",
    )
    assert (body["status"], body["exception"], body["deposits"], body["confirmedAt"]) == ("pending", None, [], None)
    assert (body["finality"], body["confirmations"]) == ("solidified", None)
    assert body["serverTime"] == fake_clock.ms
    assert body["expiresAt"] == order["expiresAt"]
    # And nothing of the merchant's
    text = json.dumps(reply.body)
    for private in (order["orderId"], merchant.merchant_id, "alice@example.com", "secret-hook", "qrCodeData"):
        assert private not in text


def test_confirmations_come_from_the_scan_cursor(
    api: ApiClient, get: Callable[..., Page], handler: object, merchant: Merchant
) -> None:
    # Given an order with a deposit seen 2 blocks below the scanner's head, written as the scanner does
    from tests.integration.conftest import TABLE

    order = api.create(network="bsc", amount="5.00").body
    dynamodb = boto3.client("dynamodb")
    see_on_chain(merchant, order["orderId"], txid="0x" + "ab" * 32, log_index=3)
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "CURSOR#bsc"}, "sk": {"S": "CURSOR"}, "head": {"N": "1000"}})
    try:
        # When the public view and the page are read
        public = ApiClient(handler, source_ip=f"198.51.100.{secrets.randbelow(250) + 1}")
        body = public.request("GET", f"/v1/public/orders/{order['publicId']}", sign="none").body
        _, _, html = get(f"/pay/{order['publicId']}")
    finally:
        dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "CURSOR#bsc"}, "sk": {"S": "CURSOR"}})
    # Then the deposit has 3 confirmations (998, 999, 1000), nothing is missing, and the page says so
    assert body["deposits"] == [
        {"txid": "0x" + "ab" * 32, "amount": "5.00", "blockTime": 1, "confirmations": 3, "final": False}
    ]
    assert (body["status"], body["pendingAmount"], body["missingAmount"]) == ("confirming", "5.00", "0.00")
    assert 'data-state="confirming"' in html
    assert '<span data-field="confirmations">3</span> confirmations; waiting for the block to be final' in html


def test_internal_error_is_an_html_page_that_leaks_nothing(
    api: ApiClient, get: Callable[..., Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import orders

    # Given a failure inside the domain whose message holds internals
    def broken(public_id: str) -> None:
        raise RuntimeError("db password hunter2 at /var/task/x.py")

    monkeypatch.setattr(orders, "get_payment_page", broken)
    # When a page is requested
    status, headers, html = get("/pay/anything", {"Accept-Language": "zh-CN"})
    # Then it is a 500 HTML page in the payer's language, with the page's headers, and no internals
    assert status == 500 and headers["content-type"] == "text/html; charset=utf-8"
    assert '<h2 class="headline">出错了</h2>' in html
    assert headers["cache-control"] == "no-store" and "default-src 'none'" in headers["content-security-policy"]
    for leak in ("hunter2", "/var/task", "RuntimeError", "Traceback"):
        assert leak not in html
