"""Refunds on Tron contract mode end to end, against the fake full node (in-process), the moto
server and the local KMS: a refund made through the API, signed with an owner key made here by the
SDK's sign_refund, checked by the gateway, sent by the Tron relayer and closed from what the chain
says. The node runs the factory's refund itself: it recovers the owner from the digest it computes
on its own (not the gateway's code), spends the nonce, moves the money and logs Refunded, and a
reorg puts its balances and nonces back. What reached the recipient is read from the node.

Also: a run killed between any two steps, a reorg before solidification, the signature submitted
by someone else first, a deadline that passed, a replayed signature, a non-owner's signature, and
a refund racing a sweep of the same address."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest
from coincurve import PrivateKey
from usdt_gateway_client.models import Refund as SdkRefund
from usdt_gateway_client.refunds import sign_refund

from devstack.tron_node import start_tron_node
from tests.fake_clock import FakeClock
from tests.integration import chains
from tests.integration.apiclient import ApiClient, Reply
from tests.integration.chains import drive, new_tron_chain, tron_address, tron_scanner
from tests.integration.conftest import Merchant
from tests.integration.test_tron_settlement import FEE_LIMIT, RELAYER_TRX, Killed, RecordingNode, World
from usdt_gateway import store
from usdt_gateway.address_codec import keccak256, tron_address_from_body, tron_body20
from usdt_gateway.chain import tron_tx
from usdt_gateway.config import networks
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.settlement import candidates
from usdt_gateway.settlement.relayer import STEPS
from usdt_gateway.settlement.tron_relayer import refund_parameter
from usdt_gateway.settlement_jobs import SettlementConfig, TronJob
from usdt_gateway.tron_energy import EnergySetting

CHAIN_ID = 1_234_567_891  # the test network's, which the node's genesis block id ends with
LEASE_MS = 120_000


class KeyAccount:
    """A Tron account whose key the test holds: it signs transactions (sha256 of raw_data) and,
    as the factory's owner, refunds."""

    def __init__(self) -> None:
        self.key = PrivateKey()
        self.body = keccak256(self.key.public_key.format(compressed=False)[1:])[12:]
        self.address = tron_address_from_body(self.body)

    def sign_tron_transaction(self, raw: bytes) -> bytes:
        return self.key.sign_recoverable(hashlib.sha256(raw).digest(), hasher=None)

    @property
    def tron_address(self) -> str:
        return self.address


@dataclass
class RefundWorld(World):
    owner: KeyAccount = None  # type: ignore[assignment]  # set by the fixture

    def overpaid(self, amount: str = "25.00", paid: str = "30.00") -> dict[str, Any]:
        order = self.order(amount)
        self.pay(order, paid)
        return order

    def path(self, order: dict[str, Any]) -> str:
        return f"/v1/payment/order/{order['orderId']}/refunds"

    def create_refund(self, order: dict[str, Any], to: str, amount: str | None = "5.00") -> Reply:
        return self.api.request("POST", self.path(order), {"to": to} | ({"amount": amount} if amount else {}))

    def sign(self, refund: dict[str, Any], key: KeyAccount | None = None) -> str:
        """The owner's signature through the SDK, which checks the refund before it signs."""
        return sign_refund(
            SdkRefund.from_dict(refund),
            (key or self.owner).key.secret,
            expected_to=refund["to"],
            decimals=6,
            now=self.clock() / 1000,
        )

    def submit(self, order: dict[str, Any], refund: dict[str, Any], signature: str) -> Reply:
        return self.api.request("POST", f"{self.path(order)}/{refund['refundId']}/signature", {"signature": signature})

    def signed_refund(self, order: dict[str, Any], to: str, amount: str = "5.00") -> dict[str, Any]:
        made = self.create_refund(order, to, amount)
        assert made.status == 201, made.body
        reply = self.submit(order, made.body, self.sign(made.body))
        assert reply.status == 202, reply.body
        return dict(reply.body)

    def refund(self, order: dict[str, Any], refund_id: str) -> dict[str, Any]:
        reply = self.api.request("GET", f"{self.path(order)}/{refund_id}")
        assert reply.status == 200, reply.body
        return dict(reply.body)

    def settle_refund(self, *, runs: int = 8) -> list[dict[str, Any]]:
        reports = []
        for _ in range(runs):
            reports.append(self.run())
            if reports[-1]["refunds_closed"]:
                return reports
            self.chain.mine()
            self.chain.solidify()
        raise AssertionError(f"no refund closed: {reports}")

    def refund_events(self) -> list[dict[str, Any]]:
        items, _ = store.query_index(
            store.events_index_pk(self.merchant.merchant_id), sk_from="0", sk_to="~", limit=100, newest_first=False
        )
        return [i for i in items if str(i["type"]).startswith("refund.")]

    def submit_directly(self, refund_id: str, sender: KeyAccount, order: dict[str, Any]) -> str:
        """The signed refund sent to the factory by `sender`, not the relayer (anyone may); its txid."""
        from usdt_gateway.settlement import refunds

        record = refunds.read(self.merchant.merchant_id, order["orderId"], refund_id)
        assert record is not None and record.signature is not None
        from usdt_gateway.settlement.records import Sweep

        sweep = Sweep(refund_id, "", record.factory, record.token, (record.salt,), 0, refund=record.call())
        built = tron_tx.build_call(
            self.recorder.client,
            owner=sender.address,
            contract=record.factory,
            signature=tron_tx.REFUND_SIGNATURE,
            parameter=refund_parameter(sweep),
            fee_limit=FEE_LIMIT,
        )
        return tron_tx.broadcast(self.recorder.client, tron_tx.sign(sender, built))


@pytest.fixture
def world(
    settings_env: pytest.MonkeyPatch, api: ApiClient, merchant: Merchant, moto_server: str, fake_clock: FakeClock
) -> Iterator[RefundWorld]:
    kms = boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signer = KmsSigner(key_id, client=kms)
    owner = KeyAccount()  # the factory's owner, made for this run
    settings_env.setattr(chains, "_free_chain_id", lambda: CHAIN_ID)
    with start_tron_node(blocks=5, solid_lag=3, chain_id=CHAIN_ID) as node:
        chain = new_tron_chain(node, settings_env)
        assert networks()[chain.network].chain_id == CHAIN_ID
        cfg = ContractConfig(
            merchant.merchant_id,
            chain.network,
            factory=tron_address(),
            implementation=tron_address(),
            treasury=tron_address(),
            owner=owner.address,
            updated_at=fake_clock(),
        )
        store.put(cfg.to_item())
        node.add_factory(cfg.factory, implementation=cfg.implementation, treasury=cfg.treasury, owner=owner.address)
        node.fund_trx(signer.tron_address, RELAYER_TRX)
        recorder = RecordingNode(node.url)
        job = TronJob(networks()[chain.network], [recorder], signer, EnergySetting("burn", FEE_LIMIT))
        config = SettlementConfig(
            relayer_key_id=key_id,
            min_amount=Decimal("10"),
            max_age_seconds=600,
            max_gas_price_gwei=Decimal("100"),
            max_deposits=50,
            sweeps_per_day=24,
            gas_per_sweep=600_000,
        )
        scanner = tron_scanner(chain.network, [node.url])
        drive(scanner)
        yield RefundWorld(node, chain, merchant, api, scanner, job, config, fake_clock, recorder, cfg, owner)


def test_a_refund_on_tron_runs_through_the_api_and_the_relayer_to_the_recipient(world: RefundWorld) -> None:
    w = world
    order = w.overpaid()
    to = tron_address()
    # Given a refund made through the API: base58 in the API, 20-byte bodies in the typed data
    made = w.create_refund(order, to)
    assert made.status == 201, made.body
    refund = made.body
    assert (refund["to"], refund["depositAddress"], refund["owner"]) == (to, order["address"], w.owner.address)
    typed = refund["typedData"]
    assert typed["domain"]["chainId"] == CHAIN_ID
    assert typed["domain"]["verifyingContract"] == "0x" + tron_body20(w.cfg.factory).hex()
    assert typed["message"]["to"] == "0x" + tron_body20(to).hex()
    # And the gateway's digest is the one the factory computes on chain (the node's own code)
    words = b"".join(
        [
            tron_body20(w.chain.token).rjust(32, b"\0"),
            bytes.fromhex(typed["message"]["salt"][2:]),
            tron_body20(to).rjust(32, b"\0"),
            int(typed["message"]["amount"]).to_bytes(32),
            int(typed["message"]["nonce"]).to_bytes(32),
            int(typed["message"]["deadline"]).to_bytes(32),
        ]
    )
    on_chain = tron_tx.call_view(
        w.recorder.client, w.cfg.factory, "refund_digest(address,bytes32,address,uint256,uint256,uint256)", words
    )
    assert "0x" + on_chain.hex() == refund["digest"]
    # When the owner signs it with the SDK and it is submitted, and the settlement runs
    reply = w.submit(order, refund, w.sign(refund))
    assert reply.status == 202 and reply.body["status"] == "submitted", reply.body
    reports = w.settle_refund()
    # Then it completed once its block was solidified, the money is at the recipient on chain
    assert reports[0]["refund"] == refund["refundId"]
    done = w.refund(order, refund["refundId"])
    assert done["status"] == "completed" and done["txHash"] == w.recorder.sent[0], done
    assert int(done["gasPaid"]) > 0
    assert w.usdt(to) == 5_000_000 and w.usdt(order["address"]) == 25_000_000
    (event,) = w.refund_events()
    body = json.loads(event["body"])
    assert event["type"] == "refund.completed" and body["data"]["refundId"] == refund["refundId"], body
    assert body["data"]["to"] == to and body["data"]["txHash"] == done["txHash"]
    item = store.get(*store.order_key(w.merchant.merchant_id, order["orderId"]))
    assert item is not None and int(item["refundedUnits"]) == 5_000_000 and "refundingId" not in item
    # And the rest is swept as any money
    w.settle()
    assert w.usdt(w.cfg.treasury) == 25_000_000 and w.funds(order) == "swept"


@pytest.mark.parametrize("step", STEPS)
def test_a_refund_run_killed_between_any_two_steps_is_resumed_with_one_transaction(
    world: RefundWorld, step: str
) -> None:
    w = world
    order = w.overpaid()
    to = tron_address()
    refund = w.signed_refund(order, to)

    def kill(reached: str) -> None:
        if reached == step:
            raise Killed(step)

    for _ in range(4):
        try:
            w.run(kill)
        except Killed:
            break
        w.chain.mine()
        w.chain.solidify()
    else:
        raise AssertionError(f"{step} was never reached")
    w.clock.advance(LEASE_MS + 1)
    w.chain.mine()
    w.chain.solidify()
    w.settle_refund()
    assert len(set(w.recorder.sent)) == 1
    assert w.refund(order, refund["refundId"])["status"] == "completed"
    assert w.usdt(to) == 5_000_000 and w.usdt(order["address"]) == 25_000_000
    assert [e["type"] for e in w.refund_events()] == ["refund.completed"]


def test_a_refund_reorganised_away_before_solidification_is_sent_again_and_moves_money_once(
    world: RefundWorld,
) -> None:
    w = world
    order = w.overpaid()
    to = tron_address()
    refund = w.signed_refund(order, to)
    w.node.set_solid(w.node.head)  # nothing new solidifies until the test says so
    assert w.run()["outcome"] == "pending"
    mined_at = w.node.add_block()
    assert w.run()["outcome"] == "mined" and w.usdt(to) == 5_000_000
    # When its block is reorganised away: the node puts the balances back
    w.node.reorg(mined_at, 1)
    assert w.usdt(to) == 0 and w.usdt(order["address"]) == 30_000_000
    # Then the stored transaction is sent again, and the refund completes with the money moved once
    w.node.set_solid(None)
    w.settle_refund()
    assert len(set(w.recorder.sent)) == 1
    assert w.refund(order, refund["refundId"])["status"] == "completed"
    assert w.usdt(to) == 5_000_000 and w.usdt(order["address"]) == 25_000_000


def test_a_refund_whose_signature_another_submitted_first_completes_from_that_transaction(
    world: RefundWorld,
) -> None:
    w = world
    order = w.overpaid()
    to = tron_address()
    refund = w.signed_refund(order, to)
    # Given the owner's signature submitted to the factory by someone else before the relayer ran
    other = KeyAccount()
    txid = w.submit_directly(refund["refundId"], other, order)
    w.chain.mine()
    assert w.usdt(to) == 5_000_000
    # When the settlement runs
    w.settle_refund()
    # Then the refund completed from that transaction, the relayer sent nothing, the money moved once
    done = w.refund(order, refund["refundId"])
    assert done["status"] == "completed" and done["txHash"] == txid and done["gasPaid"] is None, done
    assert w.recorder.sent == [] and w.usdt(to) == 5_000_000
    assert [e["type"] for e in w.refund_events()] == ["refund.completed"]


def test_a_refund_whose_deadline_passed_fails_and_releases_its_money(world: RefundWorld) -> None:
    w = world
    order = w.overpaid()
    to = tron_address()
    refund = w.signed_refund(order, to)
    # Given blocks past the deadline before the relayer ran (and one solidified)
    w.node.add_block(timestamp=(refund["deadline"] + 60) * 1000)
    w.chain.mine()
    w.chain.solidify()
    # When the settlement runs
    w.settle_refund()
    # Then it failed without a transaction, the money is still on the deposit address, unheld
    done = w.refund(order, refund["refundId"])
    assert done["status"] == "failed" and "deadline" in done["reason"] and done["txHash"] is None, done
    assert w.recorder.sent == [] and w.usdt(to) == 0 and w.usdt(order["address"]) == 30_000_000
    assert [e["type"] for e in w.refund_events()] == ["refund.failed"]
    assert all(c.refund_id is None for c in candidates.unsettled(w.network))


def test_a_replayed_signature_moves_nothing_twice(world: RefundWorld) -> None:
    w = world
    order = w.overpaid(paid="32.00")  # 7.00 refundable: 5.00 now, some later
    to = tron_address()
    made = w.create_refund(order, to)
    signature = w.sign(made.body)
    assert w.submit(order, made.body, signature).status == 202
    w.settle_refund()
    # When the same signature is submitted again: the gateway answers the refund as it is
    again = w.submit(order, made.body, signature)
    assert again.status == 200 and again.body["status"] == "completed"
    # And sent to the factory again by anyone: the spent nonce makes it revert
    txid = w.submit_directly(made.body["refundId"], KeyAccount(), order)
    w.chain.mine()
    outcome = tron_tx.outcome(w.recorder.client, txid)
    assert outcome is not None and outcome.result == "REVERT"
    assert w.usdt(to) == 5_000_000 and w.usdt(order["address"]) == 27_000_000
    # And it signs no other refund (another nonce and deadline)
    second = w.create_refund(order, to, "1.00")
    assert second.status == 201, second.body
    refused = w.submit(order, second.body, signature)
    assert (refused.status, refused.body["code"]) == (400, "INVALID_SIGNATURE")


def test_a_signature_not_the_owners_is_refused_by_the_gateway_and_the_factory(world: RefundWorld) -> None:
    w = world
    order = w.overpaid()
    to = tron_address()
    made = w.create_refund(order, to)
    stranger = KeyAccount()
    digest = bytes.fromhex(made.body["digest"][2:])
    raw = stranger.key.sign_recoverable(digest, hasher=None)
    signature = "0x" + (raw[:64] + bytes([raw[64] + 27])).hex()
    # The gateway refuses it (the SDK would refuse to sign with a key that is not the owner's)
    refused = w.submit(order, made.body, signature)
    assert (refused.status, refused.body["code"]) == (400, "INVALID_SIGNATURE"), refused.body
    with pytest.raises(Exception, match="owner"):
        w.sign(made.body, stranger)
    # And the factory on chain does too
    from usdt_gateway.settlement import refunds

    record = refunds.read(w.merchant.merchant_id, order["orderId"], made.body["refundId"])
    assert record is not None
    store.update(*record.key, set_values={"signature": signature})
    txid = w.submit_directly(made.body["refundId"], stranger, order)
    w.chain.mine()
    outcome = tron_tx.outcome(w.recorder.client, txid)
    assert outcome is not None and outcome.result == "REVERT" and w.usdt(to) == 0


def test_a_refund_and_a_sweep_of_one_address_never_both_take_its_money(world: RefundWorld) -> None:
    w = world
    # A sweep that claimed the address first: no refund is made
    swept = w.overpaid()
    w.run()
    refused = w.create_refund(swept, tron_address())
    assert (refused.status, refused.body["code"]) == (409, "REFUND_NOT_AVAILABLE"), refused.body
    w.settle()
    assert w.usdt(w.cfg.treasury) == 30_000_000
    # A refund made first: the sweep leaves the address alone until the refund closed
    order = w.overpaid()
    to = tron_address()
    refund = w.signed_refund(order, to)
    first = w.run()
    assert first["refund"] == refund["refundId"] and first["claimed"] is None
    w.settle_refund()
    w.settle()
    assert w.usdt(to) == 5_000_000 and w.usdt(w.cfg.treasury) == 55_000_000
    assert w.usdt(order["address"]) == 0


def test_a_refund_to_an_evm_address_is_refused_on_tron(world: RefundWorld) -> None:
    order = world.overpaid()
    reply = world.create_refund(order, "0x" + "ab" * 20)
    assert (reply.status, reply.body["code"]) == (400, "INVALID_ADDRESS"), reply.body
    assert all(c.refund_id is None for c in candidates.unsettled(world.network))
