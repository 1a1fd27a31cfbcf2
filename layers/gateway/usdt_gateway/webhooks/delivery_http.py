"""One webhook POST to a merchant URL, made safe to aim at an address a merchant chose.

- The URL is checked (urlguard) at send time, not only when it was configured: a name that was
  public then may resolve to a private address now (DNS rebinding).
- The connection goes to an address that check returned, never to a fresh lookup; Host, SNI and
  certificate verification use the URL's host name.
- Redirects are never followed (a 3xx is a failed attempt): following one would skip the check.
- At most max_response_bytes of the response are read, and timeout_s bounds the whole attempt
  (connect, TLS, request, response): a watchdog shuts the socket down at the deadline, so a peer
  that trickles bytes cannot hold a worker past it.
- Every failure, a refused URL included, comes back as an Outcome for the sender to record.

Built on the standard library (socket, ssl, http.client): nothing to add to the layer.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from ipaddress import IPv6Address, ip_address

from usdt_gateway import clock
from usdt_gateway.webhooks.urlguard import WEB_PORTS, Resolver, Target, UnsafeUrl, check_url, default_resolve

USER_AGENT = "usdt-gateway-webhooks"
EXCERPT_CHARS = 256
# Framing headers are this module's business; a caller setting them is a bug.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to. error (with a stable code) is None only for a 2xx."""

    status: int | None
    latency_ms: int
    error: str | None = None
    code: str | None = None
    retry_after_s: float | None = None
    body_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Deadline:
    """The attempt's deadline; at it, shuts the guarded socket down, which wakes a blocked read."""

    def __init__(self, timeout_s: float) -> None:
        self.at = time.monotonic() + timeout_s
        self.expired = False
        self._guarded: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline reached")
        return left

    def guard(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor: shutdown acts on the connection, even after ssl has
        # wrapped (and detached) the original socket object.
        with self._lock:
            self._release()
            self._guarded = sock.dup()
            if self.expired:
                self._shutdown()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._guarded is not None:
            with contextlib.suppress(OSError):  # already closed by the peer
                self._guarded.shutdown(socket.SHUT_RDWR)

    def _release(self) -> None:
        if self._guarded is not None:
            self._guarded.close()
            self._guarded = None

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._release()


def _connect(target: Target, deadline: _Deadline) -> socket.socket:
    """A TCP connection to one of the checked addresses, tried in order; each gets an equal share
    of the time left, so an unreachable first address does not use up the whole deadline."""
    error: OSError = OSError("no address to connect to")
    for index, text in enumerate(target.addresses):
        address = ip_address(text)
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.remaining() / (len(target.addresses) - index))
            sock.connect((str(address), target.port))
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error


@functools.lru_cache(maxsize=8)
def _tls_context(ca_certs: str | None) -> ssl.SSLContext:
    """Certificate and host name verification on (the defaults); loading the CA store once per
    process, not per attempt."""
    return ssl.create_default_context(cafile=ca_certs)


def _open(target: Target, deadline: _Deadline, ca_certs: str | None) -> socket.socket:
    sock = _connect(target, deadline)
    try:
        deadline.guard(sock)
        sock.settimeout(deadline.remaining())
        if target.scheme == "https":
            # SNI and certificate check against the URL's host, whatever address we dialled.
            return _tls_context(ca_certs).wrap_socket(sock, server_hostname=target.host)
        return sock
    except BaseException:
        sock.close()
        raise


def _retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _describe(exc: BaseException, deadline: _Deadline, timeout_s: float) -> tuple[str, str]:
    """(code, short message) for a failed attempt."""
    if deadline.expired or isinstance(exc, TimeoutError):
        return "TIMEOUT", f"timeout after {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "CONNECTION_REFUSED", "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS_ERROR", f"TLS certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return "TLS_ERROR", f"TLS error: {exc.reason or type(exc).__name__}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "CONNECTION_CLOSED", "connection closed without a response"
    if isinstance(exc, http.client.HTTPException):
        return "BAD_RESPONSE", f"invalid HTTP response ({type(exc).__name__})"
    if isinstance(exc, ConnectionResetError):
        return "CONNECTION_RESET", "connection reset"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return "CONNECTION_ERROR", f"connection failed: {reason}"


def _exchange(
    sock: socket.socket, target: Target, body: bytes, headers: Mapping[str, str], max_response_bytes: int
) -> tuple[int, str | None, bytes]:
    """Send the request on an open socket; (status, Retry-After, first bytes of the body)."""
    conn = http.client.HTTPConnection(target.host, target.port)
    conn.sock = sock  # already connected, to the checked address: http.client never dials
    try:
        conn.putrequest("POST", target.path_and_query, skip_host=True)
        conn.putheader("Host", target.host_header)
        if not any(name.lower() == "user-agent" for name in headers):
            conn.putheader("User-Agent", USER_AGENT)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Connection", "close")
        conn.endheaders(body)
        response = conn.getresponse()
        try:
            data = response.read(max_response_bytes) if max_response_bytes > 0 else b""
        except (OSError, http.client.HTTPException):
            data = b""  # the status is what counts; the body is only an excerpt
        finally:
            response.close()
        return response.status, response.getheader("Retry-After"), data
    finally:
        conn.close()


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    allow_loopback: bool,
    resolve: Resolver = default_resolve,
    allowed_ports: Collection[int] = WEB_PORTS,
    max_response_bytes: int = 4096,
    ca_certs: str | None = None,
) -> Outcome:
    """POST body to url with headers; never raises for a refused URL or a network failure.
    ca_certs: a CA bundle to trust instead of the system's (tests, private CAs)."""
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    reserved = sorted(name for name in headers if name.lower() in _RESERVED_HEADERS)
    if reserved:
        raise ValueError(f"headers set by the transport itself: {', '.join(reserved)}")
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = check_url(url, allow_loopback=allow_loopback, resolve=resolve, allowed_ports=allowed_ports)
    except UnsafeUrl as exc:
        return Outcome(status=None, latency_ms=elapsed_ms(), error=f"refused: {exc.message}", code=exc.code)

    deadline = _Deadline(max(timeout_s - (time.monotonic() - started), 0.001))
    try:
        sock = _open(target, deadline, ca_certs)
        try:
            status, retry_after, data = _exchange(sock, target, body, headers, max_response_bytes)
        finally:
            sock.close()
    except (OSError, http.client.HTTPException) as exc:
        failure, message = _describe(exc, deadline, timeout_s)
        return Outcome(status=None, latency_ms=elapsed_ms(), error=message, code=failure)
    finally:
        deadline.close()

    excerpt = data.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    error: str | None = None
    code: str | None = None
    if 300 <= status < 400:
        error, code = f"redirect not followed ({status})", "REDIRECT"
    elif not 200 <= status < 300:
        error, code = f"HTTP {status}", "HTTP_STATUS"
    wait = _retry_after(retry_after, clock.now_s()) if status in (429, 503) else None
    return Outcome(
        status=status, latency_ms=elapsed_ms(), error=error, code=code, retry_after_s=wait, body_excerpt=excerpt
    )
