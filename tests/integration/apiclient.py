"""Calls the API Lambda handler with API Gateway REST proxy events, signing requests the way
merchant clients do. Signatures are computed here from the documented recipe, independently
of the gateway's own signing module."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devstack.template import api_routes, load_template
from usdt_gateway import clock

ROOT = Path(__file__).resolve().parents[2]
# The routes as the template declares them: the client resolves resources exactly as API Gateway would.
ROUTES = [(r.method, r.path) for r in api_routes(load_template())]


def load_handler() -> Any:
    spec = importlib.util.spec_from_file_location("api_function_app", ROOT / "functions/api/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


class Context:
    function_name = "ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _resource(method: str, path: str) -> tuple[str, dict[str, str] | None]:
    parts = path.strip("/").split("/")
    for m, template in ROUTES:
        tparts = template.strip("/").split("/")
        if len(tparts) == len(parts) and all(t.startswith("{") or t == p for t, p in zip(tparts, parts, strict=True)):
            params = {t[1:-1]: p for t, p in zip(tparts, parts, strict=True) if t.startswith("{")}
            if m == method:
                return template, params or None
    return path, None


def v1_signature(secret: str, timestamp: str, payload: Any) -> str:
    message = f"{timestamp}{json.dumps(payload, sort_keys=True)}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def v1_signature_of_body(secret: str, timestamp: str, raw: bytes) -> str:
    """V1 over body bytes as they are sent: json.dumps(body, sort_keys=True), each number written
    exactly as in the body (docs/signing.md). Numbers go through placeholders, so json.dumps does
    everything else."""
    numbers: list[str] = []

    def keep(text: str) -> str:
        numbers.append(text)
        return f"\x00{len(numbers) - 1}\x00"

    message = json.dumps(json.loads(raw, parse_float=keep, parse_int=keep), sort_keys=True)
    for i, text in enumerate(numbers):
        message = message.replace(json.dumps(f"\x00{i}\x00"), text, 1)
    return hmac.new(secret.encode(), f"{timestamp}{message}".encode(), hashlib.sha256).hexdigest()


def v2_signature(
    secret: str,
    timestamp: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    body: bytes,
    *,
    recv_window: str | None = None,
    request_nonce: str | None = None,
) -> str:
    """The six lines, then a line for each of Recv-Window and Request-Nonce the request sends."""
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in query)
    canonical = "&".join(f"{k}={v}" for k, v in pairs)
    message = f"v2\n{timestamp}\n{method}\n{path}\n{canonical}\n{hashlib.sha256(body).hexdigest()}"
    if recv_window is not None:
        message += f"\nrecv-window:{recv_window}"
    if request_nonce is not None:
        message += f"\nrequest-nonce:{request_nonce}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class ApiClient:
    handler: Any
    api_key: str = ""
    secret: str = ""
    source_ip: str = "203.0.113.7"
    # The clock requests are signed with (ms); by default the gateway's own, so a test that sets
    # that clock (the fake_clock fixture) sends requests signed at the time it set.
    now: Callable[[], int] | None = None

    def timestamp(self) -> str:
        return str(self.now() if self.now is not None else clock.now_ms())

    def event(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        resource, params = _resource(method, path)
        multi: dict[str, list[str]] = {}
        for k, v in query or []:
            multi.setdefault(k, []).append(v)
        return {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
            "multiValueQueryStringParameters": multi or None,
            "pathParameters": params,
            "stageVariables": None,
            "body": body.decode() if body is not None else None,
            "isBase64Encoded": False,
            "requestContext": {
                "resourcePath": resource,
                "httpMethod": method,
                "path": f"/live{path}",
                "stage": "live",
                "requestId": str(uuid.uuid4()),
                "identity": {"sourceIp": self.source_ip},
                "requestTimeEpoch": clock.now_ms(),
            },
        }

    def invoke(self, event: dict[str, Any]) -> Reply:
        raw = self.handler(event, Context())
        headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        for k, values in (raw.get("multiValueHeaders") or {}).items():
            headers.setdefault(k.lower(), values[-1])
        return Reply(raw["statusCode"], headers, json.loads(raw["body"]) if raw.get("body") else None)

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        sign: str = "v2",
        query: list[tuple[str, str]] | None = None,
        timestamp: str | None = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
        nonce: bool = True,
    ) -> Reply:
        """`sign`: "v2" (with a fresh Request-Nonce unless `nonce` is off, and the Recv-Window of
        `headers` if any, both signed), "v1" or "none"."""
        ts = timestamp or self.timestamp()
        body = raw_body if raw_body is not None else (json.dumps(payload).encode() if payload is not None else None)
        h = {"Content-Type": "application/json"} if body is not None else {}
        if sign == "v1":
            h |= {
                "API-Key": self.api_key,
                "Request-Time": ts,
                "Signature-V1": v1_signature(self.secret, ts, payload if payload is not None else ""),
            }
        elif sign == "v2":
            request_nonce = uuid.uuid4().hex if nonce else None
            window = (headers or {}).get("Recv-Window")
            h |= {
                "API-Key": self.api_key,
                "Request-Time": ts,
                "Signature-V2": v2_signature(
                    self.secret,
                    ts,
                    method,
                    path,
                    query or [],
                    body or b"",
                    recv_window=window,
                    request_nonce=request_nonce,
                ),
            }
            if request_nonce is not None:
                h["Request-Nonce"] = request_nonce
        h |= headers or {}
        return self.invoke(self.event(method, path, body=body, headers=h, query=query))

    def create(self, **fields: Any) -> Reply:
        payload = {"network": "tron", "currency": "USDT", "amount": "10.00", "orderId": f"o-{uuid.uuid4().hex[:12]}"}
        return self.request("POST", "/v1/payment/order", payload | fields)
