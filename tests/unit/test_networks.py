"""The network registry at cold start: what NETWORKS_CONFIG may and may not configure."""

from __future__ import annotations

import json

import pytest

from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address
from usdt_gateway.networks import BUILTIN, NetworkConfigError, load_networks


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


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_each_built_in_contract_is_written_in_its_normalized_form(name: str) -> None:
    # Given a built-in network (whose contract is taken as written at every cold start, without
    # recomputing its EIP-55 checksum)
    entry = BUILTIN[name]
    contract = str(entry["tokenContract"])
    # When its contract is normalized as an operator's would be, Then it is unchanged
    normalize = normalize_tron_address if entry["family"] == "tron" else normalize_evm_address
    assert normalize(contract) == contract


def test_an_overridden_contract_is_still_validated_and_checksummed() -> None:
    # Given an operator's contract for a built-in network: one all lowercase, one with a wrong checksum
    lower = "0x55d398326f99059ff775485246999027b3197955"
    # When the networks are loaded, Then the first comes back in EIP-55 form
    bsc = load_networks("bsc", json.dumps({"bsc": {"tokenContract": lower}}))["bsc"]
    assert bsc.token_contract == "0x55d398326f99059fF775485246999027B3197955"
    # And the second is refused
    with pytest.raises(NetworkConfigError, match="checksum"):
        load_networks("bsc", json.dumps({"bsc": {"tokenContract": "0x55D398326f99059fF775485246999027B3197955"}}))
    # And another family's built-in contract is not taken as written
    with pytest.raises(NetworkConfigError):
        load_networks("eth", json.dumps({"eth": {"tokenContract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"}}))


def test_second_source_above_is_off_by_default_and_read_in_base_units() -> None:
    # Given eth left alone and bsc (18 decimals) told to hold deposits above 1000.5 USDT for a second source
    nets = load_networks("eth,bsc", json.dumps({"bsc": {"secondSourceAbove": "1000.5"}}))
    # Then eth credits on its endpoints alone, and bsc's threshold is exact in base units
    assert nets["eth"].second_source_above_units is None
    assert nets["bsc"].second_source_above_units == 1000_500_000_000_000_000_000


@pytest.mark.parametrize(("value", "why"), [("-1", "greater than or equal to 0"), ("0.0000001", "finer than")])
def test_a_second_source_threshold_the_token_cannot_hold_is_refused(value: str, why: str) -> None:
    with pytest.raises(NetworkConfigError) as err:
        load_networks("eth", json.dumps({"eth": {"secondSourceAbove": value}}))
    assert "eth" in str(err.value) and why in str(err.value)
