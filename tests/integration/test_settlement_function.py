"""The settlement on anvil through the moto server: a contract-mode order paid and credited, then
swept to the merchant's treasury by the settlement function's runs (the relayer's key in the
local KMS), the orders and settlement recorded and settlement.completed delivered; a run killed
between any two steps resumed by the next; a payment arriving while a sweep is in flight swept by
the next one; nothing swept below the minimum before the maximum age."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook
from web3 import Web3

from devstack.evm import Anvil, start_anvil
from devstack.functions import add_layers_to_path, load_functions
from devstack.template import REPO_ROOT, load_template
from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient
from tests.integration.chains import create, drive, evm_scanner, new_chain, order_events, status
from tests.integration.conftest import Merchant, WebhookQueues
from tests.integration.rpc_proxy import RpcProxy
from tests.integration.sqs_lambda import EventSourceMapping
from tests.integration.test_contract_mode import ContractChain, new_contract_chain
from tests.integration.webhook_receiver import receiver
from tests.integration.webhooks import set_url, settled
from usdt_gateway import store
from usdt_gateway.chain.jsonrpc import Call, JsonRpc, Rpc, RpcError, RpcUnavailable
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.scanner import Scanner
from usdt_gateway.settlement import batches, candidates, endpoint, relayer
from usdt_gateway.settlement.relayer import SweepRelayer
from usdt_gateway.settlement_jobs import Job, SettlementConfig, run_network

LEASE_MS = 120_000
SETTLEMENT = "SettlementFunction"


class Killed(BaseException):
    """A run stopped dead where a crash would stop it (nothing catches it)."""


@dataclass
class World:
    contracts: ContractChain
    merchant: Merchant
    api: ApiClient
    scanner: Scanner
    job: Job
    config: SettlementConfig
    clock: FakeClock

    @property
    def network(self) -> str:
        return self.contracts.chain.network

    def paid_order(self, amount: str = "25.00") -> dict[str, Any]:
        """An order paid in full and credited final."""
        order = create(self.api, self.contracts.chain)
        self.pay(order, amount)
        return order

    def pay(self, order: dict[str, Any], amount: str) -> None:
        self.contracts.chain.pay(order["address"], amount)
        self.contracts.chain.mine(1)
        drive(self.scanner)

    def run(self, hook: Callable[[str], None] | None = None) -> dict[str, Any]:
        """One invocation's run of the network, with a relayer of its own (a new lease owner)."""

        def sweeper(rpc: Rpc) -> SweepRelayer:
            return SweepRelayer(
                self.job.network,
                rpc,
                self.job.signer,
                fees=self.config.fees(),
                lease_ms=LEASE_MS,
                hook=hook or (lambda step: None),
            )

        return run_network(self.job, self.config, sweeper)

    def settle(self, *, runs: int = 8) -> list[dict[str, Any]]:
        """Run and mine until a run marks a settlement; the reports of the runs."""
        reports = []
        for _ in range(runs):
            reports.append(self.run())
            if reports[-1]["marked"]:
                return reports
            self.contracts.chain.mine(1)
        raise AssertionError(f"no settlement marked: {reports}")

    def balance(self, holder: str) -> int:
        return int(self.contracts.chain.token.functions.balanceOf(holder).call())

    def funds(self, order: dict[str, Any]) -> str | None:
        funds = status(self.api, order)["funds"]
        return None if funds is None else str(funds)

    def sweep_transactions(self) -> int:
        return int(self.contracts.chain.w3.eth.get_transaction_count(Web3.to_checksum_address(self.job.signer.address)))


def relayer_job(anvil: Anvil, network: str, moto_server: str, *, min_amount: Decimal) -> tuple[Job, SettlementConfig]:
    """The network's settlement job on anvil with a new relayer key in the local KMS, funded, and
    settings under which money from `min_amount` qualifies for a sweep."""
    kms = boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signer = KmsSigner(key_id, client=kms)
    anvil.rpc("anvil_setBalance", [signer.address, hex(10**19)])
    from usdt_gateway.config import networks

    job = Job(networks()[network], [JsonRpc(anvil.url, timeout=10)], signer)
    config = SettlementConfig(
        relayer_key_id=key_id,
        min_amount=min_amount,
        max_age_seconds=600,
        max_gas_price_gwei=Decimal("100"),
        max_deposits=50,
        sweeps_per_day=24,
        gas_per_sweep=600_000,
    )
    return job, config


@pytest.fixture
def world(
    settings_env: pytest.MonkeyPatch, api: ApiClient, merchant: Merchant, moto_server: str, fake_clock: FakeClock
) -> Iterator[World]:
    with start_anvil() as anvil:
        contracts = new_contract_chain(new_chain(anvil, settings_env))
        contracts.switch(merchant.merchant_id)
        job, config = relayer_job(anvil, contracts.chain.network, moto_server, min_amount=Decimal("10"))
        scanner = evm_scanner(contracts.chain.network, [anvil.url])
        drive(scanner)
        yield World(contracts, merchant, api, scanner, job, config, fake_clock)


def settlement_events(merchant_id: str) -> list[dict[str, Any]]:
    items, _ = store.query_index(
        store.events_index_pk(merchant_id), sk_from="0", sk_to="~", limit=100, newest_first=False
    )
    return [i for i in items if str(i["type"]).startswith("settlement.")]


def test_a_paid_order_is_swept_to_the_treasury_recorded_and_announced(
    world: World, webhook_queues: WebhookQueues, lambda_sqs: EventSourceMapping
) -> None:
    with receiver() as shop:
        set_url(world.api, shop.url())
        # Given a contract-mode order paid and credited: its money on its deposit address
        order = world.paid_order("25.00")
        assert status(world.api, order)["status"] == "confirmed"
        assert world.funds(order) == "on_deposit_address"
        # When the settlement runs once: its deposit is claimed and the sweep sent
        first = world.run()
        assert first["claimed"] is not None and first["outcome"] == "pending"
        assert world.funds(order) == "sweeping"
        # And it runs on until the sweep is final
        world.contracts.chain.mine(1)
        reports = world.settle()
        # Then the treasury holds the money, the deposit address nothing, the order says swept
        assert world.balance(world.contracts.treasury) == 25_000_000
        assert world.balance(order["address"]) == 0
        assert world.funds(order) == "swept"
        assert candidates.unsettled(world.network) == []
        assert world.sweep_transactions() == 1
        # And the settlement is recorded with what it covered, its transaction and gas, listed
        # under the merchant
        (settlement_id,) = reports[-1]["marked"]
        assert settlement_id == first["claimed"]
        record = store.get(*store.settlement_key(settlement_id))
        assert record is not None and record["settlementStatus"] == "completed"
        assert record["orderIds"] == [order["orderId"]] and len(record["depositIds"]) == 1
        assert record["txHash"] and int(record["gasPaid"]) > 0
        listed, _ = store.query_index(
            store.settlements_index_pk(world.merchant.merchant_id), sk_from="0", sk_to="~", limit=10
        )
        assert [i["settlementId"] for i in listed] == [settlement_id]
        # And settlement.completed went out through the outbox and was delivered, signed
        (event,) = settlement_events(world.merchant.merchant_id)
        lambda_sqs.run_until(settled(event["eventId"]))
        (hit,) = [h for h in shop.hits if h.webhook_id == event["eventId"]]
        body = Webhook(world.merchant.webhook_secret).verify(hit.body, hit.headers)
        assert body["type"] == "settlement.completed"
        assert body["data"]["settlementId"] == settlement_id and body["data"]["amount"] == "25.00"
        assert body["data"]["orders"] == [order["orderId"]] and body["data"]["txHash"] == record["txHash"]


def test_the_deployed_handler_settles_the_network_on_its_schedule(
    world: World, settings_env: pytest.MonkeyPatch
) -> None:
    # Given the SettlementFunction as the template declares it, configured for the test chain
    settings_env.setenv("RELAYER_KEY_ID", world.config.relayer_key_id)
    settings_env.setenv("RPC_ENDPOINTS", json.dumps({world.network: [world.contracts.chain.anvil.url]}))
    settings_env.setenv("SETTLEMENT_MIN_AMOUNT", "10")
    template = load_template()
    add_layers_to_path(template, [SETTLEMENT])
    function = load_functions(template, [SETTLEMENT], stack_name="test", region="us-east-1")[SETTLEMENT]
    schedule = json.loads((REPO_ROOT / "events" / "settlement-schedule.json").read_text())
    order = world.paid_order("12.50")
    # When the schedule invokes it, a block mined between invocations
    results = []
    for _ in range(6):
        results.append(function.invoke(schedule))
        if world.funds(order) == "swept":
            break
        world.contracts.chain.mine(1)
    # Then it settled the network: the treasury holds the payment, the order says swept
    assert [r["network"] for r in results[0]["networks"]] == [world.network]
    assert world.balance(world.contracts.treasury) == 12_500_000
    assert world.funds(order) == "swept"


DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port


class Endpoint(RpcProxy):
    """An endpoint in front of anvil that records the methods it serves. `chain_id` replaces its
    answer to eth_chainId (an endpoint configured for another chain); once it has served
    `serves` requests, it answers every later one with HTTP 503 (a node that dies mid-run)."""

    def __init__(self, upstream: str, *, chain_id: int | None = None, serves: int | None = None) -> None:
        self.methods: list[str] = []
        self.chain_id = chain_id
        self.serves = serves
        super().__init__(upstream)

    def refuse(self) -> tuple[int, bytes] | None:
        return (503, b"unavailable") if self.serves is not None and self.served > self.serves else None

    def result(self, method: str, params: list[Any]) -> Any:
        self.methods.append(method)
        if method == "eth_chainId" and self.chain_id is not None:
            return hex(self.chain_id)
        return super().result(method, params)


def test_the_handler_settles_through_the_first_endpoint_that_answers_with_the_chain_id(
    world: World, settings_env: pytest.MonkeyPatch
) -> None:
    anvil = world.contracts.chain.anvil
    other_chain, good, also_good = Endpoint(anvil.url, chain_id=1), Endpoint(anvil.url), Endpoint(anvil.url)
    try:
        # Given the network's endpoints in this order: one down, one that answers for another
        # chain (everything else it would serve from the test chain), and two working ones
        settings_env.setenv("RELAYER_KEY_ID", world.config.relayer_key_id)
        settings_env.setenv(
            "RPC_ENDPOINTS",
            json.dumps({world.network: [DOWN, {"url": other_chain.url, "name": "mainnet"}, good.url, also_good.url]}),
        )
        settings_env.setenv("SETTLEMENT_MIN_AMOUNT", "10")
        template = load_template()
        add_layers_to_path(template, [SETTLEMENT])
        function = load_functions(template, [SETTLEMENT], stack_name="test", region="us-east-1")[SETTLEMENT]
        schedule = json.loads((REPO_ROOT / "events" / "settlement-schedule.json").read_text())
        order = world.paid_order("12.50")
        # When the schedule invokes it until the payment is swept
        results = []
        for _ in range(6):
            results.append(function.invoke(schedule))
            if world.funds(order) == "swept":
                break
            world.contracts.chain.mine(1)
        # Then every run used the working endpoint, and the money is in the treasury
        assert world.funds(order) == "swept" and world.balance(world.contracts.treasury) == 12_500_000
        assert {r["networks"][0]["endpoint"] for r in results} == {good.url.removeprefix("http://")}
        # And the endpoint of another chain was asked its chain id at each run (and, by the
        # balance cross-check, its head), and nothing else; the balances were read from the next
        # working endpoint, which sent nothing
        assert other_chain.methods.count("eth_chainId") >= len(results)
        assert set(other_chain.methods) == {"eth_chainId", "eth_blockNumber"}
        assert "eth_sendRawTransaction" in good.methods
        assert "eth_call" in also_good.methods and "eth_sendRawTransaction" not in also_good.methods
    finally:
        other_chain.close()
        good.close()
        also_good.close()


def test_a_run_keeps_its_endpoint_to_the_end_and_the_next_run_chooses_again(world: World) -> None:
    anvil = world.contracts.chain.anvil
    first, second = Endpoint(anvil.url, serves=1), Endpoint(anvil.url)
    try:
        # Given two endpoints, the first of which answers the chain id and then dies
        world.job.endpoints = [JsonRpc(first.url, timeout=10), JsonRpc(second.url, timeout=10)]
        order = world.paid_order("25.00")
        # When a run chooses it
        with pytest.raises(RpcUnavailable):
            world.run()
        # Then the run fails with it: the second endpoint was asked only for the balance
        # cross-check of the address claimed
        assert first.methods == ["eth_chainId"]
        assert set(second.methods) == {"eth_chainId", "eth_blockNumber", "eth_getBlockByNumber", "eth_call"}
        assert world.sweep_transactions() == 0 and world.funds(order) == "sweeping"
        # And the next runs choose the second, and carry the claimed sweep to its end, once
        world.clock.advance(LEASE_MS + 1)
        reports = world.settle()
        assert {r["endpoint"] for r in reports} == {second.url}
        assert world.balance(world.contracts.treasury) == 25_000_000 and world.funds(order) == "swept"
        assert world.sweep_transactions() == 1
        assert first.methods == ["eth_chainId"]
    finally:
        first.close()
        second.close()


def test_a_run_without_an_endpoint_of_the_chain_fails_before_it_touches_anything(world: World) -> None:
    other_chain = Endpoint(world.contracts.chain.anvil.url, chain_id=56)
    try:
        # Given endpoints that are down or serve another chain only
        world.job.endpoints = [JsonRpc(DOWN, timeout=2), JsonRpc(other_chain.url, timeout=10)]
        order = world.paid_order("25.00")
        # When the settlement runs, Then it fails naming each endpoint's problem
        with pytest.raises(endpoint.NoEndpoint, match=r"127\.0\.0\.1:9: NewConnectionError.*chain id 56, not 31337"):
            world.run()
        # And nothing was claimed or sent
        assert [c.sweep_id for c in candidates.unsettled(world.network)] == [None]
        assert world.funds(order) == "on_deposit_address" and other_chain.methods == ["eth_chainId"]
    finally:
        other_chain.close()


def test_nothing_is_swept_below_the_minimum_until_the_maximum_age(world: World) -> None:
    # Given a credited payment below the minimum (10 USDT)
    order = world.paid_order("5.00")
    # When the settlement runs
    report = world.run()
    # Then nothing is claimed or sent
    assert report["claimed"] is None and report["outcome"] == "idle"
    assert world.sweep_transactions() == 0 and world.funds(order) == "on_deposit_address"
    # And once its credit waited the maximum age, it is swept
    world.clock.advance(601_000)
    world.settle()
    assert world.balance(world.contracts.treasury) == 5_000_000 and world.funds(order) == "swept"


CLAIMED = "claimed"  # the claim committed, the orders not marked sweeping, nothing submitted
CLOSED = "closed"  # the outcome's transaction committed, orders and candidates not marked


@pytest.mark.parametrize("step", [CLAIMED, *relayer.STEPS, CLOSED])
def test_a_run_killed_at_any_step_is_resumed_without_loss_or_a_second_event(
    world: World, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a paid order and a run killed at `step`
    order = world.paid_order("25.00")
    with monkeypatch.context() as patch:
        if step == CLAIMED:

            def killed_claim(batch: batches.Batch) -> None:
                raise Killed(step)

            patch.setattr(batches, "_mark_sweeping", killed_claim)
        elif step == CLOSED:

            def killed_mark(*args: Any, **kwargs: Any) -> bool:
                raise Killed(step)

            patch.setattr(store, "update_expression", killed_mark)
        hook = relayer_kill(step) if step in relayer.STEPS else None
        with pytest.raises(Killed):
            for _ in range(6):  # the relayer's later steps need blocks mined between runs
                world.run(hook)
                world.contracts.chain.mine(1)
    # When the next runs come, after the killed run's lease lapsed
    world.clock.advance(LEASE_MS + 1)
    world.contracts.chain.mine(1)
    world.settle()
    # Then the money is in the treasury once, from one transaction, the order swept, one event
    assert world.balance(world.contracts.treasury) == 25_000_000
    assert world.sweep_transactions() == 1
    assert world.funds(order) == "swept" and candidates.unsettled(world.network) == []
    assert [e["type"] for e in settlement_events(world.merchant.merchant_id)] == ["settlement.completed"]


def relayer_kill(step: str) -> Callable[[str], None]:
    def hook(reached: str) -> None:
        if reached == step:
            raise Killed(step)

    return hook


def test_a_payment_arriving_while_a_sweep_is_in_flight_is_swept_by_the_next(world: World) -> None:
    # Given a sweep in flight for a paid order
    first = world.paid_order("25.00")
    assert world.run()["claimed"] is not None
    # When, before it is final, the same address is paid again (money no order takes: the first
    # is confirmed) and a second order is paid
    world.pay(first, "4.00")
    second = world.paid_order("30.00")
    assert sorted((c.units, c.order_pk is None) for c in candidates.unsettled(world.network)) == [
        (4_000_000, True),
        (25_000_000, False),
        (30_000_000, False),
    ]
    # And the sweep in flight completes
    world.contracts.chain.mine(1)
    world.settle()
    # Then only what it claimed is marked swept: the new money waits for the next sweep
    waiting = candidates.unsettled(world.network)
    assert sorted(c.units for c in waiting) == [4_000_000, 30_000_000] and all(c.sweep_id is None for c in waiting)
    assert world.funds(first) == "swept" and world.funds(second) == "on_deposit_address"
    # And the next sweep takes it: everything paid is in the treasury, nothing lost
    world.settle()
    assert world.balance(world.contracts.treasury) == 59_000_000
    assert world.balance(first["address"]) == world.balance(second["address"]) == 0
    assert world.funds(first) == "swept" and world.funds(second) == "swept"
    assert candidates.unsettled(world.network) == []
    types = [e["type"] for e in settlement_events(world.merchant.merchant_id)]
    assert types == ["settlement.completed", "settlement.completed"]
    bodies = [json.loads(e["body"])["data"]["amount"] for e in settlement_events(world.merchant.merchant_id)]
    assert sorted(bodies) == ["25.00", "34.00"]


class RevertingEstimates:
    """The test chain, but a node that says every sweep would revert (eth_estimateGas)."""

    def __init__(self, rpc: Rpc) -> None:
        self._rpc = rpc
        self.label = rpc.label

    def call(self, method: str, params: list[Any]) -> Any:
        if method == "eth_estimateGas":
            raise RpcError(3, "execution reverted")
        return self._rpc.call(method, params)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        return self._rpc.batch(calls)


def test_a_failed_sweep_is_recorded_announced_and_its_deposits_swept_later(world: World) -> None:
    # Given a paid order, and a node that says its sweep would revert
    order = world.paid_order("25.00")
    working = world.job.endpoints
    world.job.endpoints = [RevertingEstimates(working[0])]
    # When the settlement runs
    report = world.run()
    # Then the settlement is recorded failed with the node's reason, and announced
    (settlement_id,) = report["marked"]
    record = store.get(*store.settlement_key(settlement_id))
    assert record is not None and record["settlementStatus"] == "failed"
    assert "execution reverted" in record["reason"] and record["orderIds"] == [order["orderId"]]
    (event,) = settlement_events(world.merchant.merchant_id)
    body = json.loads(event["body"])
    assert body["type"] == "settlement.failed" and body["data"]["txHash"] is None
    # And nothing was sent; the deposit is released for the next sweep, its money on its address
    assert world.sweep_transactions() == 0
    (waiting,) = candidates.unsettled(world.network)
    assert waiting.sweep_id is None and waiting.failures == 1
    assert world.funds(order) == "on_deposit_address"
    # And once the node accepts it, the next runs sweep it
    world.job.endpoints = working
    world.settle()
    assert world.balance(world.contracts.treasury) == 25_000_000 and world.funds(order) == "swept"
    types = sorted(e["type"] for e in settlement_events(world.merchant.merchant_id))  # one (stopped) clock
    assert types == ["settlement.completed", "settlement.failed"]


def test_a_deposit_whose_sweeps_keep_failing_waits_for_the_operator(world: World) -> None:
    # Given a deposit whose sweep failed as often as the policy allows
    order = world.paid_order("25.00")
    working = world.job.endpoints
    world.job.endpoints = [RevertingEstimates(working[0])]
    for _ in range(world.config.policy(world.job.network).max_failures):
        assert world.run()["marked"]
    # When the settlement runs again with a working node
    world.job.endpoints = working
    report = world.run()
    # Then it is not picked any more: nothing is claimed, its money stays on its address
    assert report["claimed"] is None and world.sweep_transactions() == 0
    assert world.funds(order) == "on_deposit_address"


# --- a deep reorg reverses a credited deposit --------------------------------------------------


def reorg_away(world: World, depth: int) -> None:
    """A reorg of `depth` blocks, deeper than the network's finality, that drops their
    transactions; the scanner then reads the replaced range again and reverses what vanished."""
    chain = world.contracts.chain
    chain.anvil.rpc("anvil_reorg", [depth, []])
    chain.mine(3)
    drive(world.scanner)


def test_a_deep_reorg_that_reverses_unswept_deposits_takes_their_candidates_with_them(world: World) -> None:
    # Given a contract-mode order paid twice (the second payment unmatched: the order is confirmed),
    # both credited final and waiting for a sweep, below the minimum so that none was claimed
    world.contracts.chain.mine(10)  # room below the payments: the reorg leaves the contracts alone
    order = world.paid_order("25.00")
    world.pay(order, "4.00")
    world.contracts.chain.mine(3)
    drive(world.scanner)
    assert sorted((c.units, c.sweep_id) for c in candidates.unsettled(world.network)) == [
        (4_000_000, None),
        (25_000_000, None),
    ]
    # When a reorg deeper than the finality policy takes both payments away
    reorg_away(world, 7)
    # Then both are reversed, and their candidates went in the same transactions: nothing waits
    assert world.scanner.report.reversed == 2
    assert status(world.api, order)["paid"] is False and world.funds(order) is None
    assert candidates.unsettled(world.network) == []
    # And the settlement finds nothing to sweep: no claim, no transaction
    report = world.run()
    assert (report["claimed"], report["outcome"], report["unsettled"]) == (None, "idle", 0)
    assert world.sweep_transactions() == 0


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_a_deposit_reversed_while_a_sweep_has_claimed_it_is_left_to_the_sweeps_outcome(
    world: World, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    # Given a paid order whose deposit a sweep has claimed (the run stopped after its claim, before
    # anything was sent)
    world.contracts.chain.mine(10)
    order = world.paid_order("25.00")
    world.contracts.chain.mine(3)
    drive(world.scanner)

    def killed_claim(batch: batches.Batch) -> None:
        raise Killed(CLAIMED)

    with monkeypatch.context() as patch:
        patch.setattr(batches, "_mark_sweeping", killed_claim)
        with pytest.raises(Killed):
            world.run()
    (claimed,) = candidates.unsettled(world.network)
    assert claimed.sweep_id is not None
    # When a deep reorg takes the payment away
    reorg_away(world, 7)
    # Then the deposit is reversed, and its candidate stays with the sweep that claimed it, marked
    assert world.scanner.report.reversed == 1 and status(world.api, order)["paid"] is False
    item = store.get(*claimed.key)
    assert item is not None and item["sweepId"] == claimed.sweep_id and item["reversedAt"] > 0
    # And when that sweep ends (with a node that accepts it, or one that says it would revert)
    world.clock.advance(LEASE_MS + 1)
    if outcome == "failed":
        world.job.endpoints = [RevertingEstimates(world.job.endpoints[0])]
    reports = world.settle()
    # Then the candidate leaves with it in either case: a failed sweep does not release money that
    # never stayed to the next one
    assert reports[-1]["marked"] == [claimed.sweep_id]
    record = store.get(*store.settlement_key(claimed.sweep_id))
    assert record is not None and record["settlementStatus"] == outcome
    assert candidates.unsettled(world.network) == []
    # And the chain holds what happened: a sweep that ran moved nothing, the address being empty
    assert world.balance(world.contracts.treasury) == 0 and world.balance(order["address"]) == 0
    assert world.sweep_transactions() == (1 if outcome == "completed" else 0)
    assert world.run()["outcome"] == "idle"


def test_a_claim_made_while_the_reversal_is_written_leaves_the_candidate_to_the_sweep(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a paid order's unclaimed candidate, which a sweep claims just after the reversal of
    # its deposit has read it (and before the reversal's transaction)
    world.contracts.chain.mine(10)
    order = world.paid_order("25.00")
    world.contracts.chain.mine(3)
    drive(world.scanner)
    (unclaimed,) = candidates.unsettled(world.network)
    read = candidates.reversal_part
    reads: list[list[dict[str, Any]]] = []

    def claimed_meanwhile(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        reads.append(read(*args, **kwargs))
        if len(reads) == 1:
            assert store.update_expression(
                *unclaimed.key,
                expression="SET sweepId = :id",
                condition="attribute_not_exists(sweepId)",
                values={":id": "stl_meanwhile"},
            )
        return reads[-1]

    monkeypatch.setattr(candidates, "reversal_part", claimed_meanwhile)
    # When a deep reorg takes the payment away
    reorg_away(world, 7)
    # Then the reversal's first transaction failed on the candidate, and the second, made from a
    # fresh read, reversed the deposit and marked the candidate for the sweep that claimed it
    assert len(reads) == 2 and world.scanner.report.reversed == 1
    item = store.get(*unclaimed.key)
    assert item is not None and item["sweepId"] == "stl_meanwhile" and item["reversedAt"] > 0
    # And the order was reversed once
    events = [e["type"] for e in order_events(world.api, order)]
    assert events.count("order.payment_reversed") == 1 and status(world.api, order)["paid"] is False


def deposit_ids_by_order(network: str) -> dict[str | None, str]:
    return {c.order_pk: c.deposit_id for c in candidates.unsettled(network)}


def order_pk(world: World, order: dict[str, Any]) -> str:
    return store.order_key(world.merchant.merchant_id, order["orderId"])[0]


def test_money_swept_directly_on_chain_first_is_not_reported_swept_by_the_gateway(world: World) -> None:
    # Given two paid orders, and the first's deposit address swept directly on chain by someone
    # else (anyone may: the factory pays only the treasury)
    first, second = world.paid_order("25.00"), world.paid_order("30.00")
    ids = deposit_ids_by_order(world.network)
    item = store.get(*store.order_key(world.merchant.merchant_id, first["orderId"]))
    assert item is not None
    chain = world.contracts.chain
    stranger = chain.w3.eth.accounts[3]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
    salt = bytes.fromhex(item["depositSalt"].removeprefix("0x"))
    world.contracts.factory.functions.sweep(chain.token.address, [salt]).transact({"from": stranger})
    assert world.balance(world.contracts.treasury) == 25_000_000
    # When the gateway's settlement sweeps both
    reports = world.settle()
    # Then the treasury holds both payments, once each
    assert world.balance(world.contracts.treasury) == 55_000_000
    # And the settlement reports only what its own sweep moved (its receipt's Swept logs): the
    # second order's 30.00; the first's deposit is recorded as found gone, not as swept
    (settlement_id,) = reports[-1]["marked"]
    record = store.get(*store.settlement_key(settlement_id))
    assert record is not None and record["settlementStatus"] == "completed"
    assert record["units"] == 30_000_000 and record["orderIds"] == [second["orderId"]]
    assert record["depositIds"] == [ids[order_pk(world, second)]]
    assert record["missingDepositIds"] == [ids[order_pk(world, first)]]
    (event,) = settlement_events(world.merchant.merchant_id)
    data = json.loads(event["body"])["data"]
    assert (data["amount"], data["orders"]) == ("30.00", [second["orderId"]])
    # And the first order's funds say they left its address by another path; nothing waits
    assert world.funds(first) == "moved_elsewhere" and world.funds(second) == "swept"
    assert candidates.unsettled(world.network) == []


def test_money_a_sweep_moved_before_its_credit_is_counted_swept_once_credited(world: World) -> None:
    # Given an order of 25.00 paid 10.00 (credited), then 15.00 more in a block the scanner has not
    # read yet
    order = create(world.api, world.contracts.chain, "25.00")
    world.pay(order, "10.00")
    world.contracts.chain.pay(order["address"], "15.00")
    # When the settlement sweeps the credited 10.00: its sweep moves the whole 25.00
    first = world.settle()
    assert world.balance(world.contracts.treasury) == 25_000_000
    # And the scanner then credits the 15.00 (the order is confirmed), and the next sweep finds
    # the address empty
    world.contracts.chain.mine(2)
    drive(world.scanner)
    assert status(world.api, order)["status"] == "confirmed"
    second = world.settle()
    # Then the 15.00 is counted swept (by the sweep that moved it), not missing: the order is swept
    assert world.funds(order) == "swept"
    records = [store.get(*store.settlement_key(r["marked"][0])) for r in (first[-1], second[-1])]
    assert [(r or {}).get("units") for r in records] == [25_000_000, 0]  # each sweep's Swept logs
    assert [(r or {}).get("missingDepositIds") for r in records] == [[], []]
    assert world.balance(order["address"]) == 0 and candidates.unsettled(world.network) == []
