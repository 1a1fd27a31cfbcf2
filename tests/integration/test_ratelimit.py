"""Rate limits are counted atomically in DynamoDB: 429 with Retry-After over the limit, 418
for a caller that keeps hammering while limited, per key for private and per IP for public."""

from __future__ import annotations

import secrets

import pytest

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import new_merchant

# The limit is per wall-clock minute: the gateway's clock stands still 30 s into one
# (tests/fake_clock.py), so a test never straddles two windows.
pytestmark = pytest.mark.usefixtures("fake_clock")


def test_key_limit_then_block(handler: object, settings_env: pytest.MonkeyPatch) -> None:
    from usdt_gateway import config

    # Given a key limited to 3 requests a minute, blocked after 2 more while limited
    settings_env.setenv("RATE_LIMIT_BLOCK_AFTER", "2")
    settings_env.setenv("RATE_LIMIT_BLOCK_SECONDS", "300")
    config.reset()
    m = new_merchant(rate_limit=3)
    client = ApiClient(handler, m.api_key, m.secret)
    # When it sends 7 requests in a row
    replies = [client.request("GET", "/v1/payment/orders") for _ in range(7)]
    # Then 3 pass, 2 are limited with Retry-After, and then the key is blocked
    assert [r.status for r in replies] == [200, 200, 200, 429, 429, 418, 418]
    limited, blocked = replies[3], replies[5]
    assert limited.body["code"] == "RATE_LIMITED" and 1 <= int(limited.headers["retry-after"]) <= 60
    assert blocked.body["code"] == "TEMPORARILY_BLOCKED" and int(blocked.headers["retry-after"]) == 300
    assert 295 <= int(replies[6].headers["retry-after"]) <= 300


def test_limit_is_per_key(handler: object) -> None:
    # Given two keys with a limit of 2 each
    a, b = new_merchant(rate_limit=2), new_merchant(rate_limit=2)
    ca, cb = ApiClient(handler, a.api_key, a.secret), ApiClient(handler, b.api_key, b.secret)
    # When the first exhausts its limit
    first = [ca.request("GET", "/v1/payment/orders").status for _ in range(3)]
    # Then the second is unaffected
    assert first == [200, 200, 429]
    assert cb.request("GET", "/v1/payment/orders").status == 200


def test_bad_signatures_are_not_counted(handler: object) -> None:
    # Given a key limited to 2 requests
    m = new_merchant(rate_limit=2)
    # When 5 requests with a wrong secret arrive first
    forged = [ApiClient(handler, m.api_key, "sk_wrong").request("GET", "/v1/payment/orders").status for _ in range(5)]
    # Then they are refused without using up the merchant's quota
    assert forged == [401] * 5
    assert ApiClient(handler, m.api_key, m.secret).request("GET", "/v1/payment/orders").status == 200


def test_public_endpoints_limited_per_ip(handler: object, settings_env: pytest.MonkeyPatch) -> None:
    from usdt_gateway import config

    # Given a public limit of 3 per minute per source IP
    settings_env.setenv("PUBLIC_RATE_LIMIT_PER_MINUTE", "3")
    config.reset()
    one = ApiClient(handler, source_ip=f"198.51.100.{secrets.randbelow(200) + 1}")
    other = ApiClient(handler, source_ip="192.0.2.99")
    # When one address sends 4 requests
    statuses = [one.request("GET", "/v1/networks", sign="none").status for _ in range(4)]
    # Then the 4th is limited, and another address is not
    assert statuses == [200, 200, 200, 429]
    assert other.request("GET", "/v1/networks", sign="none").status == 200


def test_order_status_counts_per_page_so_payers_sharing_an_ip_are_served(
    handler: object, api: ApiClient, settings_env: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import config

    # Given low limits: 3 status reads a minute per (IP, order), 10 per IP over all orders, 3 per
    # IP on the other public endpoints, and a block after 2 requests over a limit
    for name, value in {
        "PUBLIC_ORDER_RATE_LIMIT_PER_MINUTE": "3",
        "PUBLIC_ORDER_IP_RATE_LIMIT_PER_MINUTE": "10",
        "PUBLIC_RATE_LIMIT_PER_MINUTE": "3",
        "RATE_LIMIT_BLOCK_AFTER": "2",
    }.items():
        settings_env.setenv(name, value)
    config.reset()
    orders = [api.create(network="tron").body["publicId"] for _ in range(5)]
    nat = ApiClient(handler, source_ip=f"198.51.100.{secrets.randbelow(50) + 201}")

    def status(public_id: str, client: ApiClient = nat) -> int:
        return client.request("GET", f"/v1/public/orders/{public_id}", sign="none").status

    # When three payers behind one shared address (one NAT) poll their own orders 3 times each
    first = [status(p) for _ in range(3) for p in orders[:3]]
    # Then every read is answered: each page has its own allowance
    assert first == [200] * 9
    # When one page polls once more than its allowance
    extra = nat.request("GET", f"/v1/public/orders/{orders[0]}", sign="none")
    # Then that page alone waits, told how long (and it did not use up the address's cap)
    assert extra.status == 429 and extra.body["code"] == "RATE_LIMITED"
    assert 1 <= int(extra.headers["retry-after"]) <= 60
    assert status(orders[3]) == 200  # the address's 10th read
    # And past the address's cap every further read is a 429, however many arrive: never a 418 block
    assert [status(p) for p in (orders[4], orders[1], orders[4], orders[0], orders[4], orders[4])] == [429] * 6
    # And ids made up to dodge the per-page count still count against the address
    assert status("made-up-id-1") == 429
    # And another address is not affected, nor the address's allowance on the other public endpoints
    other = ApiClient(handler, source_ip="192.0.2.98")
    assert status(orders[0], other) == 200
    assert nat.request("GET", "/v1/networks", sign="none").status == 200
