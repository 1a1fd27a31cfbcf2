"""API Gateway's throttling in front of the functions (template.yaml, GatewayApi MethodSettings):
API Gateway keeps one token bucket per method; the default applies to every method (the merchant
API), and each public, unsigned method has its own lower limits, so anonymous traffic is capped
before it reaches the functions the merchant API needs."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.template import api_routes, load_template

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


def test_public_methods_have_their_own_lower_limits(template: Template) -> None:
    # Given the stage's method settings
    settings = template["Resources"]["GatewayApi"]["Properties"]["MethodSettings"]
    by_method = {(s["HttpMethod"], s["ResourcePath"]): s for s in settings}
    assert len(by_method) == len(settings)  # each method once

    # Then the default for every method is the merchant API's
    default = by_method.pop(("*", "/*"))
    assert (default["ThrottlingRateLimit"], default["ThrottlingBurstLimit"]) == (
        {"Ref": "ApiThrottlingRateLimit"}, {"Ref": "ApiThrottlingBurstLimit"})
    # And each public route, and only those, has the public limits (the four of the page and its API)
    public = public_routes(template)
    assert public == {("GET", "/pay/{publicId}"), ("GET", "/pay/assets/{asset}"),
                      ("GET", "/v1/public/orders/{publicId}"), ("GET", "/v1/networks")}
    assert set(by_method) == {(method, resource_path(path)) for method, path in public}
    for setting in by_method.values():
        assert (setting["ThrottlingRateLimit"], setting["ThrottlingBurstLimit"]) == (
            {"Ref": "PublicApiThrottlingRateLimit"}, {"Ref": "PublicApiThrottlingBurstLimit"})
    # And every setting names a resource the API has (a wrong path would throttle nothing)
    declared = {(r.method, resource_path(r.path)) for r in api_routes(template)}
    assert set(by_method) <= declared
    # And by default the public limits are below the merchant API's
    assert _default(template, "PublicApiThrottlingRateLimit") < _default(template, "ApiThrottlingRateLimit")
    assert _default(template, "PublicApiThrottlingBurstLimit") < _default(template, "ApiThrottlingBurstLimit")


def test_resource_paths_are_written_as_api_gateway_reads_them() -> None:
    # "/resource/subresource" is "/~1resource~1subresource" (AWS::ApiGateway::Stage MethodSetting)
    assert resource_path("/resource/subresource") == "/~1resource~1subresource"
    assert resource_path("/pay/{publicId}") == "/~1pay~1{publicId}"
