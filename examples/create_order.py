"""Create a payment order on the local stack (`make dev`) and read it back.

    python examples/create_order.py [STATE_DIR] [--network NAME] [--amount X]

Reads the demo merchant's keys from STATE_DIR/merchant.json (default: $DEVSTACK_STATE_DIR, else
.local/ of this repository). The order is on `local`, the stack's own chain, unless --network
names another enabled network; `.venv/bin/python -m devstack pay <orderId>` then pays a `local`
order (the command is printed, with the venv's path as seen from here).
Signs with Signature-V1, as the simple reference client does:
hex(HMAC-SHA256(secret key, Request-Time + json.dumps(body, sort_keys=True))); a request without
a body signs Request-Time + '""'. V1 binds neither the method nor the path, so the gateway takes
it for these two requests only (create and get an order); for anything else use the client SDK
(sdk/python) or Signature-V2 (docs/signing.md).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import requests


def generate_signature(secret_key: str, payload: Any, timestamp: str) -> str:
    message = f"{timestamp}{json.dumps(payload, sort_keys=True)}"
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(api_key: str, secret_key: str, payload: Any) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    return {
        "Content-Type": "application/json",
        "API-Key": api_key,
        "Request-Time": timestamp,
        "Signature-V1": generate_signature(secret_key, payload, timestamp),
    }


def venv_python() -> str:
    """The repository's venv Python, as typed from the current directory: `-m devstack` needs its
    packages, so a bare `python` fails outside the venv."""
    python = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    here = Path.cwd().resolve()
    return str(python.relative_to(here)) if python.is_relative_to(here) else str(python)


def load_merchant(state_dir: Path) -> dict[str, str]:
    path = state_dir / "merchant.json" if state_dir.is_dir() else state_dir
    if not path.is_file():
        sys.exit(f"{path} not found: start the local stack first (make dev)")
    merchant: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return merchant


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Create an order on the local stack and read it back.")
    default = os.environ.get("DEVSTACK_STATE_DIR") or Path(__file__).resolve().parents[1] / ".local"
    parser.add_argument("state_dir", nargs="?", type=Path, default=Path(default), metavar="STATE_DIR")
    parser.add_argument("--network", default="local", help="an enabled network (default: local, the stack's chain)")
    parser.add_argument("--amount", default="50.00", help="USDT, as a decimal string (default: 50.00)")
    args = parser.parse_args(argv[1:])
    merchant = load_merchant(args.state_dir)
    base_url, api_key, secret_key = merchant["baseUrl"], merchant["apiKey"], merchant["secretKey"]

    payload = {
        "network": args.network,
        "currency": "USDT",
        "amount": args.amount,
        "orderId": f"demo-{secrets.token_hex(4)}",
    }
    created = requests.post(
        f"{base_url}/v1/payment/order", headers=signed_headers(api_key, secret_key, payload), json=payload, timeout=10
    )
    print(f"POST /v1/payment/order -> {created.status_code}")
    if created.status_code not in (200, 201):
        print(created.text)
        return 1
    order = created.json()
    print(f"orderId     {order['orderId']}")
    print(f"pay         {order['amount']} USDT on {order['network']} to {order['address']}")
    print(f"paymentUri  {order['paymentUri']}")
    print(f"paymentUrl  {order['paymentUrl']}   (the payment page: open it in a browser)")

    fetched = requests.get(
        f"{base_url}/v1/payment/order/{order['orderId']}", headers=signed_headers(api_key, secret_key, ""), timeout=10
    )
    print(f"GET /v1/payment/order/{order['orderId']} -> {fetched.status_code}")
    if fetched.status_code != 200:
        print(fetched.text)
        return 1
    print(f"status      {fetched.json()['status']}")
    if order["network"] == "local":
        state_dir = args.state_dir if args.state_dir.is_dir() else args.state_dir.parent
        prefix = "" if state_dir == Path(default) else f"DEVSTACK_STATE_DIR={state_dir} "
        print(f"pay it      {prefix}{venv_python()} -m devstack pay {order['orderId']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
