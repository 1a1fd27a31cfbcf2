"""The payment page's resolver: GET /pay/{publicId} (the page) and GET /pay/assets/{asset} (its
CSS and script), with the security headers of every answer in one place.

The page links its files and the status endpoint by relative URLs (`assets/...`,
`../v1/public/orders/...`), so it works under the API's stage path (`/live/pay/...`) and under a
custom domain (PublicBaseUrl) alike; `/pay/{publicId}/` (which API Gateway routes to the same
resource) is redirected to the URL without the slash, where those relative URLs resolve.
A page load is counted per source IP on a meter of its own (ratelimit.check_page: 429, never a
418 block, as payers share addresses); its assets are not (no table access, cached for a year,
capped by API Gateway's throttling).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from usdt_gateway import orders, ratelimit
from usdt_gateway.api.resolver import exception_handler
from usdt_gateway.errors import Blocked, NotFound, RateLimited
from usdt_gateway.observability import logger
from usdt_gateway.paypage import assets, i18n
from usdt_gateway.paypage.render import render_message, render_page

app = APIGatewayRestResolver()

HTML = "text/html; charset=utf-8"
# Scripts, styles and requests only from this origin (no inline code: the script is a file), the
# QR code as a data: image, no plugins, no framing, no forms, no <base> rewrites.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # API Gateway serves HTTPS only; browsers ignore the header over plain http (the local stack).
    "Strict-Transport-Security": "max-age=31536000",
    # No powerful features; clipboard-write (the copy buttons) keeps its default, this origin.
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
# The page shows live state and is per payer: never stored. Assets carry their hash in the name.
PAGE_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Vary": "Accept-Language"}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=31536000, immutable"}


def _language() -> str:
    event = app.current_event
    return i18n.negotiate(event.get_header_value("Accept-Language"), event.get_query_string_value("lang"))


def _html(status: int, body: str) -> Response[str]:
    return Response(status_code=status, content_type=HTML, body=body, headers=dict(PAGE_HEADERS))


def _without_trailing_slash(public_id: str) -> Response[str] | None:
    """A 308 to the page's URL without the trailing slash(es), relative (stage path or custom
    domain alike) and with the query kept; None when the path has none."""
    path = app.current_event.path
    slashes = len(path) - len(path.rstrip("/"))
    if not slashes:
        return None
    location = "../" * slashes + quote(public_id, safe="")
    query = app.current_event.multi_value_query_string_parameters or {}
    pairs = [(k, v) for k, values in query.items() for v in values]
    if pairs:
        location += "?" + urlencode(pairs)
    return Response(
        status_code=308,
        content_type="text/plain; charset=utf-8",
        body="",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store", "Location": location},
    )


@app.get("/pay/<publicId>")
def payment_page(publicId: str) -> Response[str]:  # the template's path parameter
    redirect = _without_trailing_slash(publicId)
    if redirect is not None:
        return redirect
    ratelimit.check_page(app.current_event.request_context.identity.source_ip or "")
    view, qr = orders.get_payment_page(publicId)
    return _html(200, render_page(view, qr, _language()))


@app.get("/pay/assets/<asset>")
def asset(asset: str) -> Response[str]:
    found = assets.BY_NAME.get(asset)
    if found is None:  # an unknown name, or a file of another release
        return Response(
            status_code=404,
            content_type="text/plain; charset=utf-8",
            body="not found",
            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
        )
    return Response(status_code=200, content_type=found.content_type, body=found.body, headers=dict(ASSET_HEADERS))


@exception_handler(app, NotFound)
def _unknown_payment(exc: NotFound) -> Response[str]:
    return _html(404, render_message(_language(), "not_found_title", "not_found_text"))


@exception_handler(app, [RateLimited, Blocked])
def _too_many(exc: RateLimited | Blocked) -> Response[str]:
    response = _html(exc.status, render_message(_language(), "too_many_title", "too_many_text"))
    response.headers.update(exc.headers)  # Retry-After
    return response


@app.not_found
def _no_route(exc: Exception) -> Response[str]:
    return _html(404, render_message(_language(), "not_found_title", "not_found_text"))


@exception_handler(app, Exception)
def _unexpected(exc: Exception) -> Response[str]:
    logger.exception("payment page failed")
    return _html(500, render_message(_language(), "error_title", "error_text"))
