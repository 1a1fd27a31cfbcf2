"""One webhook POST, against real HTTP(S) servers on 127.0.0.1 (local mode allows loopback)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from standardwebhooks.webhooks import Webhook

from tests.fake_clock import FakeClock
from usdt_gateway.webhooks.delivery_http import Outcome, post
from usdt_gateway.webhooks.signing import new_secret, webhook_headers
from usdt_gateway.webhooks.urlguard import check_url

BODY = json.dumps(
    {
        "id": "evt_1",
        "type": "order.confirmed",
        "sequence": 1,
        "data": {"orderId": "order-\u00e9", "status": "confirmed"},
    },
    ensure_ascii=False,
).encode()
# The longest a handler keeps a request unanswered: only the test's end (`stop`) answers sooner.
# A guard against a hung test; the deadlines under test are under a second.
HOLD_GUARD_S = 60.0
HEADERS = {
    "webhook-id": "evt_1",
    "webhook-timestamp": "1764600000",
    "webhook-signature": "v1,AAAA",
    "content-type": "application/json",
}


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Server:
    """A local HTTP(S) server; the path picks the behaviour (see Handler)."""

    httpd: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    stream_outcome: list[str] = field(default_factory=list)
    stream_ended: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


class Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        state: Server = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        state.requests.append(Received(self.command, self.path, list(self.headers.items()), body))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        if route.startswith("/status/"):
            status = int(route.removeprefix("/status/"))
            extra = {"Location": state.url("/target")} if 300 <= status < 400 else {}
            if "retry" in query:
                extra["Retry-After"] = query["retry"]
            self._reply(status, f"status {status}".encode(), extra)
        elif route == "/sleep":
            state.stop.wait(HOLD_GUARD_S)
            self._reply(200, b"late")
        elif route == "/drip":
            # Each byte well inside any per-read timeout, and the headers never end before the
            # test does: only the attempt's own deadline ends it.
            drip = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * int(HOLD_GUARD_S * 10)
            for byte in drip:
                if state.stop.wait(0.1):
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
        elif route == "/endless":
            self.send_response(200)
            self.end_headers()
            try:
                while not state.stop.is_set():
                    self.wfile.write(b"x" * 8192)
                state.stream_outcome.append("stopped")
            except OSError:
                state.stream_outcome.append("client closed")
            state.stream_ended.set()
        elif route == "/sized":
            self._reply(200, b"abcdefghij" * 100)
        elif route == "/binary":
            self._reply(200, b"\xff\xfeok")
        else:
            self._reply(200, b"thanks")

    def _reply(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_server(tls: ssl.SSLContext | None = None) -> Server:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    state = Server(httpd)
    httpd.state = state  # type: ignore[attr-defined]
    if tls is not None:
        tls.sni_callback = lambda sslobj, name, context: state.server_names.append(name)
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return state


def stop_server(state: Server) -> None:
    state.stop.set()
    state.httpd.shutdown()
    state.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    state = start_server()
    yield state
    stop_server(state)


def send(url: str, **options: Any) -> Outcome:
    options.setdefault("timeout_s", 5.0)
    options.setdefault("allow_loopback", True)
    return post(url, BODY, HEADERS, **options)


def loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_a_2xx_is_ok(server: Server) -> None:
    started = time.monotonic()
    outcome = send(server.url("/ok"))
    took_ms = (time.monotonic() - started) * 1000
    assert outcome.ok and outcome.status == 200
    assert (outcome.error, outcome.code, outcome.retry_after_s) == (None, None, None)
    assert outcome.body_excerpt == "thanks"
    assert 0 <= outcome.latency_ms <= took_ms  # the attempt's own time, within the call's


def test_headers_and_body_arrive_exactly_as_sent(server: Server) -> None:
    secret = new_secret()
    now = int(time.time())
    headers = webhook_headers([secret, new_secret()], "evt_42", now, BODY)
    outcome = post(server.url("/in?shop=1&x=%20y"), BODY, headers, timeout_s=5, allow_loopback=True)
    assert outcome.ok
    [got] = server.requests
    assert got.method == "POST" and got.path == "/in?shop=1&x=%20y"
    assert got.body == BODY
    received = dict(got.headers)
    for name, value in headers.items():
        assert received[name] == value
    assert received["Host"] == f"127.0.0.1:{server.port}"
    assert received["Content-Length"] == str(len(BODY))
    assert received["User-Agent"] == "usdt-gateway-webhooks"
    assert Webhook(secret).verify(got.body, received)["data"]["orderId"] == "order-\u00e9"


@pytest.mark.parametrize("status", [500, 410, 400, 404])
def test_a_non_2xx_is_a_failure_with_its_status(server: Server, status: int) -> None:
    outcome = send(server.url(f"/status/{status}?retry=30"))
    assert not outcome.ok
    assert (outcome.status, outcome.error, outcome.code) == (status, f"HTTP {status}", "HTTP_STATUS")
    assert outcome.body_excerpt == f"status {status}"
    assert outcome.retry_after_s is None  # Retry-After counts only on a 429 or a 503


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds(server: Server, status: int) -> None:
    outcome = send(server.url(f"/status/{status}?retry=7"))
    assert (outcome.status, outcome.ok, outcome.retry_after_s) == (status, False, 7.0)


def test_retry_after_as_an_http_date(server: Server, fake_clock: FakeClock) -> None:
    # Given the gateway's clock at a whole second, and a date 120 s after it
    now_s = fake_clock.ms / 1000
    soon = quote(formatdate(now_s + 120, usegmt=True))  # e.g. "Mon, 01 Dec 2025 14:02:00 GMT"
    outcome = send(server.url(f"/status/429?retry={soon}"))
    assert outcome.status == 429
    assert outcome.retry_after_s == 120.0
    past = quote(formatdate(now_s - 3600, usegmt=True))
    assert send(server.url(f"/status/503?retry={past}")).retry_after_s == 0.0


def test_an_unreadable_retry_after_is_ignored(server: Server) -> None:
    outcome = send(server.url("/status/429?retry=soon"))
    assert outcome.status == 429 and outcome.retry_after_s is None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(server: Server, status: int) -> None:
    outcome = send(server.url(f"/status/{status}"))
    assert (outcome.status, outcome.ok) == (status, False)
    assert (outcome.error, outcome.code) == (f"redirect not followed ({status})", "REDIRECT")
    assert server.paths() == [f"/status/{status}"]  # the Location (/target) was never requested


def test_only_max_response_bytes_of_the_body_are_read(server: Server) -> None:
    assert send(server.url("/sized"), max_response_bytes=10).body_excerpt == "abcdefghij"
    assert send(server.url("/sized")).body_excerpt == ("abcdefghij" * 100)[:256]
    assert send(server.url("/binary")).body_excerpt == "\ufffd\ufffdok"


def test_an_endless_body_does_not_hold_the_attempt(server: Server) -> None:
    # An attempt still reading at its deadline ends as a TIMEOUT: ok means it stopped reading first
    outcome = send(server.url("/endless"), timeout_s=HOLD_GUARD_S)
    assert outcome.ok and outcome.body_excerpt == "x" * 256
    # And it closed the connection while the server was still streaming
    assert server.stream_ended.wait(HOLD_GUARD_S)
    assert server.stream_outcome == ["client closed"]


def test_a_slow_server_times_out_at_the_deadline(server: Server) -> None:
    # Given a server that answers only when the test ends
    started = time.monotonic()
    outcome = send(server.url("/sleep"), timeout_s=0.5)
    took = time.monotonic() - started
    # Then the attempt gave up on its own, not before its deadline (a loaded machine only adds)
    assert (outcome.status, outcome.error, outcome.code) == (None, "timeout after 0.5 s", "TIMEOUT")
    assert 450 <= outcome.latency_ms <= took * 1000


def test_a_trickling_server_cannot_stretch_the_deadline(server: Server) -> None:
    # Given a server that sends a byte every 0.1 s and never ends its headers before the test does
    started = time.monotonic()
    outcome = send(server.url("/drip"), timeout_s=0.6)
    took = time.monotonic() - started
    # Then the attempt's deadline ended it, not before it was due
    assert (outcome.status, outcome.code) == (None, "TIMEOUT")
    assert outcome.error == "timeout after 0.6 s"
    assert took >= 0.55


def test_a_closed_port_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = send(f"http://127.0.0.1:{port}/ok")
    assert (outcome.status, outcome.error, outcome.code) == (None, "connection refused", "CONNECTION_REFUSED")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A bare listening socket: shows whether anything connected at all."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.3)
    yield sock
    sock.close()


def test_loopback_is_refused_outside_local_mode_and_nothing_is_sent(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    for url, error, code in [
        (f"https://127.0.0.1:{port}/h", "refused: 127.0.0.1 is a loopback address", "URL_NOT_PUBLIC"),
        ("https://localhost/h", "refused: resolves to 127.0.0.1, a loopback address", "URL_NOT_PUBLIC"),
        (f"https://[::1]:{port}/h", "refused: ::1 is a loopback address", "URL_NOT_PUBLIC"),
        (f"http://127.0.0.1:{port}/h", "refused: the URL must use https", "URL_SCHEME"),
        (
            f"https://hooks.shop.example:{port}/h",
            f"refused: port {port} is not allowed; webhook URLs may use port 443",
            "URL_PORT_NOT_ALLOWED",
        ),
    ]:
        resolve = loopback if "localhost" in url else None
        outcome = send(url, allow_loopback=False, **({"resolve": resolve} if resolve else {}))
        assert (outcome.status, outcome.ok, outcome.error, outcome.code) == (None, False, error, code)
    with pytest.raises(TimeoutError):
        listener.accept()


def test_the_url_is_checked_again_at_send_time(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    answers = [["93.184.215.14"], ["10.0.0.5"]]
    calls: list[tuple[str, int]] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return answers[min(len(calls), len(answers)) - 1]

    url = f"https://hooks.shop.example:{port}/h"
    assert check_url(url, resolve=rebinding, allowed_ports={port}).addresses == ("93.184.215.14",)
    outcome = send(url, allow_loopback=False, resolve=rebinding, allowed_ports={port})
    assert (outcome.error, outcome.code) == ("refused: resolves to 10.0.0.5, a private address", "URL_NOT_PUBLIC")
    assert calls == [("hooks.shop.example", port)] * 2
    with pytest.raises(TimeoutError):
        listener.accept()


def test_the_connection_goes_to_the_checked_address_with_the_urls_host(server: Server) -> None:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["127.0.0.1"]

    outcome = send(server.url("/ok", host="merchant.test"), resolve=resolve)
    assert outcome.ok
    assert calls == [("merchant.test", server.port)]
    assert dict(server.requests[0].headers)["Host"] == f"merchant.test:{server.port}"


def test_an_unreachable_address_falls_back_to_the_next_checked_one(server: Server) -> None:
    # Nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1 only).
    outcome = send(server.url("/ok", host="merchant.test"), resolve=lambda host, port: ["127.0.0.2", "127.0.0.1"])
    assert outcome.ok and len(server.requests) == 1


def test_transport_headers_and_a_non_positive_timeout_are_programming_errors(server: Server) -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        post(server.url("/ok"), BODY, {**HEADERS, "Content-Length": "1"}, timeout_s=5, allow_loopback=True)
    with pytest.raises(ValueError, match="timeout_s"):
        post(server.url("/ok"), BODY, HEADERS, timeout_s=0, allow_loopback=True)
    assert server.requests == []


# HTTPS, with a CA and certificates made for the test.


def _certificates(directory: Path) -> dict[str, Path]:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("merchant.test"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("merchant.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem", "cert": directory / "leaf.pem", "key": directory / "leaf.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    paths = _certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths["cert"], paths["key"])
    state = start_server(context)
    yield state, str(paths["ca"])
    stop_server(state)


def test_https_uses_sni_and_verifies_the_certificate_for_the_urls_host(tls_server: tuple[Server, str]) -> None:
    server, ca = tls_server
    outcome = send(server.url("/ok", host="merchant.test", scheme="https"), resolve=loopback, ca_certs=ca)
    assert outcome.ok and outcome.body_excerpt == "thanks"
    assert server.server_names == ["merchant.test"]
    assert dict(server.requests[0].headers)["Host"] == f"merchant.test:{server.port}"


def test_https_to_a_literal_ip_verifies_its_ip_certificate(tls_server: tuple[Server, str]) -> None:
    server, ca = tls_server
    assert send(server.url("/ok", scheme="https"), ca_certs=ca).ok


def test_https_refuses_a_certificate_for_another_name(tls_server: tuple[Server, str]) -> None:
    server, ca = tls_server
    outcome = send(server.url("/ok", host="other.test", scheme="https"), resolve=loopback, ca_certs=ca)
    assert (outcome.status, outcome.code) == (None, "TLS_ERROR")
    assert outcome.error is not None and outcome.error.startswith("TLS certificate rejected")
    assert server.requests == []


def test_https_refuses_an_untrusted_certificate(tls_server: tuple[Server, str]) -> None:
    server, _ = tls_server
    outcome = send(server.url("/ok", host="merchant.test", scheme="https"), resolve=loopback)
    assert (outcome.status, outcome.code) == (None, "TLS_ERROR")
    assert server.requests == []


def test_a_stalled_tls_handshake_times_out_at_the_deadline(listener: socket.socket) -> None:
    # The kernel accepts the TCP connection; nobody ever answers the ClientHello.
    port = listener.getsockname()[1]
    started = time.monotonic()
    outcome = send(f"https://merchant.test:{port}/h", resolve=loopback, timeout_s=0.5)
    # Then the attempt gave up on its own (nothing else would end it), not before its deadline
    assert (outcome.status, outcome.code, outcome.error) == (None, "TIMEOUT", "timeout after 0.5 s")
    assert time.monotonic() - started >= 0.45
