"""Signed refunds sent by the settlement's relayer on anvil, through the settlement function's runs
(the relayer's key in the local KMS, its state in the moto server): a refund is sent before new
sweeps, carried to finality like a sweep, and closed in one transaction with its holds, the
order's funds and its event. A run killed between any two steps resumes without a second
transaction; a reorg sends it again; a signature someone else submitted on chain first, a
deadline that passed, a replayed signature are decided from what the chain shows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from eth_account import Account
from eth_typing import HexStr
from standardwebhooks import Webhook
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxParams

from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient
from tests.integration.chains import drive
from tests.integration.conftest import Merchant, WebhookQueues
from tests.integration.refund_world import HOUR_MS, LEASE_MS, World, open_world
from tests.integration.sqs_lambda import EventSourceMapping
from tests.integration.webhook_receiver import receiver
from tests.integration.webhooks import set_url, settled
from usdt_gateway import store
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.settlement import candidates, refunds, relayer
from usdt_gateway.settlement.relayer import read_state

PAYER = "0x8ba1f109551bd432803012645ac136ddd64dba72"
DAY_S = 86_400
GWEI = 10**9


class Killed(BaseException):
    """A run stopped dead where a crash would stop it (nothing catches it)."""


@pytest.fixture
def world(
    settings_env: pytest.MonkeyPatch, api: ApiClient, merchant: Merchant, moto_server: str, fake_clock: FakeClock
) -> Iterator[World]:
    with open_world(settings_env, api, merchant, moto_server, fake_clock) as opened:
        yield opened


def kill_at(step: str) -> Callable[[str], None]:
    def hook(reached: str) -> None:
        if reached == step:
            raise Killed(step)

    return hook


def relayer_transactions(world: World) -> int:
    """Transactions the relayer's key has had mined."""
    return int(world.w3.eth.get_transaction_count(Web3.to_checksum_address(world.job.signer.address)))


def events_of(world: World, refund: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(e["body"]) for e in world.refund_events() if e["body"].find(refund["refundId"]) >= 0]


def factory_refund(world: World, refund: dict[str, Any], signature: bytes, *, sender: str, **tx: Any) -> str:
    """The owner's signature submitted to the factory directly, by `sender` (not the gateway)."""
    message = refund["typedData"]["message"]
    call = world.contracts.factory.functions.refund(
        Web3.to_checksum_address(message["token"]),
        bytes.fromhex(message["salt"][2:]),
        Web3.to_checksum_address(message["to"]),
        int(message["amount"]),
        int(message["nonce"]),
        message["deadline"],
        signature,
    )
    params: TxParams = {"from": Web3.to_checksum_address(sender), **tx}  # type: ignore[typeddict-item]
    return "0x" + bytes(call.transact(params)).hex()


# -- the path without trouble --------------------------------------------------------------------


def test_a_signed_refund_is_sent_completed_once_final_recorded_and_announced(
    world: World, webhook_queues: WebhookQueues, lambda_sqs: EventSourceMapping
) -> None:
    with receiver() as shop:
        set_url(world.api, shop.url())
        # Given an order of 25 paid 30, and the owner's signed refund of the 5 overpaid
        order = world.paid_order("30.00")
        refund = world.signed_refund(order, PAYER)
        # When the settlement runs: the refund is handed to the relayer and sent
        first = world.run()
        assert first["refund"] == refund["refundId"] and first["claimed"] is None
        assert first["outcome"] == "pending"
        # And it runs on until the refund is final
        reports = world.settle_refund()
        # Then the payer has the 5, the deposit address the order's 25, from one transaction
        assert reports[-1]["refunds_closed"] == [refund["refundId"]]
        assert world.balance(PAYER) == 5_000_000 and world.balance(order["address"]) == 25_000_000
        assert relayer_transactions(world) == 1
        # And the refund is recorded completed with its transaction and the gas the relayer paid
        done = world.refund(order, refund["refundId"])
        assert done["status"] == "completed" and done["reason"] is None
        receipt = world.w3.eth.get_transaction_receipt(done["txHash"])
        assert receipt["status"] == 1 and int(done["gasPaid"]) == receipt["gasUsed"] * receipt["effectiveGasPrice"]
        logs = world.contracts.factory.events.Refunded().process_receipt(receipt, errors=DISCARD)
        assert [(log["args"]["to"].lower(), log["args"]["amount"], log["args"]["nonce"]) for log in logs] == [
            (PAYER, 5_000_000, int(refund["typedData"]["message"]["nonce"]))
        ]
        # And its hold is released with the refunded units taken off; the order counts them
        (left,) = candidates.unsettled(world.network)
        assert (left.units, left.refund_id, left.hold_until) == (25_000_000, None, None)
        item = world.order_item(order)
        assert (item["refundedUnits"], item["refundedPaidUnits"], item["refundedAll"]) == (5_000_000, 5_000_000, False)
        assert "refundingId" not in item and world.view(order)["funds"] == "on_deposit_address"
        # And refund.completed went out through the outbox, signed: the refund without its typed data
        (event,) = [e for e in world.refund_events() if e["type"] == "refund.completed"]
        lambda_sqs.run_until(settled(event["eventId"]))
        (hit,) = [h for h in shop.hits if h.webhook_id == event["eventId"]]
        body = Webhook(world.merchant.webhook_secret).verify(hit.body, hit.headers)
        expected = {k: v for k, v in done.items() if k != "typedData"}
        assert body["type"] == "refund.completed" and body["data"] == expected and body["sequence"] == 1
        # And what the order took is swept by the next runs: the order's funds read swept
        world.settle_sweep()
        assert world.balance(world.contracts.treasury) == 25_000_000
        assert world.view(order)["funds"] == "swept"


def test_a_refund_of_all_the_money_an_order_received_reads_refunded(world: World) -> None:
    # Given an order of 25 paid 10 that failed at expiry, its late-payment window over
    order = world.paid_order("10.00", expiresIn=60)
    world.contracts.chain.warp(90)
    world.contracts.chain.mine(1)
    drive(world.scanner)
    world.clock.advance(HOUR_MS + 120_000)
    # When all of it is refunded
    refund = world.signed_refund(order, PAYER)
    assert refund["amount"] == "10.00"
    world.settle_refund()
    # Then the payer has it back, nothing is left to sweep, and the order's funds read refunded
    assert world.balance(PAYER) == 10_000_000 and world.balance(order["address"]) == 0
    assert candidates.unsettled(world.network) == []
    assert world.view(order)["funds"] == "refunded"
    assert world.order_item(order)["refundedAll"] is True


def test_an_owner_key_in_kms_signs_the_digest_and_the_refund_completes(
    settings_env: pytest.MonkeyPatch, api: ApiClient, merchant: Merchant, moto_server: str, fake_clock: FakeClock
) -> None:
    # Given a factory whose owner is a secp256k1 key in (the local) KMS
    kms = boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    owner = KmsSigner(key_id, client=kms)
    with open_world(settings_env, api, merchant, moto_server, fake_clock, owner_address=owner.address) as world:
        order = world.paid_order("30.00")
        refund = world.new_refund(order, PAYER)
        assert refund["owner"] == owner.address.lower()
        # When KMS signs the refund's digest (MessageType DIGEST) and that signature is given
        signature = owner.sign_digest(bytes.fromhex(refund["digest"][2:])).to_bytes()
        reply = world.submit(order, refund, signature)
        # Then it is the owner's: the refund is submitted, sent and completed
        assert reply.status == 202, reply.body
        world.settle_refund()
        assert world.refund(order, refund["refundId"])["status"] == "completed"
        assert world.balance(PAYER) == 5_000_000


def test_signed_refunds_go_before_new_sweeps(world: World) -> None:
    # Given a signed refund of one order and another order's money due for a sweep
    refunded = world.paid_order("30.00")
    other = world.paid_order("12.00", amount="12.00")
    refund = world.signed_refund(refunded, PAYER)
    # When the settlement runs: the refund goes first; no sweep is claimed while it is in flight
    reports = world.settle_refund()
    assert reports[0]["refund"] == refund["refundId"]
    assert all(r["claimed"] is None for r in reports)
    # Then the next runs sweep both addresses: the order's 25 and the other's 12
    world.settle_sweep()
    assert world.balance(world.contracts.treasury) == 37_000_000 and world.balance(PAYER) == 5_000_000
    assert world.balance(refunded["address"]) == world.balance(other["address"]) == 0


# -- crashes -------------------------------------------------------------------------------------

ANNOUNCED = "announced"  # the closing transaction committed, its event not handed to the queue


@pytest.mark.parametrize("step", [*relayer.STEPS, ANNOUNCED])
def test_a_run_killed_at_any_step_is_resumed_without_a_second_transaction_or_event(
    world: World, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a signed refund, and a run killed at `step` as it carries the refund
    order = world.paid_order("30.00")
    refund = world.signed_refund(order, PAYER)
    with monkeypatch.context() as patch:
        hook = None
        if step == ANNOUNCED:

            def killed_announce(*args: Any) -> None:
                raise Killed(step)

            patch.setattr(refunds, "announce", killed_announce)
        else:
            hook = kill_at(step)
        with pytest.raises(Killed):
            for _ in range(6):  # its later steps need blocks mined between runs
                world.run(hook)
                world.contracts.chain.mine(1)
    # When the next runs come, once the killed run's lease lapsed
    world.clock.advance(LEASE_MS + 1)
    if step != ANNOUNCED:
        world.settle_refund()
    # Then the payer has the 5 once, from the one transaction the relayer signed, with one event
    assert world.balance(PAYER) == 5_000_000 and relayer_transactions(world) == 1
    assert world.refund(order, refund["refundId"])["status"] == "completed"
    (event,) = events_of(world, refund)
    assert event["type"] == "refund.completed"
    state = read_state(world.network)
    assert state is not None and state.sweep is None and state.next_nonce == 1
    if step == ANNOUNCED:  # its event waits for the outbox sweeper, which hands it over later
        assert store.get(*store.outbox_key(event["id"])) is not None
    # And the next run takes no refund again: it sweeps what the order took
    report = world.run()
    assert report["refund"] is None and report["claimed"] is not None


# -- reorgs --------------------------------------------------------------------------------------


def test_a_reorg_that_takes_the_refunds_block_away_sends_it_again(world: World) -> None:
    # Given a signed refund, mined one block short of final
    order = world.paid_order("30.00")
    refund = world.signed_refund(order, PAYER)
    before = world.contracts.chain.anvil.rpc("evm_snapshot")
    assert world.run()["outcome"] == "pending"  # sent (and mined at once: automine)
    mined = world.run()
    assert mined["outcome"] == "mined"
    state = read_state(world.network)
    assert state is not None and state.sweep is not None and state.sweep.mined is not None
    old = state.sweep.mined
    # When a reorg replaces that block with a longer chain that does not hold it
    assert world.contracts.chain.anvil.rpc("evm_revert", [before]) is True
    world.contracts.chain.mine(2)
    assert world.balance(PAYER) == 0
    # Then the next run sends the stored transaction again, and the refund completes on the new chain
    again = world.run()
    assert again["outcome"] == "pending"
    state = read_state(world.network)
    assert state is not None and state.sweep is not None and state.sweep.reorgs == 1 and state.sweep.mined is None
    world.settle_refund()
    done = world.refund(order, refund["refundId"])
    assert done["status"] == "completed" and done["txHash"] == old.tx_hash  # the same signed transaction
    receipt = world.w3.eth.get_transaction_receipt(done["txHash"])
    assert "0x" + bytes(receipt["blockHash"]).hex() != old.block_hash
    assert world.balance(PAYER) == 5_000_000 and relayer_transactions(world) == 1
    assert [e["type"] for e in events_of(world, refund)] == ["refund.completed"]


# -- the signature used by another, the deadline, replays ----------------------------------------


def test_a_refund_someone_else_submitted_on_chain_first_completes_from_the_chains_evidence(world: World) -> None:
    # Given a signed refund whose signature the merchant also submits to the factory directly
    order = world.paid_order("30.00")
    refund = world.new_refund(order, PAYER)
    signature = world.sign(refund["typedData"])
    assert world.submit(order, refund, signature).status == 202
    direct = factory_refund(world, refund, signature, sender=world.contracts.chain.owner)
    # When the settlement runs: the relayer's transaction would revert (the nonce is used)
    world.settle_refund()
    # Then the refund is completed by the transaction that ran it, which the relayer did not pay
    done = world.refund(order, refund["refundId"])
    assert (done["status"], done["txHash"], done["gasPaid"]) == ("completed", direct, None)
    assert world.balance(PAYER) == 5_000_000 and relayer_transactions(world) == 0
    assert [e["type"] for e in events_of(world, refund)] == ["refund.completed"]
    (left,) = candidates.unsettled(world.network)
    assert left.units == 25_000_000 and left.refund_id is None


def test_a_refund_outrun_in_its_block_by_a_direct_submission_completes_from_that_one(world: World) -> None:
    # Given a signed refund the relayer has sent, still waiting in the pool
    order = world.paid_order("30.00")
    refund = world.new_refund(order, PAYER)
    signature = world.sign(refund["typedData"])
    assert world.submit(order, refund, signature).status == 202
    anvil = world.contracts.chain.anvil
    anvil.rpc("evm_setAutomine", [False])
    try:
        assert world.run()["outcome"] == "pending"
        # When the same signature, submitted directly with a higher tip, is mined first in the block
        direct = factory_refund(
            world,
            refund,
            signature,
            sender=world.contracts.chain.owner,
            maxPriorityFeePerGas=50 * GWEI,
            maxFeePerGas=100 * GWEI,
        )
        world.contracts.chain.mine(1)
        ours = world.w3.eth.get_transaction_receipt(HexStr(read_state_hashes(world)[0]))
        assert ours["status"] == 0  # "nonce already used"
        # And the runs go on
        world.settle_refund()
    finally:
        anvil.rpc("evm_setAutomine", [True])
    # Then the refund is completed by the direct transaction, once; the relayer's reverted one
    # is not taken for it
    done = world.refund(order, refund["refundId"])
    assert (done["status"], done["txHash"], done["gasPaid"]) == ("completed", direct, None)
    assert world.balance(PAYER) == 5_000_000 and relayer_transactions(world) == 1
    assert [e["type"] for e in events_of(world, refund)] == ["refund.completed"]


def read_state_hashes(world: World) -> tuple[str, ...]:
    state = read_state(world.network)
    assert state is not None and state.sweep is not None
    return state.sweep.hashes


def test_a_deadline_that_passes_before_the_refund_is_sent_fails_it_and_frees_the_money(world: World) -> None:
    # Given a signed refund the relayer has not sent yet when the chain passes its deadline
    order = world.paid_order("30.00")
    refund = world.signed_refund(order, PAYER)
    world.contracts.chain.warp(DAY_S + 120)
    # When the settlement runs
    report = world.run()
    # Then the refund fails (the factory would refuse it: its nonce unused), nothing is sent
    assert report["refunds_closed"] == [refund["refundId"]] and relayer_transactions(world) == 0
    failed = world.refund(order, refund["refundId"])
    assert failed["status"] == "failed" and "signature expired" in failed["reason"]
    assert (failed["txHash"], failed["gasPaid"]) == (None, None)
    (event,) = events_of(world, refund)
    assert event["type"] == "refund.failed" and event["data"]["reason"] == failed["reason"]
    # And its hold is released: the order is free for a new refund, the money for a sweep
    assert "refundingId" not in world.order_item(order)
    assert all(c.refund_id is None for c in candidates.unsettled(world.network))
    assert world.view(order)["funds"] == "on_deposit_address"
    world.settle_sweep()
    assert world.balance(world.contracts.treasury) == 30_000_000 and world.balance(PAYER) == 0


def test_a_refund_mined_after_its_deadline_reverts_and_fails_with_its_transaction(world: World) -> None:
    # Given a signed refund sent, still in the pool when the chain passes its deadline
    order = world.paid_order("30.00")
    refund = world.signed_refund(order, PAYER)
    anvil = world.contracts.chain.anvil
    anvil.rpc("evm_setAutomine", [False])
    try:
        assert world.run()["outcome"] == "pending"
        anvil.rpc("evm_increaseTime", [DAY_S + 120])
        # When it is mined (and reverts) and the runs go on
        world.settle_refund()
    finally:
        anvil.rpc("evm_setAutomine", [True])
    # Then it failed with the transaction that reverted and the gas it cost
    failed = world.refund(order, refund["refundId"])
    assert failed["status"] == "failed" and failed["reason"] == "the refund reverted"
    receipt = world.w3.eth.get_transaction_receipt(failed["txHash"])
    assert receipt["status"] == 0 and int(failed["gasPaid"]) == receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert world.balance(PAYER) == 0 and world.balance(order["address"]) == 30_000_000
    assert [e["type"] for e in events_of(world, refund)] == ["refund.failed"]
    assert all(c.refund_id is None for c in candidates.unsettled(world.network))


def test_a_signature_is_good_for_one_refund_only(world: World) -> None:
    # Given an order of 25 paid 35, and a first refund of 4 of its 10 overpaid, completed
    order = world.paid_order("35.00")
    first = world.new_refund(order, PAYER, "4.00")
    used = world.sign(first["typedData"])
    assert world.submit(order, first, used).status == 202
    world.settle_refund()
    assert world.balance(PAYER) == 4_000_000
    # When a second refund of the other 6 is given the first's signature
    second = world.new_refund(order, PAYER)
    assert second["amount"] == "6.00"
    replayed = world.submit(order, second, used)
    # Then the gateway refuses it, and so would the factory: its nonce is spent
    assert (replayed.status, replayed.body["code"]) == (400, "INVALID_SIGNATURE")
    with pytest.raises(ContractLogicError, match="nonce already used"):
        factory_refund(world, first, used, sender=Account.create().address)
    # And the second refund, signed for itself, completes: 10 refunded in all, 25 left
    assert world.submit(order, second, world.sign(second["typedData"])).status == 202
    world.settle_refund()
    assert world.balance(PAYER) == 10_000_000 and world.balance(order["address"]) == 25_000_000
    item = world.order_item(order)
    assert (item["refundedUnits"], item["refundedPaidUnits"]) == (10_000_000, 10_000_000)
    assert store.get(*store.refund_key(world.merchant.merchant_id, order["orderId"], second["refundId"])) is not None
