"""SSRF guard for merchant webhook URLs. The gateway POSTs to a URL a merchant chose, from inside
the AWS network: without this check a merchant could make it call the instance metadata service,
a VPC-internal service or the gateway's own loopback. A URL passes when it is https, carries no
credentials and every address its host resolves to is publicly routable; the checked addresses
are returned so the caller connects to exactly those (a second lookup could answer differently).

Public means: `ipaddress`'s is_global, and not multicast, and for IPv6 inside global unicast
2000::/3; addresses that embed an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4) are judged
by the IPv4 address they embed, and refused when that is not public. Loopback is allowed only in
local mode (allow_loopback), which also allows plain http; and only genuine loopback, 127.0.0.0/8
and ::1, never a form embedding it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import SplitResult, urlsplit

Resolver = Callable[[str, int], list[str]]
IPAddress = IPv4Address | IPv6Address

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}
# The ports a URL may name unless the caller says otherwise (WEBHOOK_ALLOWED_PORTS); http, only
# in local mode, may use 80 too. A gateway that connects to any port and reports refused,
# timeout or TLS errors would scan every port of every public host for whoever asks.
WEB_PORTS = frozenset({443})

LOOPBACK = "a loopback address"
_HOST_LABEL = r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
# A name ending in a number is an IPv4 address in another spelling to browsers and resolvers
# (2130706433, 0x7f.1, 127.1): only the dotted-quad form is taken as an address.
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
BAD_HOST = "the URL's host is not a valid host name or IP address"

_V4_CLASSES: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), label)
    for net, label in (
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a 'this network' address"),
        ("127.0.0.0/8", LOOPBACK),
        ("169.254.169.254/32", "a link-local address (the cloud metadata service)"),
        ("169.254.0.0/16", "a link-local address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("192.0.0.0/24", "a reserved (IETF protocol assignment) address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
    )
)

_V6_CLASSES: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), label)
    for net, label in (
        ("::/128", "an unspecified address"),
        ("::1/128", LOOPBACK),
        ("ff00::/8", "a multicast address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("fd00:ec2::254/128", "a private (unique local) address (the cloud metadata service)"),
        ("fc00::/7", "a private (unique local) address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("2001:2::/48", "a benchmarking address"),
        ("2001::/32", "a Teredo tunnel address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("::/96", "a deprecated IPv4-compatible address"),
    )
)
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """A webhook URL the gateway refuses to call; code is stable, message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to one of addresses, send Host/SNI for host."""

    scheme: str
    host: str  # lower-case ASCII (IDNA) host name or IP literal, without brackets
    port: int
    path_and_query: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def default_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver returns for host (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_v4(address: IPv6Address) -> tuple[IPv4Address, str] | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "an IPv4-mapped address"
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF), "a NAT64 address"
    if address.sixtofour is not None:
        return address.sixtofour, "a 6to4 address"
    return None


def classify(address: IPAddress) -> str | None:
    """None for a public address; otherwise its class, e.g. "a private address"."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            v4, form = embedded
            label = classify(v4)
            # Never plain LOOPBACK: local mode allows genuine loopback only, and a host may route
            # these forms elsewhere (a 6to4 relay, a NAT64 gateway).
            return None if label is None else f"{form} embedding {v4}, {label}"
        classes: tuple[tuple[IPv4Network | IPv6Network, str], ...] = _V6_CLASSES
    else:
        classes = _V4_CLASSES
    for network, label in classes:
        if address in network:
            return label
    if isinstance(address, IPv6Address) and address not in _GLOBAL_UNICAST:
        return "a reserved address"
    if address.is_multicast:
        return "a multicast address"
    if not address.is_global:
        return "a non-public address"
    return None


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def url_host(parts: SplitResult) -> tuple[str, IPAddress | None]:
    """The host of a split URL, in RFC 3986's host grammar narrowed to what a browser or a
    resolver reads one way only: a DNS host name (letter, digit, '-' and '_' labels; an
    internationalised name in its IDNA form), a dotted-quad IPv4 address, or an IPv6 address in
    brackets without a zone id. Returns it as lower-case ASCII without brackets, with its address
    when it is a literal; UnsafeUrl otherwise. Credentials are the caller's to refuse."""
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("["):
        inner, closed, after = hostport[1:].partition("]")
        if not closed or (after and not after.startswith(":")) or "%" in inner:
            raise UnsafeUrl("URL_INVALID", BAD_HOST)
        try:
            v6 = IPv6Address(inner)
        except ValueError:
            raise UnsafeUrl("URL_INVALID", BAD_HOST) from None
        return v6.compressed, v6
    raw = hostport.partition(":")[0]
    if not raw:
        raise UnsafeUrl("URL_NO_HOST", "the URL has no host")
    try:
        v4 = IPv4Address(raw)
    except ValueError:
        pass
    else:
        return v4.compressed, v4
    try:
        host = raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeUrl("URL_INVALID", BAD_HOST) from None
    name = host.removesuffix(".")
    if not _HOSTNAME.match(host) or len(name) > 253 or _NUMERIC_LABEL.match(name.rpartition(".")[2]):
        raise UnsafeUrl("URL_INVALID", BAD_HOST)
    return host, None


def _port_refused(port: int, permitted: Collection[int]) -> UnsafeUrl:
    listed = ", ".join(str(p) for p in sorted(permitted))
    ports = "ports" if len(permitted) > 1 else "port"
    return UnsafeUrl("URL_PORT_NOT_ALLOWED", f"port {port} is not allowed; webhook URLs may use {ports} {listed}")


def check_url(
    url: str,
    *,
    allow_loopback: bool = False,
    resolve: Resolver = default_resolve,
    allowed_ports: Collection[int] = WEB_PORTS,
) -> Target:
    """The Target of url, or UnsafeUrl. Resolves the host now: call it again at each send. A host
    that is loopback only (local mode) may use any port; others only allowed_ports."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl("URL_INVALID", f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise UnsafeUrl("URL_INVALID", "the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        code = "URL_PORT" if "port" in str(exc).lower() else "URL_INVALID"
        raise UnsafeUrl(code, f"the URL does not parse: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_loopback):
        raise UnsafeUrl("URL_SCHEME", "the URL must use https")
    if "@" in parts.netloc:
        raise UnsafeUrl("URL_CREDENTIALS", "the URL must not contain credentials")
    host, literal = url_host(parts)
    if port is None:
        port = DEFAULT_PORTS[scheme]
    elif not 1 <= port <= 65535:
        raise UnsafeUrl("URL_PORT", f"port {port} is outside 1-65535")
    path = parts.path or "/"
    path_and_query = f"{path}?{parts.query}" if parts.query else path
    if not path_and_query.isascii():
        raise UnsafeUrl("URL_INVALID", "the URL's path and query must be ASCII (percent-encode the rest)")

    permitted = set(allowed_ports) | ({DEFAULT_PORTS["http"]} if scheme == "http" else set())
    if literal is not None:
        addresses = [host]
    else:
        if port not in permitted and not allow_loopback:  # refused before any lookup
            raise _port_refused(port, permitted)
        try:
            addresses = list(dict.fromkeys(resolve(host, port)))
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:
            raise UnsafeUrl("URL_UNRESOLVABLE", f"{host} does not resolve")

    loopback_only = True
    for text in addresses:
        address = _parse_address(text)
        label = "an unparseable address" if address is None else classify(address)
        loopback_only = loopback_only and label == LOOPBACK
        if label is None or (label == LOOPBACK and allow_loopback):
            continue
        where = f"{text} is" if literal is not None else f"resolves to {text},"
        raise UnsafeUrl("URL_NOT_PUBLIC", f"{where} {label}")
    if port not in permitted and not (allow_loopback and loopback_only):
        raise _port_refused(port, permitted)
    return Target(scheme=scheme, host=host, port=port, path_and_query=path_and_query, addresses=tuple(addresses))
