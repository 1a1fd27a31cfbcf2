"""What a request can make the gateway ask of DynamoDB: ids from the path are checked before
they become keys (DynamoDB refuses a partition key over 2,048 bytes with an error, which would be
a 500)."""

from __future__ import annotations

import pytest

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import table_item_count
from tests.integration.webhooks import DELIVERIES

LONG = "o" * 2100  # a partition key made of it would be over DynamoDB's 2,048 bytes

pytestmark = pytest.mark.usefixtures("dns")


# --- ids in the path ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "code", "name"), [
    ("GET", f"/v1/payment/order/{LONG}", "INVALID_ORDER_ID", "orderId"),
    ("POST", f"/v1/payment/order/{LONG}/cancel", "INVALID_ORDER_ID", "orderId"),
    ("GET", "/v1/payment/order/caf\u00e9", "INVALID_ORDER_ID", "orderId"),
    ("POST", f"{DELIVERIES}/evt_{LONG}/resend", "INVALID_DELIVERY_ID", "deliveryId"),
    ("POST", f"/v1/deposits/tron:{LONG}:0/attach", "INVALID_DEPOSIT_ID", "depositId"),
])
def test_an_id_that_cannot_exist_is_refused_before_any_read(api: ApiClient, method: str, path: str, code: str,
                                                            name: str) -> None:
    # Given an id in the path no order, delivery or deposit can have (too long, or characters
    # no id is made of)
    count = table_item_count()
    # When it is asked for
    reply = api.request(method, path, {"orderId": "o-1"} if path.endswith("/attach") else None)
    # Then it is a 400 naming the id, no key is made of it (the limit checker would fail the test)
    # and nothing is written
    assert (reply.status, reply.body["code"]) == (400, code), reply.body
    assert reply.body["message"].startswith(f"{name} must")
    assert table_item_count() == count


def test_a_public_id_that_cannot_exist_is_not_found_without_a_read(handler: object) -> None:
    # Given a public id far over any key limit
    # When a payer's page asks for it
    reply = ApiClient(handler).request("GET", f"/v1/public/orders/{LONG}", sign="none")
    # Then it is the page's ordinary 404, and no key was made of it
    assert (reply.status, reply.body["code"]) == (404, "ORDER_NOT_FOUND")
