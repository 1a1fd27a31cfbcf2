"""CORS through the Lambda handler: a page on another origin may call the public routes (their
preflight answered, Access-Control-Allow-Origin on every answer), and nothing else: a preflight to
the merchant API is refused and its answers carry no Access-Control-Allow-Origin. The template
routes OPTIONS to the function on the public paths only. A real browser: test_cors_browser.py."""

from __future__ import annotations

import pytest

from tests.integration.apiclient import ApiClient
from usdt_gateway.api.app import ROUTES

ORIGIN = "https://shop.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "x-requested-with,x-shop-session",
}
PUBLIC_PATHS = ["/v1/networks", "/v1/public/orders/pub_0123456789abcdefghijkl"]


def private_routes() -> list[tuple[str, str]]:
    """Every signed route, its path parameters filled in."""
    import usdt_gateway.api.routes  # noqa: F401  (registers the routes)

    return [(r.method, r.path.replace("{", "x").replace("}", "")) for r in ROUTES if r.scope is not None]


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_a_preflight_to_a_public_route_is_answered(handler: object, path: str) -> None:
    # Given a page on another origin about to GET a public route with headers of its own
    browser = ApiClient(handler)
    # When its browser sends the preflight
    reply = browser.request("OPTIONS", path, sign="none", headers=PREFLIGHT)
    # Then it is allowed: any origin, GET, any header, cached for 10 minutes, without a body
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "GET" in reply.headers["access-control-allow-methods"].replace(" ", "").split(",")
    assert reply.headers["access-control-allow-headers"] == "*"
    assert reply.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in reply.headers
    assert reply.body is None


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_public_answers_carry_the_origin_header(handler: object, api: ApiClient, path: str) -> None:
    # Given a page on another origin
    order = api.create(network="tron").body
    path = path.replace("pub_0123456789abcdefghijkl", order["publicId"])
    # When it GETs a public route
    reply = ApiClient(handler).request("GET", path, sign="none", headers={"Origin": ORIGIN})
    # Then the answer may be read by it
    assert reply.status == 200, reply.body
    assert reply.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(("method", "path"), private_routes())
def test_a_preflight_to_the_merchant_api_is_refused(handler: object, method: str, path: str) -> None:
    # Given a page on another origin about to call a signed route
    browser = ApiClient(handler)
    # When its browser's preflight reaches the function (API Gateway would not even route it)
    reply = browser.request("OPTIONS", path, sign="none", headers=PREFLIGHT | {"Access-Control-Request-Method": method})
    # Then it is refused, with nothing a browser would take as permission
    assert (reply.status, reply.body["code"]) == (403, "CORS_NOT_ALLOWED")
    assert "from your server" in reply.body["message"]
    assert not [h for h in reply.headers if h.startswith("access-control-")]


def test_merchant_api_answers_carry_no_origin_header(api: ApiClient) -> None:
    # Given signed requests that name an origin, answered and refused
    origin = {"Origin": ORIGIN}
    listed = api.request("GET", "/v1/payment/orders", sign="v2", headers=origin)
    unsigned = api.request("GET", "/v1/payment/orders", sign="none", headers=origin)
    unknown = api.request("GET", "/v1/nothing/here", sign="none", headers=origin)
    # Then no answer lets a page on that origin read it
    assert (listed.status, unsigned.status, unknown.status) == (200, 401, 404)
    for reply in (listed, unsigned, unknown):
        assert not [h for h in reply.headers if h.startswith("access-control-")], reply.headers
