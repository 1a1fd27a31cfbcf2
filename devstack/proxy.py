"""The Lambda proxy integration of an API Gateway REST (v1) API: the event a function receives
for an HTTP request, and the checks API Gateway applies to the response it returns."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from devstack.environment import ACCOUNT_ID
from devstack.routing import Resource

STAGE = "live"
API_ID = "devstack"


def _headers(pairs: list[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value  # API Gateway keeps the last value of a repeated header here
        multi.setdefault(name, []).append(value)
    return (single or None), (multi or None)


def build_event(
    *,
    method: str,
    raw_path: str,
    query: str,
    header_pairs: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    server_host: str,
    resource: Resource,
    path_params: dict[str, str],
) -> dict[str, Any]:
    """The API Gateway REST (v1) Lambda proxy event for one request on `resource`; `server_host`
    stands in for a missing Host header."""
    names = {name.lower() for name, _ in header_pairs}
    pairs = list(header_pairs)
    if "x-forwarded-for" not in names:
        pairs.append(("X-Forwarded-For", source_ip))
    if "x-forwarded-proto" not in names:
        pairs.append(("X-Forwarded-Proto", "http"))
    headers, multi_headers = _headers(pairs)
    host = next((v for k, v in header_pairs if k.lower() == "host"), server_host)
    params = parse_qsl(query, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in params:
        multi_query.setdefault(name, []).append(value)
    try:
        text, encoded = (body.decode("utf-8"), False) if body else (None, False)
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "resource": resource.path,
        "path": raw_path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": hashlib.sha256(resource.path.encode()).hexdigest()[:6],
            "resourcePath": resource.path,
            "httpMethod": method,
            "extendedRequestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{STAGE}{raw_path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": next((v for k, v in header_pairs if k.lower() == "user-agent"), None),
                "user": None,
            },
            "domainName": host,
            "apiId": API_ID,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A proxy response with the gateway's JSON error body."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps({"code": code, "message": message}),
        "isBase64Encoded": False,
    }


def malformed(result: Any) -> str | None:
    """Why API Gateway would answer 502 instead of `result` (a Lambda proxy response), if it would."""
    try:
        json.dumps(result)  # Lambda returns it as JSON
    except (TypeError, ValueError) as exc:
        return f"not JSON-serializable: {exc}"
    if not isinstance(result, dict):
        return "not an object"
    if not isinstance(result.get("statusCode"), int) or not 100 <= result["statusCode"] <= 599:
        return "statusCode is not an HTTP status"
    if result.get("body") is not None and not isinstance(result["body"], str):
        return "body is not a string"
    return None
