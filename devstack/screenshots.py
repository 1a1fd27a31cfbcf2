"""`python -m devstack.screenshots [--out docs/payment-page]`: screenshots of the hosted payment
page in each state, taken from a local stack of its own (moto, anvil, the scanner loop) in
headless Chromium.

Each state is reached as a payer would reach it: orders created through the signed API, test USDT
sent from the local chain's payer, the scanner moving the order on. To hold a payment at one
confirmation, mining pauses (anvil's evm_setIntervalMining 0, then one evm_mine); to expire an
order, the chain's clock jumps past its expiry (evm_increaseTime), which is what the gateway
decides expiry by. Nothing is requested outside 127.0.0.1 (the merchant's return URL is never
followed). Chinese text needs a CJK font on the machine, or it shows as empty boxes (Debian:
fonts-noto-cjk, which `make test` installs with Chromium). `CHROMIUM` picks another browser.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.template import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from devstack.stack import Stack

DEFAULT_OUT = REPO_ROOT / "docs" / "payment-page"
DESKTOP: dict[str, Any] = {"viewport": {"width": 560, "height": 900}, "device_scale_factor": 1}
RETURN_URL = "https://shop.example.com/orders/1042/thanks"
STATE_TIMEOUT_MS = 30_000
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def create_order(stack: Stack, amount: str, **fields: Any) -> dict[str, Any]:
    """A `local` order of the demo merchant, created with a Signature-V2 request."""
    from usdt_gateway import request_signing

    path = "/v1/payment/order"
    payload = {
        "network": "local",
        "currency": "USDT",
        "amount": amount,
        "orderId": f"shop-{secrets.token_hex(4)}",
        **fields,
    }
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time() * 1000))
    headers = {
        "Content-Type": "application/json",
        "API-Key": stack.merchant["apiKey"],
        "Request-Time": timestamp,
        "Signature-V2": request_signing.sign(
            stack.merchant["secretKey"], request_signing.v2_message(timestamp, "POST", path, [], body)
        ),
    }
    request = urllib.request.Request(stack.base_url + path, data=body, headers=headers, method="POST")  # noqa: S310
    with _NO_PROXY.open(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def send(stack: Stack, address: str, amount: str) -> str:
    """Test USDT from the chain's payer to `address`; the txid (mined with the next block)."""
    from devstack.pay import Payer
    from usdt_gateway.money import parse_amount, to_base_units

    return Payer(stack.chain.info).transfer(address, to_base_units(parse_amount(amount), stack.chain.info.decimals))


def _context(browser: Browser, stack: Stack, **options: Any) -> BrowserContext:
    context = browser.new_context(**{"timezone_id": "UTC", "locale": "en-US", **DESKTOP, **options})
    # Only the local stack: anything else (the merchant's return URL) is refused, never requested.
    context.route(lambda url: not url.startswith(stack.base_url), lambda route: route.abort())
    return context


def _shot(page: Page, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    # The body: the card and its margin, without the empty viewport below a short page.
    page.locator("body").screenshot(path=str(path), animations="disabled", caret="hide")
    print(f"  {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}", flush=True)
    return path


def _open(context: BrowserContext, order: dict[str, Any], state: str) -> Page:
    page = context.new_page()
    page.goto(order["paymentUrl"])
    wait_for_state(page, state)
    return page


def wait_for_state(page: Page, state: str, timeout_ms: int = STATE_TIMEOUT_MS) -> None:
    page.wait_for_selector(f'[data-panel="{state}"]', state="visible", timeout=timeout_ms)


def take(stack: Stack, browser: Browser, out: Path) -> list[Path]:
    """Every screenshot, in order; the last one (expired) moves the chain's clock forward."""
    anvil = stack.chain.anvil
    shots: list[Path] = []
    desktop = _context(browser, stack)

    # Waiting for the payment, then held at one of two confirmations, then paid.
    order = create_order(stack, "25.00", returnUrl=RETURN_URL)
    page = _open(desktop, order, "pending")
    shots.append(_shot(page, out, "waiting"))
    anvil.rpc("evm_setIntervalMining", [0])
    try:
        send(stack, order["address"], order["amount"])
        anvil.rpc("evm_mine")
        wait_for_state(page, "confirming")
        shots.append(_shot(page, out, "confirming"))
    finally:
        anvil.rpc("evm_setIntervalMining", [1])
    wait_for_state(page, "confirmed")
    shots.append(_shot(page, out, "paid"))  # with the notice of the return to the merchant
    page.click("[data-stay]")

    # A partial payment.
    order = create_order(stack, "30.00")
    page = _open(desktop, order, "pending")
    send(stack, order["address"], "10.50")
    wait_for_state(page, "underpaid")
    shots.append(_shot(page, out, "underpaid"))

    # Chinese (from Accept-Language), and a phone.
    chinese = _context(browser, stack, locale="zh-CN", timezone_id="Asia/Shanghai")
    shots.append(_shot(_open(chinese, create_order(stack, "88.00"), "pending"), out, "chinese"))
    from devstack.browser import PHONE

    phone = _context(browser, stack, **PHONE)
    shots.append(_shot(_open(phone, create_order(stack, "12.34"), "pending"), out, "phone"))

    # Expired: the chain's clock passes the expiry (block time decides it), the scanner closes it.
    order = create_order(stack, "40.00", expiresIn=60)
    page = _open(desktop, order, "pending")
    anvil.rpc("evm_increaseTime", [120])
    wait_for_state(page, "expired")
    shots.append(_shot(page, out, "expired"))
    for context in (desktop, chinese, phone):
        context.close()
    return shots


def _run(out: Path) -> int:
    from playwright.sync_api import sync_playwright

    from devstack.browser import launch
    from devstack.stack import start_stack

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="paypage-shots-") as state_dir:
        stack = start_stack(port=0, state_dir=Path(state_dir))
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                try:
                    print(f"payment page screenshots from {stack.base_url}:", flush=True)
                    take(stack, browser, out)
                finally:
                    browser.close()
        finally:
            stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.screenshots",
        description="Screenshot the payment page in each state from a local stack.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"directory (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    return _run(args.out.resolve())


if __name__ == "__main__":
    sys.exit(main())
