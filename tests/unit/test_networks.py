"""The network registry at cold start: what NETWORKS_CONFIG may and may not configure."""

from __future__ import annotations

import json

import pytest

from usdt_gateway.networks import NetworkConfigError, load_networks


def test_amounts_in_base_units_must_fit_dynamodb_numbers() -> None:
    # Given an 18-decimal token whose maxAmount has 21 integer digits: 39 digits in base units,
    # one more than a DynamoDB number holds
    overrides = json.dumps({"bsc": {"maxAmount": "100000000000000000000"}})
    # When the networks are loaded
    with pytest.raises(NetworkConfigError) as err:
        load_networks("bsc", overrides)
    # Then it is refused at cold start, naming the network, both settings and the limit
    message = str(err.value)
    assert "bsc" in message and "maxAmount" in message and "decimals" in message and "38" in message


def test_the_largest_amount_that_fits_is_accepted() -> None:
    # Given 18 decimals and a maxAmount of 20 integer digits: 38 digits in base units
    overrides = json.dumps({"bsc": {"maxAmount": "99999999999999999999"}})
    # When the networks are loaded, Then bsc is enabled with that bound
    assert str(load_networks("bsc", overrides)["bsc"].max_amount) == "99999999999999999999"


def test_amounts_in_networks_config_are_read_exactly() -> None:
    # Given bounds written as JSON numbers, one that a float cannot hold exactly
    overrides = '{"eth": {"minAmount": 0.000001, "maxAmount": 12345678901234567.000001}}'
    # When the networks are loaded
    eth = load_networks("eth", overrides)["eth"]
    # Then each bound keeps every digit it was written with, never through a float
    assert (eth.min_amount.as_tuple().digits, eth.min_amount.as_tuple().exponent) == ((1,), -6)
    assert format(eth.max_amount, "f") == "12345678901234567.000001"
