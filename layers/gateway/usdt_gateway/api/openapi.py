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

from usdt_gateway.api.app import ROUTES, RouteSpec
from usdt_gateway.api.routes import PARAMETER_SCHEMAS, RULES  # (importing the routes registers them)
from usdt_gateway.auth import DEFAULT_RECV_WINDOW_MS, MAX_RECV_WINDOW_MS, NONCE_PATTERN
from usdt_gateway.schemas import ErrorBody

DOCS = Path(__file__).resolve().parents[4] / "docs"
REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "Invalid input: the message names the field and what is wrong.",
    401: "Missing or wrong credentials, a bad signature, a timestamp outside the window, Signature-V1 where it is "
    "not taken (`SIGNATURE_V2_REQUIRED`), or a signature already used (`REQUEST_REPLAYED`).",
    403: "Key revoked or expired, or missing the scope.",
    404: "Not found.",
    409: "Conflicts with the current state (orderId reused with other parameters, not cancellable, "
    "a disabled webhook URL...).",
    413: "Body too large.",
    415: "Body is not application/json.",
    418: "Temporarily blocked after repeated requests over the rate limit; see Retry-After.",
    429: "Rate limited; see Retry-After.",
}
# Operations that answer a repeat of an earlier request 200, with what it made then.
REPEATS = {
    "createOrder": "Identical repeat of an earlier create: the same order.",
    "submitRefundSignature": "The same signature was given before: the refund as it is now.",
    "recordXpubSweep": "The same sweep (txid, address, units) was recorded before: that record.",
}
# How a private request authenticates (docs/signing.md): every header of one requirement, V2 or
# (where taken) V1.
SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "API-Key", "description": "Your API key."},
    "requestTime": {
        "type": "apiKey",
        "in": "header",
        "name": "Request-Time",
        "description": "Milliseconds since the epoch, at signing.",
    },
    "signatureV2": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature-V2",
        "description": "HMAC-SHA256 of the method, path, query and raw body, and of Recv-Window and "
        "Request-Nonce when sent; see docs/signing.md.",
    },
    "signatureV1": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature-V1",
        "description": "HMAC-SHA256 of Request-Time and the sorted JSON body; binds neither method nor "
        "path, so it is taken only to create and to get an order (unless the key was "
        "created with --v1-everywhere, which is unsafe); see docs/signing.md.",
    },
}
V2: dict[str, list[str]] = {"apiKey": [], "requestTime": [], "signatureV2": []}
V1: dict[str, list[str]] = {"apiKey": [], "requestTime": [], "signatureV1": []}
SIGNED_HEADERS = [
    {
        "name": "Recv-Window",
        "in": "header",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RECV_WINDOW_MS},
        "description": f"Milliseconds the request stays valid, default {DEFAULT_RECV_WINDOW_MS}. Signed by "
        f"Signature-V2; a Signature-V1 request gets at most {DEFAULT_RECV_WINDOW_MS}.",
    },
    {
        "name": "Request-Nonce",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": NONCE_PATTERN},
        "description": "A value of your choice, new for each request (e.g. 32 random hex digits), signed by "
        "Signature-V2: two requests alike in the same millisecond then differ.",
    },
]


def _schemas() -> dict[str, Any]:
    models: set[tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
        (ErrorBody, "serialization"),
    }
    for r in ROUTES:
        models.add((r.response, "serialization"))
        if r.body:
            models.add((r.body, "validation"))
    _, defs = models_json_schema(sorted(models, key=lambda m: m[0].__name__), ref_template=REF, by_alias=True)
    return dict(sorted(defs.get("$defs", {}).items()))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _schema(name: str) -> dict[str, Any]:
    return dict(PARAMETER_SCHEMAS.get(name, {"type": "string"}))


def _description(r: RouteSpec[Any]) -> str:
    if r.scope is None:
        return "Public: no key, limited per source IP, CORS on."
    text = f"Signed request; needs scope `{r.scope}`."
    text += (
        " Signature-V2, or Signature-V1."
        if r.accepts_v1
        else " Signature-V2 (Signature-V1 only from a key created with --v1-everywhere)."
    )
    if r.one_time:
        text += (
            " Not idempotent: a signature already used here is refused (401 `REQUEST_REPLAYED`); sign every "
            "request, retries included, anew."
        )
    return text


def _operation(r: RouteSpec[Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": _schema(n)} for n in re.findall(r"{(\w+)}", r.path)
    ]
    params += [
        {"name": n, "in": "query", "required": False, "description": d, "schema": _schema(n)}
        for n, d in r.query.items()
    ]
    if r.scope:
        params += SIGNED_HEADERS
    responses: dict[str, Any] = {
        str(r.status): {
            "description": "Accepted" if r.status == 202 else "OK",
            "content": {"application/json": {"schema": _ref(r.response)}},
        }
    }
    if r.operation_id in REPEATS:
        responses["200"] = {
            "description": REPEATS[r.operation_id],
            "content": {"application/json": {"schema": _ref(r.response)}},
        }
    for code in sorted({*r.errors, 500}):
        responses[str(code)] = {
            "description": ERROR_TEXT.get(code, "Internal error (no details are leaked)."),
            "content": {"application/json": {"schema": _ref(ErrorBody)}},
        }
    if rules := RULES.get(r.operation_id):
        responses["400"]["description"] += (
            " A request the schemas allow gets it only for a rule they cannot say: "
            + ", ".join(f"`{c}`" for c in rules)
            + "."
        )
        responses["400"]["x-rule-codes"] = list(rules)
    op: dict[str, Any] = {
        "operationId": r.operation_id,
        "summary": r.summary,
        "tags": ["public" if r.scope is None else "webhooks" if r.path.startswith("/v1/webhooks") else "orders"],
        "description": _description(r),
        "security": [V2, V1] if r.accepts_v1 else [V2] if r.scope else [],
        "parameters": params,
        "responses": responses,
    }
    if r.body:
        op["requestBody"] = {"required": not r.body_optional, "content": {"application/json": {"schema": _ref(r.body)}}}
    return op


# What every client must know before the operations, in the document and at the top of docs/api.md.
GUIDE = f"""\
Every private request carries `API-Key`, `Request-Time` (milliseconds since the epoch) and a
signature, `Signature-V2` or, where taken, `Signature-V1`: see [signing.md](signing.md).

- **Signature-V2** binds the method, the path, the query, the exact body bytes and, when the request
  sends them, `Recv-Window` and `Request-Nonce`. Every operation takes it.
- **Signature-V1** binds only `Request-Time` and the JSON body: the same signature would authorize
  another route, or a changed `Recv-Window`. So it is taken only to create and to get an order
  (`SIGNATURE_V2_REQUIRED` elsewhere, unless the key was created with `--v1-everywhere`, which is
  unsafe), and a V1 request gets at most the default receive window, {DEFAULT_RECV_WINDOW_MS} ms.
- **Replays.** A request is valid for its receive window (`Recv-Window`, default {DEFAULT_RECV_WINDOW_MS} ms, at most
  {MAX_RECV_WINDOW_MS}) after `Request-Time`. Within it, the writes that are not idempotent (cancel, attach, resend,
  the test webhook, a change of the webhook endpoint) refuse a signature they have already seen:
  401 `REQUEST_REPLAYED`, not counted against the rate limit. Sign every request anew, retries
  included; a new `Request-Nonce` keeps two requests alike in the same millisecond apart.
- **Amounts** follow one rule, as a JSON string or a JSON number (read from its text, never as a
  float): plain decimal notation, digits and at most one point (`50`, `50.00`, `0.5`); no sign,
  exponent (`1E2`, `1.0e1`), separators or leading zeros; greater than zero; at most the token's
  decimals (6; 18 on BSC): `0.0000001` on a 6-decimal token is refused for its precision
  (`INVALID_AMOUNT`), however it is written.
- **Bodies** are JSON objects of at most the configured size (16 KiB by default; checked before
  anything else), nested at most 32 levels, with numbers of at most 64 characters.
"""


def build() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "usdt-gateway API",
            "version": "1",
            "description": "Non-custodial USDT payment orders on Tron, Ethereum, BNB Smart Chain and other "
            "EVM chains. Order states: docs/order-states.md.\n\n" + GUIDE,
        },
        "servers": [
            {
                "url": "https://{apiId}.execute-api.{region}.amazonaws.com/live",
                "variables": {"apiId": {"default": "abc123"}, "region": {"default": "us-east-1"}},
            },
            {"url": "http://127.0.0.1:3000", "description": "make dev"},
        ],
        "paths": paths,
        "components": {"schemas": _schemas(), "securitySchemes": SECURITY_SCHEMES},
    }


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        ref: str = prop["$ref"]
        return ref.rsplit("/", 1)[-1]
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
    out = [
        "# API reference",
        "",
        "Generated from the code by `make openapi` (machine-readable: "
        '[openapi.json](openapi.json)). Every error is `{"code", "message"}` with the status below.',
        "",
        "## Signing, replays, amounts",
        "",
        GUIDE,
    ]
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
            out += [
                f"| `{n}` | {_type(p)} | {'yes' if n in required else ''} | {p.get('description', '')} |"
                for n, p in props.items()
            ]
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
