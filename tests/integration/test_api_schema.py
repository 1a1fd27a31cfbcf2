"""The API against its document, docs/openapi.json, with schemathesis: requests made from the
document's schemas (valid and invalid ones), each private one signed with the test merchant's key
(Signature-V2, over exactly what is sent), reach the handler as API Gateway would hand them over.
No answer is a 5xx, and every answer is one the document gives for that operation: its status,
content type and body schema; a request the schemas allow is refused (400) only for one of the
rules the document lists for the operation (`x-rule-codes`); one they forbid is refused.

Bounded and deterministic: a fixed number of examples per operation, derandomized."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import schemathesis
from schemathesis.checks import CheckContext
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from devstack.template import REPO_ROOT
from tests.integration.apiclient import v1_signature, v1_signature_of_body, v2_signature
from tests.integration.conftest import FakeDns, Merchant, new_merchant
from tests.integration.lambda_http import invoke

AnyCase = schemathesis.Case[Any]  # a case of any operation
DOCUMENT = REPO_ROOT / "docs" / "openapi.json"
OPERATIONS = json.loads(DOCUMENT.read_text())["paths"]
EXAMPLES = 20  # per operation and phase: the whole run stays within tens of seconds

schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none")

DECLARED_HEADERS = {
    "api-key",
    "request-time",
    "signature-v1",
    "signature-v2",
    "recv-window",
    "request-nonce",
    "content-type",
}


class Clock:
    """The gateway's clock: the time each request was signed at, so no receive window (even 1 ms)
    makes the answer depend on how long the handler took."""

    ms = 0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture(scope="module")
def shop(gateway_env: dict[str, str]) -> Iterator[tuple[Merchant, Clock]]:
    """A merchant whose key is never rate limited, no URL that resolves (webhook URLs are refused
    before anything is sent), and the stopped clock."""
    from usdt_gateway.webhooks import endpoints

    clock = Clock()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(endpoints, "resolver", FakeDns())
        mp.setattr("usdt_gateway.clock.now_ms", clock)
        yield new_merchant(rate_limit=10**9), clock


def _sign(
    headers: dict[str, str], merchant: Merchant, clock: Clock, method: str, path: str, query: str, body: bytes
) -> dict[str, str]:
    """The credentials the case carries, made real: the merchant's key, the time, and a signature of
    the version the case chose over exactly what is sent. A credential the case leaves out (to see
    it refused) stays out."""
    clock.ms = int(time.time() * 1000)
    ts = str(clock.ms)
    present = {name.lower(): name for name in headers}
    signed = dict(headers)
    if "api-key" in present:
        signed[present["api-key"]] = merchant.api_key
    if "request-time" in present:
        signed[present["request-time"]] = ts
    if "signature-v2" in present:
        signed[present["signature-v2"]] = v2_signature(
            merchant.secret,
            ts,
            method,
            path,
            parse_qsl(query, keep_blank_values=True),
            body,
            recv_window=headers.get(present.get("recv-window", "")),
            request_nonce=headers.get(present.get("request-nonce", "")),
        )
    if "signature-v1" in present:
        with contextlib.suppress(ValueError):  # not JSON: nothing a V1 client could sign
            signed[present["signature-v1"]] = (
                v1_signature_of_body(merchant.secret, ts, body)
                if body.strip()
                else v1_signature(merchant.secret, ts, "")
            )
    return signed


def positive_data_is_accepted_unless_a_listed_rule_refuses_it(
    ctx: CheckContext, response: schemathesis.Response, case: AnyCase
) -> bool | None:
    """positive_data_acceptance, except for a 400 whose code the operation lists as a rule its
    schemas cannot express (which networks are enabled, what a URL resolves to...)."""
    if case.meta is not None and case.meta.generation.mode.is_positive and response.status_code == 400:
        rules = OPERATIONS[case.path][case.method.lower()]["responses"]["400"].get("x-rule-codes", [])
        if json.loads(response.content).get("code") in rules:
            return None
    return positive_data_acceptance(ctx, response, case)


def negative_data_is_refused(ctx: CheckContext, response: schemathesis.Response, case: AnyCase) -> bool | None:
    """negative_data_rejection, with 413 and 415 counted as the refusals they are, and except for a
    header the document does not declare: servers ignore those (API Gateway adds its own), while
    unknown fields and query parameters are refused."""
    if response.status_code in (413, 415) or {name.lower() for name in case.headers or {}} - DECLARED_HEADERS:
        return None
    return negative_data_rejection(ctx, response, case)


@schema.parametrize()
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: AnyCase, handler: object, shop: tuple[Merchant, Clock]
) -> None:
    merchant, clock = shop
    if case.method.lower() not in OPERATIONS[case.path]:
        return  # a method the document does not declare: API Gateway answers it, the function never runs
    # Given a request made from the document, as a client would send it, signed by the merchant
    sent = requests.Request(**case.as_transport_kwargs(base_url="http://127.0.0.1:3000")).prepare()
    url = urlsplit(sent.url or "")
    body = sent.body.encode() if isinstance(sent.body, str) else sent.body or b""
    headers = _sign(dict(sent.headers), merchant, clock, case.method, url.path, url.query, body)
    # When the handler answers it
    answer = invoke(handler, case.method, url.path, url.query, list(headers.items()), body)
    assert answer is not None, f"{case.method} {url.path} matches no route of the template"
    sent.headers.update(headers)
    response = schemathesis.Response(
        status_code=answer.status, headers=answer.headers, content=answer.body, request=sent, elapsed=0.0, verify=False
    )
    # Then it is no 5xx, and it is what the document says of the operation
    case.validate_response(
        response,
        # API Gateway answers an undeclared method before the function runs; ignored_auth calls a live
        # server (tests/integration/test_auth.py checks every refusal of credentials).
        excluded_checks=[unsupported_method, ignored_auth, positive_data_acceptance, negative_data_rejection],
        additional_checks=[positive_data_is_accepted_unless_a_listed_rule_refuses_it, negative_data_is_refused],
    )
