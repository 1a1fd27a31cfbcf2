"""Amounts the operator configures, as the API shows and applies them: network bounds written in
plain notation, and the underpayment tolerance an order is created with."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import Merchant

pytestmark = pytest.mark.usefixtures("dns")


def test_network_bounds_are_shown_without_an_exponent(api: ApiClient, settings_env: pytest.MonkeyPatch) -> None:
    from usdt_gateway import config

    # Given BSC bounds configured as JSON numbers whose str() uses an exponent: 1E-7 and 1E+6
    settings_env.setenv("NETWORKS_CONFIG", '{"bsc": {"minAmount": 0.0000001, "maxAmount": 1E+6}}')
    config.reset()
    # When the networks are listed and an order above the maximum is created
    listed = api.request("GET", "/v1/networks", sign="none")
    too_big = api.create(network="bsc", amount="2000000")
    # Then both bounds read in plain notation, in the listing and in the refusal
    bsc = next(n for n in listed.body["networks"] if n["network"] == "bsc")
    assert (bsc["minAmount"], bsc["maxAmount"]) == ("0.0000001", "1000000")
    assert (too_big.status, too_big.body["code"]) == (400, "AMOUNT_OUT_OF_RANGE")
    assert "between 0.0000001 and 1000000 USDT" in too_big.body["message"]


def _settled_status(order_item: dict[str, Any], paid_units: int) -> str:
    """The status the order's own lifecycle gives it once `paid_units` are final."""
    from dataclasses import replace

    from usdt_gateway.lifecycle import settle
    from usdt_gateway.records import Order, OrderDeposit

    order = Order.from_item(order_item)
    deposit = OrderDeposit(
        txid="0xpaid",
        log_index=0,
        units=paid_units,
        block_number=1,
        block_hash=None,
        block_time=order.expires_at - 1,
        sender="T",
        final=True,
    )
    return settle(replace(order, deposits={deposit.key: deposit})).status.value


def test_the_tolerance_is_bounded_by_a_share_of_the_order(
    api: ApiClient, merchant: Merchant, settings_env: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import config, store

    # Given an absolute tolerance of 0.009 USDT and the default relative bound (1 %)
    settings_env.setenv("UNDERPAYMENT_TOLERANCE", "0.009")
    config.reset()
    # When a 0.50 and a 50.00 order are created on Ethereum (6 decimals)
    small, large = api.create(network="eth", amount="0.50"), api.create(network="eth", amount="50.00")
    small_item = store.get(*store.order_key(merchant.merchant_id, small.body["orderId"])) or {}
    large_item = store.get(*store.order_key(merchant.merchant_id, large.body["orderId"])) or {}
    # Then the small order tolerates 1 % of itself (0.005), the large one the absolute 0.009
    assert (small.status, large.status) == (201, 201)
    assert (small_item["toleranceUnits"], large_item["toleranceUnits"]) == (5_000, 9_000)
    # And 0.495 confirms the 0.50 order while 0.491 (0.009 short) leaves it underpaid
    assert _settled_status(small_item, 495_000) == "confirmed"
    assert _settled_status(small_item, 491_000) == "underpaid"
    assert _settled_status(large_item, 49_991_000) == "confirmed"


def test_no_relative_tolerance_means_none_at_all(
    api: ApiClient, merchant: Merchant, settings_env: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import config, store

    # Given an absolute tolerance but a relative bound of 0 %
    settings_env.setenv("UNDERPAYMENT_TOLERANCE", "0.009")
    settings_env.setenv("UNDERPAYMENT_TOLERANCE_PERCENT", "0")
    config.reset()
    # When an order is created
    reply = api.create(network="tron", amount="20.00")
    item = store.get(*store.order_key(merchant.merchant_id, reply.body["orderId"])) or {}
    # Then it must be paid in full
    assert reply.status == 201 and item["toleranceUnits"] == 0
    assert _settled_status(item, 19_999_999) == "underpaid"
