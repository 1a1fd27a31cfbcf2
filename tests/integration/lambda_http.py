"""An HTTP request as API Gateway hands it to the API function: the same REST proxy event the local
stack builds (devstack/proxy.py) for the template's routes, from a raw path, query string, header
pairs and body bytes, so property tests reach the handler with whatever a client can send."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from devstack.proxy import build_event
from devstack.routing import build_resources, find_resource
from devstack.template import api_routes, load_template
from tests.integration.apiclient import Context

RESOURCES = build_resources([r for r in api_routes(load_template()) if r.function == "ApiFunction"])
_ADDRESSES = itertools.count(1)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, list[str]]  # lower-cased names
    body: bytes


def next_source_ip() -> str:
    """A source address of its own for each request: the public endpoints' per-IP limits never
    decide the answer."""
    n = next(_ADDRESSES)
    return f"10.{n // 65_536 % 256}.{n // 256 % 256}.{n % 256}"


def invoke(
    handler: Any, method: str, raw_path: str, query: str, headers: list[tuple[str, str]], body: bytes
) -> Answer | None:
    """The function's answer, or None when API Gateway would not call it (no such route or method)."""
    found = find_resource(RESOURCES, raw_path)
    if found is None or found[0].function_for(method) is None:
        return None
    resource, params = found
    event = build_event(
        method=method,
        raw_path=raw_path,
        query=query,
        header_pairs=headers,
        body=body,
        source_ip=next_source_ip(),
        server_host="127.0.0.1",
        resource=resource,
        path_params=params,
    )
    raw = handler(event, Context())
    out = {k.lower(): [str(v)] for k, v in (raw.get("headers") or {}).items()}
    for k, values in (raw.get("multiValueHeaders") or {}).items():
        out[k.lower()] = [str(v) for v in values]
    return Answer(int(raw["statusCode"]), out, str(raw.get("body") or "").encode())
