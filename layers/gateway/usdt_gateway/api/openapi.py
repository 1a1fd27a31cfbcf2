"""The OpenAPI document, generated from the routes' declarations and the pydantic schemas.

    python -m usdt_gateway.api.openapi --write   # docs/openapi.json and docs/api.md
    python -m usdt_gateway.api.openapi --check   # exit 1 when the committed files are stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import usdt_gateway.api.routes  # noqa: F401  (registers the routes)
from usdt_gateway.api.app import ROUTES, RouteSpec
from usdt_gateway.schemas import ErrorBody

DOCS = Path(__file__).resolve().parents[4] / "docs"
REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "Invalid input: the message names the field and what is wrong.",
    401: "Missing or wrong credentials, bad signature, or a timestamp outside the window.",
    403: "Key revoked or expired, or missing the scope.",
    404: "Not found.",
    409: "Conflicts with the current state (orderId reused with other parameters, not cancellable, "
         "a disabled webhook URL...).",
    413: "Body too large.",
    415: "Body is not application/json.",
    418: "Temporarily blocked after repeated requests over the rate limit; see Retry-After.",
    429: "Rate limited; see Retry-After.",
}
AUTH_HEADERS = [
    ("API-Key", True, "Your API key."),
    ("Request-Time", True, "Milliseconds since the epoch, at signing."),
    ("Signature-V2", False, "Recommended signature (method, path, query, raw body); see docs/signing.md."),
    ("Signature-V1", False, "Legacy signature (timestamp + sorted JSON body); send V1 or V2."),
    ("Recv-Window", False, "Milliseconds the request stays valid, default 5000, max 60000."),
]


def _schemas() -> dict[str, Any]:
    models: set[tuple[type[BaseModel], Literal["validation", "serialization"]]] = {(ErrorBody, "serialization")}
    for r in ROUTES:
        models.add((r.response, "serialization"))
        if r.body:
            models.add((r.body, "validation"))
    _, defs = models_json_schema(sorted(models, key=lambda m: m[0].__name__), ref_template=REF, by_alias=True)
    return dict(sorted(defs.get("$defs", {}).items()))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(r: RouteSpec) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in re.findall(r"{(\w+)}", r.path)
    ]
    params += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
               for n, d in r.query.items()]
    if r.scope:
        params += [{"name": n, "in": "header", "required": req, "description": d, "schema": {"type": "string"}}
                   for n, req, d in AUTH_HEADERS]
    responses: dict[str, Any] = {str(r.status): {"description": "Accepted" if r.status == 202 else "OK", "content": {
        "application/json": {"schema": _ref(r.response)}}}}
    if r.operation_id == "createOrder":
        responses["200"] = {"description": "Identical repeat of an earlier create: the same order.",
                            "content": {"application/json": {"schema": _ref(r.response)}}}
    for code in sorted({*r.errors, 500}):
        responses[str(code)] = {"description": ERROR_TEXT.get(code, "Internal error (no details are leaked)."),
                                "content": {"application/json": {"schema": _ref(ErrorBody)}}}
    op: dict[str, Any] = {
        "operationId": r.operation_id, "summary": r.summary,
        "tags": ["public" if r.scope is None else "webhooks" if r.path.startswith("/v1/webhooks") else "orders"],
        "description": "Public: no key, limited per source IP, CORS on." if r.scope is None
        else f"Signed request; needs scope `{r.scope}`.",
        "parameters": params, "responses": responses,
    }
    if r.body:
        op["requestBody"] = {"required": not r.body_optional,
                             "content": {"application/json": {"schema": _ref(r.body)}}}
    return op


def build() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r)
    return {
        "openapi": "3.1.0",
        "info": {"title": "usdt-gateway API", "version": "1",
                 "description": "Non-custodial USDT payment orders on Tron, Ethereum, BNB Smart Chain and other "
                                "EVM chains. Signing: docs/signing.md. Order states: docs/order-states.md."},
        "servers": [{"url": "https://{apiId}.execute-api.{region}.amazonaws.com/live",
                     "variables": {"apiId": {"default": "abc123"}, "region": {"default": "us-east-1"}}},
                    {"url": "http://127.0.0.1:3000", "description": "make dev"}],
        "paths": paths,
        "components": {"schemas": _schemas()},
    }


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"array of {_type(prop.get('items', {}))}"
    if "enum" in prop:
        return " / ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    return str(prop.get("type", "any"))


def render_markdown(doc: dict[str, Any]) -> str:
    out = ["# API reference", "", "Generated from the code by `make openapi` (machine-readable: "
           "[openapi.json](openapi.json)). Every error is `{\"code\", \"message\"}` with the status below.", ""]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            out += [f"## {method.upper()} {path}", "", f"{op['summary']}. {op['description']}", ""]
            plain = [p for p in op["parameters"] if p["in"] != "header"]
            if plain:
                out += ["| parameter | in | description |", "| --- | --- | --- |"]
                out += [f"| `{p['name']}` | {p['in']} | {p.get('description', '')} |" for p in plain]
                out.append("")
            if "requestBody" in op:
                optional = "" if op["requestBody"]["required"] else " (optional)"
                out.append(f"Body{optional}: {_type(op['requestBody']['content']['application/json']['schema'])}.")
                out.append("")
            out += ["| status | meaning |", "| --- | --- |"]
            out += [f"| {code} | {resp['description']} |" for code, resp in op["responses"].items()]
            out.append("")
    out += ["## Schemas", ""]
    for name, schema in doc["components"]["schemas"].items():
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [" ".join(schema["description"].split()), ""]
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", []))
            out += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
            out += [f"| `{n}` | {_type(p)} | {'yes' if n in required else ''} | {p.get('description', '')} |"
                    for n, p in props.items()]
        elif "enum" in schema:
            out.append("Values: " + ", ".join(f"`{v}`" for v in schema["enum"]))
        out.append("")
    return "\n".join(out)


def rendered() -> dict[Path, str]:
    doc = build()
    return {DOCS / "openapi.json": json.dumps(doc, indent=2) + "\n", DOCS / "api.md": render_markdown(doc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = [p for p, text in rendered().items() if not p.exists() or p.read_text() != text]
    if args.write:
        for path, text in rendered().items():
            path.write_text(text)
        return 0
    if stale:
        print(f"stale: {', '.join(str(p) for p in stale)}; run `make openapi`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
