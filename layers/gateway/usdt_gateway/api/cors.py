"""CORS: what a page on another origin may call. Only the public routes (no key): any origin, no
credentials, any request header, and their preflight (OPTIONS) is answered here. Nothing else
answers a preflight or sends Access-Control-Allow-Origin, so a browser cannot call the merchant
API from a page: its requests are signed with a key's secret, which belongs on the merchant's
server. Deployed, API Gateway routes OPTIONS to the function on the public paths only
(template.yaml); the local stack routes by the template too."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from usdt_gateway.errors import Forbidden

# Browsers cache a preflight this long (Chromium at most 2 h): one per page and route, not per call.
MAX_AGE_S = 600
_METHODS: dict[str, set[str]] = {}  # public resolver path -> its methods


def allow_preflight(app: APIGatewayRestResolver, resolver_path: str, method: str) -> None:
    """Answer the preflight of a public route (registered once per path; its methods add up)."""
    methods = _METHODS.get(resolver_path)
    if methods is not None:
        methods.add(method)
        return
    methods = _METHODS[resolver_path] = {method}

    def preflight(**_params: str) -> Response[str]:
        # "*" for headers is allowed only because no credentials are: no cookie or HTTP auth rides along.
        return Response(
            status_code=204,
            content_type=None,
            body="",
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": ", ".join(sorted(methods | {"OPTIONS"})),
                "Access-Control-Allow-Headers": "*",
                "Access-Control-Max-Age": str(MAX_AGE_S),
            },
        )

    # cors=False: this answer's headers are exactly the above.
    app.route(resolver_path, method="OPTIONS", cors=False)(preflight)


def refused() -> Forbidden:
    """What a preflight anywhere else gets: no Access-Control-* header, so the browser stops."""
    public = ", ".join(path.replace("<", "{").replace(">", "}") for path in _METHODS)
    return Forbidden(
        f"a page on another origin may call only the public endpoints ({public}); call the merchant "
        "API from your server",
        code="CORS_NOT_ALLOWED",
    )
