"""The demo merchant's webhook receiver: an HTTP server on 127.0.0.1 that verifies each delivery
with the receiver SDK (sdk/python, usdt_gateway_client.verify_webhook) and the merchant's
webhookSecret, answers 204 (401 when the signature does not verify, as a real receiver should),
prints one line per delivery and appends it, raw body and headers included, to
state_dir/webhooks.jsonl, so what arrived can be checked again later.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.template import REPO_ROOT

# `make` puts sdk/python on the venv's path; a venv made before it did, or by hand, finds it here.
_SDK = str(REPO_ROOT / "sdk" / "python")
if _SDK not in sys.path:
    sys.path.append(_SDK)

from usdt_gateway_client import WebhookVerificationError, verify_webhook  # noqa: E402

HOST = "127.0.0.1"
LOG_FILE = "webhooks.jsonl"
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Delivery:
    received_at: float  # time.time() once the body was read
    headers: dict[str, str]  # names lower-cased
    body: bytes
    event: dict[str, Any] | None  # the verified event; None when rejected
    rejected: str | None = None  # why the signature check failed

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def data(self) -> dict[str, Any]:
        data = (self.event or {}).get("data")
        return data if isinstance(data, dict) else {}

    def line(self) -> str:
        if self.event is None:
            return f"webhook rejected: {self.rejected} (webhook-id {self.webhook_id or '-'})"
        if "settlementId" in self.data:  # settlement.*: a sweep, of one or more orders
            return (
                f"webhook {self.event.get('type')}  settlement {self.data['settlementId']}  "
                f"{self.data.get('amount')} USDT  orders {', '.join(self.data.get('orders') or []) or '-'}  "
                f"tx {self.data.get('txHash') or '-'}  "
                + (f"reason {self.data['reason']}  " if self.data.get("reason") else "")
                + f"signature ok  ({self.webhook_id})"
            )
        if "refundId" in self.data:  # refund.*: money an order did not take, sent back
            return (
                f"webhook {self.event.get('type')}  refund {self.data['refundId']}  order {self.data.get('orderId')}  "
                f"{self.data.get('amount')} USDT to {self.data.get('to')}  tx {self.data.get('txHash') or '-'}  "
                + (f"reason {self.data['reason']}  " if self.data.get("reason") else "")
                + f"signature ok  ({self.webhook_id})"
            )
        return (
            f"webhook {self.event.get('type')}  order {self.data.get('orderId') or '-'}  "
            f"status {self.data.get('status') or '-'}  sequence {self.event.get('sequence')}  "
            f"signature ok  ({self.webhook_id})"
        )

    def record(self) -> dict[str, Any]:
        """Its line in webhooks.jsonl."""
        event = self.event or {}
        return {
            "receivedAt": int(self.received_at * 1000),
            "webhookId": self.webhook_id,
            "type": event.get("type"),
            "orderId": self.data.get("orderId"),
            "status": self.data.get("status"),
            "sequence": event.get("sequence"),
            "signature": "ok" if self.event is not None else self.rejected,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
        }


class WebhookReceiver(ThreadingHTTPServer):
    """Bound at construction (a port in use fails early); serves once `serve` has the secret."""

    daemon_threads = True

    def __init__(self, port: int, log_file: Path, *, echo: Callable[[str], None] | None = None) -> None:
        super().__init__((HOST, port), _Handler)
        self.log_file = log_file
        self.echo = echo if echo is not None else _print
        self.secrets: list[str] = []
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        log_file.write_text("", encoding="utf-8")  # this run's deliveries only: the merchant is new

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def serve(self, secrets: list[str]) -> None:
        self.secrets = list(secrets)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), name="devstack-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()

    def take(self, delivery: Delivery) -> None:
        with self._changed:
            self.deliveries.append(delivery)
            with self.log_file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(delivery.record(), separators=(",", ":")) + "\n")
            self._changed.notify_all()
        with contextlib.suppress(Exception):  # a closed console must not fail the delivery
            self.echo(delivery.line())

    def wait_for(self, done: Callable[[list[Delivery]], bool], timeout_s: float) -> list[Delivery]:
        """The deliveries once done(deliveries) holds, or as they are after timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done(self.deliveries) and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return list(self.deliveries)


def _print(line: str) -> None:
    print(line, flush=True)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self._answer(411 if not length.isdigit() else 413)
            return
        body = self.rfile.read(int(length))
        received_at = time.time()
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            event = verify_webhook(headers, body, self.server.secrets)
        except (WebhookVerificationError, ValueError) as exc:
            self._answer(401)
            self.server.take(Delivery(received_at, headers, body, None, str(exc)))
            return
        self._answer(204)  # answer first, then record: the sender waits only for the status
        self.server.take(Delivery(received_at, headers, body, event))

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per delivery is printed by take()
