"""Refunds through the API on anvil and the moto server (the relayer's part: test_refund_relayer.py):
what is refundable of an order, the typed data the owner signs (the deployed factory's own digest),
the signature accepted only when it is the owner's over that refund, the hold that keeps sweeps off
the address's money until the refund closes or its deadline passes, and a sweep's claim and a
refund never both winning the same money."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient
from tests.integration.chains import drive
from tests.integration.conftest import Merchant
from tests.integration.refund_world import HOUR_MS, World, open_world
from usdt_gateway import store
from usdt_gateway.errors import Conflict
from usdt_gateway.schemas import RefundRequest
from usdt_gateway.settlement import batches, candidates, refunds
from usdt_gateway.settlement.candidates import Candidate
from usdt_gateway.settlement.refund_signing import SECP256K1_N

PAYER = "0x8ba1f109551bd432803012645ac136ddd64dba72"
DAY_S = 86_400


@pytest.fixture
def world(
    settings_env: pytest.MonkeyPatch, api: ApiClient, merchant: Merchant, moto_server: str, fake_clock: FakeClock
) -> Iterator[World]:
    with open_world(settings_env, api, merchant, moto_server, fake_clock) as opened:
        yield opened


def unsettled(world: World) -> list[Candidate]:
    return candidates.unsettled(world.network)


# -- what the owner signs ------------------------------------------------------------------------


def test_a_refund_of_an_overpayment_is_the_excess_with_the_typed_data_the_factory_checks(world: World) -> None:
    # Given an order of 25 USDT paid 30: confirmed, 5 overpaid
    order = world.paid_order("30.00")
    assert world.view(order)["status"] == "confirmed"
    # When the merchant asks to refund it, without an amount
    refund = world.new_refund(order, PAYER)
    # Then it is the excess, awaiting the owner's signature, due in 24 hours
    now_s = world.clock.ms // 1000
    assert refund["status"] == "awaiting_signature" and refund["amount"] == "5.00"
    assert refund["refundId"].startswith("rfd_") and refund["orderId"] == order["orderId"]
    assert refund["deadline"] == now_s + DAY_S and refund["createdAt"] == refund["updatedAt"] == world.clock.ms
    assert (refund["txHash"], refund["gasPaid"], refund["reason"]) == (None, None, None)
    factory = world.contracts.factory
    assert refund["owner"] == world.owner.address.lower() and refund["factory"] == factory.address.lower()
    assert refund["depositAddress"] == order["address"].lower() and refund["to"] == PAYER
    assert refund["tokenContract"] == world.contracts.chain.token.address.lower()
    # And its digest is the deployed factory's refund_digest of the typed data's fields, which is
    # what a wallet signs for the typed data
    typed = refund["typedData"]
    message = typed["message"]
    assert typed["domain"] == {
        "name": "USDT Gateway Deposits",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": factory.address.lower(),
    }
    assert message["amount"] == "5000000" and message["to"] == PAYER and message["deadline"] == refund["deadline"]
    on_chain = factory.functions.refund_digest(
        Web3.to_checksum_address(message["token"]),
        bytes.fromhex(message["salt"][2:]),
        Web3.to_checksum_address(message["to"]),
        int(message["amount"]),
        int(message["nonce"]),
        message["deadline"],
    ).call()
    assert refund["digest"] == "0x" + bytes(on_chain).hex()
    signed = world.owner.sign_message(encode_typed_data(full_message=typed))
    assert "0x" + bytes(signed.message_hash).hex() == refund["digest"]
    assert message["salt"] == world.order_item(order)["depositSalt"] and 0 <= int(message["nonce"]) < 2**128
    # And it is listed, and read back the same
    assert world.refund(order, refund["refundId"]) == refund
    listed = world.api.request("GET", world.refunds_path(order))
    assert listed.status == 200 and listed.body == {"items": [refund]}


def test_a_part_of_the_refundable_can_be_refunded(world: World) -> None:
    order = world.paid_order("30.00")
    refund = world.new_refund(order, PAYER, "2.5")
    assert refund["amount"] == "2.50" and refund["typedData"]["message"]["amount"] == "2500000"


# -- what is refundable --------------------------------------------------------------------------


def test_an_order_that_took_all_its_money_has_nothing_to_refund(world: World) -> None:
    order = world.paid_order("25.00")
    reply = world.request_refund(order, PAYER)
    assert (reply.status, reply.body["code"]) == (409, "REFUND_NOT_AVAILABLE"), reply.body
    assert "took all" in reply.body["message"]


def test_an_underpaid_order_is_refundable_only_once_it_can_no_longer_be_paid(world: World) -> None:
    # Given an order of 25 paid 10, expiring in a minute
    order = world.paid_order("10.00", expiresIn=60)
    assert world.view(order)["status"] == "underpaid"
    # Then while it may still be paid in full, its money is not refundable
    early = world.request_refund(order, PAYER)
    assert (early.status, early.body["code"]) == (409, "REFUND_NOT_AVAILABLE")
    assert "may still be paid in full" in early.body["message"]
    # When it fails at expiry, and its late-payment window ends
    world.contracts.chain.warp(90)
    world.contracts.chain.mine(1)
    drive(world.scanner)
    assert world.view(order)["status"] == "failed"
    world.clock.advance(HOUR_MS + 120_000)
    # Then all of its money is refundable
    refund = world.new_refund(order, PAYER)
    assert refund["amount"] == "10.00"


def test_a_late_payment_to_a_paid_and_swept_order_is_refundable(world: World) -> None:
    # Given an order paid in full and swept to the treasury
    order = world.paid_order("25.00")
    world.settle_sweep()
    assert world.view(order)["funds"] == "swept"
    # When 3 USDT more arrive at its address (no order takes them)
    world.pay(order, "3.00")
    (late,) = unsettled(world)
    assert late.order_pk is None and late.units == 3_000_000
    # Then those 3 are refundable
    assert world.new_refund(order, PAYER)["amount"] == "3.00"


def test_money_already_swept_is_refunded_from_the_treasury(world: World) -> None:
    # Given an overpaid order whose money was swept
    order = world.paid_order("30.00")
    world.settle_sweep()
    # When a refund is asked for
    reply = world.request_refund(order, PAYER)
    # Then it is refused: the excess is in the treasury
    assert (reply.status, reply.body["code"]) == (409, "REFUND_NOT_AVAILABLE")
    assert "treasury" in reply.body["message"]


def test_money_being_swept_is_not_refundable(world: World) -> None:
    order = world.paid_order("30.00")
    assert world.run()["claimed"] is not None  # a sweep carries it now
    reply = world.request_refund(order, PAYER)
    assert (reply.status, reply.body["code"]) == (409, "REFUND_NOT_AVAILABLE")
    assert "sweep is carrying" in reply.body["message"] and "treasury" in reply.body["message"]


def test_an_order_not_in_contract_mode_has_no_refund(world: World) -> None:
    order = world.api.create(network="bsc", amount="10.00").body  # the merchant's xpub network
    reply = world.request_refund(order, PAYER)
    assert (reply.status, reply.body["code"]) == (409, "REFUND_NOT_AVAILABLE")
    assert "not in contract mode" in reply.body["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"to": PAYER, "amount": "5.01"}, 400, "AMOUNT_EXCEEDS_REFUNDABLE"),
        ({"to": PAYER, "amount": "0.0000001"}, 400, "INVALID_AMOUNT"),
        ({"to": PAYER, "amount": "0"}, 400, "INVALID_AMOUNT"),
        ({"to": PAYER, "amount": "-1"}, 400, "INVALID_AMOUNT"),
        ({"to": "0x" + "00" * 20}, 400, "INVALID_ADDRESS"),
        ({"to": "0x8Ba1f109551bD432803012645Ac136ddd64DBA72"}, 400, "INVALID_ADDRESS"),  # a wrong checksum
        ({"to": "0x1234"}, 400, "VALIDATION_ERROR"),
        ({"to": PAYER, "nonce": "1"}, 400, "VALIDATION_ERROR"),
        ({"amount": "1"}, 400, "VALIDATION_ERROR"),
    ],
)
def test_a_bad_recipient_or_amount_is_refused_and_nothing_is_held(
    world: World, body: dict[str, Any], status: int, code: str
) -> None:
    order = world.paid_order("30.00")
    reply = world.api.request("POST", world.refunds_path(order), body)
    assert (reply.status, reply.body["code"]) == (status, code), reply.body
    assert all(c.refund_id is None for c in unsettled(world))
    assert "refundingId" not in world.order_item(order)
    assert world.api.request("GET", world.refunds_path(order)).body == {"items": []}


def test_the_deposit_address_itself_is_no_recipient(world: World) -> None:
    order = world.paid_order("30.00")
    reply = world.request_refund(order, order["address"])
    assert (reply.status, reply.body["code"]) == (400, "INVALID_ADDRESS")


def test_unknown_orders_and_refunds_are_not_found(world: World) -> None:
    order = world.paid_order("30.00")
    missing = {"orderId": "no-such-order"}
    assert world.request_refund(missing, PAYER).body["code"] == "ORDER_NOT_FOUND"
    assert world.api.request("GET", world.refunds_path(missing)).body["code"] == "ORDER_NOT_FOUND"
    unknown = world.api.request("GET", f"{world.refunds_path(order)}/rfd_{'0' * 24}")
    assert (unknown.status, unknown.body["code"]) == (404, "REFUND_NOT_FOUND")
    bad = world.api.request("GET", f"{world.refunds_path(order)}/refund-1")
    assert (bad.status, bad.body["code"]) == (400, "INVALID_REFUND_ID")
    signature = world.submit(order, {"refundId": f"rfd_{'0' * 24}"}, "0x" + "11" * 65)
    assert (signature.status, signature.body["code"]) == (404, "REFUND_NOT_FOUND")


# -- the hold ------------------------------------------------------------------------------------


def test_a_refund_holds_its_addresss_money_from_sweeps_and_one_refund_runs_at_a_time(world: World) -> None:
    # Given an overpaid order, and another order's money waiting too
    order = world.paid_order("30.00")
    other = world.paid_order("12.00", amount="12.00")
    # When a refund of the first is made
    refund = world.new_refund(order, PAYER)
    # Then its address's money is held for it until its deadline, and the order names it
    held = [c for c in unsettled(world) if c.address == order["address"]]
    assert [(c.refund_id, c.hold_until) for c in held] == [(refund["refundId"], refund["deadline"] * 1000)]
    assert world.order_item(order)["refundingId"] == refund["refundId"]
    # And a second refund of the order is refused while it is open
    again = world.request_refund(order, PAYER)
    assert (again.status, again.body["code"]) == (409, "REFUND_IN_PROGRESS"), again.body
    # And the settlement sweeps the other order's address, never the held one
    report = world.run()
    assert report["claimed"] is not None
    claimed = {c.address for c in unsettled(world) if c.sweep_id}
    assert claimed == {other["address"]}
    world.settle_sweep()
    assert world.balance(other["address"]) == 0 and world.balance(order["address"]) == 30_000_000


def test_an_unsigned_refund_expires_at_its_deadline_and_its_hold_lapses(world: World) -> None:
    # Given a refund nobody signs
    order = world.paid_order("30.00")
    refund = world.new_refund(order, PAYER)
    signature = world.sign(refund["typedData"])
    # When its deadline passes
    world.clock.advance(DAY_S * 1000 + 1000)
    # Then it reads expired, and the settlement may sweep its address again
    assert world.refund(order, refund["refundId"])["status"] == "expired"
    assert world.run()["claimed"] is not None
    # And the owner's signature comes too late
    late = world.submit(order, refund, signature)
    assert (late.status, late.body["code"]) == (409, "REFUND_EXPIRED"), late.body
    item = store.get(*store.refund_key(world.merchant.merchant_id, order["orderId"], refund["refundId"]))
    assert item is not None and item["refundStatus"] == "expired"
    assert "refundingId" not in world.order_item(order)
    assert all(c.refund_id is None for c in unsettled(world))


def test_an_expired_refund_does_not_block_a_new_one(world: World) -> None:
    order = world.paid_order("30.00")
    first = world.new_refund(order, PAYER)
    world.clock.advance(DAY_S * 1000 + 1000)
    # When a new refund is made after the first's deadline: the first is expired, the new one holds
    second = world.new_refund(order, PAYER, "1.00")
    assert world.refund(order, first["refundId"])["status"] == "expired"
    assert [c.refund_id for c in unsettled(world)] == [second["refundId"]]
    listed = world.api.request("GET", world.refunds_path(order)).body["items"]
    assert [r["refundId"] for r in listed] == [second["refundId"], first["refundId"]]  # newest first


# -- the signature -------------------------------------------------------------------------------


def test_the_owners_signature_submits_the_refund_and_the_same_one_again_changes_nothing(world: World) -> None:
    order = world.paid_order("30.00")
    refund = world.new_refund(order, PAYER)
    signature = world.sign(refund["typedData"])
    world.clock.advance(5_000)
    # When the owner's signature is given
    reply = world.submit(order, refund, signature)
    # Then the refund is submitted, the same refund otherwise, and its money held until it closes
    assert reply.status == 202, reply.body
    assert reply.body["status"] == "submitted" and reply.body["updatedAt"] == world.clock.ms
    unchanged = ("typedData", "digest", "amount", "to", "deadline", "createdAt")
    assert {k: reply.body[k] for k in unchanged} == {k: refund[k] for k in unchanged}
    (held,) = unsettled(world)
    assert held.refund_id == refund["refundId"] and held.hold_until is None
    # And the same signature again, with v as 27/28 or 0/1, is answered with the refund as it is
    lowered = signature[:64] + bytes([signature[64] - 27])
    for again in (signature, lowered):
        repeat = world.submit(order, refund, again)
        assert (repeat.status, repeat.body) == (200, reply.body)
    # But another signature is refused: the refund is no longer awaiting one
    other = world.submit(order, refund, world.sign(refund["typedData"], Account.create()))
    assert (other.status, other.body["code"]) == (409, "REFUND_NOT_AWAITING_SIGNATURE")


def test_a_signature_that_is_not_the_owners_over_this_refund_is_refused(world: World) -> None:
    # Given a refund awaiting its signature, and another order's refund with its owner signature
    order = world.paid_order("30.00")
    refund = world.new_refund(order, PAYER)
    typed = refund["typedData"]
    another = world.new_refund(world.paid_order("31.00"), PAYER)
    good = world.sign(typed)
    r, s, v = good[:32], int.from_bytes(good[32:64]), good[64]
    refused = {
        "another key's": world.sign(typed, Account.create()),
        "more money": world.sign(typed | {"message": typed["message"] | {"amount": "6000000"}}),
        "another recipient": world.sign(typed | {"message": typed["message"] | {"to": "0x" + "02" * 20}}),
        "a later deadline": world.sign(typed | {"message": typed["message"] | {"deadline": refund["deadline"] + 1}}),
        "another chain": world.sign(typed | {"domain": typed["domain"] | {"chainId": 1}}),
        "another refund's (replayed)": world.sign(another["typedData"]),
        "the high-s twin": r + (SECP256K1_N - s).to_bytes(32) + bytes([55 - v]),
        "a v of 29": good[:64] + bytes([29]),
    }
    for why, signature in refused.items():
        # When it is given
        reply = world.submit(order, refund, signature)
        # Then it is refused, and the refund still awaits the owner's
        assert (reply.status, reply.body["code"]) == (400, "INVALID_SIGNATURE"), why
    assert world.refund(order, refund["refundId"])["status"] == "awaiting_signature"
    assert world.submit(order, refund, good).status == 202


# -- a sweep and a refund at once ----------------------------------------------------------------


def test_a_sweep_that_read_the_address_before_a_refund_held_it_cannot_claim_it(world: World) -> None:
    # Given a settlement run that read and chose the overpaid order's deposit
    order = world.paid_order("30.00")
    known = unsettled(world)
    chosen = batches.select(known, world.config.policy(world.job.network), now=world.clock.ms)
    assert [c.address for c in chosen] == [order["address"]]
    # When a refund holds the address before the run claims
    refund = world.new_refund(order, PAYER)
    # Then the claim is refused: the refund keeps the money
    assert batches.claim(world.job.network, chosen, known) is None
    (candidate,) = unsettled(world)
    assert candidate.sweep_id is None and candidate.refund_id == refund["refundId"]


def test_a_refund_that_read_the_address_before_a_sweep_claimed_it_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a refund whose read of the address is followed by a sweep's claim, before it writes
    order = world.paid_order("30.00")
    real = candidates.at_address
    claimed: list[str] = []

    def read_then_claimed(network: str, merchant_id: str, address: str) -> list[Candidate]:
        found = real(network, merchant_id, address)
        if not claimed:
            batch = batches.claim(world.job.network, found, unsettled(world))
            assert batch is not None
            claimed.append(batch.settlement_id)
        return found

    monkeypatch.setattr(candidates, "at_address", read_then_claimed)
    # When the refund is made
    reply = world.request_refund(order, PAYER)
    # Then it is refused (its holds were conditional on no claim), and nothing of it remains
    assert (reply.status, reply.body["code"]) == (409, "REFUND_NOT_AVAILABLE"), reply.body
    assert [c.sweep_id for c in unsettled(world)] == claimed
    assert all(c.refund_id is None for c in unsettled(world))
    assert "refundingId" not in world.order_item(order)


def test_a_refund_undoes_itself_when_a_sweep_claimed_money_it_did_not_see(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a confirmed, overpaid order; a refund reads its address; then a late payment arrives
    # and a sweep (which read only that) claims it, before the refund's holds commit
    order = world.paid_order("30.00")
    real = candidates.at_address
    late: list[Candidate] = []

    def read_then_late_payment_claimed(network: str, merchant_id: str, address: str) -> list[Candidate]:
        found = real(network, merchant_id, address)
        if not late:
            world.pay(order, "3.00")  # no order takes it: a candidate of its own
            (new,) = [c for c in real(network, merchant_id, address) if c.order_pk is None]
            assert batches.claim(world.job.network, [new], [new]) is not None
            late.append(new)
        return found

    monkeypatch.setattr(candidates, "at_address", read_then_late_payment_claimed)
    # When the refund is made
    reply = world.request_refund(order, PAYER)
    # Then it is undone and refused: the sweep takes the whole address, the refund's money too
    assert (reply.status, reply.body["code"]) == (409, "REFUND_NOT_AVAILABLE"), reply.body
    assert world.api.request("GET", world.refunds_path(order)).body == {"items": []}
    assert "refundingId" not in world.order_item(order)
    by_kind = {c.order_pk is None: c for c in unsettled(world)}
    assert by_kind[True].sweep_id is not None and by_kind[False].refund_id is None


def race(world: World, order: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *, at_writes: bool) -> tuple[bool, bool]:
    """A refund of `order` and a sweep's claim (which read the address before) let go at the same
    moment, at the start of the refund or (`at_writes`) once it has read the address, right
    before both write: whether each won."""
    start = threading.Barrier(2)
    outcome: dict[str, Any] = {}
    real = candidates.at_address
    met: list[bool] = []

    def read_then_meet(network: str, merchant_id: str, address: str) -> list[Candidate]:
        found = real(network, merchant_id, address)
        if not met:
            met.append(True)
            start.wait()
        return found

    def make_refund() -> None:
        if not at_writes:
            start.wait()
        try:
            refunds.create_refund(world.merchant.merchant_id, order["orderId"], RefundRequest(to=PAYER))
            outcome["refund"] = True
        except Conflict:
            outcome["refund"] = False

    def claim() -> None:
        known = unsettled(world)
        chosen = batches.select(known, world.config.policy(world.job.network), now=world.clock.ms)
        start.wait()
        outcome["claim"] = batches.claim(world.job.network, chosen, known) is not None

    with monkeypatch.context() as patch:
        if at_writes:
            patch.setattr(candidates, "at_address", read_then_meet)
        threads = [threading.Thread(target=make_refund), threading.Thread(target=claim)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return outcome["refund"], outcome["claim"]


def test_a_refund_and_a_sweep_at_once_never_both_win(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for round_ in range(6):
        # Given an overpaid order; a refund of it and a sweep's claim let go at the same moment
        order = world.paid_order("30.00")
        refund_won, claim_won = race(world, order, monkeypatch, at_writes=round_ % 2 == 1)
        # Then one of them won the address's money, never both
        assert refund_won != claim_won, (refund_won, claim_won)
        mine = [c for c in unsettled(world) if c.address == order["address"]]
        assert all(bool(c.sweep_id) == claim_won and bool(c.refund_id) == refund_won for c in mine)
        # (the next round starts clean: the claimed money is swept, the refund's hold lapses)
        if claim_won:
            world.settle_sweep()
        world.clock.advance(DAY_S * 1000 + 1000)


def test_an_address_with_money_its_order_did_not_take_waits_the_refund_window(world: World) -> None:
    # Given a refund window of an hour, an order paid exactly and two overpaid (30.00 for 25.00)
    world.config = replace(world.config, refund_window_seconds=3600)
    exact, refunded, kept = world.paid_order("25.00"), world.paid_order("30.00"), world.paid_order("30.00")
    spare = {c.address: c.spare for c in unsettled(world)}
    assert spare == {exact["address"]: False, refunded["address"]: True, kept["address"]: True}
    # When the settlement runs
    claimed = world.run()["claimed"]
    # Then it sweeps the exact payment's address only: the others hold money the merchant may refund
    assert claimed is not None
    assert {c.address for c in unsettled(world) if c.sweep_id == claimed} == {exact["address"]}
    # And that money can be refunded from the address meanwhile
    reply = world.request_refund(refunded, PAYER)
    assert (reply.status, reply.body["amount"]) == (201, "5.00")
    world.settle_sweep()
    assert world.balance(world.contracts.treasury) == 25_000_000
    # And once the window has passed, the address no refund holds is swept whole; the other waits
    # for its refund
    world.clock.advance(3600 * 1000 + 1)
    world.settle_sweep()
    assert (world.balance(kept["address"]), world.balance(refunded["address"])) == (0, 30_000_000)
    assert world.balance(world.contracts.treasury) == 55_000_000
