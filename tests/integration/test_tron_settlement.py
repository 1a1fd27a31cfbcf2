"""Contract mode on Tron end to end, against the fake full node (in-process, no TVM), the moto
server and the local KMS: an order created through the API gets its Tron CREATE2 address, is paid
and credited by the scanner, and the settlement runs (settlement_jobs.run_tron_network: candidates,
batch, TronSweepRelayer) sweep it to the treasury once the sweep's block is solidified. What
reached the treasury is read from the node's token balances, which its sweeps move.

Also: batching under the policy's limits, a sweep's block reorganised away before it was
solidified (sent again as stored, or rebuilt once it can no longer be mined; money moved once),
OUT_OF_ENERGY recorded failed with its energy and fee and the deposits swept by the next sweep, a
run killed between any two steps, the relayer's TRX balance figure, the reuse pool on Tron, and the
deployed handler with the chain layer. The factory is stored as `set-contract` stores it; its
on-chain checks are test_tron_contract_mode.py's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.functions import add_layers_to_path, load_functions
from devstack.template import REPO_ROOT, load_template
from devstack.tron_node import DEFAULT_CALL_ENERGY, ENERGY_PRICE_SUN, TronNode, start_tron_node
from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient
from tests.integration.chains import (
    TronChain,
    create,
    drive,
    new_tron_chain,
    status,
    tron_address,
    tron_scanner,
)
from tests.integration.conftest import Merchant
from usdt_gateway import aws, contract_mode, create2, deposit_pool, settlement_jobs, store
from usdt_gateway.address_codec import tron_address_from_body
from usdt_gateway.chain.readers import TronNode as TronClient
from usdt_gateway.config import networks
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.scanner import Scanner
from usdt_gateway.settlement import candidates
from usdt_gateway.settlement.relayer import STEPS, read_settlement, read_state
from usdt_gateway.settlement.tron_relayer import TronSweepRelayer
from usdt_gateway.settlement_jobs import SettlementConfig, TronJob, run_tron_network
from usdt_gateway.tron_energy import EnergySetting

FEE_LIMIT = 50_000_000  # 50 TRX
RELAYER_TRX = 1_000_000_000  # 1,000 TRX
LEASE_MS = 120_000
SETTLEMENT = "SettlementFunction"


class Killed(BaseException):
    """A run stopped dead where a crash would stop it (nothing catches it)."""


class RecordingNode:
    """The settlement's full-node client, remembering every transaction broadcast through it."""

    def __init__(self, url: str) -> None:
        self.client = TronClient(url, timeout=10)
        self.label = self.client.label
        self.sent: list[str] = []

    def make_request(self, method: str, params: Any = None) -> Any:
        if method == "wallet/broadcasttransaction":
            self.sent.append(str(params["txID"]))
        return self.client.make_request(method, params)


@dataclass
class World:
    node: TronNode
    chain: TronChain
    merchant: Merchant
    api: ApiClient
    scanner: Scanner
    job: TronJob
    config: SettlementConfig
    clock: FakeClock
    recorder: RecordingNode
    cfg: ContractConfig

    @property
    def network(self) -> str:
        return self.chain.network

    def order(self, amount: str = "25.00", **extra: object) -> dict[str, Any]:
        return create(self.api, self.chain, amount, **extra)

    def pay(self, order: dict[str, Any], amount: str) -> str:
        """A payment in a new block, solidified and read by the scanner; its txid."""
        txid = self.chain.pay(order["address"], amount)
        self.chain.solidify()
        drive(self.scanner)
        return txid

    def paid_order(self, amount: str = "25.00") -> dict[str, Any]:
        order = self.order(amount)
        self.pay(order, amount)
        return order

    def relayer(self, hook: Callable[[str], None] | None = None) -> Callable[[Any], TronSweepRelayer]:
        """A run's relayer (a lease owner of its own, as each invocation is)."""

        def make(node: Any) -> TronSweepRelayer:
            return TronSweepRelayer(
                self.job.network,
                node,
                self.job.signer,
                fee_limit=self.job.energy.fee_limit_sun,
                lease_ms=LEASE_MS,
                hook=hook or (lambda step: None),
            )

        return make

    def run(self, hook: Callable[[str], None] | None = None) -> dict[str, Any]:
        return run_tron_network(self.job, self.config, self.relayer(hook))

    def settle(self, *, runs: int = 8) -> list[dict[str, Any]]:
        """Run, mine and solidify until a run marks a settlement; the reports of the runs."""
        reports = []
        for _ in range(runs):
            reports.append(self.run())
            if reports[-1]["marked"]:
                return reports
            self.chain.mine()
            self.chain.solidify()
        raise AssertionError(f"no settlement marked: {reports}")

    def usdt(self, holder: str) -> int:
        """What `holder` holds of the network's USDT on chain."""
        return self.node.balance(self.chain.token, holder)

    def funds(self, order: dict[str, Any]) -> str | None:
        funds = status(self.api, order)["funds"]
        return None if funds is None else str(funds)

    def settlements(self) -> list[dict[str, Any]]:
        reply = self.api.request("GET", "/v1/settlements")
        assert reply.status == 200, reply.body
        listed: list[dict[str, Any]] = reply.body["settlements"]
        return listed

    def events(self) -> list[dict[str, Any]]:
        items, _ = store.query_index(
            store.events_index_pk(self.merchant.merchant_id), sk_from="0", sk_to="~", limit=100, newest_first=False
        )
        return [i for i in items if str(i["type"]).startswith("settlement.")]


def contract_config(merchant_id: str, network: str, now: int) -> ContractConfig:
    """A Tron factory stored as `admin set-contract` stores it (base58 addresses)."""
    cfg = ContractConfig(
        merchant_id,
        network,
        factory=tron_address(),
        implementation=tron_address(),
        treasury=tron_address(),
        owner=tron_address(),
        updated_at=now,
    )
    store.put(cfg.to_item())
    return cfg


@pytest.fixture
def world(
    settings_env: pytest.MonkeyPatch, api: ApiClient, merchant: Merchant, moto_server: str, fake_clock: FakeClock
) -> Iterator[World]:
    kms = boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signer = KmsSigner(key_id, client=kms)
    with start_tron_node(blocks=5, solid_lag=3) as node:
        chain = new_tron_chain(node, settings_env)
        cfg = contract_config(merchant.merchant_id, chain.network, fake_clock())
        node.add_factory(cfg.factory, implementation=cfg.implementation, treasury=cfg.treasury)
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
        yield World(node, chain, merchant, api, scanner, job, config, fake_clock, recorder, cfg)


def _node_deposit_address(w: World, salt: bytes) -> str:
    """The deposit address of `salt` as the node's factory computes it (its own CREATE2 code)."""
    factory = next(iter(w.node.chain.factories.values()))
    return tron_address_from_body(bytes.fromhex(factory.deposit(salt.hex())[2:]))


# -- the whole way ------------------------------------------------------------------------------------


def test_a_tron_order_is_paid_credited_and_swept_to_the_treasury_once_solidified(world: World) -> None:
    w = world
    # When an order is created on the Tron network in contract mode
    before = dict(w.node.requests)
    order = w.order("25.00")
    # Then it got the factory's CREATE2 address for its salt, in base58, without asking the node
    assert dict(w.node.requests) == before
    salt = create2.order_salt(w.merchant.merchant_id, order["orderId"])
    assert order["address"].startswith("T")
    assert order["address"] == create2.tron_deposit_address(w.cfg.factory, w.cfg.implementation, salt)
    assert order["address"] == _node_deposit_address(w, salt)
    item = store.get(*store.order_key(w.merchant.merchant_id, order["orderId"]))
    assert item is not None and item["depositSalt"] == "0x" + salt.hex() and item["depositFactory"] == w.cfg.factory
    claim = store.get(*store.address_key(w.network, order["address"]))
    assert claim is not None and (claim["salt"], claim["factory"], claim["token"]) == (
        "0x" + salt.hex(),
        w.cfg.factory,
        w.chain.token,
    )
    # When it is paid, in a block not solidified yet, Then nothing is credited
    txid = w.chain.pay(order["address"], "25.00")
    drive(w.scanner)
    assert status(w.api, order)["status"] != "confirmed" and candidates.unsettled(w.network) == []
    # Once the block is solidified, it is credited, the money waiting on its address
    w.chain.solidify()
    drive(w.scanner)
    assert status(w.api, order)["status"] == "confirmed"
    assert w.funds(order) == "on_deposit_address" and w.usdt(order["address"]) == 25_000_000
    (unsettled,) = candidates.unsettled(w.network)
    assert (unsettled.address, unsettled.txid, unsettled.units, unsettled.factory) == (
        order["address"],
        txid,
        25_000_000,
        w.cfg.factory,
    )
    # When the settlement runs, Then it claims the deposit and sends one sweep
    first = w.run()
    assert first["claimed"] is not None and first["outcome"] == "pending"
    assert w.funds(order) == "sweeping" and len(w.recorder.sent) == 1
    # When the sweep is mined but not solidified, Then the money is in the treasury on chain, but
    # nothing is marked swept yet
    w.chain.mine()
    mined = w.run()
    assert mined["outcome"] == "mined" and mined["marked"] == []
    assert w.usdt(w.cfg.treasury) == 25_000_000 and w.usdt(order["address"]) == 0
    assert w.funds(order) == "sweeping" and read_settlement(first["claimed"]) is None and w.settlements() == []
    # Once its block is solidified, the next run closes and marks it
    w.chain.solidify()
    done = w.run()
    assert done["marked"] == [first["claimed"]] and done["outcome"] == "completed"
    assert w.funds(order) == "swept" and candidates.unsettled(w.network) == []
    assert w.usdt(w.cfg.treasury) == 25_000_000 and w.usdt(order["address"]) == 0
    # And it is recorded with its transaction, energy and fee, listed to the merchant and announced
    settlement = read_settlement(first["claimed"])
    assert settlement is not None and settlement.mined is not None
    assert settlement.hashes == tuple(w.recorder.sent) and settlement.mined.result == "SUCCESS"
    assert settlement.mined.gas_used == DEFAULT_CALL_ENERGY
    assert settlement.gas_paid == DEFAULT_CALL_ENERGY * ENERGY_PRICE_SUN
    (listed,) = w.settlements()
    assert listed["settlementId"] == first["claimed"] and listed["status"] == "completed"
    assert (listed["network"], listed["amount"], listed["orders"]) == (w.network, "25.00", [order["orderId"]])
    assert (listed["factory"], listed["tokenContract"]) == (w.cfg.factory, w.chain.token)
    assert listed["txHash"] == w.recorder.sent[0] and listed["gasPaid"] == str(settlement.gas_paid)
    (event,) = w.events()
    assert event["type"] == "settlement.completed"
    # And the relayer paid the fee in TRX; a later run sends nothing more
    assert w.node.trx_balance(w.job.signer.tron_address) == RELAYER_TRX - settlement.gas_paid
    assert w.run()["outcome"] == "idle" and len(w.recorder.sent) == 1


def test_an_order_created_on_tron_reads_both_address_configs_in_one_call(world: World) -> None:
    calls: list[tuple[str, list[str]]] = []

    def record(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        if model.name == "GetItem" and params["Key"]["pk"]["S"].startswith("MERCHANT#"):
            calls.append((model.name, [params["Key"]["pk"]["S"]]))
        elif model.name == "BatchGetItem":
            (request,) = params["RequestItems"].values()
            calls.append((model.name, [k["pk"]["S"] + "/" + k["sk"]["S"] for k in request["Keys"]]))

    client = aws.client("dynamodb")
    client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        world.order()
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", record)
    pk = f"MERCHANT#{world.merchant.merchant_id}"
    assert [c for c in calls if any(k.startswith(pk) for k in c[1])] == [
        ("BatchGetItem", [f"{pk}/CONTRACTCFG#{world.network}", f"{pk}/ADDRCFG#tron"])
    ]


def test_the_other_tron_networks_of_the_merchant_keep_their_xpub(world: World) -> None:
    # Given contract mode on the test network only, When an order is made on mainnet Tron
    reply = world.api.create(network="tron", amount="10.00")
    # Then it gets an xpub address, no salt
    assert reply.status == 201
    item = store.get(*store.order_key(world.merchant.merchant_id, reply.body["orderId"]))
    assert item is not None and "depositSalt" not in item and item["addressIndex"] == 0


def test_a_refund_to_an_evm_address_is_refused_on_tron_and_holds_nothing(world: World) -> None:
    order = world.paid_order("25.00")
    reply = world.api.request(
        "POST", f"/v1/payment/order/{order['orderId']}/refunds", {"to": "0x" + "ab" * 20, "amount": "1.00"}
    )
    assert reply.status == 400 and reply.body["code"] == "INVALID_ADDRESS", reply.body
    assert "Tron" in reply.body["message"]
    (unsettled,) = candidates.unsettled(world.network)
    assert unsettled.refund_id is None
    # And the money is swept as any
    world.settle()
    assert world.funds(order) == "swept"


# -- batching ---------------------------------------------------------------------------------------


def test_deposits_are_batched_oldest_first_within_the_policys_limits(world: World) -> None:
    w = world
    w.config = replace(w.config, max_deposits=2)
    # Given three orders of 6 USDT paid one minute apart (each alone below the 10 USDT minimum)
    orders = []
    for _ in range(3):
        orders.append(w.paid_order("6.00"))
        w.clock.advance(60_000)
    # When the settlement runs until a sweep is marked
    reports = w.settle()
    # Then one sweep, one transaction, took the two oldest deposits together
    (settlement_id,) = reports[-1]["marked"]
    settlement = read_settlement(settlement_id)
    assert settlement is not None and settlement.mined is not None
    assert len(settlement.salts) == 2 and len(w.recorder.sent) == 1
    assert settlement.mined.swept == {orders[0]["address"]: 6_000_000, orders[1]["address"]: 6_000_000}
    assert [w.funds(o) for o in orders] == ["swept", "swept", "on_deposit_address"]
    assert w.usdt(w.cfg.treasury) == 12_000_000 and w.usdt(orders[2]["address"]) == 6_000_000
    # And the third, alone below the minimum, waits ...
    w.chain.mine()
    w.chain.solidify()
    assert w.run()["outcome"] == "idle" and len(w.recorder.sent) == 1
    # ... until its credit waited the maximum age
    w.clock.advance(600_000)
    w.settle()
    assert w.funds(orders[2]) == "swept" and w.usdt(w.cfg.treasury) == 18_000_000
    assert len(w.recorder.sent) == 2 and len(w.settlements()) == 2


def test_two_payments_to_one_address_are_swept_in_one_call_with_one_salt(world: World) -> None:
    w = world
    order = w.order("25.00")
    w.pay(order, "20.00")
    w.pay(order, "5.00")
    (settlement_id,) = w.settle()[-1]["marked"]
    settlement = read_settlement(settlement_id)
    assert settlement is not None and settlement.mined is not None
    assert len(settlement.salts) == 1 and settlement.mined.swept == {order["address"]: 25_000_000}
    assert w.funds(order) == "swept" and w.usdt(w.cfg.treasury) == 25_000_000


# -- reorgs -----------------------------------------------------------------------------------------


def _mined_once(w: World) -> tuple[dict[str, Any], str, int]:
    """A paid order whose sweep is mined (recorded) in a block not solidified: (order, txid, block)."""
    order = w.paid_order("25.00")
    assert w.run()["outcome"] == "pending"
    w.chain.mine()
    assert w.run()["outcome"] == "mined"
    state = read_state(w.network)
    assert state is not None and state.sweep is not None and state.sweep.mined is not None
    return order, w.recorder.sent[0], state.sweep.mined.block_number


def test_a_sweep_reorganised_away_before_solidification_is_sent_again_as_stored_and_moves_money_once(
    world: World,
) -> None:
    w = world
    order, txid, block = _mined_once(w)
    old_block_id = w.node.block_id(block)
    assert w.usdt(w.cfg.treasury) == 25_000_000
    # When a reorg replaces the sweep's block (not solidified) with empty ones
    w.node.reorg(block, 2)
    # Then the chain holds the money on the deposit address again
    assert w.usdt(order["address"]) == 25_000_000 and w.usdt(w.cfg.treasury) == 0
    # When the settlement runs, Then it sends the same stored transaction again, marks nothing
    in_flight = read_state(w.network)
    assert in_flight is not None and in_flight.sweep is not None
    again = w.run()
    assert again["outcome"] == "pending" and again["marked"] == []
    assert w.recorder.sent == [txid, txid]
    assert w.funds(order) == "sweeping" and read_settlement(in_flight.sweep.settlement_id) is None
    # And once mined again and solidified, the sweep completes with the money moved once
    reports = w.settle()
    (settlement_id,) = reports[-1]["marked"]
    settlement = read_settlement(settlement_id)
    assert settlement is not None and settlement.mined is not None
    assert settlement.hashes == (txid,) and settlement.reorgs == 1
    assert settlement.mined.block_hash != old_block_id
    assert w.usdt(w.cfg.treasury) == 25_000_000 and w.usdt(order["address"]) == 0
    assert w.funds(order) == "swept" and set(w.recorder.sent) == {txid}


def test_a_reorganised_sweep_that_expired_meanwhile_is_rebuilt_once_a_solidified_block_passes_it(
    world: World,
) -> None:
    w = world
    order, txid, block = _mined_once(w)
    state = read_state(w.network)
    assert state is not None and state.sweep is not None
    expiration = state.sweep.attempts[-1].expiration
    assert expiration is not None
    # Given the sweep's block reorganised away and the chain past the transaction's expiration
    # (solidified below it)
    w.node.reorg(block, 1)
    w.chain.warp(expiration + 3000)
    # When the settlement runs, Then the node refuses it as expired, and nothing new is built
    # while a block that can still come might hold it
    for _ in range(2):
        assert w.run()["outcome"] == "pending"
    assert set(w.recorder.sent) == {txid}
    assert w.funds(order) == "sweeping"
    # When a block past its expiration is solidified, Then one new transaction is built and sent
    w.chain.solidify()
    w.run()
    rebuilt = [t for t in w.recorder.sent if t != txid]
    assert len(set(rebuilt)) == 1
    # And it completes with the money moved once, both transactions on record
    (settlement_id,) = w.settle()[-1]["marked"]
    settlement = read_settlement(settlement_id)
    assert settlement is not None and settlement.mined is not None
    assert settlement.hashes == (txid, rebuilt[0]) and settlement.mined.tx_hash == rebuilt[0]
    assert w.usdt(w.cfg.treasury) == 25_000_000 and w.funds(order) == "swept"


# -- failures ---------------------------------------------------------------------------------------


def test_out_of_energy_is_a_failed_sweep_with_its_energy_and_fee_and_the_deposit_is_swept_later(
    world: World,
) -> None:
    w = world
    order = w.paid_order("25.00")
    # Given the node runs the next call out of energy
    w.node.next_call_outcome("OUT_OF_ENERGY")
    # When the settlement carries the sweep to a solidified block
    reports = w.settle()
    (settlement_id,) = reports[-1]["marked"]
    # Then it is recorded failed, with the energy the fee limit bought and the whole limit burned
    settlement = read_settlement(settlement_id)
    assert settlement is not None and settlement.mined is not None
    energy = FEE_LIMIT // ENERGY_PRICE_SUN
    assert (settlement.status.value, settlement.mined.result) == ("failed", "OUT_OF_ENERGY")
    assert (settlement.mined.gas_used, settlement.mined.energy_fee, settlement.gas_paid) == (
        energy,
        FEE_LIMIT,
        FEE_LIMIT,
    )
    assert settlement.reason == f"the sweep failed: OUT_OF_ENERGY (energy {energy}, fee {FEE_LIMIT} sun)"
    assert w.node.trx_balance(w.job.signer.tron_address) == RELAYER_TRX - FEE_LIMIT
    # And nothing moved: the deposit is released for the next sweep, its order back on its address
    assert w.usdt(order["address"]) == 25_000_000 and w.usdt(w.cfg.treasury) == 0
    (released,) = candidates.unsettled(w.network)
    assert released.sweep_id is None and released.failures == 1
    assert w.funds(order) == "on_deposit_address"
    (listed,) = w.settlements()
    assert (listed["status"], listed["gasPaid"], listed["reason"]) == ("failed", str(FEE_LIMIT), settlement.reason)
    assert [e["type"] for e in w.events()] == ["settlement.failed"]
    # When the settlement runs again, Then a new sweep takes the deposit and completes
    (second,) = w.settle()[-1]["marked"]
    assert second != settlement_id
    assert w.funds(order) == "swept" and w.usdt(w.cfg.treasury) == 25_000_000
    assert candidates.unsettled(w.network) == [] and len(set(w.recorder.sent)) == 2


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_between_any_two_steps_is_resumed_with_one_transaction_and_money_counted_once(
    world: World, step: str
) -> None:
    w = world
    order = w.paid_order("25.00")

    def kill(reached: str) -> None:
        if reached == step:
            raise Killed(step)

    # Given runs that die at `step` (mining and solidifying between them, so each step is reached)
    for _ in range(4):
        try:
            w.run(kill)
        except Killed:
            break
        w.chain.mine()
        w.chain.solidify()
    else:
        raise AssertionError(f"{step} was never reached")
    # When the lease lapses and the next runs carry on
    w.clock.advance(LEASE_MS + 1)
    w.chain.mine()
    w.chain.solidify()
    w.settle()
    # Then exactly one transaction was signed and mined, the money moved and counted once
    assert len(set(w.recorder.sent)) == 1
    assert w.usdt(w.cfg.treasury) == 25_000_000 and w.funds(order) == "swept"
    (listed,) = w.settlements()
    assert listed["amount"] == "25.00" and listed["txHash"] == w.recorder.sent[0]
    item = store.get(*store.order_key(w.merchant.merchant_id, order["orderId"]))
    assert item is not None and int(item["sweptUnits"]) == 25_000_000


def test_settlement_status_and_release_deposits_on_tron(
    world: World, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from usdt_gateway.admin import main

    w = world
    settings_env.setenv("RELAYER_KEY_ID", w.config.relayer_key_id)
    settings_env.setenv("RPC_ENDPOINTS", json.dumps({w.network: [w.node.url]}))
    settings_env.setenv("TRON_FEE_LIMIT_SUN", str(FEE_LIMIT))

    def admin(*argv: str) -> dict[str, Any]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert (code, err) == (0, ""), err
        return dict(json.loads(out))

    # Given a deposit whose sweeps ran out of energy as often as the policy allows
    order = w.paid_order("25.00")
    for _ in range(candidates.MAX_FAILURES):
        w.node.next_call_outcome("OUT_OF_ENERGY")
        w.clock.advance(1_000)
        w.settle()
    assert w.run()["outcome"] == "idle"
    # When the operator asks for the network's settlement status
    (report,) = admin("settlement-status", "--network", w.network)["networks"]
    # Then it shows the relayer's Tron address and TRX, the energy setting, the held deposit and
    # the failed settlements
    relayer = report["relayer"]
    paid = RELAYER_TRX - candidates.MAX_FAILURES * FEE_LIMIT
    assert relayer["address"] == w.job.signer.tron_address and relayer["keyId"] == w.config.relayer_key_id
    assert paid == 850_000_000 and (relayer["balanceSun"], relayer["balance"]) == ("850000000", "850.00")
    assert report["family"] == "tron" and report["energy"] == {"mode": "burn", "feeLimitSun": FEE_LIMIT}
    (held,) = report["held"]
    assert (held["orderId"], held["address"], held["failures"]) == (order["orderId"], order["address"], 3)
    assert [s["status"] for s in report["settlements"]] == ["failed"] * candidates.MAX_FAILURES
    assert report["inFlight"] is None
    # When it releases the held deposits, Then the next runs sweep it
    released = admin("release-deposits", "--network", w.network)
    assert [d["depositId"] for d in released["released"]] == [held["depositId"]]
    w.settle()
    assert w.funds(order) == "swept" and w.usdt(w.cfg.treasury) == 25_000_000


# -- the relayer's TRX ------------------------------------------------------------------------------


def test_the_relayers_trx_coverage_is_reported_while_there_is_money_to_sweep(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    gauges: list[tuple[str, str, float]] = []
    monkeypatch.setattr(
        settlement_jobs, "_gauge", lambda name, network, unit, value: gauges.append((name, network, value))
    )

    def coverage() -> list[float]:
        return [v for name, network, v in gauges if name == "RelayerBalanceCoverage" and network == w.network]

    # Given nothing to sweep, When the settlement runs, Then no balance is reported
    w.run()
    assert coverage() == []
    # Given a deposit to sweep, When it runs, Then the coverage is the relayer's TRX over a day's
    # sweeps: 24 of them, each 600,000 energy at 100 sun capped by the 50 TRX fee limit
    w.paid_order("25.00")
    w.run()
    day = 24 * min(600_000 * ENERGY_PRICE_SUN, FEE_LIMIT)
    assert coverage() == [RELAYER_TRX * 100 // day]
    # And in staked mode the energy its stake gives a day counts at the energy price
    w.node.stake(w.job.signer.tron_address, energy=1_000_000)
    w.job.energy = EnergySetting("staked", FEE_LIMIT)
    node = TronClient(w.node.url, timeout=5)
    balance = w.node.trx_balance(w.job.signer.tron_address)
    assert balance is not None
    assert settlement_jobs.report_tron_balance(w.job, node, w.config) == (balance + 1_000_000 * 100) * 100 // day
    # And a relayer the chain does not know (never funded) covers nothing: the alarm's 0
    w.job.energy = EnergySetting("burn", FEE_LIMIT)
    w.node.chain.trx.clear()
    assert settlement_jobs.report_tron_balance(w.job, node, w.config) == 0


# -- the reuse pool ---------------------------------------------------------------------------------

GRACE_S = 60
QUARANTINE_S = 3600


def _later(w: World, seconds: int) -> None:
    """The gateway's clock and the chain's move on together; the scanner reads up to the new head."""
    w.clock.advance(seconds * 1000)
    block = w.node.chain.block(w.node.head)
    assert block is not None
    w.chain.warp(block.timestamp + seconds * 1000)
    w.chain.solidify()
    drive(w.scanner)


@pytest.fixture
def pooled(world: World, settings_env: pytest.MonkeyPatch) -> World:
    from usdt_gateway import config

    settings_env.setenv("LATE_PAYMENT_GRACE_SECONDS", str(GRACE_S))
    config.reset()
    contract_mode.configure_reuse(world.merchant.merchant_id, world.network, reuse=True, quarantine_s=QUARANTINE_S)
    return world


def _swept(w: World, amount: str) -> dict[str, Any]:
    order = w.order(amount, expiresIn=60)
    w.pay(order, amount)
    w.settle()
    assert w.funds(order) == "swept"
    return order


def _pool_state(w: World, address: str) -> str | None:
    item = store.get(*store.address_key(w.network, address))
    assert item is not None
    return None if item.get("poolState") is None else str(item["poolState"])


def test_a_swept_tron_address_is_reused_after_its_quarantine(pooled: World) -> None:
    w = pooled
    # Given an order paid and swept, its window and grace over: the settlement quarantines its
    # address (the node's balanceOf says it is empty), and makes it available after the quarantine
    first = _swept(w, "25.00")
    _later(w, 300)
    assert w.run()["pool"]["quarantined"] == 1 and _pool_state(w, first["address"]) == deposit_pool.QUARANTINED
    _later(w, QUARANTINE_S)
    assert w.run()["pool"]["available"] == 1
    # When the merchant's next order is created, Then it gets that address and its salt
    second = w.order("30.00")
    assert second["address"] == first["address"]
    items = [store.get(*store.order_key(w.merchant.merchant_id, o["orderId"])) for o in (first, second)]
    assert items[0] is not None and items[1] is not None
    assert items[0]["depositSalt"] == items[1]["depositSalt"]
    # And paid, it is credited to the second order and swept by the salt it was made with
    w.pay(second, "30.00")
    w.settle()
    assert w.funds(second) == "swept" and w.usdt(w.cfg.treasury) == 55_000_000


def test_a_tron_address_holding_money_no_credit_recorded_is_not_reused(pooled: World) -> None:
    w = pooled
    first = _swept(w, "25.00")
    # Given money on the swept address that the gateway never saw (put there behind its back)
    w.node.fund_deposit(
        w.cfg.factory,
        w.chain.token,
        create2.order_salt(w.merchant.merchant_id, first["orderId"]),
        first["address"],
        1,
    )
    # When its window and grace are over and the settlement looks at it
    _later(w, 300)
    report = w.run()
    # Then it is left out of the pool
    assert report["pool"]["dropped"] == 1 and report["pool"]["quarantined"] == 0
    assert _pool_state(w, first["address"]) is None
    assert w.order("10.00")["address"] != first["address"]


# -- deployed -----------------------------------------------------------------------------------------


def test_the_deployed_handler_settles_a_tron_network_with_the_chain_layer(
    world: World, settings_env: pytest.MonkeyPatch
) -> None:
    # Given the SettlementFunction as the template declares it (its layers on the path), with the
    # Tron settings its parameters give, configured for the fake node
    template = load_template()
    layers = template["Resources"][SETTLEMENT]["Properties"]["Layers"]
    assert {"Ref": "ChainLayer"} in layers
    settings_env.setenv("RELAYER_KEY_ID", world.config.relayer_key_id)
    settings_env.setenv("RPC_ENDPOINTS", json.dumps({world.network: [world.node.url]}))
    settings_env.setenv("SETTLEMENT_MIN_AMOUNT", "10")
    settings_env.setenv("TRON_FEE_LIMIT_SUN", str(FEE_LIMIT))
    settings_env.setenv("TRON_ENERGY_MODE", "burn")
    add_layers_to_path(template, [SETTLEMENT])
    function = load_functions(template, [SETTLEMENT], stack_name="test", region="us-east-1")[SETTLEMENT]
    schedule = json.loads((REPO_ROOT / "events" / "settlement-schedule.json").read_text())
    order = world.paid_order("12.50")
    # When the schedule invokes it, a block mined and solidified between invocations
    results = []
    for _ in range(6):
        results.append(function.invoke(schedule))
        if world.funds(order) == "swept":
            break
        world.chain.mine()
        world.chain.solidify()
    # Then it settled the Tron network: the treasury holds the payment, at the fee limit given
    assert [r["network"] for r in results[0]["networks"]] == [world.network]
    assert world.funds(order) == "swept" and world.usdt(world.cfg.treasury) == 12_500_000
    state = read_state(world.network)
    assert state is not None and state.recent
    settlement = read_settlement(state.recent[0])
    assert settlement is not None and settlement.mined is not None
    found = world.node.chain.transaction(settlement.mined.tx_hash)
    assert found is not None and getattr(found[0].transfer, "fee_limit", None) == FEE_LIMIT


def test_a_balance_the_node_does_not_answer_is_never_read_as_empty(pooled: World) -> None:
    from usdt_gateway.chain.tron_tx import TronTxError

    w = pooled
    first = _swept(w, "25.00")
    _later(w, 300)
    # Given a node whose balanceOf answer carries no result (a constant call it failed)
    w.node.tamper_next(1, "/wallet/triggerconstantcontract", lambda answer: {"result": {}})
    # When the settlement's pool step asks it, Then the run fails and the address stays where it was
    with pytest.raises(TronTxError, match="balanceOf"):
        w.run()
    assert _pool_state(w, first["address"]) == deposit_pool.WAITING
    # And the next run, answered, quarantines it
    w.clock.advance(LEASE_MS + 1)
    assert w.run()["pool"]["quarantined"] == 1
