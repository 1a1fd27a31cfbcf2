"""`python -m devstack` (`make dev`): the gateway on http://127.0.0.1:$PORT until Ctrl-C.

PORT (default 3000) and DEVSTACK_STATE_DIR (default .local/, git-ignored) configure it.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack.stack import Stack, start_stack
from devstack.template import REPO_ROOT

DEFAULT_PORT = 3000


def _display(path: Path) -> str:
    """The path relative to the working directory when it lies below it (shorter to read and type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def banner(stack: Stack) -> str:
    url, key, secret = stack.base_url, stack.merchant["apiKey"], stack.merchant["secretKey"]
    example = REPO_ROOT / "examples" / "create_order.py"
    example_cmd = f"python {_display(example)}"
    if stack.state_dir != (REPO_ROOT / ".local").resolve():
        example_cmd += f" {shlex.quote(_display(stack.state_dir))}"
    return f"""
USDT gateway, local stack: the API Lambda on moto (DynamoDB, KMS), no Docker, no AWS account

  API          {url}
  merchant     {_display(stack.merchant_file)}   (merchantId, apiKey, secretKey, webhookSecret, baseUrl)
  dev wallet   {_display(stack.wallet_file)}   (development mnemonic: never send real funds to its addresses)
  networks     {", ".join(stack.networks)}   (xpub mode: each order gets the next address of the dev wallet)
  data         in memory: orders are gone when the stack stops; the merchant gets new keys at each start

Public endpoint, no key:
  curl -s {url}/v1/networks

Signed GET (Signature-V1: HMAC-SHA256 of Request-Time followed by the two characters ""):
  ts=$(date +%s%3N)
  sig=$(printf '%s""' "$ts" | openssl dgst -sha256 -hmac '{secret}' | awk '{{print $NF}}')
  curl -s {url}/v1/payment/orders -H 'API-Key: {key}' -H "Request-Time: $ts" -H "Signature-V1: $sig"

Create an order and read it back (needs requests, e.g. the venv's python):
  {example_cmd}

Or in Python, the reference client (paste as is):

import hashlib, hmac, json, secrets, time
import requests

API_KEY, SECRET_KEY = "{key}", "{secret}"
payload = {{"network": "tron", "currency": "USDT", "amount": "50.00", "orderId": f"demo-{{secrets.token_hex(4)}}"}}
timestamp = str(int(time.time() * 1000))
message = f"{{timestamp}}{{json.dumps(payload, sort_keys=True)}}"
signature = hmac.new(SECRET_KEY.encode(), message.encode(), hashlib.sha256).hexdigest()
headers = {{"Content-Type": "application/json", "API-Key": API_KEY,
           "Request-Time": timestamp, "Signature-V1": signature}}
print(requests.post("{url}/v1/payment/order", headers=headers, json=payload, timeout=10).json())

Ctrl-C stops the stack.
"""


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("werkzeug", "botocore"):  # moto's access log; the SDK's "found credentials" notes
        logging.getLogger(noisy).setLevel(logging.WARNING)

    raw_port = os.environ.get("PORT") or str(DEFAULT_PORT)
    if not raw_port.isdigit() or not 0 <= int(raw_port) <= 65535:
        print(f"PORT must be a port number, not {raw_port!r}", file=sys.stderr)
        return 2
    state_dir = Path(os.environ.get("DEVSTACK_STATE_DIR") or REPO_ROOT / ".local")

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts the shutdown

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    try:
        stack = start_stack(port=int(raw_port), state_dir=state_dir)
    except OSError as exc:
        print(f"cannot start the local stack on port {raw_port}: {exc} (PORT=... picks another)", file=sys.stderr)
        return 1
    try:
        print(banner(stack), flush=True)
        print(f"ready on {stack.base_url}", flush=True)
        stop.wait()
        print("stopping", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
