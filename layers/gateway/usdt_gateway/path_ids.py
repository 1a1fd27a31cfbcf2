"""Ids a request names in its path, checked before any of them becomes part of a DynamoDB key.

An id no order, delivery, settlement or refund can have is a 400 that says what an id looks like, and nothing is
read: DynamoDB refuses a key over its size limits (2,048 bytes for a partition key) with an
error, which would be a 500, and a well-formed id that exists nowhere stays a 404.
"""

from __future__ import annotations

import re

from usdt_gateway.errors import InvalidRequest
from usdt_gateway.schemas import ORDER_ID_PATTERN

_ORDER_ID = re.compile(ORDER_ID_PATTERN)  # as an order is created with it
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # an event id: evt_ and URL-safe base64
SETTLEMENT_ID_PATTERN = r"^stl_[0-9a-f]{24}$"  # as settlement/relayer.py makes them
_SETTLEMENT_ID = re.compile(SETTLEMENT_ID_PATTERN)
REFUND_ID_PATTERN = r"^rfd_[0-9a-f]{24}$"  # as settlement/refunds.py makes them
_REFUND_ID = re.compile(REFUND_ID_PATTERN)


def order_id(value: str) -> str:
    if not _ORDER_ID.match(value):
        raise InvalidRequest("orderId must be 1-64 characters of A-Z a-z 0-9 _ - . :", code="INVALID_ORDER_ID")
    return value


def delivery_id(value: str) -> str:
    if not _DELIVERY_ID.match(value):
        raise InvalidRequest(
            "deliveryId must be an event id: up to 64 characters of A-Z a-z 0-9 _ -", code="INVALID_DELIVERY_ID"
        )
    return value


def settlement_id(value: str) -> str:
    if not _SETTLEMENT_ID.match(value):
        raise InvalidRequest("settlementId must be stl_ and 24 lowercase hex digits", code="INVALID_SETTLEMENT_ID")
    return value


def refund_id(value: str) -> str:
    if not _REFUND_ID.match(value):
        raise InvalidRequest("refundId must be rfd_ and 24 lowercase hex digits", code="INVALID_REFUND_ID")
    return value
