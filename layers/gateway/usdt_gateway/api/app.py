"""The API's resolver: one place that turns requests into domain calls and domain errors into
HTTP responses. Routes declare themselves with `route(...)`, which also records what the
OpenAPI document says about them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, cast
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from pydantic import BaseModel, ValidationError
from typing_extensions import TypeVar

from usdt_gateway import auth, jsonbody, ratelimit
from usdt_gateway.api import cors
from usdt_gateway.api.resolver import exception_handler
from usdt_gateway.config import settings
from usdt_gateway.errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from usdt_gateway.http import Request, request_base_url
from usdt_gateway.observability import logger

# CORS per route (api/cors.py): a resolver-wide CORSConfig would answer any path's preflight.
app = APIGatewayRestResolver()
JSON = "application/json"

# The body model of a route, carried from its RouteSpec to the Call its function receives; None
# (the default) for a route without a body, so a function can't read a body its route never parses.
BodyT = TypeVar("BodyT", bound=BaseModel | None, default=None)


@dataclass(frozen=True)
class RouteSpec(Generic[BodyT]):
    method: str
    path: str
    operation_id: str
    summary: str
    scope: str | None  # None: public (no key, limited per source IP, CORS on)
    response: type[BaseModel]
    body: type[BodyT] | None = None
    body_optional: bool = False  # an empty body stands for the body model's defaults
    status: int = 200
    query: dict[str, str] = field(default_factory=dict)  # name -> description
    errors: tuple[int, ...] = ()
    # Signature-V1 from every key (create and get order, as the seed guide uses them); elsewhere
    # only from keys created with --v1-everywhere, since V1 binds neither method nor path.
    accepts_v1: bool = False
    # A write that is not idempotent: a signature seen before is refused (a replay).
    one_time: bool = False


ROUTES: list[RouteSpec[Any]] = []


@dataclass(frozen=True)
class Call(Generic[BodyT]):
    """What a route function receives: the body validated as its route's model."""

    request: Request
    principal: auth.Principal | None  # None on a public route only
    body: BodyT
    params: dict[str, str]

    @property
    def merchant_id(self) -> str:
        """The authenticated merchant of a private route (`route` authenticated it before the call)."""
        if self.principal is None:
            raise RuntimeError("a public route has no merchant")
        return self.principal.merchant_id


Result = BaseModel | tuple[BaseModel, int]
Handler = Callable[[Call[BodyT]], Result]


def current_request() -> Request:
    ev = app.current_event
    raw = ev.body or ""
    body = base64.b64decode(raw) if ev.is_base64_encoded else raw.encode()
    multi = ev.multi_value_query_string_parameters or {}
    query = [(k, v) for k, values in multi.items() for v in values] or list((ev.query_string_parameters or {}).items())
    headers = {k.lower(): v for k, v in (ev.headers or {}).items()}
    ctx = ev.request_context
    if ctx.domain_name:
        request_base_url.set(f"https://{ctx.domain_name}/{ctx.stage}")
    return Request(
        method=ev.http_method.upper(),
        path=ev.path,
        headers=headers,
        query=query,
        body=body,
        source_ip=ev.request_context.identity.source_ip or "",
    )


def check_size(request: Request) -> None:
    """First of all, before any parsing or lookup: nothing reads more than the API takes."""
    if len(request.body) > settings().max_body_bytes:
        raise PayloadTooLarge(f"body is larger than {settings().max_body_bytes} bytes")


def parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
    try:
        parsed = jsonbody.loads(request.body)
    except jsonbody.JsonBodyError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", code="INVALID_JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("body must be a JSON object", code="INVALID_JSON")
    data = jsonbody.values(parsed)
    # An amount sent as a JSON number is read from its text, under the same rule as a string
    # (money.parse_amount): 1E2 is refused as 1E2, never taken as 100 or through a float.
    if isinstance(parsed.get("amount"), jsonbody.Number):
        data["amount"] = parsed["amount"].text
    return model.model_validate(data)


def check_query(request: Request, allowed: dict[str, str]) -> None:
    unknown = sorted({k for k, _ in request.query} - set(allowed))
    if unknown:
        raise InvalidRequest(
            f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}",
            code="UNKNOWN_PARAMETER",
        )


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response[str]:
    body = payload.model_dump_json(by_alias=True) if isinstance(payload, BaseModel) else json.dumps(payload)
    return Response(status_code=status, content_type=JSON, body=body, headers=headers or {})


def read_body(request: Request, spec: RouteSpec[BodyT]) -> BodyT:
    if spec.body is None:
        return cast(BodyT, None)  # a route without a body model is a RouteSpec[None]
    model = cast(type[BaseModel], spec.body)  # BodyT is that model here, not None
    empty = spec.body_optional and not request.body.strip()
    return cast(BodyT, model.model_validate({}) if empty else parse_body(request, model))


def route(spec: RouteSpec[BodyT]) -> Callable[[Handler[BodyT]], Handler[BodyT]]:
    """Register a route: authenticate (or limit by IP), validate, call, serialize."""
    ROUTES.append(spec)
    resolver_path = spec.path.replace("{", "<").replace("}", ">")

    def decorator(fn: Handler[BodyT]) -> Handler[BodyT]:
        def endpoint(**raw_params: str) -> Response[str]:
            request = current_request()
            check_size(request)
            # The resolver matches the path as sent, percent-encoded (API Gateway REST keeps it so):
            # an id is what it encodes, "a%3Ab" the orderId "a:b", as in pathParameters.
            params = {name: unquote(value) for name, value in raw_params.items()}
            principal = None
            if spec.scope is None and "publicId" in params:  # one order's status, polled by its page
                ratelimit.check_order_status(request.source_ip, params["publicId"])
            elif spec.scope is None:
                ratelimit.check_ip(request.source_ip)
            else:
                principal = auth.authenticate(request, spec.scope, accepts_v1=spec.accepts_v1, one_time=spec.one_time)
                # This thread's keys (routes add order_id), on every line until the next invocation
                # (inject_lambda_context(clear_state=True) clears them), the error handlers' included;
                # in the local stack, functions sharing the process do not see them.
                logger.thread_safe_append_keys(merchant_id=principal.merchant_id)
            try:
                check_query(request, spec.query)
                result = fn(Call(request, principal, read_body(request, spec), params))
            except (GatewayError, ValidationError) as exc:
                if isinstance(exc, ValidationError) or exc.status < 500:
                    auth.release(principal)  # refused: its signature leaves no trace either
                raise
            payload, status = result if isinstance(result, tuple) else (result, spec.status)
            return json_response(status, payload)

        app.route(resolver_path, method=spec.method, cors=spec.scope is None)(endpoint)
        if spec.scope is None:
            cors.allow_preflight(app, resolver_path, spec.method)
        return fn

    return decorator


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        return f"unknown field '{where}'"
    if error["type"] == "missing":
        return f"'{where}' is required"
    return f"'{where}': {error['msg']}"


def _refused(status: int, code: str) -> None:
    """One line per refused request: what, and whose key (its first characters only: the key
    names the merchant to an attacker too), never a signature or the body."""
    ev = app.current_event
    key = next((v for k, v in (ev.headers or {}).items() if k.lower() == "api-key"), None)
    logger.info(
        "request refused",
        extra={
            "status": status,
            "code": code,
            "method": ev.http_method,
            "resource": ev.resource,
            "api_key_prefix": key[:7] if key else None,
        },
    )


@exception_handler(app, ValidationError)
def _invalid(exc: ValidationError) -> Response[str]:
    message = "; ".join(_describe(dict(e)) for e in exc.errors())
    _refused(400, "VALIDATION_ERROR")
    return json_response(400, {"code": "VALIDATION_ERROR", "message": message})


@exception_handler(app, GatewayError)
def _domain(exc: GatewayError) -> Response[str]:
    if exc.status >= 500:
        logger.error("request failed", extra={"code": exc.code})
    else:
        _refused(exc.status, exc.code)
    return json_response(exc.status, {"code": exc.code, "message": exc.message}, exc.headers)


@exception_handler(app, Exception)
def _unexpected(exc: Exception) -> Response[str]:
    logger.exception("unhandled error")
    request_id = app.current_event.request_context.request_id
    return json_response(
        500, {"code": "INTERNAL_ERROR", "message": f"internal error; quote request id {request_id} to the operator"}
    )


@app.not_found
def _not_found(exc: Exception) -> Response[str]:
    if app.current_event.http_method.upper() == "OPTIONS":  # a preflight to a signed (or unknown) path
        return _domain(cors.refused())
    return _domain(NotFound("no such endpoint; see the API reference in docs/api.md", code="ROUTE_NOT_FOUND"))
