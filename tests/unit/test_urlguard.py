"""The SSRF guard: which webhook URLs the gateway agrees to call, and which addresses it connects to."""

from __future__ import annotations

from collections.abc import Collection
from ipaddress import IPv6Address

import pytest

from usdt_gateway.webhooks.urlguard import Resolver, Target, UnsafeUrl, check_url, default_resolve

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def resolver(*addresses: str, calls: list[tuple[str, int]] | None = None) -> Resolver:
    """A resolver that answers addresses for any host (no DNS), recording what it was asked."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        return list(addresses)

    return resolve


def refused(
    url: str,
    code: str,
    *,
    allow_loopback: bool = False,
    resolve: Resolver | None = None,
    allowed_ports: Collection[int] = (443,),
) -> str:
    """The message of the UnsafeUrl that check_url raises for url, after checking its code."""
    with pytest.raises(UnsafeUrl) as caught:
        check_url(
            url, allow_loopback=allow_loopback, resolve=resolve or resolver(PUBLIC_V4), allowed_ports=allowed_ports
        )
    assert caught.value.code == code, caught.value.message
    assert str(caught.value) == caught.value.message
    return caught.value.message


# (address, words the refusal must name): one per class, IPv4 then the IPv6 equivalents.
NOT_PUBLIC = [
    ("127.0.0.1", "a loopback address"),
    ("127.255.0.7", "a loopback address"),
    ("10.0.0.5", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.254", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.169.254", "link-local address (the cloud metadata service)"),
    ("169.254.10.1", "a link-local address"),
    ("100.64.0.1", "a shared (CGNAT) address"),
    ("100.127.255.254", "a shared (CGNAT) address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),  # noqa: S104 (an address to refuse, not to bind)
    ("0.1.2.3", "a 'this network' address"),
    ("255.255.255.255", "the broadcast address"),
    ("240.0.0.1", "a reserved address"),
    ("198.18.0.1", "a benchmarking address"),
    ("198.19.255.1", "a benchmarking address"),
    ("192.0.2.1", "a documentation address"),
    ("198.51.100.7", "a documentation address"),
    ("203.0.113.9", "a documentation address"),
    ("192.0.0.8", "a reserved (IETF protocol assignment) address"),
    ("192.0.0.170", "a reserved (IETF protocol assignment) address"),
    ("::1", "a loopback address"),
    ("::", "an unspecified address"),
    ("fc00::1", "a private (unique local) address"),
    ("fd12:3456::1", "a private (unique local) address"),
    ("fd00:ec2::254", "(the cloud metadata service)"),
    ("fe80::1", "a link-local address"),
    ("febf:ffff::1", "a link-local address"),
    ("fec0::1", "a site-local address"),
    ("ff02::1", "a multicast address"),
    ("ff0e::1", "a multicast address"),
    ("2001:db8::1", "a documentation address"),
    ("3fff::1", "a documentation address"),
    ("2001:2::1", "a benchmarking address"),
    ("2001::1", "a Teredo tunnel address"),
    ("100::1", "a discard-only address"),
    ("64:ff9b:1::1", "a local-use NAT64 address"),
    ("::10.0.0.1", "a deprecated IPv4-compatible address"),
    ("5f00::1", "a reserved address"),
    ("4000::1", "a reserved address"),
    ("2001:10::1", "a non-public address"),
    ("::ffff:10.0.0.1", "an IPv4-mapped address embedding 10.0.0.1, a private address"),
    ("::ffff:169.254.169.254", "an IPv4-mapped address embedding 169.254.169.254, a link-local address"),
    ("::ffff:100.64.0.1", "embedding 100.64.0.1, a shared (CGNAT) address"),
    ("64:ff9b::10.0.0.1", "a NAT64 address embedding 10.0.0.1, a private address"),
    ("64:ff9b::a9fe:a9fe", "a NAT64 address embedding 169.254.169.254"),
    ("2002:a00:1::1", "a 6to4 address embedding 10.0.0.1, a private address"),
    ("2002:c0a8:101::1", "a 6to4 address embedding 192.168.1.1, a private address"),
    ("2002:7f00:1::1", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address"),
]


@pytest.mark.parametrize(("address", "words"), NOT_PUBLIC)
def test_a_host_resolving_to_a_non_public_address_is_refused(address: str, words: str) -> None:
    message = refused("https://hooks.shop.example/usdt", "URL_NOT_PUBLIC", resolve=resolver(address))
    assert message.startswith(f"resolves to {address}, ")
    assert words in message


@pytest.mark.parametrize(("address", "words"), NOT_PUBLIC)
def test_a_literal_non_public_ip_is_refused(address: str, words: str) -> None:
    host = f"[{address}]" if ":" in address else address
    calls: list[tuple[str, int]] = []
    message = refused(f"https://{host}/usdt", "URL_NOT_PUBLIC", resolve=resolver(PUBLIC_V4, calls=calls))
    assert " is " in message and words in message
    assert calls == []  # a literal address is not looked up


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC_V4,
        "8.8.8.8",
        "1.1.1.1",
        PUBLIC_V6,
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    target = check_url("https://hooks.shop.example/usdt", resolve=resolver(address))
    assert target.addresses == (address,)


def test_a_good_public_url_gives_its_target() -> None:
    calls: list[tuple[str, int]] = []
    target = check_url(
        "https://Hooks.Shop.Example:8443/usdt/in?shop=1&x=y#frag",
        allowed_ports={443, 8443},
        resolve=resolver(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4, calls=calls),
    )
    assert target == Target(
        scheme="https",
        host="hooks.shop.example",
        port=8443,
        path_and_query="/usdt/in?shop=1&x=y",
        addresses=(PUBLIC_V4, PUBLIC_V6),
    )
    assert target.host_header == "hooks.shop.example:8443"
    assert calls == [("hooks.shop.example", 8443)]
    default = check_url("https://hooks.shop.example", resolve=resolver(PUBLIC_V4))
    assert (default.port, default.path_and_query, default.host_header) == (443, "/", "hooks.shop.example")


def test_a_literal_public_ip_passes_without_a_lookup() -> None:
    calls: list[tuple[str, int]] = []
    target = check_url(f"https://[{PUBLIC_V6}]:444/h", allowed_ports={444}, resolve=resolver(calls=calls))
    assert target.addresses == (PUBLIC_V6,) and target.host == PUBLIC_V6
    assert target.host_header == f"[{PUBLIC_V6}]:444"
    assert calls == []


def test_every_resolved_address_must_be_public() -> None:
    message = refused(
        "https://hooks.shop.example/", "URL_NOT_PUBLIC", resolve=resolver(PUBLIC_V4, PUBLIC_V6, "10.0.0.5")
    )
    assert message == "resolves to 10.0.0.5, a private address"
    message = refused("https://hooks.shop.example/", "URL_NOT_PUBLIC", resolve=resolver("fd00::1", PUBLIC_V4))
    assert message == "resolves to fd00::1, a private (unique local) address"


def test_localhost_really_resolves_and_is_refused_unless_loopback_is_allowed() -> None:
    message = refused("https://localhost/h", "URL_NOT_PUBLIC", resolve=default_resolve)
    assert message.startswith("resolves to ") and message.endswith(", a loopback address")
    target = check_url("http://localhost:8787/h", allow_loopback=True)
    assert target.addresses and set(target.addresses) <= {"127.0.0.1", "::1"}
    assert (target.scheme, target.port, target.host_header) == ("http", 8787, "localhost:8787")


def test_loopback_literals_pass_only_in_local_mode() -> None:
    for url in ("http://127.0.0.1:9000/h", "https://[::1]/h", "http://127.3.2.1/h"):
        assert check_url(url, allow_loopback=True).addresses
        refused(url.replace("http://", "https://"), "URL_NOT_PUBLIC")
    # Local mode allows loopback only, nothing else that is not public.
    refused("http://10.0.0.5/h", "URL_NOT_PUBLIC", allow_loopback=True)
    refused("http://169.254.169.254/latest/meta-data/", "URL_NOT_PUBLIC", allow_loopback=True)
    refused("http://h.example/", "URL_NOT_PUBLIC", allow_loopback=True, resolve=resolver("127.0.0.1", "10.1.1.1"))


# IPv6 forms that embed an IPv4 address a receiver may not be at: 6to4 (2002::/16), NAT64
# (64:ff9b::/96) and IPv4-mapped, of loopback and of private addresses.
EMBEDDED = [
    ("2002:7f00:1::", "a 6to4 address embedding 127.0.0.1, a loopback address"),
    ("2002:7f00:1::1", "a 6to4 address embedding 127.0.0.1, a loopback address"),
    ("2002:7f12:3456::9", "a 6to4 address embedding 127.18.52.86, a loopback address"),
    ("64:ff9b::7f00:1", "a NAT64 address embedding 127.0.0.1, a loopback address"),
    ("::ffff:127.0.0.1", "an IPv4-mapped address embedding 127.0.0.1, a loopback address"),
    ("2002:a00:1::", "a 6to4 address embedding 10.0.0.1, a private address"),
    ("64:ff9b::c0a8:101", "a NAT64 address embedding 192.168.1.1, a private address"),
    ("::ffff:172.16.0.1", "an IPv4-mapped address embedding 172.16.0.1, a private address"),
]


@pytest.mark.parametrize(("address", "reason"), EMBEDDED)
@pytest.mark.parametrize("local_mode", [False, True], ids=["deployed", "local"])
def test_an_address_embedding_loopback_or_private_ipv4_is_judged_by_what_it_embeds(
    address: str, reason: str, local_mode: bool
) -> None:
    # Given the guard deployed, or in local mode (which allows genuine loopback: 127.0.0.0/8 and ::1)
    scheme = "http" if local_mode else "https"
    # When a URL names such an address, or its host resolves to one
    literal = refused(f"{scheme}://[{address}]/h", "URL_NOT_PUBLIC", allow_loopback=local_mode)
    resolved = refused(f"{scheme}://h.example/", "URL_NOT_PUBLIC", allow_loopback=local_mode, resolve=resolver(address))
    # Then it is refused, as what it embeds: never taken for loopback
    assert literal == f"{IPv6Address(address).compressed} is {reason}"  # a literal is named in its compressed form
    assert resolved == f"resolves to {address}, {reason}"


def test_local_mode_allows_genuine_loopback_only() -> None:
    # Given local mode
    # When URLs name 127.0.0.0/8 or ::1, or a name resolves to them
    for url, answers in [
        ("http://127.0.0.1:8787/h", ()),
        ("http://127.255.1.2/h", ()),
        ("http://[::1]:8787/h", ()),
        ("http://receiver.local/h", ("127.0.0.1", "::1")),
    ]:
        target = check_url(url, allow_loopback=True, resolve=resolver(*answers))
        # Then they pass, to exactly those addresses
        assert set(target.addresses) <= {"127.0.0.1", "127.255.1.2", "::1"}, url


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.shop.example/",
        "ftp://hooks.shop.example/",
        "file:///etc/passwd",
        "gopher://hooks.shop.example/",
        "javascript:alert(1)",
        "hooks.shop.example/x",
    ],
)
def test_only_https_is_allowed(url: str) -> None:
    assert refused(url, "URL_SCHEME") == "the URL must use https"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@hooks.shop.example/",
        "https://user@hooks.shop.example/",
        "https://:@hooks.shop.example/",
        "https://hooks.shop.example@10.0.0.1/",
    ],
)
def test_credentials_are_refused(url: str) -> None:
    assert refused(url, "URL_CREDENTIALS") == "the URL must not contain credentials"


@pytest.mark.parametrize("url", ["https:///path", "https://", "https://:443/", "https:/path"])
def test_a_url_without_a_host_is_refused(url: str) -> None:
    refused(url, "URL_NO_HOST")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.shop.example:0/",
        "https://hooks.shop.example:65536/",
        "https://hooks.shop.example:99999/",
        "https://hooks.shop.example:-1/",
        "https://hooks.shop.example:https/",
    ],
)
def test_a_port_outside_1_to_65535_is_refused(url: str) -> None:
    refused(url, "URL_PORT")
    every_port = range(1, 65536)
    assert (
        check_url("https://hooks.shop.example:65535/", allowed_ports=every_port, resolve=resolver(PUBLIC_V4)).port
        == 65535
    )
    assert check_url("https://hooks.shop.example:1/", allowed_ports=every_port, resolve=resolver(PUBLIC_V4)).port == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.shop.example:8443/h",
        "https://hooks.shop.example:22/h",
        "https://hooks.shop.example:80/h",
        "https://hooks.shop.example:6379/h",
        "https://93.184.215.14:25/h",
        f"https://[{PUBLIC_V6}]:3306/h",
        "https://internal.shop.example:8080/h",
    ],
)
def test_only_the_usual_web_port_is_allowed_by_default(url: str) -> None:
    # Given a public host (or one that would resolve privately) on another port than 443
    calls: list[tuple[str, int]] = []
    # When the URL is checked
    message = refused(url, "URL_PORT_NOT_ALLOWED", resolve=resolver(PUBLIC_V4, calls=calls))
    # Then it is refused for its port, before any lookup: no port of any host can be probed
    assert message.startswith("port ") and message.endswith(" is not allowed; webhook URLs may use port 443")
    assert calls == []


def test_the_allowed_ports_are_configurable() -> None:
    # Given a policy of 443 and 8443
    ports = {443, 8443}
    # When URLs on those ports and on another are checked
    assert check_url("https://hooks.shop.example:8443/h", allowed_ports=ports, resolve=resolver(PUBLIC_V4)).port == 8443
    assert check_url("https://hooks.shop.example/h", allowed_ports=ports, resolve=resolver(PUBLIC_V4)).port == 443
    message = refused("https://hooks.shop.example:9443/h", "URL_PORT_NOT_ALLOWED", allowed_ports=ports)
    # Then only those pass, and the refusal names them
    assert message == "port 9443 is not allowed; webhook URLs may use ports 443, 8443"


def test_local_mode_allows_port_80_for_http_and_any_port_on_loopback_only() -> None:
    # Given local mode (http allowed)
    public = resolver(PUBLIC_V4)
    # When http URLs name a public host on 80 and on 8080, and loopback on any port
    assert check_url("http://hooks.shop.example/h", allow_loopback=True, resolve=public).port == 80
    message = refused("http://hooks.shop.example:8080/h", "URL_PORT_NOT_ALLOWED", allow_loopback=True, resolve=public)
    assert check_url("http://127.0.0.1:8080/h", allow_loopback=True).port == 8080
    assert check_url("http://dev.local:9000/h", allow_loopback=True, resolve=resolver("127.0.0.1", "::1")).port == 9000
    mixed = refused(
        "http://dev.local:9000/h", "URL_PORT_NOT_ALLOWED", allow_loopback=True, resolve=resolver("127.0.0.1", PUBLIC_V4)
    )
    # Then the public host gets 80 (and 443), and only a host that is all loopback any port
    assert message == mixed.replace("9000", "8080") == "port 8080 is not allowed; webhook URLs may use ports 80, 443"


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    assert refused("https://nowhere.invalid/", "URL_UNRESOLVABLE", resolve=fails) == "nowhere.invalid does not resolve"
    refused("https://nowhere.invalid/", "URL_UNRESOLVABLE", resolve=resolver())
    refused("https://nowhere.invalid/", "URL_UNRESOLVABLE", resolve=default_resolve)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.shop.example/a b",
        "https://hooks.shop.example/\r\nHost: x",
        "https://hooks.shop.example/\x00",
        "https://hooks.shop.example/caf\u00e9",
        "https://hooks..example/",
        "https://hooks.shop.example%2F@x/",
        "https://[not-an-ip]/",
        "https://[93.184.215.14]/",
        "https://" + "a" * 64 + ".example/",
        "https://hooks.shop.example/" + "a" * 2100,
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl) as caught:
        check_url(url, resolve=resolver(PUBLIC_V4))
    assert caught.value.code in {"URL_INVALID", "URL_CREDENTIALS"}


@pytest.mark.parametrize(
    "url",
    [
        'https://"onerror=alert(1)//',
        "https://shop'.example/h",
        "https://sh<op>.example/h",
        "https://sho,p.example/h",
        "https://ex%61mple.com/h",
        "https://-shop.example/h",
        "https://shop-.example/h",
        "https://shop..example/h",
        "https://[v1.shop.example]/h",
        "https://[2606:4700::1%25eth0]/h",
        "https://[2606:4700::1%eth0]/h",
        "https://[::1]x/h",
        "https://2130706433/h",
        "https://0x5db8d70e/h",
        "https://93.184.0xd7.14/h",
        "https://93.184.215/h",
        "https://93.184.215.14.1/h",
        "https://093.184.215.14/h",
        "https://shop.example.123/h",
        "https://shop.example.0x1f/h",
        "https://" + "a." * 127 + "example/h",
    ],
)
def test_a_host_outside_the_host_grammar_is_refused(url: str) -> None:
    # Given a resolver that would answer a public address for any name
    calls: list[tuple[str, int]] = []
    # When the host is not a DNS host name, a dotted-quad IPv4 address or a bracketed IPv6 address
    message = refused(url, "URL_INVALID", resolve=resolver(PUBLIC_V4, calls=calls))
    # Then it is refused before any lookup, saying so
    assert message == "the URL's host is not a valid host name or IP address"
    assert calls == []


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://Hooks.Shop.Example./h", "hooks.shop.example."),
        ("https://hooks_1.shop.example/h", "hooks_1.shop.example"),
        ("https://93.184.215.14/h", "93.184.215.14"),
        ("https://[2606:4700::1]/h", "2606:4700::1"),
        ("https://[::FFFF:93.184.215.14]/h", "::ffff:5db8:d70e"),
        ("https://shop.example.com2/h", "shop.example.com2"),
    ],
)
def test_host_names_and_ip_literals_pass(url: str, host: str) -> None:
    # Given a host name or an IP literal, When it is checked, Then its host is read in lower-case ASCII
    assert check_url(url, resolve=resolver(PUBLIC_V4)).host == host


def test_an_internationalised_host_is_looked_up_in_its_ascii_form() -> None:
    calls: list[tuple[str, int]] = []
    target = check_url("https://b\u00fccher.example/h", resolve=resolver(PUBLIC_V4, calls=calls))
    assert target.host == "xn--bcher-kva.example"
    assert calls == [("xn--bcher-kva.example", 443)]


def test_messages_never_quote_the_url() -> None:
    message = refused("https://hooks.shop.example/h?token=s3cret", "URL_NOT_PUBLIC", resolve=resolver("10.0.0.5"))
    assert "s3cret" not in message and "hooks.shop.example" not in message
