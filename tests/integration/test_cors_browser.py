"""CORS in a real browser (headless Debian Chromium, driven by Playwright) against the local
stack: a page served from another origin calls the API with a header of its own, so the browser
sends a preflight first. The public routes answer it and the page reads them; the merchant API
does not, and the browser stops there, before the request itself is sent."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from devstack.stack import Stack
from tests.integration.browsers import static_site
from tests.integration.test_devstack import create_order

# Resolves with what the page could read, or with the error the browser gave it.
FETCH = """async ([url, headers]) => {
  try {
    const response = await fetch(url, {headers});
    return {ok: true, status: response.status, body: await response.json()};
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}"""
OWN_HEADER = {"X-Requested-With": "shop-page"}  # not CORS-safelisted: the browser asks first
BLOCKED = {"ok": False, "error": "TypeError: Failed to fetch"}


@pytest.fixture(scope="module")
def shop_origin() -> Iterator[str]:
    """Another origin than the stack's: 127.0.0.1 on a port of its own."""
    with static_site(b"<!doctype html><title>Shop</title><p>a shop's page") as origin:
        yield origin


@pytest.fixture
def page(browser: Browser, shop_origin: str) -> Iterator[Page]:
    """A fresh context on the shop's page."""
    context = browser.new_context()
    shop = context.new_page()
    response = shop.goto(shop_origin)
    assert response is not None and response.ok
    yield shop
    context.close()


@pytest.fixture
def reached(stack: Stack) -> Iterator[list[tuple[str, str]]]:
    """(method, path) of every request the API function gets while the test runs."""
    function = stack.functions["ApiFunction"]
    original, seen = function.handler, []

    def recording(event: dict[str, Any], context: Any) -> Any:
        seen.append((event["httpMethod"], event["path"]))
        return original(event, context)

    function.handler = recording
    try:
        yield seen
    finally:
        function.handler = original


def new_order(stack: Stack) -> dict[str, Any]:
    payload = {"network": "local", "currency": "USDT", "amount": "5.00", "orderId": f"cors-{secrets.token_hex(6)}"}
    response = create_order(stack.base_url, stack.merchant["apiKey"], stack.merchant["secretKey"], payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_page_on_another_origin_reads_the_public_routes(
    stack: Stack, page: Page, reached: list[tuple[str, str]]
) -> None:
    # Given an order, and a shop's page on another origin
    order = new_order(stack)
    status_path = f"/v1/public/orders/{order['publicId']}"
    # When the page fetches the networks and the order's status with a header of its own
    networks = page.evaluate(FETCH, [f"{stack.base_url}/v1/networks", OWN_HEADER])
    status = page.evaluate(FETCH, [f"{stack.base_url}{status_path}", OWN_HEADER])
    # Then it reads both
    assert (networks["ok"], networks["status"]) == (True, 200), networks
    assert "local" in {n["network"] for n in networks["body"]["networks"]}
    assert (status["ok"], status["status"]) == (True, 200), status
    assert (status["body"]["publicId"], status["body"]["amount"]) == (order["publicId"], order["amount"])
    # And the browser asked first each time: the preflight reached the function before the GET
    for path in ("/v1/networks", status_path):
        assert reached.index(("OPTIONS", path)) < reached.index(("GET", path)), reached


def test_a_page_on_another_origin_cannot_call_the_merchant_api(
    stack: Stack, page: Page, reached: list[tuple[str, str]]
) -> None:
    # Given a shop's page on another origin, and the merchant API's routes (an order's too)
    order = new_order(stack)
    private = [
        f"{stack.base_url}{path}"
        for path in ("/v1/payment/orders", f"/v1/payment/order/{order['orderId']}", "/v1/webhooks/endpoint")
    ]
    # When the page fetches them with a header of its own (a preflight first), and without (none)
    before = len(reached)
    preflighted = [page.evaluate(FETCH, [url, OWN_HEADER]) for url in private]
    simple = [page.evaluate(FETCH, [url, {}]) for url in private]
    # Then the browser blocks every one
    assert preflighted == [BLOCKED] * len(private)
    assert simple == [BLOCKED] * len(private)
    # And a preflighted request was never sent: only the simple GETs reached the function (and
    # their answers, refused for want of a key, were not given to the page)
    assert reached[before:] == [("GET", url.removeprefix(stack.base_url)) for url in private]
