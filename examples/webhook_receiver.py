"""A minimal merchant-side webhook receiver: verifies each webhook and prints it.

    python examples/webhook_receiver.py [PORT]        (default 8787; listens on 127.0.0.1)

The secret comes from $WEBHOOK_SECRET (several, space-separated, while you rotate), else from the
local stack's merchant.json (webhookSecret) in $DEVSTACK_STATE_DIR or .local/ of this repository.
Point the merchant's webhook URL at http://127.0.0.1:PORT/ (the local stack allows loopback), e.g.
`DEVSTACK_WEBHOOK_URL=http://127.0.0.1:8787/ make dev` for the local stack's demo merchant.

What a real receiver should copy:
- verify the raw body before parsing it (usdt_gateway_client.verify_webhook; 401 if it fails);
- answer 2xx at once and do the work afterwards: the gateway gives up on an attempt after 15 s;
- drop duplicates by webhook-id (a retry repeats it) and stale events by sequence: keep the
  highest sequence accepted per order and ignore anything not above it (deliveries may arrive
  out of order). Both still get a 2xx, or the gateway would keep retrying them;
- take the order in each accepted event (`data`, the whole order after the change) as its
  current state, and ship when `data.paid` is true, whatever the event's type: the events of one
  change may arrive in any order, so the one accepted may be order.overpaid, its order.confirmed
  then dropped as stale.
This one keeps that state in memory; a real one keeps it in its database.

Uses sdk/python from this repository without installing it (or: pip install -e sdk/python).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "sdk" / "python"))

from usdt_gateway_client import WebhookVerificationError, verify_webhook  # noqa: E402

MAX_BODY = 1 << 20
SEEN_IDS_KEPT = 10_000


def load_secrets() -> list[str]:
    if os.environ.get("WEBHOOK_SECRET"):
        return os.environ["WEBHOOK_SECRET"].split()
    state_dir = Path(os.environ.get("DEVSTACK_STATE_DIR") or REPO / ".local")
    path = state_dir / "merchant.json"
    if not path.is_file():
        sys.exit(f"set WEBHOOK_SECRET, or start the local stack first (make dev) to create {path}")
    return [json.loads(path.read_text(encoding="utf-8"))["webhookSecret"]]


class Inbox:
    """Which deliveries were already taken: webhook ids, and the highest sequence per order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_sequence: dict[str, int] = {}

    def accept(self, webhook_id: str, event: dict[str, Any]) -> str | None:
        """None if the event is new; otherwise why it is dropped."""
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        order_id, sequence = data.get("orderId"), event.get("sequence")
        with self._lock:
            if webhook_id in self._seen:
                return "duplicate"
            self._seen[webhook_id] = None
            if len(self._seen) > SEEN_IDS_KEPT:
                self._seen.popitem(last=False)
            if isinstance(order_id, str) and isinstance(sequence, int):
                last = self._last_sequence.get(order_id, 0)
                if sequence <= last:
                    return f"stale (sequence {sequence}, already at {last})"
                self._last_sequence[order_id] = sequence
        return None


# Called for each verified delivery with its webhook-id, the event and why it is dropped (None: new).
OnEvent = Callable[[str, dict[str, Any], str | None], None]


def print_event(webhook_id: str, event: dict[str, Any], dropped: str | None) -> None:
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    line = (
        f"{event.get('type')} order={data.get('orderId')} status={data.get('status')} "
        f"paid={data.get('paid')} sequence={event.get('sequence')} id={webhook_id}"
    )
    if dropped:
        print(f"dropped {dropped}: {line}", flush=True)
    else:
        print(f"{line}{'  -> paid: ship it' if data.get('paid') is True else ''}", flush=True)


def make_handler(secrets: list[str], inbox: Inbox, on_event: OnEvent = print_event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > MAX_BODY:
                self._answer(411 if not length.isdigit() else 413)
                return
            body = self.rfile.read(int(length))
            try:
                event = verify_webhook(dict(self.headers.items()), body, secrets)
            except WebhookVerificationError as exc:
                self._answer(401)
                print(f"rejected: {exc}", flush=True)
                return
            webhook_id = self.headers["webhook-id"]
            dropped = inbox.accept(webhook_id, event)
            self._answer(204)  # first answer, then work
            on_event(webhook_id, event, dropped)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per event is printed above

    return Handler


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8787
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(load_secrets(), Inbox()))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
