"""Operator CLI: merchants, API keys, webhook secrets and receiving addresses.

    TABLE_NAME=... KMS_KEY_ID=... python -m usdt_gateway.admin create-merchant --name "Shop"
    python -m usdt_gateway.admin create-key --merchant m_... [--scopes orders:read,orders:write]
    python -m usdt_gateway.admin rotate-key --key ak_... [--overlap-seconds 86400]
    python -m usdt_gateway.admin revoke-key --key ak_...
    python -m usdt_gateway.admin list-keys --merchant m_...
    python -m usdt_gateway.admin rotate-webhook-secret --merchant m_... [--overlap-seconds 86400]
    python -m usdt_gateway.admin set-xpub --merchant m_... --family evm|tron --xpub xpub...
    python -m usdt_gateway.admin set-address --merchant m_... --family evm|tron --address ... [--tag-step 0.01]

Prints JSON. Secrets are printed once, at creation or rotation; the gateway stores them only encrypted.
Uses the caller's AWS credentials (kms:Encrypt and the table's read/write actions).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from usdt_gateway import merchants
from usdt_gateway.auth import SCOPES
from usdt_gateway.config import ConfigError
from usdt_gateway.errors import GatewayError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m usdt_gateway.admin", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-merchant")
    c.add_argument("--name", required=True)
    c.add_argument("--webhook-url")
    c = sub.add_parser("create-key")
    c.add_argument("--merchant", required=True)
    c.add_argument("--scopes", default=",".join(SCOPES))
    c.add_argument("--label", default="")
    c.add_argument("--rate-limit", type=int)
    for name in ("rotate-key", "revoke-key"):
        c = sub.add_parser(name)
        c.add_argument("--key", required=True)
        if name == "rotate-key":
            c.add_argument("--overlap-seconds", type=int, default=86_400)
    sub.add_parser("list-keys").add_argument("--merchant", required=True)
    c = sub.add_parser("rotate-webhook-secret")
    c.add_argument("--merchant", required=True)
    c.add_argument("--overlap-seconds", type=int, default=86_400)
    c = sub.add_parser("set-xpub")
    c.add_argument("--merchant", required=True)
    c.add_argument("--family", choices=("evm", "tron"), required=True)
    c.add_argument("--xpub", required=True)
    c = sub.add_parser("set-address")
    c.add_argument("--merchant", required=True)
    c.add_argument("--family", choices=("evm", "tron"), required=True)
    c.add_argument("--address", required=True)
    c.add_argument("--tag-step", default="0.01")
    c.add_argument("--max-tags", type=int, default=100)
    return p


def run(argv: Sequence[str]) -> Any:
    a = _parser().parse_args(argv)
    match a.command:
        case "create-merchant":
            return merchants.create_merchant(a.name, webhook_url=a.webhook_url)
        case "create-key":
            scopes = tuple(s.strip() for s in a.scopes.split(",") if s.strip())
            return merchants.create_api_key(a.merchant, scopes, rate_limit=a.rate_limit, label=a.label)
        case "rotate-key":
            return merchants.rotate_api_key(a.key, overlap_seconds=a.overlap_seconds)
        case "revoke-key":
            merchants.revoke_api_key(a.key)
            return {"apiKey": a.key, "status": "revoked"}
        case "list-keys":
            return merchants.list_api_keys(a.merchant)
        case "rotate-webhook-secret":
            return merchants.rotate_webhook_secret(a.merchant, overlap_seconds=a.overlap_seconds)
        case "set-xpub":
            return merchants.configure_xpub(a.merchant, a.family, a.xpub)
        case "set-address":
            return merchants.configure_fixed(a.merchant, a.family, a.address, tag_step=a.tag_step,
                                             max_tags=a.max_tags)
    raise AssertionError(a.command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        result = run(sys.argv[1:] if argv is None else argv)
    except (GatewayError, ConfigError) as exc:
        print(json.dumps({"error": getattr(exc, "code", "CONFIG_ERROR"), "message": str(exc)}), file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
