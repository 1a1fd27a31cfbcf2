"""The committed OpenAPI document and its rendering are what the code generates, and valid."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from usdt_gateway.api import openapi


def test_committed_openapi_is_current() -> None:
    # Given the documents generated from the routes and schemas now
    generated = openapi.rendered()
    # Then the committed files equal them (run `make openapi` after changing the API)
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.name} is stale: run `make openapi`"


def test_openapi_is_valid_and_complete() -> None:
    # Given the generated document
    doc = openapi.build()
    # Then it is a valid OpenAPI 3.1 document with every route of the contract
    validate(doc)
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert operations == {
        ("POST", "/v1/payment/order"),
        ("GET", "/v1/payment/order/{orderId}"),
        ("GET", "/v1/payment/orders"),
        ("POST", "/v1/payment/order/{orderId}/cancel"),
        ("GET", "/v1/networks"),
        ("GET", "/v1/public/orders/{publicId}"),
        ("GET", "/v1/deposits"),
        ("POST", "/v1/deposits/{depositId}/attach"),
        ("GET", "/v1/webhooks/deliveries"),
        ("POST", "/v1/webhooks/deliveries/{deliveryId}/resend"),
        ("POST", "/v1/webhooks/test"),
        ("GET", "/v1/webhooks/endpoint"),
        ("PUT", "/v1/webhooks/endpoint"),
    }
    create = doc["paths"]["/v1/payment/order"]["post"]
    assert {"201", "200", "400", "401", "403", "409", "413", "415", "418", "429"} <= set(create["responses"])
    order = doc["components"]["schemas"]["OrderView"]["properties"]
    for field in (
        "orderId",
        "network",
        "currency",
        "amount",
        "address",
        "paymentUrl",
        "qrCodeData",
        "paymentUri",
        "expiresAt",
        "status",
        "createdAt",
        "paidAmount",
        "txid",
        "confirmedAt",
        "deposits",
    ):
        assert field in order
    assert json.dumps(doc)  # serializable as committed
