"""The scanner and the payment lifecycle on Tron: the real TronReader reads the fake full node
over HTTP through tronpy's provider (java-tron's JSON, quirks included), orders are created
through the API handler and read back through it. Finality is the solidified head, which each
test moves itself."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest

from devstack.tron_node import Fault, TronNode, TrxTransfer, start_tron_node
from devstack.tron_node import Transfer as NodeTransfer
from tests.integration.apiclient import ApiClient
from tests.integration.chains import (
    TronChain,
    create,
    deposits_listed,
    drive,
    killed_after_one_credit,
    lagging_copy,
    new_tron_chain,
    status,
    tron_address,
    tron_scanner,
)
from usdt_gateway import config, cursor
from usdt_gateway.chain.endpoints import AllEndpointsFailed
from usdt_gateway.scanner import ENDPOINT_CHECK_S, ChainMoved

TRON_TXID = re.compile(r"[0-9a-f]{64}")
TX_INFOS = "/wallet/gettransactioninfobyblocknum"


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=3) as running:
        yield running


@pytest.fixture
def chain(node: TronNode, settings_env: pytest.MonkeyPatch) -> TronChain:
    return new_tron_chain(node, settings_env)


def summary(order: dict[str, Any]) -> list[tuple[str, bool, int]]:
    return [(d["txid"], d["final"], d["confirmations"]) for d in order["deposits"]]


def test_exact_payment_goes_pending_confirming_confirmed(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain)
    assert order["address"].startswith("T")
    scanner = tron_scanner(chain.network, [chain.node.url])
    drive(scanner)
    assert status(api, order)["status"] == "pending"

    txid = chain.pay(order["address"], "25.00")
    drive(scanner)
    seen = status(api, order)
    assert seen["status"] == "confirming"
    assert seen["paidAmount"] == "0.00" and seen["pendingAmount"] == "25.00"
    assert summary(seen) == [(txid, False, 1)]

    chain.mine(1)  # a confirmation is not finality on Tron: the block must be solidified
    drive(scanner)
    assert status(api, order)["status"] == "confirming"
    assert summary(status(api, order)) == [(txid, False, 2)]

    chain.solidify()
    drive(scanner)
    done = status(api, order)
    assert done["status"] == "confirmed"
    assert done["paidAmount"] == "25.00" and done["pendingAmount"] == "0.00" and done["confirmedAt"] is not None
    assert done["txid"] == txid and TRON_TXID.fullmatch(txid)
    assert done["exception"] is None
    assert summary(done) == [(txid, True, 2)]
    assert done["deposits"][0]["sender"] == chain.payer  # base58, decoded from the log's topic
    assert (scanner.report.seen, scanner.report.credited) == (1, 1)


def test_partial_payment_is_underpaid_until_the_top_up(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, "30.00")
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.pay(order["address"], "10.00")
    chain.solidify()
    drive(scanner)
    partial = status(api, order)
    assert (partial["status"], partial["paidAmount"], partial["pendingAmount"]) == ("underpaid", "10.00", "0.00")

    chain.pay(order["address"], "20.00")
    drive(scanner)
    topped = status(api, order)
    assert (topped["status"], topped["paidAmount"], topped["pendingAmount"]) == ("confirming", "10.00", "20.00")
    chain.solidify()
    drive(scanner)
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["exception"]) == ("confirmed", "30.00", None)
    assert len(done["deposits"]) == 2 and all(d["final"] for d in done["deposits"])
    assert scanner.report.credited == 2


def test_overpayment_confirms_and_records_the_excess(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, "12.00")
    chain.pay(order["address"], "12.50")
    chain.solidify()
    drive(tron_scanner(chain.network, [chain.node.url]))
    done = status(api, order)
    assert (done["status"], done["exception"], done["paidAmount"], done["excessAmount"]) == (
        "confirmed",
        "overpaid",
        "12.50",
        "0.50",
    )


def test_nothing_paid_expires_once_solidified_blocks_pass_the_expiry(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, expiresIn=60)
    scanner = tron_scanner(chain.network, [chain.node.url])
    drive(scanner)
    chain.warp(order["expiresAt"])  # a block at the expiry instant could still hold a payment in time
    chain.solidify()
    drive(scanner)
    assert status(api, order)["status"] == "pending"

    chain.warp(order["expiresAt"] + 30_000)  # the chain's clock passes the expiry...
    drive(scanner)
    assert status(api, order)["status"] == "pending"  # ...but that block is not solidified yet
    assert scanner.report.closed == 0
    chain.solidify()
    drive(scanner)
    assert status(api, order)["status"] == "expired"
    assert scanner.report.closed == 1


def test_partial_payment_then_expiry_fails_the_order(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, "20.00", expiresIn=60)
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.pay(order["address"], "5.00")
    chain.warp(order["expiresAt"] + 30_000)
    chain.solidify()
    drive(scanner)
    failed = status(api, order)
    assert (failed["status"], failed["paidAmount"], failed["exception"]) == ("failed", "5.00", None)


def test_payment_made_before_expiry_counts_though_found_after_it(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, expiresIn=60)
    scanner = tron_scanner(chain.network, [chain.node.url])
    drive(scanner)
    txid = chain.pay(order["address"], "25.00")  # in time; the scanner is down
    chain.warp(order["expiresAt"] + 300_000)
    chain.mine(3)
    chain.solidify()
    drive(scanner)  # back: the payment and the expiry are both in solidified blocks
    done = status(api, order)
    assert (done["status"], done["exception"], done["txid"]) == ("confirmed", None, txid)
    assert done["deposits"][0]["blockTime"] <= done["expiresAt"]


def test_late_payment_inside_the_grace_window_is_credited_and_flagged(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, expiresIn=60)
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.warp(order["expiresAt"] + 60_000)
    chain.solidify()
    drive(scanner)
    assert status(api, order)["status"] == "expired"

    chain.pay(order["address"], "25.00")
    drive(scanner)
    assert status(api, order)["status"] == "confirming"
    chain.solidify()
    drive(scanner)
    late = status(api, order)
    assert (late["status"], late["exception"], late["paidAmount"]) == ("confirmed", "paid_late", "25.00")
    assert late["deposits"][0]["blockTime"] > late["expiresAt"]


def test_payment_after_the_grace_window_is_unmatched(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, expiresIn=60)
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.warp(order["expiresAt"] + config.settings().late_payment_grace_seconds * 1000 + 60_000)
    chain.solidify()
    drive(scanner)
    txid = chain.pay(order["address"], "25.00")
    chain.solidify()
    drive(scanner)
    assert (status(api, order)["status"], status(api, order)["paidAmount"]) == ("expired", "0.00")
    assert [(d["txid"], d["unmatched"]) for d in deposits_listed(api, unmatched=True)] == [(txid, True)]


def test_second_payment_is_unmatched_and_can_be_attached(api: ApiClient, chain: TronChain) -> None:
    first, other = create(api, chain), create(api, chain)
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.pay(first["address"], "25.00")
    chain.solidify()
    drive(scanner)
    assert status(api, first)["status"] == "confirmed"

    again = chain.pay(first["address"], "25.00")  # the customer pays twice
    drive(scanner)
    assert status(api, first)["pendingAmount"] == "0.00"  # a paid order does not take it, even as seen
    chain.solidify()
    drive(scanner)
    assert status(api, first)["paidAmount"] == "25.00"
    assert scanner.report.unmatched == 1
    unmatched = deposits_listed(api, unmatched=True)
    assert [(d["txid"], d["amount"], d["network"], d["recipient"]) for d in unmatched] == [
        (again, "25.00", chain.network, first["address"])
    ]

    eth_order = api.create(network="eth", amount="25.00").body
    wrong = api.request("POST", f"/v1/deposits/{unmatched[0]['depositId']}/attach", {"orderId": eth_order["orderId"]})
    assert (wrong.status, wrong.body["code"]) == (409, "NETWORK_MISMATCH")
    resp = api.request("POST", f"/v1/deposits/{unmatched[0]['depositId']}/attach", {"orderId": other["orderId"]})
    assert resp.status == 200, resp.body
    assert (resp.body["status"], resp.body["paidAmount"], resp.body["txid"]) == ("confirmed", "25.00", again)
    assert deposits_listed(api, unmatched=True) == []
    assert status(api, other)["status"] == "confirmed"


def test_payment_to_an_unknown_address_changes_nothing(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain)
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.pay(tron_address(), "25.00")
    chain.mine(2)
    drive(scanner)
    chain.solidify()
    drive(scanner)
    assert status(api, order)["status"] == "pending"
    assert deposits_listed(api, unmatched=False) == []
    assert scanner.report.credited == scanner.report.unmatched == scanner.report.seen == 0


def test_transfer_made_through_another_contract_counts(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, "3.00")
    txid = chain.pay(order["address"], "3.00", via_contract=tron_address())  # e.g. a payment router
    chain.solidify()
    drive(tron_scanner(chain.network, [chain.node.url]))
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "3.00", txid)


NOT_PAYMENTS: dict[str, Callable[[TronChain, str], NodeTransfer]] = {
    "reverted": lambda chain, to: chain.transfer(to, "25.00", failed=True),
    "out-of-energy": lambda chain, to: chain.transfer(to, "25.00", failed="OUT_OF_ENERGY"),
    "another-token": lambda chain, to: chain.transfer(to, "25.00", token=tron_address()),
    "plain-trx": lambda chain, to: TrxTransfer(chain.payer, to, 25_000_000),
}


@pytest.mark.parametrize("kind", NOT_PAYMENTS)
def test_what_is_not_a_usdt_payment_is_never_credited(api: ApiClient, chain: TronChain, kind: str) -> None:
    order = create(api, chain)
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.include([NOT_PAYMENTS[kind](chain, order["address"])])
    drive(scanner)
    assert status(api, order)["status"] == "pending"
    chain.solidify()
    drive(scanner)
    assert (status(api, order)["status"], status(api, order)["deposits"]) == ("pending", [])
    assert scanner.report.credited == scanner.report.unmatched == scanner.report.seen == 0
    assert deposits_listed(api, unmatched=False) == []


def test_failed_transfer_beside_a_good_one_credits_only_the_good_one(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain, "10.00")
    _, good = chain.include(
        [chain.transfer(order["address"], "10.00", failed=True), chain.transfer(order["address"], "10.00")]
    )
    chain.solidify()
    drive(tron_scanner(chain.network, [chain.node.url]))
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["exception"], done["txid"]) == ("confirmed", "10.00", None, good)


def test_reorg_of_a_seen_deposit_returns_the_order_to_pending(api: ApiClient, chain: TronChain) -> None:
    order = create(api, chain)
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.pay(order["address"], "25.00")
    drive(scanner)
    assert status(api, order)["status"] == "confirming"

    chain.node.reorg(chain.head(), 2)  # the payment's block is replaced by empty ones
    chain.solidify()
    drive(scanner)
    back = status(api, order)
    assert (back["status"], back["paidAmount"], back["pendingAmount"], back["deposits"]) == (
        "pending",
        "0.00",
        "0.00",
        [],
    )
    assert scanner.report.dropped == 1 and scanner.report.credited == 0
    assert deposits_listed(api, unmatched=False) == []


@pytest.mark.parametrize("solid_passes_the_old_block_first", [False, True])
def test_payment_reincluded_in_a_later_block_is_credited_once(
    api: ApiClient, chain: TronChain, solid_passes_the_old_block_first: bool
) -> None:
    order = create(api, chain)
    scanner = tron_scanner(chain.network, [chain.node.url])
    txid = chain.pay(order["address"], "25.00")
    drive(scanner)
    assert status(api, order)["status"] == "confirming"

    moved_to = chain.reinclude(chain.head(), later=1)  # the same transaction, one block on
    drive(scanner)
    assert status(api, order)["pendingAmount"] == "25.00"
    if solid_passes_the_old_block_first:
        chain.solidify(moved_to - 1)  # final: the old height, now without it
        drive(scanner)
        # the payment is not gone, only one block on: nothing is dropped, nothing reverted
        assert (status(api, order)["status"], status(api, order)["pendingAmount"]) == ("confirming", "25.00")
        assert scanner.report.dropped == 0
    chain.solidify()
    drive(scanner)
    done = status(api, order)
    assert (done["status"], done["paidAmount"], done["pendingAmount"]) == ("confirmed", "25.00", "0.00")
    assert [(d["txid"], d["blockNumber"], d["final"]) for d in done["deposits"]] == [(txid, moved_to, True)]
    assert scanner.report.credited == 1
    assert [d["blockNumber"] for d in deposits_listed(api, unmatched=False)] == [moved_to]


def test_killed_scanner_resumes_without_loss_or_double_credit(
    api: ApiClient, chain: TronChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = [create(api, chain, f"{n}.00") for n in (11, 12, 13)]
    for o in orders:
        chain.pay(o["address"], o["amount"])
    chain.solidify()
    first = tron_scanner(chain.network, [chain.node.url])
    with killed_after_one_credit(monkeypatch), pytest.raises(SystemExit):
        drive(first)  # dies after crediting one of the three, before moving its cursor
    assert [status(api, o)["status"] for o in orders].count("confirmed") == 1
    assert cursor.acquire(chain.network, "successor", now=first._now(), lease_ms=1_000) is None  # still leased

    # its successor runs once the dead one's lease has lapsed
    second = tron_scanner(chain.network, [chain.node.url], clock=lambda: time.time() + first.lease_ms / 1000 + 1)
    drive(second)
    assert second.report.credited == 2
    for o in orders:
        done = status(api, o)
        assert (done["status"], done["paidAmount"], len(done["deposits"])) == ("confirmed", o["amount"], 1)


@pytest.mark.parametrize("fault", [HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.INTERNAL_SERVER_ERROR, "timeout"])
def test_failing_endpoint_fails_over_and_is_counted(api: ApiClient, chain: TronChain, fault: Fault) -> None:
    with TronNode(chain.node.chain, hang_seconds=2) as flaky:  # the preferred node, on the same chain
        order = create(api, chain)
        scanner = tron_scanner(chain.network, [flaky.url, chain.node.url], timeout=0.5)
        drive(scanner)
        chain.pay(order["address"], "25.00")
        chain.solidify()
        flaky.fail_next(1, fault, path=TX_INFOS)  # the payment's block is the next one read
        drive(scanner)
        assert status(api, order)["status"] == "confirmed"
        assert scanner.reader.endpoints.errors == {flaky.url: 1}
        assert scanner.reader.endpoints.usable() == [chain.node.url]  # resting after its failure
        assert chain.node.requests[TX_INFOS] >= 1


def test_endpoint_failing_during_the_endpoint_check_is_set_aside(api: ApiClient, chain: TronChain) -> None:
    with TronNode(chain.node.chain) as flaky:  # in step with the preferred node, on the same chain
        order = create(api, chain)
        chain.pay(order["address"], "25.00")
        chain.solidify()
        scanner = tron_scanner(chain.network, [chain.node.url, flaky.url])
        # It answers the check's head request, then rate-limits the block read that compares hashes
        flaky.fail_next(1, HTTPStatus.TOO_MANY_REQUESTS, path="/wallet/getblockbynum")
        drive(scanner)  # the check runs in the first cycle
        assert status(api, order)["status"] == "confirmed"
        assert scanner.reader.endpoints.errors == {flaky.url: 1}
        assert scanner.reader.endpoints.usable() == [chain.node.url]


def test_lagging_endpoint_is_set_aside(api: ApiClient, chain: TronChain) -> None:
    chain.mine(30)
    order = create(api, chain)
    chain.pay(order["address"], "25.00")
    chain.solidify()
    # A third node on the chain confirms the payment: with two, each credit waits for the
    # second one's word (second_source.py), which the lagging node cannot give
    with TronNode(lagging_copy(chain.node.chain, behind=25)) as lagging, TronNode(chain.node.chain) as other:
        # The lagging node is preferred; trusted unchecked, its head hides the payment
        scanner = tron_scanner(chain.network, [lagging.url, chain.node.url, other.url])
        scanner._last_check = scanner.clock()
        drive(scanner)
        assert status(api, order)["status"] == "pending"

        scanner._last_check -= ENDPOINT_CHECK_S  # the periodic check is due
        drive(scanner)
        assert scanner.reader.endpoints.usable() == [chain.node.url, other.url]
        assert status(api, order)["status"] == "confirmed"
        assert scanner.reader.endpoints.errors == {}


def test_empty_blocks_between_payments_are_fine(api: ApiClient, chain: TronChain) -> None:
    a, b = create(api, chain, "1.50"), create(api, chain, "2.25")
    scanner = tron_scanner(chain.network, [chain.node.url])
    chain.pay(a["address"], "1.50")
    chain.mine(5)
    chain.solidify()
    drive(scanner)
    assert (status(api, a)["status"], status(api, b)["status"]) == ("confirmed", "pending")

    chain.mine(5)
    chain.pay(b["address"], "2.25")
    chain.mine(5)
    chain.solidify()
    drive(scanner)
    assert (status(api, a)["paidAmount"], status(api, b)["paidAmount"]) == ("1.50", "2.25")
    assert status(api, b)["status"] == "confirmed" and scanner.report.credited == 2


def test_a_confirmations_policy_ignores_the_solid_head(
    api: ApiClient, node: TronNode, settings_env: pytest.MonkeyPatch
) -> None:
    chain = new_tron_chain(node, settings_env, finality={"mode": "confirmations", "confirmations": 3})
    order = create(api, chain)
    scanner = tron_scanner(chain.network, [node.url])
    txid = chain.pay(order["address"], "25.00")
    chain.mine(1)
    drive(scanner)
    assert summary(status(api, order)) == [(txid, False, 2)]
    chain.mine(1)  # three confirmations, while the solid head stays where it was
    drive(scanner)
    assert summary(status(api, order)) == [(txid, True, 3)]
    assert status(api, order)["status"] == "confirmed" and node.solid < node.head - 2


def test_failover_to_a_node_that_lacks_the_blocks_loses_no_payment(api: ApiClient, chain: TronChain) -> None:
    # Given a good preferred node and a spare one 25 blocks behind (not caught by a check yet)
    chain.mine(30)
    order = create(api, chain)
    first = tron_scanner(chain.network, [chain.node.url])
    drive(first)
    chain.pay(order["address"], "25.00")
    chain.solidify()
    with TronNode(lagging_copy(chain.node.chain, behind=25)) as behind:
        scanner = tron_scanner(chain.network, [chain.node.url, behind.url], owner=first.owner)
        scanner._last_check = scanner.clock()
        # When the good node fails while reading the payment's block, and the call moves to the spare
        chain.node.fail_next(1, HTTPStatus.TOO_MANY_REQUESTS, path=TX_INFOS)
        state = cursor.acquire(chain.network, scanner.owner, now=scanner._now(), lease_ms=30_000)
        assert state is not None
        with contextlib.suppress(AllEndpointsFailed, ChainMoved):
            state, _ = scanner.cycle(state)
        # Then the spare's silence about blocks it does not have is not taken for empty blocks:
        # the final cursor has not moved past the payment
        assert state.final_block is not None and state.final_block < chain.node.head
        assert status(api, order)["paidAmount"] == "0.00"
        # and once the good node is back (a scanner of the same lease, after its rest), it is credited
        drive(tron_scanner(chain.network, [chain.node.url], owner=scanner.owner))
        assert status(api, order)["status"] == "confirmed"
