"""A merchant's webhook endpoint for the tests: a real HTTP server on 127.0.0.1 (the gateway's
local mode allows loopback http) that answers each POST with the next reply planned for it,
records every request, and counts how many it is serving at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# How long a held reply waits for its events at most: a guard against a hung test, never reached
# when the events come.
HOLD_GUARD_S = 60.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: tuple[threading.Event, ...] = ()  # answer only once each of these is set


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.time() when the request arrived

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.hits: list[Hit] = []
        self.plan: list[Reply] = []  # next replies, in order; then `default`
        self.default = Reply()
        self.policy: Callable[[Hit], Reply] | None = None  # decides instead of plan/default when set
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.receiver = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *replies: Reply) -> None:
        with self._lock:
            self.plan.extend(replies)

    def next_reply(self, hit: Hit) -> Reply:
        with self._lock:
            if self.policy is not None:
                return self.policy(hit)
            return self.plan.pop(0) if self.plan else self.default

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def wait_for(self, count: int, timeout_s: float = 60) -> list[Hit]:
        """The hits once there are `count`; after `timeout_s` (a hang guard) whatever came."""
        deadline = time.time() + timeout_s
        while len(self.hits) < count and time.time() < deadline:
            time.sleep(0.02)
        return list(self.hits)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hit = Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
        with receiver._lock:
            receiver.hits.append(hit)
            receiver.in_flight += 1
            receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
        reply = receiver.next_reply(hit)
        try:
            for event in reply.hold:
                event.wait(HOLD_GUARD_S)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass  # the sender gave up (timeout) and closed the connection
        finally:
            with receiver._lock:
                receiver.in_flight -= 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver(port: int = 0) -> Iterator[Receiver]:
    running = Receiver(port)
    try:
        yield running
    finally:
        running.stop()
