"""The hosted payment page in a real browser (headless Debian Chromium, driven by Playwright)
against the local stack: moto, anvil, the scanner loop and `devstack pay`. What a payer sees:
the amount, address and contract, a QR code that scans to the payment URI, and the status
moving to paid (or underpaid, confirming, expired) in place, in English or Chinese, on a phone,
with no console error, no CSP violation and no request leaving 127.0.0.1."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import png
import pytest
import zxingcpp
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from devstack.browser import PHONE
from devstack.stack import Stack
from tests.integration.browsers import static_site
from tests.integration.test_devstack import create_order
from tests.integration.test_devstack_chain import printed_txid, run_pay

# Guards against a hung test, never waited out when the page works: the page polls every 4 s,
# the scanner needs a block or two, and a loaded machine stretches both.
STATE_TIMEOUT_MS = 60_000
POLL_MS = 4_000  # the page reads its order's status this long after loading, and after each answer
REDIRECT_MS = 5_000  # a paid page returns to the merchant's returnUrl this long after saying so
# Collects CSP violations (the init script runs before the page's own, and CSP does not apply to it).
WATCH_CSP = """window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
# Remembers each state the page shows, and marks the document: a reload or navigation loses both.
WATCH_STATES = """() => {
  window.__marker = "set before the payment";
  window.__states = [document.getElementById("payment").dataset.state];
  new MutationObserver(() => {
    const state = document.getElementById("payment").dataset.state;
    if (window.__states[window.__states.length - 1] !== state) window.__states.push(state);
  }).observe(document.getElementById("payment"), {attributes: true, attributeFilter: ["data-state"]});
}"""


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    """The merchant's site the payer returns to, on 127.0.0.1."""
    with static_site(b"<!doctype html><title>Shop</title><h1>Thank you for your order</h1>") as origin:
        yield origin


@dataclass
class Visit:
    """A browser context on the payment page, with everything it requested and complained about."""

    context: BrowserContext
    page: Page
    status: int = 0  # of the document
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__csp"))

    def assert_clean(self) -> None:
        """No console error or warning, no uncaught error, no CSP violation, nothing off 127.0.0.1."""
        assert self.console == []
        assert self.csp_violations() == []
        off_host = [u for u in self.requests if urlsplit(u).scheme != "data" and urlsplit(u).hostname != "127.0.0.1"]
        assert self.requests and off_host == []

    def read_now(self) -> None:
        """Bring the page's next status read forward to now (a page visited with clock=True), once
        what it is to find is there. Should a read be under way already, the next one comes on
        its own 4 s later, as without the clock."""
        self.page.clock.fast_forward(POLL_MS)

    def wait_for_state(self, state: str, timeout_ms: int = STATE_TIMEOUT_MS) -> None:
        self.page.wait_for_selector(f'[data-panel="{state}"]', state="visible", timeout=timeout_ms)

    def visible_text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()


Visitor = Callable[..., Visit]


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visitor]:
    """visit(url, **context options): a fresh context (no cookies, no cache) on the page. With
    clock=True the page's timers run on Playwright's clock: time flows as usual, and the test may
    bring the page's next status read forward (Visit.read_now) instead of waiting for it. With
    paused=True too, the page's time stands still once it has loaded: its timers (status reads,
    the countdown to the merchant's page) fire only when the test moves the clock."""
    contexts: list[BrowserContext] = []

    def open_(url: str, *, clock: bool = False, paused: bool = False, **options: Any) -> Visit:
        context = browser.new_context(**{"locale": "en-US", "timezone_id": "UTC", **options})
        contexts.append(context)
        if clock or paused:
            context.clock.install()
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        seen = Visit(context, page)
        context.on("request", lambda request: seen.requests.append(request.url))

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                seen.console.append(f"{message.type}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: seen.console.append(f"pageerror: {error}"))
        response = page.goto(url)
        assert response is not None
        seen.status = response.status
        if paused:
            page.clock.pause_at(page.evaluate("Date.now()") / 1000)  # (Python's clock takes seconds)
        return seen

    yield open_
    for context in contexts:
        context.close()


def new_order(stack: Stack, amount: str = "25.00", **fields: Any) -> dict[str, Any]:
    payload = {
        "network": "local",
        "currency": "USDT",
        "amount": amount,
        "orderId": f"page-{secrets.token_hex(6)}",
        **fields,
    }
    response = create_order(stack.base_url, stack.merchant["apiKey"], stack.merchant["secretKey"], payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def decode_png(data: bytes) -> list[str]:
    """What zxing-cpp reads in a PNG (a screenshot: RGBA rows -> 8-bit grey)."""
    width, height, rows, _ = png.Reader(bytes=data).asRGBA8()
    grey = bytearray()
    for row in rows:
        grey.extend((row[i] * 299 + row[i + 1] * 587 + row[i + 2] * 114) // 1000 for i in range(0, len(row), 4))
    return [barcode.text for barcode in zxingcpp.read_barcodes(memoryview(bytes(grey)).cast("B", (height, width)))]


# --- what the page shows ------------------------------------------------------------------


def test_page_shows_what_to_pay_and_a_qr_code_that_scans_to_the_payment_uri(stack: Stack, visit: Visitor) -> None:
    # Given a new order on the local chain
    order = new_order(stack, "25.00")

    # When the payer opens its paymentUrl
    seen = visit(order["paymentUrl"])

    # Then the page shows the exact amount, the address, the network and the token contract
    assert seen.status == 200
    assert seen.page.title() == "Pay 25.00 USDT"
    assert seen.visible_text("#amount-value") == "25.00"
    assert seen.visible_text("#address-value") == order["address"]
    assert seen.visible_text("#contract-value") == order["tokenContract"] == stack.chain.info.token_contract
    assert "Send only USDT on Local dev chain." in seen.visible_text(".network-warning")
    seen.wait_for_state("pending")
    assert seen.visible_text('[data-panel="pending"] .headline') == "Waiting for your payment"
    # And a countdown to the expiry (30 minutes by default)
    shown = seen.visible_text("[data-field=countdown]")
    minutes, seconds = shown.split(":")
    assert 29 * 60 <= int(minutes) * 60 + int(seconds) <= 30 * 60
    # that ticks by itself
    seen.page.wait_for_function(
        "t => document.querySelector('[data-field=countdown]').textContent !== t", arg=shown, timeout=STATE_TIMEOUT_MS
    )
    # And the QR code on screen, as pixels, scans to the order's payment URI
    assert decode_png(seen.page.locator("#qr").screenshot()) == [order["paymentUri"]]
    assert order["paymentUri"].startswith(f"ethereum:{order['tokenContract']}@31337/transfer?address=")
    # And nothing went wrong or left the machine
    seen.assert_clean()


def test_csp_refuses_inline_code_and_the_page_reports_it(stack: Stack, visit: Visitor) -> None:
    # Given an open payment page
    seen = visit(new_order(stack)["paymentUrl"])
    # When something injects an inline style and an inline script
    seen.page.evaluate("""() => {
        const style = document.createElement("style");
        style.append("body { background: red }");
        document.head.append(style);
        const img = document.createElement("img");
        img.src = "https://tracker.example/pixel.gif";
        document.body.append(img);
    }""")
    seen.page.wait_for_function("window.__csp.length >= 2")
    # Then the browser refuses both (the watch on violations works, so its silence elsewhere counts)
    directives = {v.split(" ")[0] for v in seen.csp_violations()}
    assert {"style-src-elem", "img-src"} <= directives
    assert seen.page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgb(255, 0, 0)"


def test_copy_buttons_copy_the_amount_and_the_address(stack: Stack, visit: Visitor) -> None:
    # Given an open page in a browser that lets it use the clipboard
    order = new_order(stack, "12.34")
    seen = visit(order["paymentUrl"], permissions=["clipboard-read", "clipboard-write"])
    # When the payer taps the address's copy button
    address_button = seen.page.locator('button[data-copy="address-value"]')
    address_button.click()
    # Then the address is on the clipboard and the button says so
    assert seen.page.evaluate("navigator.clipboard.readText()") == order["address"]
    assert address_button.inner_text() == "Copied"
    # And the amount's button copies the exact amount string
    seen.page.locator('button[data-copy="amount-value"]').click()
    assert seen.page.evaluate("navigator.clipboard.readText()") == "12.34"
    seen.assert_clean()


def test_chinese_from_accept_language_and_the_switch_back_and_forth(stack: Stack, visit: Visitor) -> None:
    # Given a browser whose language is Simplified Chinese (Accept-Language: zh-CN)
    order = new_order(stack, "88.00")
    seen = visit(order["paymentUrl"], locale="zh-CN")
    # Then the page is in Chinese
    assert seen.page.evaluate("document.documentElement.lang") == "zh-CN"
    assert seen.visible_text("h1") == "使用 USDT 付款"
    assert seen.visible_text('[data-panel="pending"] .headline') == "等待付款"
    assert seen.page.locator('button[data-copy="address-value"]').inner_text() == "复制"
    # When the payer picks English with the switch, and then Chinese again
    seen.page.click("nav.lang a[hreflang=en]")
    seen.page.wait_for_url("**/pay/*?lang=en")
    english = seen.visible_text('[data-panel="pending"] .headline')
    seen.page.click("nav.lang a[hreflang=zh-CN]")
    seen.page.wait_for_url("**/pay/*?lang=zh")
    # Then each is in the language picked, with the same payment
    assert english == "Waiting for your payment"
    assert seen.visible_text("h1") == "使用 USDT 付款"
    assert seen.visible_text("#amount-value") == "88.00"
    seen.assert_clean()


# Draws each character with the page's font on a canvas, and tells whether it looks different from
# a code point no font has (U+10FFFD, private use): with no font for it, a character is that box too.
DRAWN_AS_GLYPHS = """(chars) => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 64;
  const context = canvas.getContext("2d");
  context.font = `40px ${getComputedStyle(document.body).fontFamily}`;
  const draw = (c) => {
    context.clearRect(0, 0, 64, 64);
    context.fillText(c, 8, 48);
    return context.getImageData(0, 0, 64, 64).data.join();
  };
  const missing = draw("\\u{10FFFD}");
  return Object.fromEntries(chars.map((c) => [c, draw(c) !== missing]));
}"""


def test_chinese_text_is_drawn_with_a_cjk_font_not_as_empty_boxes(stack: Stack, visit: Visitor) -> None:
    # Given the page in Chinese
    seen = visit(new_order(stack, "66.00")["paymentUrl"], locale="zh-CN")
    headline = seen.visible_text("h1") + seen.visible_text('[data-panel="pending"] .headline')
    chinese = sorted({c for c in headline if "\u4e00" <= c <= "\u9fff"})
    assert len(chinese) >= 6
    # When each of its Chinese characters is drawn with the page's font (and a Latin letter, which
    # shows the comparison tells a glyph from the box)
    drawn = seen.page.evaluate(DRAWN_AS_GLYPHS, [*chinese, "A"])
    # Then every one is a glyph of its own, not the box of a character no font has
    assert drawn == dict.fromkeys([*chinese, "A"], True)


def test_phone_viewport_fits_without_sideways_scrolling_with_large_touch_targets(stack: Stack, visit: Visitor) -> None:
    # Given a phone-sized browser
    seen = visit(new_order(stack, "50.00")["paymentUrl"], **PHONE)
    # Then nothing overflows sideways, the QR code fits the screen
    width = seen.page.evaluate("window.innerWidth")
    assert seen.page.evaluate("document.documentElement.scrollWidth") <= width == 390
    qr = seen.page.locator("#qr").bounding_box()
    assert qr is not None and qr["width"] <= width and qr["width"] >= 200
    # And every button and link is at least 44 px high (a finger, not a mouse pointer)
    for target in seen.page.locator("button:visible, nav.lang a").all():
        box = target.bounding_box()
        assert box is not None and box["height"] >= 44, target.inner_text()
    seen.assert_clean()


def test_unknown_payment_is_a_friendly_localized_404_page(stack: Stack, visit: Visitor) -> None:
    # When a payer opens a payment link that does not exist, in a Chinese browser
    seen = visit(f"{stack.base_url}/pay/no-such-payment", locale="zh-CN")
    # Then it is an HTML page saying so, in Chinese, with the switch to English
    assert seen.status == 404
    assert seen.visible_text(".headline") == "未找到付款"
    assert seen.page.locator("nav.lang a[hreflang=en]").count() == 1
    # (the 404 of the document itself is the only console message: Chromium logs every 4xx document)
    seen.console = [m for m in seen.console if "404" not in m]
    seen.assert_clean()


@pytest.mark.parametrize("slashes", ["/", "//"])
def test_a_trailing_slash_leads_to_the_working_page(stack: Stack, visit: Visitor, slashes: str) -> None:
    # Given a payment link someone wrote with a trailing slash
    order = new_order(stack, "9.00")
    # When the payer opens it
    seen = visit(order["paymentUrl"] + slashes + "?lang=zh", clock=True)
    # Then the browser lands on the page without the slash, the language kept
    assert seen.page.url == order["paymentUrl"] + "?lang=zh"
    # And the stylesheet and the script load (their relative URLs resolve): the copy buttons
    # show and the page polls its status
    seen.page.wait_for_selector('button[data-copy="address-value"]', state="visible")
    assert seen.page.evaluate("[...document.styleSheets].map((sheet) => sheet.cssRules.length)")[0] > 10
    with seen.page.expect_response(
        lambda r: "/v1/public/orders/" in r.url and r.status == 200, timeout=STATE_TIMEOUT_MS
    ):
        seen.read_now()
    # (the redirect is not an error of the page; Chromium logs nothing for it)
    seen.assert_clean()


def test_throttled_status_updates_say_they_are_delayed_and_wait_as_told(stack: Stack, visit: Visitor) -> None:
    # Given an open page whose status reads the gateway answers with 429, Retry-After 3 s
    order = new_order(stack, "11.00")
    seen = visit(order["paymentUrl"], clock=True)
    polls: list[float] = []

    def throttled(route: Any) -> None:
        polls.append(seen.page.evaluate("performance.now()"))
        route.fulfill(
            status=429,
            headers={"Retry-After": "3", "Content-Type": "application/json"},
            body='{"code": "RATE_LIMITED", "message": "rate limit exceeded"}',
        )

    seen.page.route("**/v1/public/orders/**", throttled)
    seen.read_now()
    # Then the page says its status updates are delayed
    seen.page.wait_for_selector("[data-delayed]", state="visible", timeout=STATE_TIMEOUT_MS)
    assert seen.visible_text("[data-delayed]") == "Status updates are delayed; this page keeps checking."
    assert seen.page.locator("[data-offline]").is_hidden()
    # And asks again no sooner than Retry-After says (not every 4 s), time flowing as it does
    while len(polls) < 2:
        seen.page.wait_for_timeout(500)
    assert polls[1] - polls[0] >= 3000
    # When the gateway answers again
    seen.page.unroute("**/v1/public/orders/**")
    # Then the notice goes away with the next answer (due 4-6 s after the last 429: brought
    # forward a second at a time), and the page still shows the order
    while seen.page.locator("[data-delayed]").is_visible():
        seen.page.clock.fast_forward(1_000)
        seen.page.wait_for_timeout(100)
    seen.wait_for_state("pending")
    # (Chromium logs each 429 answer of fetch as a console error; nothing else may appear)
    seen.console = [m for m in seen.console if "429" not in m]
    seen.assert_clean()


def test_a_late_overpaid_payment_shows_the_excess_when_the_page_turns_paid(stack: Stack, visit: Visitor) -> None:
    import json

    # Given an open page, and the gateway's next answer saying the order was paid late with
    # 1.50 more than asked (the real answer, with the fields a late overpayment has)
    order = new_order(stack, "20.00")
    seen = visit(order["paymentUrl"], clock=True)
    seen.wait_for_state("pending")
    assert seen.page.locator("[data-excess]").is_hidden()

    def paid_late(route: Any) -> None:
        body = json.loads(route.fetch().text())
        body.update(
            status="confirmed",
            exception="paid_late",
            paidAmount="21.50",
            missingAmount="0.00",
            excessAmount="1.50",
            confirmedAt=body["serverTime"],
        )
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    seen.page.route("**/v1/public/orders/**", paid_late)
    # Then the page turns to paid late and says how much more was sent
    seen.read_now()
    seen.wait_for_state("paid_late")
    assert seen.visible_text("[data-excess]") == (
        "You sent 1.50 USDT more than asked. Contact the merchant about the difference."
    )
    seen.assert_clean()


# --- the status, live ---------------------------------------------------------------------


def test_status_flips_to_paid_in_place_after_a_sandbox_payment(stack: Stack, visit: Visitor, shop: str) -> None:
    # Given an open page of an order that returns to the shop once paid
    return_url = f"{shop}/orders/42/thanks"
    order = new_order(stack, "25.00", returnUrl=return_url)
    # (its clock paused: pay follows the money on after the order is confirmed, and the page must
    # not go back to the merchant before the test has looked at it)
    seen = visit(order["paymentUrl"], paused=True)
    seen.page.evaluate(WATCH_STATES)

    # When `devstack pay` pays it on the local chain (it returns once the gateway says confirmed)
    result = run_pay(stack, order["orderId"])
    assert result.returncode == 0, result.stdout + result.stderr
    txid = printed_txid(result.stdout)

    # Then the page shows it paid, without a reload: the marker set before is still there
    seen.read_now()
    seen.wait_for_state("confirmed")
    assert seen.page.evaluate("window.__marker") == "set before the payment"
    states = seen.page.evaluate("window.__states")
    assert (
        states[0] == "pending" and states[-1] == "confirmed" and set(states) <= {"pending", "confirming", "confirmed"}
    )
    # And the receipt: amount paid, the transaction, the time; the pay details are gone
    assert seen.visible_text(".receipt dd [data-field=paid]") == "25.00"
    assert seen.visible_text(".deposit [data-d=txid]") == txid
    assert seen.visible_text(".deposit [data-d=final]") == "final"
    assert seen.page.locator(".receipt time").get_attribute("datetime")
    assert seen.page.locator(".pay").is_hidden()
    # And the link back to the merchant, which the page follows by itself a few seconds later
    assert seen.page.locator("a[data-return]").get_attribute("href") == return_url
    assert "Returning to the merchant in" in seen.visible_text("[data-redirect]")
    seen.assert_clean()
    seen.page.clock.run_for(REDIRECT_MS)  # its countdown, a second at a time
    seen.page.wait_for_url(return_url, timeout=STATE_TIMEOUT_MS)
    assert seen.visible_text("h1") == "Thank you for your order"
    assert seen.console == []


def test_payment_seen_on_chain_shows_n_of_m_confirmations_then_paid(stack: Stack, visit: Visitor) -> None:
    from devstack.screenshots import send

    # Given an open page and a chain that mines only when told (one block, then it stops)
    order = new_order(stack, "7.00")
    seen = visit(order["paymentUrl"])
    anvil = stack.chain.anvil
    anvil.rpc("evm_setIntervalMining", [0])
    try:
        # When the payment is mined in one block
        send(stack, order["address"], "7.00")
        anvil.rpc("evm_mine")
        # Then the page shows it seen, at 1 of the network's 2 confirmations, and still waiting
        seen.wait_for_state("confirming")
        assert seen.visible_text('[data-panel="confirming"] p:first-of-type') == "1 of 2 confirmations"
        assert seen.visible_text(".deposit [data-d=seen]") == "confirmations: 1"
        assert seen.page.locator(".pay").is_hidden()
    finally:
        anvil.rpc("evm_setIntervalMining", [1])
    # And once blocks come again, it is paid (no return URL: no link, no redirect)
    seen.wait_for_state("confirmed")
    assert seen.visible_text(".deposit [data-d=final]") == "final"
    assert seen.page.locator("a[data-return]").count() == 0
    seen.assert_clean()


def test_underpaid_shows_the_missing_amount_and_a_top_up_completes_it(stack: Stack, visit: Visitor) -> None:
    # Given an open page of a 30.00 order
    order = new_order(stack, "30.00")
    seen = visit(order["paymentUrl"], clock=True)
    seen.page.evaluate(WATCH_STATES)

    # When only 10.50 is paid (pay returns once the gateway says underpaid)
    assert run_pay(stack, order["orderId"], "--amount", "10.5").returncode == 0
    # Then the page says how much is missing and that the same address takes the rest
    seen.read_now()
    seen.wait_for_state("underpaid")
    message = seen.visible_text('[data-panel="underpaid"]')
    assert "Received 10.50 of 30.00 USDT" in message and "missing 19.50 USDT to the same address" in message
    assert seen.visible_text("#missing-value") == "19.50"
    assert seen.visible_text("#address-value") == order["address"]
    assert seen.page.locator("#qr").is_hidden()  # it asks for the full amount

    # When the payer sends the missing amount to the same address
    assert run_pay(stack, order["orderId"], "--amount", "19.50").returncode == 0
    # Then the order is paid, as the page said, still without a reload
    seen.read_now()
    seen.wait_for_state("confirmed")
    assert seen.visible_text(".receipt dd [data-field=paid]") == "30.00"
    assert seen.page.locator(".deposit").count() == 2
    assert seen.page.evaluate("window.__marker") == "set before the payment"
    seen.assert_clean()


def test_expired_order_shows_expired(stack: Stack, visit: Visitor) -> None:
    # Given an open page of an order that expires in a minute
    order = new_order(stack, "40.00", expiresIn=60)
    seen = visit(order["paymentUrl"])
    seen.wait_for_state("pending")
    seen.page.evaluate(WATCH_STATES)

    # When the chain's clock passes the expiry (expiry goes by block time) and the scanner closes it
    # (last in the module: later blocks of this chain are two minutes ahead)
    stack.chain.anvil.rpc("evm_increaseTime", [120])

    # Then the page says it expired, with the address and the QR code gone, before its own countdown ran out
    seen.wait_for_state("expired")
    assert seen.visible_text('[data-panel="expired"] .headline') == "This payment request has expired"
    assert seen.page.locator(".pay").is_hidden() and seen.page.locator("#qr").is_hidden()
    assert seen.visible_text("[data-field=countdown]") != "00:00"
    assert seen.page.evaluate("window.__states") == ["pending", "expired"]
    seen.assert_clean()
