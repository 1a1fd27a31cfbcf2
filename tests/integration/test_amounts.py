"""Amounts the operator configures, as the API shows and applies them: network bounds written in
plain notation, and the underpayment tolerance an order is created with."""

from __future__ import annotations

import pytest

from tests.integration.apiclient import ApiClient

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
