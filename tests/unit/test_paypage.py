"""The payment page's pure parts: language negotiation, the strings of both languages, which
message and sections each state shows, and the template's declaration of the page function."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from devstack.template import api_routes, function_environment, load_template
from usdt_gateway.paypage import i18n
from usdt_gateway.paypage.render import countdown, page_state, render_page
from usdt_gateway.schemas import OrderException, OrderStatus, PublicDepositView, PublicOrderView

NOW = 1_800_000_000_000
QR = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    ("header", "requested", "expected"),
    [
        (None, None, "en"),
        ("", None, "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", None, "en"),
        ("fr-FR,fr;q=0.9", None, "en"),  # nothing we have: English
        ("fr;q=1, zh-TW;q=0.7, en;q=0.5", None, "zh"),  # the best we have by q-value
        ("en;q=0.2, zh-Hans;q=0.8", None, "zh"),  # order does not matter, q-values do
        ("zh-HK;q=0.9, zh-CN;q=0.3, en;q=0.5", None, "zh"),  # the best range naming a language counts
        ("zh;q=0, *", None, "en"),  # q=0 means "not this one"
        ("en;q=0, *;q=0.5", None, "zh"),
        ("*", None, "en"),
        ("ZH-cn", None, "zh"),  # case-insensitive
        ("zh;q=2, en;q=0.1", None, "en"),  # a malformed q-value drops its range
        ("zh;q=0.9;foo=bar", None, "zh"),
        ("zh-CN", "en", "en"),  # the switch wins over the header
        ("en", "zh", "zh"),
        ("zh-CN", "fr", "zh"),  # an unknown ?lang= is ignored
    ],
)
def test_language_negotiation(header: str | None, requested: str | None, expected: str) -> None:
    # When a request's Accept-Language and ?lang= are negotiated
    # Then the page gets the expected language
    assert i18n.negotiate(header, requested) == expected


def test_both_languages_have_every_string_with_the_same_placeholders() -> None:
    # Given the English strings
    english = i18n.STRINGS["en"]

    # Then every language has exactly those keys, each with the same {placeholders}, and no markup
    def placeholders(text: str) -> set[str]:
        return set(re.findall(r"\{(\w+)\}", text))

    for lang in i18n.LANGUAGES:
        strings = i18n.STRINGS[lang]
        assert set(strings) == set(english), lang
        for key, text in strings.items():
            assert placeholders(text) == placeholders(english[key]), (lang, key)
            assert "<" not in text and ">" not in text, (lang, key)
    assert set(i18n.HTML_LANG) == set(i18n.NATIVE_NAME) == set(i18n.LANGUAGES)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "00:00"),
        (-5000, "00:00"),
        (59_999, "00:59"),
        (1_800_000, "30:00"),
        (3_600_000, "1:00:00"),
        (86_399_000, "23:59:59"),
    ],
)
def test_countdown_format(ms: int, text: str) -> None:
    assert countdown(ms) == text


def view(status: OrderStatus, **fields: Any) -> PublicOrderView:
    """A public view as get_public_order builds it (local network, 2 confirmations)."""
    base: dict[str, Any] = {
        "publicId": "pub_abc",
        "network": "local",
        "networkName": "Local dev chain",
        "chainId": 31337,
        "tokenContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "decimals": 6,
        "amount": "30.00",
        "paidAmount": "0.00",
        "pendingAmount": "0.00",
        "missingAmount": "30.00",
        "excessAmount": "0.00",
        "address": "0x2d8dc590D8d6a9c5Eee7F77f582A4002cd72175a",
        "paymentUri": "ethereum:0x5FbDB2315678afecb367f032d93F642f64180aa3@31337/transfer?address=x&uint256=1",
        "status": status,
        "finality": "2 confirmations",
        "confirmations": 2,
        "expiresAt": NOW + 600_000,
        "serverTime": NOW,
        "returnUrl": "https://shop.example.com/thanks",
    }
    return PublicOrderView.model_validate(base | fields)


class Shown(HTMLParser):
    """The panels and sections of a rendered page that are not hidden."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "hidden" in a:
            return
        if "data-panel" in a:
            self.panels.append(str(a["data-panel"]))
        if tag in ("section", "figure") or (tag == "div" and "return" in (a.get("class") or "")):
            self.sections.append(str(a.get("class")))


def shown(page: str) -> Shown:
    parser = Shown()
    parser.feed(page)
    return parser


DEPOSIT = PublicDepositView(txid="0xabc", amount="10.50", block_time=NOW - 5000, confirmations=1, final=False)
FINAL = DEPOSIT.model_copy(update={"confirmations": 3, "final": True})
PAID = {"paidAmount": "30.00", "missingAmount": "0.00", "deposits": [FINAL.model_dump()], "confirmedAt": NOW - 1000}


@pytest.mark.parametrize(
    ("status", "fields", "state", "sections"),
    [
        (OrderStatus.PENDING, {}, "pending", ["status", "pay", "qr"]),
        (OrderStatus.PENDING, {"expiresAt": NOW - 1}, "expired", ["status", "return"]),  # time is up
        (
            OrderStatus.CONFIRMING,
            {"pendingAmount": "30.00", "missingAmount": "0.00", "deposits": [DEPOSIT.model_dump()]},
            "confirming",
            ["status", "deposits"],
        ),
        (
            OrderStatus.UNDERPAID,
            {"paidAmount": "10.50", "missingAmount": "19.50", "deposits": [FINAL.model_dump()]},
            "underpaid",
            ["status", "pay", "deposits"],
        ),
        (
            OrderStatus.UNDERPAID,
            {"paidAmount": "10.50", "expiresAt": NOW - 1, "deposits": [FINAL.model_dump()]},
            "failed",
            ["status", "deposits", "return"],
        ),
        (OrderStatus.CONFIRMED, PAID, "confirmed", ["status", "receipt", "deposits", "return"]),
        (
            OrderStatus.CONFIRMED,
            {**PAID, "exception": OrderException.OVERPAID, "excessAmount": "1.00"},
            "overpaid",
            ["status", "receipt", "deposits", "return"],
        ),
        (
            OrderStatus.CONFIRMED,
            {**PAID, "exception": OrderException.PAID_LATE},
            "paid_late",
            ["status", "receipt", "deposits", "return"],
        ),
        (OrderStatus.EXPIRED, {"expiresAt": NOW - 1}, "expired", ["status", "return"]),
        (OrderStatus.CANCELLED, {}, "cancelled", ["status", "return"]),
        (
            OrderStatus.FAILED,
            {"paidAmount": "10.50", "deposits": [FINAL.model_dump()]},
            "failed",
            ["status", "deposits", "return"],
        ),
    ],
)
def test_each_state_shows_its_own_message_and_sections(
    status: OrderStatus, fields: dict[str, Any], state: str, sections: list[str]
) -> None:
    # Given an order in that state
    order = view(status, **fields)
    # When its page is rendered
    page = render_page(order, QR, "en")
    # Then exactly that state's message shows, with the sections that go with it
    assert page_state(order, order.server_time) == state
    assert f'data-state="{state}"' in page
    found = shown(page)
    assert found.panels == [state]
    assert [s.split()[0] for s in found.sections] == sections


def test_confirming_says_n_of_m_or_waits_for_finality() -> None:
    # Given a payment seen at 1 confirmation, on a network counting 2 and on one with a finalized tag
    counted = view(OrderStatus.CONFIRMING, deposits=[DEPOSIT.model_dump()])
    finalized = view(OrderStatus.CONFIRMING, deposits=[DEPOSIT.model_dump()], finality="finalized", confirmations=None)
    # Then the first says "1 of 2", the second how many so far and that it waits for finality
    assert (
        '<span data-field="confirmations">1</span> of <span data-field="required">2</span> confirmations'
        in render_page(counted, QR, "en")
    )
    assert '<span data-field="confirmations">1</span> confirmations; waiting for the block to be final' in render_page(
        finalized, QR, "en"
    )
    assert '已确认 <span data-field="confirmations">1</span>/<span data-field="required">2</span>' in render_page(
        counted, QR, "zh"
    )


def test_return_link_only_for_http_urls() -> None:
    # Given orders whose returnUrl is not a web URL (refused at creation; the page checks again)
    for url in ("javascript:alert(1)", "data:text/html,x", "//shop.example.com/x"):
        page = render_page(view(OrderStatus.CONFIRMED, returnUrl=url, **PAID), QR, "en")
        # Then there is no link back at all
        assert "data-return" not in page and "javascript:" not in page


def test_template_declares_the_page_function_on_the_gateway_layer() -> None:
    # Given the template
    template = load_template()
    props = template["Resources"]["PaymentPageFunction"]["Properties"]

    # Then the page function serves the page and its assets on the gateway's API
    routes = {(r.method, r.path) for r in api_routes(template) if r.function == "PaymentPageFunction"}
    assert routes == {("GET", "/pay/{publicId}"), ("GET", "/pay/assets/{asset}")}
    assert all(e["Properties"]["RestApiId"] == {"Ref": "GatewayApi"} for e in props["Events"].values())
    # And it gets the gateway layer only (no chain libraries), its own log group and service name
    assert [layer["Ref"] for layer in props["Layers"]] == ["GatewayLayer"]
    assert props["LoggingConfig"] == {"LogGroup": {"Ref": "PaymentPageFunctionLogGroup"}}
    assert function_environment(template, "PaymentPageFunction")["POWERTOOLS_SERVICE_NAME"] == "paypage"
    # And it may only read items of the table and count its rate meter (no KMS, no queue, no
    # other writes; tests/unit/test_iam.py checks the keys each may touch)
    (policy,) = props["Policies"]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in policy["Statement"]] == [
        ("Allow", "dynamodb:GetItem", {"Fn::GetAtt": ["Table", "Arn"]}),
        ("Allow", "dynamodb:UpdateItem", {"Fn::GetAtt": ["Table", "Arn"]}),
    ]
    # And it gets the limit of page loads from its parameter (a meter of its own, not the
    # public API's), and the meters' lifetime as the API function does
    page, api = (function_environment(template, f) for f in ("PaymentPageFunction", "ApiFunction"))
    assert page["PUBLIC_PAGE_RATE_LIMIT_PER_MINUTE"] == {"Ref": "PublicPageRateLimitPerMinute"}
    assert "PUBLIC_RATE_LIMIT_PER_MINUTE" not in page
    assert page["RATE_LIMIT_BLOCK_SECONDS"] == api["RATE_LIMIT_BLOCK_SECONDS"]


@pytest.mark.parametrize(
    ("lang", "note"),
    [
        ("en", 'You sent <span data-field="excess">2.50</span> USDT more than asked. Contact the merchant'),
        ("zh", '您多付了 <span data-field="excess">2.50</span> USDT，请联系商家处理差额。'),  # noqa: RUF001
    ],
)
def test_a_late_and_overpaid_payment_mentions_the_excess(lang: str, note: str) -> None:
    # Given an order paid after the deadline with 2.50 more than asked (recorded as paid_late)
    late = view(
        OrderStatus.CONFIRMED,
        **{**PAID, "paidAmount": "32.50", "exception": OrderException.PAID_LATE, "excessAmount": "2.50"},
    )
    # When its page is rendered
    page = render_page(late, QR, lang)
    # Then it says it arrived late and how much too much was sent, shown (not hidden)
    assert page_state(late, late.server_time) == "paid_late"
    assert f'<p class="excess" data-excess data-show="confirmed paid_late">{note}' in page
    # And without an excess the note is there for the script, hidden
    on_time = render_page(view(OrderStatus.CONFIRMED, **PAID), QR, lang)
    assert '<p class="excess" data-excess data-show="confirmed paid_late" hidden>' in on_time
    # And an overpaid order says it once, in its own message
    over = render_page(
        view(OrderStatus.CONFIRMED, **{**PAID, "exception": OrderException.OVERPAID, "excessAmount": "2.50"}), QR, lang
    )
    assert over.count('<span data-field="excess">2.50</span>') == 2  # the panel's, and the hidden note's
    assert '<p class="excess" data-excess data-show="confirmed paid_late" hidden>' in over
