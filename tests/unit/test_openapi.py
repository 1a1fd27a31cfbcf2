"""The committed OpenAPI document and its rendering are what the code generates, and valid."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from usdt_gateway.api import openapi
from usdt_gateway.api.app import ROUTES


def test_committed_openapi_is_current() -> None:
    # Given the documents generated from the routes and schemas now
    generated = openapi.rendered()
    # Then the committed files equal them (run `make openapi` after changing the API)
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.name} is stale: run `make openapi`"


def test_openapi_is_valid_and_complete() -> None:
    # Given the generated document
    doc = openapi.build()
    # Then it is a valid OpenAPI 3.1 document with one operation per registered route
    validate(doc)
    operations = [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]
    assert sorted(operations) == sorted((spec.method, spec.path) for spec in ROUTES)
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
