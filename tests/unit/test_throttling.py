"""API Gateway's throttling in front of the functions (template.yaml, GatewayApi MethodSettings):
API Gateway keeps one token bucket per method, shared by every client; the default applies to
every method (the merchant API), and each public, unsigned method has limits of its own, sized
for every open payment page of the deployment together (per-client limits are the functions'
per-IP meters). Its own 429 carries the gateway's error shape."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack.template import REPO_ROOT, api_routes, load_template

Template = dict[str, Any]


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


def public_routes(template: Template) -> set[tuple[str, str]]:
    """The routes anyone may call: the payment page function's, and the API's without a scope
    (read from the route declarations, so a new public route is covered without a change here)."""
    import usdt_gateway.api.routes  # noqa: F401  (registers the routes)
    from usdt_gateway.api.app import ROUTES

    page = {(r.method, r.path) for r in api_routes(template) if r.function == "PaymentPageFunction"}
    return page | {(spec.method, spec.path) for spec in ROUTES if spec.scope is None}


def resource_path(path: str) -> str:
    """A MethodSetting's ResourcePath: every "/" of the path written as ~1, after a leading "/"."""
    return "/" + path.replace("/", "~1")


def _default(template: Template, name: str) -> int:
    return int(template["Parameters"][name]["Default"])


STATUS = ("GET", "/v1/public/orders/{publicId}")
# Payment pages open at once that the status endpoint's default limit serves, for the whole
# deployment (docs/rate-limits.md).
OPEN_PAGES = 2000


def poll_seconds() -> float:
    """How often an open payment page reads its status (the page script's POLL_MS)."""
    script = (REPO_ROOT / "layers/gateway/usdt_gateway/paypage/static/page.js").read_text()
    match = re.search(r"const POLL_MS = (\d+);", script)
    assert match is not None
    return int(match.group(1)) / 1000


def test_every_public_method_has_limits_of_its_own(template: Template) -> None:
    # Given the stage's method settings
    settings = template["Resources"]["GatewayApi"]["Properties"]["MethodSettings"]
    by_method = {(s["HttpMethod"], s["ResourcePath"]): s for s in settings}
    assert len(by_method) == len(settings)  # each method once

    # Then the default for every method is the merchant API's
    default = by_method.pop(("*", "/*"))
    assert (default["ThrottlingRateLimit"], default["ThrottlingBurstLimit"]) == (
        {"Ref": "ApiThrottlingRateLimit"},
        {"Ref": "ApiThrottlingBurstLimit"},
    )
    # And each public route, and only those, has a setting: the status poll its own parameters,
    # the page, its assets and /v1/networks theirs
    public = public_routes(template)
    assert public == {("GET", "/pay/{publicId}"), ("GET", "/pay/assets/{asset}"), STATUS, ("GET", "/v1/networks")}
    assert set(by_method) == {(method, resource_path(path)) for method, path in public}
    for method, path in public:
        setting = by_method[(method, resource_path(path))]
        prefix = "PublicStatus" if (method, path) == STATUS else "PublicApi"
        assert (setting["ThrottlingRateLimit"], setting["ThrottlingBurstLimit"]) == (
            {"Ref": f"{prefix}ThrottlingRateLimit"},
            {"Ref": f"{prefix}ThrottlingBurstLimit"},
        ), path
    # And every setting names a resource the API has (a wrong path would throttle nothing)
    declared = {(r.method, resource_path(r.path)) for r in api_routes(template)}
    assert set(by_method) <= declared


def test_public_limits_are_sized_for_every_open_page_together(template: Template) -> None:
    # Given the defaults (one bucket per method for all clients: they cap the whole deployment)
    rate = {name: _default(template, f"{name}ThrottlingRateLimit") for name in ("Api", "PublicApi", "PublicStatus")}
    burst = {name: _default(template, f"{name}ThrottlingBurstLimit") for name in rate}

    # Then the status poll serves the documented number of open pages at once
    assert rate["PublicStatus"] * poll_seconds() >= OPEN_PAGES
    # And no public method gets less than the default for every method would give it
    assert rate["PublicApi"] >= rate["Api"] and rate["PublicStatus"] >= rate["Api"]
    # And each bucket holds at least one second of its rate (a burst of pages opening)
    for name in rate:
        assert burst[name] >= rate[name], name
    # And they are parameters an operator tunes (bounded below, like the merchant ones)
    for name in ("PublicApi", "PublicStatus"):
        for kind in ("Rate", "Burst"):
            assert template["Parameters"][f"{name}Throttling{kind}Limit"]["MinValue"] == 1


def test_api_gateways_own_429_has_the_gateways_error_shape(template: Template) -> None:
    # Given API Gateway's answer when a method's bucket is empty
    responses = template["Resources"]["GatewayApi"]["Properties"]["GatewayResponses"]
    throttled = responses["THROTTLED"]

    # Then it is a 429 telling the client when to try again
    assert str(throttled["StatusCode"]) == "429"
    # (a static header value is quoted: API Gateway reads an unquoted one as a request parameter)
    assert throttled["ResponseParameters"]["Headers"] == {"Retry-After": "'1'"}
    # And its JSON body is the functions' error shape, with a stable code of its own
    body = json.loads(throttled["ResponseTemplates"]["application/json"])
    assert set(body) == set(error_body()) == {"code", "message"}
    assert body["code"] == "THROTTLED" and body["message"]


def error_body() -> dict[str, Any]:
    """The body of an error answered by the functions (usdt_gateway.api.app's handler of the
    gateway's errors; a 5xx, which the handler logs without a request)."""
    from usdt_gateway.api.app import _domain
    from usdt_gateway.errors import GatewayError

    response = _domain(GatewayError("try later"))
    assert isinstance(response.body, str)
    body: dict[str, Any] = json.loads(response.body)
    return body


def test_resource_paths_are_written_as_api_gateway_reads_them() -> None:
    # "/resource/subresource" is "/~1resource~1subresource" (AWS::ApiGateway::Stage MethodSetting)
    assert resource_path("/resource/subresource") == "/~1resource~1subresource"
    assert resource_path("/pay/{publicId}") == "/~1pay~1{publicId}"
