"""Nothing an outsider sends is a 5xx: property-based requests to every route, with headers and
bodies anywhere between well-formed and hostile (non-ASCII signatures, bodies nested thousands deep,
numbers with huge exponents, lone surrogates, binary), signed correctly or not. Every answer is a
documented status below 500 with the JSON error shape.

Deterministic (derandomized) and bounded in examples; the gateway's clock is the signing time."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fake_clock import FakeClock
from tests.integration.apiclient import v1_signature, v1_signature_of_body, v2_signature
from tests.integration.conftest import FakeDns, Merchant, new_merchant
from tests.integration.lambda_http import invoke

EXAMPLES = 400


CLOCK = FakeClock(1_800_000_000_000)


@pytest.fixture(scope="module")
def shop(gateway_env: dict[str, str]) -> Iterator[Merchant]:
    """A merchant whose key is never rate limited, no URL that resolves, and the stopped clock."""
    from usdt_gateway.webhooks import endpoints

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(endpoints, "resolver", FakeDns())
        mp.setattr("usdt_gateway.clock.now_ms", CLOCK)
        yield new_merchant(rate_limit=10**9)


def _routes() -> list[tuple[str, str]]:
    from usdt_gateway.api.app import ROUTES

    return [(r.method, r.path) for r in ROUTES]


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=80)
NASTY_SIGNATURES = st.sampled_from(["é" * 64, "\u00ff", "\uff10" * 64, "", " ", "A" * 64, "0" * 63, "0" * 10_000])
SEGMENT = st.one_of(
    st.from_regex(r"[A-Za-z0-9_\-.:]{1,64}", fullmatch=True),
    st.text(max_size=80).map(lambda s: quote(s, safe="")).filter(bool),
    st.just("x" * 3000),
)

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40))
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=12,
)
ORDER_BODY = st.fixed_dictionaries(
    {
        "currency": st.sampled_from(["USDT"] * 5 + ["usdt"]),
        "orderId": st.one_of(*[st.from_regex(r"[A-Za-z0-9_\-.:]{1,64}", fullmatch=True)] * 4, SEGMENT),
        "amount": st.one_of(
            st.text(max_size=30),
            st.decimals(allow_nan=False, allow_infinity=False).map(str),
            st.integers(),
            st.floats(allow_nan=False),
        ),
    },
    optional={
        "network": st.sampled_from(["tron"] * 3 + ["eth", "bsc", "local", "nowhere"]),
        "chainId": st.integers(),
        "expiresIn": st.integers(),
        "metadata": JSON,
        "notifyUrl": st.text(max_size=60),
    },
)
RAW_BODIES = st.sampled_from(
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b"[" * 50_000,
        b'{"amount": 1e999999999, "currency": "USDT", "orderId": "o1", "network": "tron"}',
        b'{"amount": "5", "currency": "USDT", "orderId": "o1", "network": "tron", "metadata": {"k": 1e-999999999}}',
        b'{"amount": 1' + b"0" * 5000 + b', "currency": "USDT", "orderId": "o1", "network": "tron"}',
        b'{"url": "\\ud800"}',
        b'{"orderId": "\\udfff"}',
        b'{"amount": NaN}',
        b'{"enableUrls": [""]}',
        b"\xff\xfe\x00binary",
        b'{"x": 1}' + b" " * 17_000,
        b"null",
        b'"text"',
        b"{}",
    ]
)
URLS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["https://shop.example.com/hook", "http://127.0.0.1/x", "https://[::1]/", "https://a:b@c/", ""]),
)
# What each route reads, so that most bodies get as far as its validation and its domain call.
ROUTE_BODIES = {
    "/v1/payment/order": ORDER_BODY,
    "/v1/deposits/{depositId}/attach": st.fixed_dictionaries({"orderId": SEGMENT}),
    "/v1/webhooks/test": st.fixed_dictionaries({}, optional={"url": URLS}),
    "/v1/webhooks/endpoint": st.fixed_dictionaries(
        {},
        optional={
            "url": st.one_of(st.none(), URLS),
            "enabled": st.one_of(st.none(), st.booleans(), st.integers()),
            "enableUrls": st.one_of(st.none(), st.lists(URLS, max_size=3)),
        },
    ),
}
HOSTILE_BODIES = st.one_of(st.none(), JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200), RAW_BODIES)
QUERY_NAMES = st.sampled_from(
    ["status", "from", "to", "limit", "cursor", "unmatched", "orderId", "type", "outcome", "x", ""]
)


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: bytes
    headers: dict[str, Any]  # values, or a marker of what to sign: "v1", "v2"


@st.composite
def requests_(draw: st.DrawFn) -> Sent:
    # Mostly well-formed around one hostile part, so that most requests get past the envelope to
    # the body and the handler.
    routes = _routes()
    method, template = draw(st.sampled_from(routes + [r for r in routes if r[1] in ROUTE_BODIES] * 2))
    path = re.sub(r"{\w+}", lambda _: draw(SEGMENT), template)
    query = draw(
        st.one_of(
            st.just([]),
            st.just([]),
            st.lists(st.tuples(QUERY_NAMES, st.one_of(HEADER_TEXT, st.integers(-5, 10**14).map(str))), max_size=3),
        )
    )
    suited = ROUTE_BODIES.get(template)
    if suited is not None and draw(st.integers(0, 3)) > 0:
        body: bytes | None = json.dumps(draw(suited)).encode()
    else:
        body = draw(HOSTILE_BODIES)
    headers: dict[str, Any] = {
        "Content-Type": draw(
            st.sampled_from(
                ["application/json"] * 6 + ["text/plain", "application/json; charset=utf-8", "APPLICATION/JSON", ""]
            )
        )
    }
    signing = draw(st.sampled_from(["v2"] * 6 + ["v1"] * 2 + ["garbage", "none"]))
    if signing in ("v1", "v2"):
        headers["API-Key"] = draw(st.sampled_from(["<key>"] * 8 + ["ak_unknown", "ak_é"]))
        headers["Request-Time"] = draw(st.sampled_from(["<now>"] * 8 + ["0", "²", "1" * 30]))
        headers[f"Signature-{signing.upper()}"] = draw(st.one_of(*[st.just(f"<{signing}>")] * 6, NASTY_SIGNATURES))
        if draw(st.integers(0, 4)) == 0:
            headers["Recv-Window"] = draw(st.one_of(st.integers(1, 60_000).map(str), HEADER_TEXT))
        if draw(st.integers(0, 2)) == 0:
            headers["Request-Nonce"] = draw(
                st.one_of(st.from_regex(r"[A-Za-z0-9._~-]{1,64}", fullmatch=True), HEADER_TEXT)
            )
    elif signing == "garbage":
        for name in ("API-Key", "Request-Time", "Signature-V1", "Signature-V2", "Recv-Window", "Request-Nonce"):
            if draw(st.booleans()):
                headers[name] = draw(st.one_of(HEADER_TEXT, NASTY_SIGNATURES))
    return Sent(method, path, query, body or b"", headers)


def _headers(sent: Sent, merchant: Merchant) -> list[tuple[str, str]]:
    """The headers as sent: placeholders made real, a signature over exactly what is sent."""
    ts = str(CLOCK.ms)
    values = {
        k: v.replace("<key>", merchant.api_key).replace("<now>", ts) if isinstance(v, str) else v
        for k, v in sent.headers.items()
    }
    stamp = values.get("Request-Time", ts)
    if values.get("Signature-V2") == "<v2>":
        values["Signature-V2"] = v2_signature(
            merchant.secret,
            stamp,
            sent.method,
            sent.path,
            sent.query,
            sent.body,
            recv_window=values.get("Recv-Window"),
            request_nonce=values.get("Request-Nonce"),
        )
    if values.get("Signature-V1") == "<v1>":
        try:
            values["Signature-V1"] = (
                v1_signature_of_body(merchant.secret, stamp, sent.body)
                if sent.body.strip()
                else v1_signature(merchant.secret, stamp, "")
            )
        except (ValueError, RecursionError):
            values["Signature-V1"] = "0" * 64  # a body no V1 client could sign
    return list(values.items())


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(sent=requests_())
def test_no_request_is_answered_with_a_server_error(sent: Sent, handler: object, shop: Merchant) -> None:
    # Given a request as a client, or anyone, could send it
    CLOCK.ms += 1  # each request is signed at its own millisecond
    query = urlencode(sent.query, quote_via=quote)
    # When the handler answers it
    answer = invoke(handler, sent.method, sent.path, query, _headers(sent, shop), sent.body)
    # Then it is a 4xx (or a 2xx) with a JSON body, never a 5xx
    assert answer is not None
    assert answer.status < 500, (sent, answer)
    body = json.loads(answer.body)
    if answer.status >= 400:
        assert set(body) == {"code", "message"} and body["code"].isupper(), body
