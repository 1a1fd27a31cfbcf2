"""Receiving-address configuration as the operator changes it: an xpub's derivation index never
goes back, whatever the switches in between, and a fixed address's amount-tag step must be
representable on every enabled network of its family."""

from __future__ import annotations

import pytest
from bip_utils import Bip44Coins

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import Merchant, account_xpub, new_merchant, table_item_count
from tests.integration.test_orders_api import expected_address, random_evm_address

pytestmark = pytest.mark.usefixtures("dns")


# --- xpub derivation index --------------------------------------------------------------------


def test_switching_to_a_fixed_address_and_back_resumes_the_xpub_index(api: ApiClient, merchant: Merchant) -> None:
    from usdt_gateway import merchants

    # Given two Ethereum orders paid to addresses 0 and 1 of the merchant's EVM xpub
    first, second = api.create(network="eth"), api.create(network="eth")
    # When the operator switches EVM to a fixed address, then back to the same xpub
    merchants.configure_fixed(merchant.merchant_id, "evm", random_evm_address())
    config = merchants.configure_xpub(merchant.merchant_id, "evm", merchant.evm_xpub)
    third = api.create(network="eth")
    # Then derivation resumes at index 2: no address is handed out twice
    assert (first.status, second.status, third.status) == (201, 201, 201)
    assert config["nextIndex"] == 2
    assert third.body["address"] == expected_address(merchant.evm_xpub, Bip44Coins.ETHEREUM, 2)


def test_another_evm_network_after_the_switch_gets_a_fresh_address(api: ApiClient, merchant: Merchant) -> None:
    from usdt_gateway import merchants

    # Given an Ethereum order at address 0 of the xpub, then a switch to a fixed address and back
    eth = api.create(network="eth")
    merchants.configure_fixed(merchant.merchant_id, "evm", random_evm_address())
    merchants.configure_xpub(merchant.merchant_id, "evm", merchant.evm_xpub)
    # When an order is created on Polygon, where address 0 has no claim of its own
    polygon = api.create(network="polygon")
    # Then it gets address 1: the same EVM address is never given to two orders, on any chain
    assert (eth.status, polygon.status) == (201, 201)
    assert polygon.body["address"] == expected_address(merchant.evm_xpub, Bip44Coins.ETHEREUM, 1)
    assert polygon.body["address"] != eth.body["address"]


def test_switching_between_two_xpubs_resumes_each_where_it_stopped(api: ApiClient, merchant: Merchant) -> None:
    from usdt_gateway import merchants

    # Given a Tron order at address 0 of xpub A
    other = account_xpub(Bip44Coins.TRON)
    a0 = api.create(network="tron")
    # When the operator sets xpub B, creates an order, and sets xpub A again
    merchants.configure_xpub(merchant.merchant_id, "tron", other)
    b0 = api.create(network="tron")
    merchants.configure_xpub(merchant.merchant_id, "tron", merchant.tron_xpub)
    a1 = api.create(network="tron")
    # Then B starts at its own 0 and A resumes at 1
    assert (a0.status, b0.status, a1.status) == (201, 201, 201)
    assert b0.body["address"] == expected_address(other, Bip44Coins.TRON, 0)
    assert a1.body["address"] == expected_address(merchant.tron_xpub, Bip44Coins.TRON, 1)


def test_setting_the_same_xpub_again_keeps_its_index(api: ApiClient, merchant: Merchant) -> None:
    from usdt_gateway import merchants

    # Given a Tron order at address 0
    first = api.create(network="tron")
    # When the same xpub is set again, twice
    merchants.configure_xpub(merchant.merchant_id, "tron", merchant.tron_xpub)
    again = merchants.configure_xpub(merchant.merchant_id, "tron", merchant.tron_xpub)
    second = api.create(network="tron")
    # Then the next order still gets address 1
    assert (first.status, second.status, again["nextIndex"]) == (201, 201, 1)
    assert second.body["address"] == expected_address(merchant.tron_xpub, Bip44Coins.TRON, 1)


# --- fixed-address amount-tag step --------------------------------------------------------------


def test_a_tag_step_finer_than_an_enabled_network_is_refused(handler: object) -> None:
    from usdt_gateway import merchants
    from usdt_gateway.errors import InvalidRequest

    # Given a merchant, and Ethereum (6 decimals) enabled among the EVM networks
    fixed = new_merchant(fixed_evm=random_evm_address())
    before = table_item_count()
    # When the operator sets a tag step of 0.0000001, finer than Ethereum's smallest unit
    with pytest.raises(InvalidRequest) as err:
        merchants.configure_fixed(fixed.merchant_id, "evm", random_evm_address(), tag_step="0.0000001")
    # Then it is refused by name, naming the network and its decimals, and nothing is written
    assert err.value.code == "INVALID_ADDRESS_CONFIG"
    assert "0.0000001" in err.value.message and "eth" in err.value.message and "6" in err.value.message
    assert table_item_count() == before


def test_a_fine_tag_step_is_stored_in_plain_notation_and_tags_orders(
    handler: object, settings_env: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import config, merchants

    # Given only BNB Smart Chain (18 decimals) enabled, and a fixed address with a 0.0000001 step
    settings_env.setenv("ENABLED_NETWORKS", "bsc,tron")
    config.reset()
    address = random_evm_address()
    fixed = new_merchant(fixed_evm=address)
    stored = merchants.configure_fixed(fixed.merchant_id, "evm", address, tag_step="0.0000001")
    client = ApiClient(handler, fixed.api_key, fixed.secret)
    # When two orders of 25.00 are created
    first, second = client.create(network="bsc", amount="25.00"), client.create(network="bsc", amount="25.00")
    # Then the step is stored without an exponent and the second order is tagged by it
    assert stored["tagStep"] == "0.0000001"
    assert (first.status, second.status) == (201, 201)
    assert (first.body["amount"], second.body["amount"]) == ("25.00", "25.0000001")


def test_a_stored_step_too_fine_for_a_newly_enabled_network_answers_a_clear_conflict(
    handler: object, settings_env: pytest.MonkeyPatch
) -> None:
    from usdt_gateway import config, merchants

    # Given a 0.0000001 step set while only BSC was enabled, then Ethereum enabled too
    settings_env.setenv("ENABLED_NETWORKS", "bsc,tron")
    config.reset()
    fixed = new_merchant(fixed_evm=random_evm_address())
    merchants.configure_fixed(fixed.merchant_id, "evm", random_evm_address(), tag_step="0.0000001")
    settings_env.setenv("ENABLED_NETWORKS", "bsc,eth,tron")
    config.reset()
    before = table_item_count()
    # When an Ethereum order is created
    reply = ApiClient(handler, fixed.api_key, fixed.secret).create(network="eth", amount="25.00")
    # Then it is a 409 that says what the operator must change, not a 500, and nothing is written
    assert (reply.status, reply.body["code"]) == (409, "INVALID_ADDRESS_CONFIG")
    assert "0.0000001" in reply.body["message"] and "set-address" in reply.body["message"]
    assert table_item_count() == before
