"""A merchant integration with the client SDK (sdk/python): create an order, show the payer what
to pay, then receive its webhooks, verify them and wait until the order is paid.

    python examples/integration.py [STATE_DIR] [--network NAME] [--amount X] [--timeout S]

Runs against the local stack (`make dev`), with the demo merchant's keys from
STATE_DIR/merchant.json (default: $DEVSTACK_STATE_DIR, else .local/ of this repository). It
listens for webhooks on a free port of 127.0.0.1 and gives the order that URL as its notifyUrl
(the local stack allows http:// to loopback; deployed, a notifyUrl is a public https:// URL).
A `webhook.test` is sent to it first, to check the receiver before anything depends on it.
Pay the order from another terminal with the `.venv/bin/python -m devstack pay <orderId>` it
prints (the venv's path as seen from here); the script prints
each verified event and exits 0 once an accepted event's order is paid (`paid: true`; every
order event carries the whole order, so that need not be `order.confirmed`), 1 if the order ends
unpaid or the timeout passes first.

Uses sdk/python from this repository without installing it (or: pip install ./sdk/python).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import sys
import threading
import time
from decimal import Decimal
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "sdk" / "python"))

from usdt_gateway_client import Client, GatewayError, OrderStatus, WebhookEvent  # noqa: E402
from webhook_receiver import Inbox, make_handler  # noqa: E402

UNPAID_END = {OrderStatus.EXPIRED, OrderStatus.CANCELLED, OrderStatus.FAILED}


def venv_python() -> str:
    """The repository's venv Python, as typed from the current directory: `-m devstack` needs its
    packages, so a bare `python` fails outside the venv."""
    python = REPO / ".venv" / "bin" / "python"
    here = Path.cwd().resolve()
    return str(python.relative_to(here)) if python.is_relative_to(here) else str(python)


def load_merchant(state_dir: Path) -> dict[str, str]:
    path = state_dir / "merchant.json"
    if not path.is_file():
        sys.exit(f"{path} not found: start the local stack first (make dev)")
    merchant: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return merchant


def start_receiver(webhook_secret: str, events: queue.Queue[WebhookEvent]) -> ThreadingHTTPServer:
    """examples/webhook_receiver.py's handler (verify, deduplicate, order by sequence) on a free
    port; each new verified event goes to `events`."""

    def on_event(webhook_id: str, event: dict[str, Any], dropped: str | None) -> None:
        if dropped is None:
            events.put(WebhookEvent.from_dict(event))

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler([webhook_secret], Inbox(), on_event))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Create an order with the SDK and wait for its verified webhooks.")
    default = os.environ.get("DEVSTACK_STATE_DIR") or REPO / ".local"
    parser.add_argument("state_dir", nargs="?", type=Path, default=Path(default), metavar="STATE_DIR")
    parser.add_argument("--network", default="local", help="an enabled network (default: local, the stack's chain)")
    parser.add_argument("--amount", default="50.00", type=Decimal, help="USDT (default: 50.00)")
    parser.add_argument("--timeout", default=300.0, type=float, help="seconds to wait for payment (default: 300)")
    args = parser.parse_args(argv[1:])
    merchant = load_merchant(args.state_dir)

    client = Client(merchant["baseUrl"], merchant["apiKey"], merchant["secretKey"])
    events: queue.Queue[WebhookEvent] = queue.Queue()
    receiver = start_receiver(merchant["webhookSecret"], events)
    notify_url = f"http://127.0.0.1:{receiver.server_address[1]}/"
    try:
        test = client.send_test_webhook(url=notify_url)
        if not test.ok:
            print(f"webhook.test to {notify_url} failed: {test.status_code} {test.error}", file=sys.stderr)
            return 1
        print(f"receiver    {notify_url} (webhook.test {events.get(timeout=10).id} verified)", flush=True)

        order = client.create_order(
            order_id=f"shop-{secrets.token_hex(4)}",
            amount=args.amount,
            network=args.network,
            notify_url=notify_url,
            metadata={"cart": "example"},
        )
        print(f"orderId     {order.order_id}")
        print(f"pay         {order.amount} {order.currency} on {order.network} to {order.address}")
        print(f"paymentUrl  {order.payment_url}")
        if order.expires_at is not None:
            print(f"expires     {order.expires_at:%Y-%m-%d %H:%M:%S} UTC", flush=True)
        if order.network == "local":
            prefix = "" if args.state_dir == Path(default) else f"DEVSTACK_STATE_DIR={args.state_dir} "
            print(f"pay it      {prefix}{venv_python()} -m devstack pay {order.order_id}", flush=True)

        deadline = time.monotonic() + args.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = events.get(timeout=left)
            except queue.Empty:
                break
            changed = event.order
            if changed is None or changed.order_id != order.order_id:
                continue
            print(
                f"webhook     {event.type}  status {changed.status}  paid {changed.paid_amount}  "
                f"sequence {event.sequence}  verified",
                flush=True,
            )
            if changed.paid or changed.status in UNPAID_END:  # the order's state as this event says
                break
        final = client.get_order(order.order_id)
        print(f"status      {final.status} (paid {final.paid_amount} of {final.amount})", flush=True)
        return 0 if final.paid else 1
    except GatewayError as exc:
        print(f"error       {exc.status} {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        receiver.shutdown()
        receiver.server_close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
