"""Concurrent creates race through real DynamoDB conditional writes (moto server over HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from bip_utils import Bip44, Bip44Changes, Bip44Coins

from tests.integration.conftest import TABLE, Merchant, new_merchant


def _create(
    merchant_id: str, order_id: str, amount: str = "25.00", network: str = "bsc"
) -> tuple[dict[str, Any], bool]:
    from usdt_gateway.orders import create_order
    from usdt_gateway.schemas import CreateOrderRequest

    req = CreateOrderRequest.model_validate(
        {"network": network, "currency": "USDT", "amount": amount, "orderId": order_id}
    )
    view, created = create_order(merchant_id, req)
    return view.model_dump(by_alias=True), created


def _race[T](fn: Callable[..., T], args: list[tuple[Any, ...]]) -> list[T]:
    with ThreadPoolExecutor(max_workers=len(args)) as pool:
        return list(pool.map(lambda a: fn(*a), args))


def test_twenty_identical_creates_yield_one_order(merchant: Merchant) -> None:
    # Given twenty concurrent creates with identical parameters
    results = _race(_create, [(merchant.merchant_id, "same-order")] * 20)
    # Then exactly one created the order and all got the same order back
    assert sum(created for _, created in results) == 1
    assert len({(v["publicId"], v["address"], v["amount"]) for v, _ in results}) == 1
    # And only one xpub index was used: the next order gets index 1
    second, _ = _create(merchant.merchant_id, "next-order")
    expected = Bip44.FromExtendedKey(merchant.evm_xpub, Bip44Coins.ETHEREUM).Change(Bip44Changes.CHAIN_EXT)
    assert second["address"] == expected.AddressIndex(1).PublicKey().ToAddress()


def test_concurrent_xpub_orders_get_gapless_distinct_addresses(merchant: Merchant) -> None:
    # Given twenty concurrent creates of different orders
    results = _race(_create, [(merchant.merchant_id, f"x-{i}") for i in range(20)])
    # Then each got its own address, and together they are exactly indexes 0..19 (no gap, no reuse)
    chain = Bip44.FromExtendedKey(merchant.evm_xpub, Bip44Coins.ETHEREUM).Change(Bip44Changes.CHAIN_EXT)
    expected = {chain.AddressIndex(i).PublicKey().ToAddress() for i in range(20)}
    assert {v["address"] for v, _ in results} == expected
    assert all(created for _, created in results)


def test_concurrent_fixed_address_orders_get_unique_amounts() -> None:
    # Given a merchant with one fixed EVM address and twenty concurrent orders of 25.00
    m = new_merchant(fixed_evm="0x00000000000000000000000000000000000000A1")
    results = _race(_create, [(m.merchant_id, f"f-{i}") for i in range(20)])
    # Then every order has a distinct amount on the same address, 25.00 upwards in 0.01 steps
    amounts = sorted(v["amount"] for v, _ in results)
    assert amounts == [f"25.{i:02d}" for i in range(20)]
    assert {v["address"] for v, _ in results} == {"0x00000000000000000000000000000000000000A1"}
    # And each (network, address, amount) reservation is held by exactly one order
    db = boto3.client("dynamodb")
    held = {}
    for v, _ in results:
        units = int(v["amount"].replace(".", "")) * 10**16  # BSC: 18 decimals
        key = {"pk": {"S": f"RESV#bsc#{v['address']}#{units}"}, "sk": {"S": "RESV"}}
        held[v["amount"]] = db.get_item(TableName=TABLE, Key=key)["Item"]["orderPk"]["S"]
    assert len(set(held.values())) == 20
