"""On Tron, through the fake full node: zero-value and dust transfers change no order, and a reorg
deeper than a confirmations policy is read again, crediting the replacement blocks' payment and
reversing the vanished one. (With the default solidified policy a final block cannot be replaced;
the node refuses it as java-tron would.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.tron_node import TronNode, start_tron_node
from tests.integration.apiclient import ApiClient
from tests.integration.chains import TronChain, create, deposits_listed, drive, new_tron_chain, status, tron_scanner


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=3) as running:
        yield running


def test_zero_value_and_dust_transfers_change_no_order_and_announce_nothing(
    api: ApiClient, node: TronNode, settings_env: pytest.MonkeyPatch
) -> None:
    # Given an order that receives a zero-value transfer and 0.000001 USDT, both solidified
    chain = new_tron_chain(node, settings_env)
    order = create(api, chain, "25.00")
    scanner = tron_scanner(chain.network, [chain.node.url])
    zero, dust = chain.pay(order["address"], "0"), chain.pay(order["address"], "0.000001")
    drive(scanner)
    assert status(api, order)["status"] == "pending"
    chain.solidify()
    drive(scanner)
    # Then the order is untouched and cancellable; only the dust is listed, as ignored
    assert (status(api, order)["status"], status(api, order)["deposits"]) == ("pending", [])
    listed = deposits_listed(api, unmatched=False)
    assert [(d["txid"], d["status"], d["reason"]) for d in listed] == [(dust, "ignored", "below_minimum")]
    assert zero not in {d["txid"] for d in listed}
    events = api.request("GET", "/v1/webhooks/deliveries")
    assert events.status == 200 and events.body["deliveries"] == []
    # And the real payment alone confirms it
    paid = chain.pay(order["address"], "25.00")
    chain.solidify()
    drive(scanner)
    done = status(api, order)
    assert (done["status"], done["exception"], done["txid"], done["paidAmount"]) == ("confirmed", None, paid, "25.00")


def test_a_reorg_deeper_than_the_confirmations_policy_is_read_again(
    api: ApiClient, node: TronNode, settings_env: pytest.MonkeyPatch
) -> None:
    # Given a Tron network final after 2 confirmations, an order paid and confirmed, another unpaid
    chain: TronChain = new_tron_chain(node, settings_env, finality={"mode": "confirmations", "confirmations": 2})
    gone, new = create(api, chain, "25.00"), create(api, chain, "30.00")
    scanner = tron_scanner(chain.network, [chain.node.url])
    drive(scanner)
    paid = chain.pay(gone["address"], "25.00")
    paid_block = chain.head()
    for _ in range(4):
        chain.mine(1)
        drive(scanner)
    assert status(api, gone)["status"] == "confirmed"
    # When the chain replaces the payment's block and the 4 above it (deeper than the policy) with
    # blocks that hold a payment to the other order instead
    chain.node.reorg(paid_block, [[], [chain.transfer(new["address"], "30.00")], [], [], [], []])
    drive(scanner)
    # Then the new payment is credited once, and the vanished one reversed and announced
    assert (status(api, new)["status"], status(api, new)["paidAmount"]) == ("confirmed", "30.00")
    back = status(api, gone)
    assert (back["status"], back["paid"], back["paidAmount"]) == ("pending", False, "0.00")
    assert [(d["txid"], d["reversed"]) for d in back["deposits"]] == [(paid, True)]
    reply = api.request("GET", "/v1/webhooks/deliveries", query=[("orderId", gone["orderId"])])
    assert reply.body["deliveries"][0]["type"] == "order.payment_reversed"  # newest first
    assert scanner.report.reversed == 1
