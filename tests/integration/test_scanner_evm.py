"""The scanner and the payment lifecycle on anvil with the real TestUSDT: orders are created
through the API handler, paid with real token transfers, and read back through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.evm import start_anvil
from tests.integration.apiclient import ApiClient
from tests.integration.chains import EvmChain, drive, evm_scanner, new_chain


@pytest.fixture
def chain(settings_env: pytest.MonkeyPatch) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        yield new_chain(anvil, settings_env)


def create(api: ApiClient, chain: EvmChain, amount: str = "25.00", **extra: object) -> dict:
    resp = api.create(network=chain.network, amount=amount, **extra)
    assert resp.status == 201, resp.body
    return resp.body


def status(api: ApiClient, order: dict) -> dict:
    resp = api.request("GET", f"/v1/payment/order/{order['orderId']}")
    assert resp.status == 200
    return resp.body


def test_exact_payment_goes_pending_confirming_confirmed(api: ApiClient, chain: EvmChain) -> None:
    order = create(api, chain)
    scanner = evm_scanner(chain.network, [chain.anvil.url])
    drive(scanner)
    assert status(api, order)["status"] == "pending"

    txid = chain.pay(order["address"], "25.00")
    drive(scanner)
    seen = status(api, order)
    assert seen["status"] == "confirming"
    assert seen["paidAmount"] == "0.00" and seen["pendingAmount"] == "25.00"
    assert [(d["txid"], d["final"], d["confirmations"]) for d in seen["deposits"]] == [(txid, False, 1)]

    chain.mine(1)
    drive(scanner)
    done = status(api, order)
    assert done["status"] == "confirmed"
    assert done["paidAmount"] == "25.00" and done["txid"] == txid and done["confirmedAt"] is not None
    assert done["exception"] is None
    assert [(d["txid"], d["final"], d["confirmations"]) for d in done["deposits"]] == [(txid, True, 2)]
