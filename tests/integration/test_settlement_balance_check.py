"""The token balance cross-check before a contract-mode sweep is built (settlement/balance_check.py),
on anvil (EVM, a second endpoint in front of it that lags, fails or answers wrong balances) and on
the fake Tron full node (its solidified state): credits recorded for money that is not on chain,
written as a lying scanner would write them, are never swept but held, in plain view, with the
alarm's figure and an error log, while the genuine deposits of the same batch are swept; a second
endpoint that lags or fails delays the sweep and loses nothing; one endpoint configured checks
through itself; the operator may waive the check, and the sweep then records what it found."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import pytest
from web3 import Web3

from devstack.evm import Anvil, start_anvil
from devstack.tron_node import TronNode, start_tron_node
from tests.fake_clock import FakeClock
from tests.integration.apiclient import ApiClient
from tests.integration.chains import (
    EvmChain,
    TronChain,
    create,
    drive,
    evm_scanner,
    new_chain,
    new_tron_chain,
    status,
    tron_address,
    tron_scanner,
)
from tests.integration.conftest import Merchant
from tests.integration.rpc_proxy import RpcProxy
from tests.integration.test_contract_mode import ContractChain, new_contract_chain
from tests.integration.test_settlement_function import relayer_job
from usdt_gateway import settlement_jobs, store
from usdt_gateway.chain.jsonrpc import JsonRpc, RpcError, RpcUnavailable
from usdt_gateway.chain.readers import TronNode as TronClient
from usdt_gateway.config import networks
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.records import Order
from usdt_gateway.scanner import Scanner
from usdt_gateway.settlement import candidates
from usdt_gateway.settlement.candidates import Candidate
from usdt_gateway.settlement.relayer import SweepRelayer, read_settlement
from usdt_gateway.settlement.tron_relayer import TronSweepRelayer
from usdt_gateway.settlement_jobs import Job, SettlementConfig, TronJob, run_network, run_tron_network
from usdt_gateway.tron_energy import EnergySetting

LEASE_MS = 120_000
LATER_S = 120  # past the check's clock allowance (60 s): a final block this much newer follows every credit
HELD_LOG = "deposit address holds less than its credits at a final block: held from sweeps"


def fabricate(api_order: dict[str, Any], merchant_id: str, units: int, now: int) -> Candidate:
    """A credit for money the chain never received, as a lying scanner writes one: the order's
    deposit, with its settlement candidate, for a transaction that does not exist."""
    item = store.get(*store.order_key(merchant_id, api_order["orderId"]))
    assert item is not None
    order = Order.from_item(item)
    txid = secrets.token_hex(32) if order.network.startswith("tron") else "0x" + secrets.token_hex(32)
    store.transact(candidates.credit_part(order, txid=txid, log_index=0, units=units, now=now))
    (fake,) = [c for c in candidates.unsettled(order.network) if c.txid == txid]
    return fake


@dataclass
class Gauges:
    """settlement_jobs._gauge's figures, as the runs report them."""

    seen: list[tuple[str, str, float]] = field(default_factory=list)

    def __call__(self, name: str, network: str, unit: object, value: float) -> None:
        self.seen.append((name, network, value))

    def short(self, network: str) -> list[float]:
        return [v for n, net, v in self.seen if n == "SettlementBalanceShort" and net == network]


@pytest.fixture
def gauges(monkeypatch: pytest.MonkeyPatch) -> Gauges:
    recorded = Gauges()
    monkeypatch.setattr(settlement_jobs, "_gauge", recorded)
    return recorded


def held_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and r.getMessage() == HELD_LOG]


def settlement_status(network: str) -> dict[str, Any]:
    """What `admin settlement-status --network <network>` prints for the network."""
    from usdt_gateway import admin

    out = admin.run(["settlement-status", "--network", network])
    (report,) = out["networks"]
    return dict(report)


# -- EVM, on anvil -----------------------------------------------------------------------------------


class Second(RpcProxy):
    """A second endpoint in front of anvil, recording what it serves: `lag` blocks behind the
    chain's head; `down` answers every request with HTTP 503; `failing` answers every eth_call with
    a JSON-RPC error; `zero` answers every eth_call with a zero balance (a provider gone wrong)."""

    def __init__(self, upstream: str) -> None:
        self.calls: list[tuple[str, list[Any]]] = []
        self.lag = 0
        self.down = False
        self.failing = False
        self.zero = False
        super().__init__(upstream)

    @property
    def methods(self) -> set[str]:
        return {method for method, _ in self.calls}

    def refuse(self) -> tuple[int, bytes] | None:
        return (503, b"unavailable") if self.down else None

    def result(self, method: str, params: list[Any]) -> Any:
        self.calls.append((method, params))
        if method == "eth_blockNumber" and self.lag:
            return hex(int(super().result(method, params), 16) - self.lag)
        if method == "eth_call" and self.failing:
            raise RpcError(-32000, "header not found")
        if method == "eth_call" and self.zero:
            return "0x" + "00" * 32
        return super().result(method, params)


@dataclass
class EvmWorld:
    contracts: ContractChain
    merchant: Merchant
    api: ApiClient
    scanner: Scanner
    job: Job
    config: SettlementConfig
    clock: FakeClock
    second: Second

    @property
    def chain(self) -> EvmChain:
        return self.contracts.chain

    @property
    def network(self) -> str:
        return self.chain.network

    def order(self, amount: str) -> dict[str, Any]:
        return create(self.api, self.chain, amount)

    def paid_order(self, amount: str) -> dict[str, Any]:
        """An order paid in full and credited final (by the scanner, through the first endpoint)."""
        order = self.order(amount)
        self.chain.pay(order["address"], amount)
        self.chain.mine(1)
        drive(self.scanner)
        return order

    def later(self) -> None:
        """Time passes on chain: the final block is LATER_S newer than every credit so far."""
        self.chain.warp(LATER_S)
        self.chain.mine(1)  # the warped block is final now (2 confirmations)

    def run(self) -> dict[str, Any]:
        def sweeper(rpc: Any) -> SweepRelayer:
            return SweepRelayer(self.job.network, rpc, self.job.signer, fees=self.config.fees(), lease_ms=LEASE_MS)

        return run_network(self.job, self.config, sweeper)

    def settle(self, *, runs: int = 8) -> list[dict[str, Any]]:
        """Run and mine until a run marks a settlement; the reports of the runs."""
        reports = []
        for _ in range(runs):
            reports.append(self.run())
            if reports[-1]["marked"]:
                return reports
            self.chain.mine(1)
        raise AssertionError(f"no settlement marked: {reports}")

    def balance(self, holder: str) -> int:
        return int(self.chain.token.functions.balanceOf(Web3.to_checksum_address(holder)).call())

    def sent(self) -> int:
        """Transactions the relayer sent."""
        return int(self.chain.w3.eth.get_transaction_count(Web3.to_checksum_address(self.job.signer.address)))

    def funds(self, order: dict[str, Any]) -> str | None:
        funds = status(self.api, order)["funds"]
        return None if funds is None else str(funds)


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """One anvil for the module; each test has a token, factory and network of its own on it."""
    with start_anvil() as running:
        yield running


@pytest.fixture
def evm(
    anvil: Anvil,
    settings_env: pytest.MonkeyPatch,
    api: ApiClient,
    merchant: Merchant,
    moto_server: str,
    fake_clock: FakeClock,
) -> Iterator[EvmWorld]:
    chain = new_chain(anvil, settings_env)
    # The gateway's clock where the chain's is (earlier tests moved the chain's forward)
    fake_clock.ms = max(fake_clock.ms, int(chain.w3.eth.get_block("latest")["timestamp"]) * 1000)
    contracts = new_contract_chain(chain)
    contracts.switch(merchant.merchant_id)
    job, config = relayer_job(anvil, chain.network, moto_server, min_amount=Decimal("10"))
    second = Second(anvil.url)
    # The run chooses the first endpoint; the check reads the second
    job.endpoints = [JsonRpc(anvil.url, timeout=10, label="first"), JsonRpc(second.url, timeout=10, label="second")]
    scanner = evm_scanner(chain.network, [anvil.url])
    drive(scanner)
    try:
        yield EvmWorld(contracts, merchant, api, scanner, job, config, fake_clock, second)
    finally:
        second.close()


def test_credits_for_money_not_on_chain_are_held_never_swept_and_alarmed_while_genuine_ones_are_swept(
    evm: EvmWorld, gauges: Gauges, caplog: pytest.LogCaptureFixture
) -> None:
    w = evm
    # Given a genuine payment, and for another order of the same merchant a credit of 40.00 that
    # the chain never received (the scanner was lied to)
    genuine = w.paid_order("25.00")
    lied = w.order("40.00")
    fake = fabricate(lied, w.merchant.merchant_id, 40_000_000, w.clock())
    # And time passed on chain since (the final block follows every credit)
    w.later()
    # When the settlement runs until its sweep is final
    reports = w.settle()
    # Then only the genuine payment moved: it is in the treasury, its order swept
    assert w.balance(w.contracts.treasury) == 25_000_000 and w.funds(genuine) == "swept"
    (settlement_id,) = reports[-1]["marked"]
    record = store.get(*store.settlement_key(settlement_id))
    assert record is not None and record["orderIds"] == [genuine["orderId"]] and record["missingDepositIds"] == []
    # And the invented credit was never claimed: it is held, with what the check saw, read at a
    # final block from the second endpoint
    (held,) = candidates.unsettled(w.network)
    assert held.key == fake.key and held.sweep_id is None and held.short is not None
    assert (held.short.balance, held.short.expected, held.short.endpoint) == (0, 40_000_000, "second")
    assert "eth_call" in w.second.methods
    # And the alarm's figure counts it at every run, with an error log once
    assert reports[0]["balance_short"] == 1 and set(gauges.short(w.network)) == {1}
    (log,) = held_logs(caplog)
    assert log.__dict__["address"] == lied["address"] and log.__dict__["expected"] == 40_000_000
    # And settlement-status lists it held, with the reason, the balance seen and the amount expected
    report = settlement_status(w.network)
    (row,) = report["held"]
    assert (row["orderId"], row["reason"], row["balance"], row["expected"], row["amount"]) == (
        lied["orderId"],
        "balance_short",
        "0.00",
        "40.00",
        "40.00",
    )
    assert report["waiting"] == []
    # And later runs never sweep it: nothing more is sent
    sent = w.sent()
    for _ in range(3):
        assert w.run()["claimed"] is None
        w.chain.mine(1)
    assert w.sent() == sent and [c.key for c in candidates.short_held(w.network)] == [fake.key]
    assert len(held_logs(caplog)) == 1  # the same finding is not logged again at every run


def test_a_second_endpoint_answering_wrong_balances_holds_the_address_until_it_answers_right(
    evm: EvmWorld, gauges: Gauges
) -> None:
    w = evm
    # Given a genuine payment, and a second endpoint that answers every balance with zero
    order = w.paid_order("25.00")
    w.second.zero = True
    w.later()
    # When the settlement runs, Then the address is held, nothing is claimed or sent
    report = w.run()
    assert (report["claimed"], report["balance_short"]) == (None, 1) and w.sent() == 0
    assert w.funds(order) == "on_deposit_address" and w.balance(order["address"]) == 25_000_000
    # When the endpoint answers right again, Then the next run reads the held address again and
    # lifts the hold, and the runs after sweep it: nothing was lost
    w.second.zero = False
    lifted = w.run()
    assert lifted["balance_short"] == 0 and candidates.short_held(w.network) == []
    w.settle()
    assert w.balance(w.contracts.treasury) == 25_000_000 and w.funds(order) == "swept"
    assert gauges.short(w.network)[:2] == [1, 0]


@pytest.mark.parametrize("trouble", ["lagging", "down", "failing"])
def test_a_second_endpoint_that_lags_or_fails_delays_the_sweep_and_loses_nothing(
    evm: EvmWorld, gauges: Gauges, trouble: str
) -> None:
    w = evm
    # Given a second endpoint whose final block is older than the payment, or that does not
    # answer, or answers the balances with an error
    if trouble == "lagging":
        w.second.lag = 6
    order = w.paid_order("25.00")
    setattr(w.second, "down" if trouble == "down" else "failing", trouble != "lagging")
    # When the settlement runs (twice)
    reports = [w.run(), w.run()]
    # Then nothing is claimed, sent or held: the address waits, its money on it
    assert [(r["claimed"], r["balance_unknown"], r["balance_short"]) for r in reports] == [(None, 1, 0)] * 2
    assert w.sent() == 0 and candidates.short_held(w.network) == [] and gauges.short(w.network) == [0, 0]
    assert w.funds(order) == "on_deposit_address" and w.balance(order["address"]) == 25_000_000
    # When the endpoint catches up or answers again, Then the next runs sweep it
    w.second.lag, w.second.down, w.second.failing = 0, False, False
    w.settle()
    assert w.balance(w.contracts.treasury) == 25_000_000 and w.funds(order) == "swept"
    assert w.balance(order["address"]) == 0 and candidates.unsettled(w.network) == []


def test_with_one_endpoint_the_check_reads_that_endpoint_at_its_final_block(evm: EvmWorld) -> None:
    w = evm
    # Given the network's only endpoint (the check has no other to ask)
    w.job.endpoints = [JsonRpc(w.second.url, timeout=10, label="only")]
    genuine = w.paid_order("25.00")
    lied = w.order("40.00")
    fabricate(lied, w.merchant.merchant_id, 40_000_000, w.clock())
    w.later()
    head = w.chain.head()
    # When the settlement runs until its sweep is final
    w.settle()
    # Then the genuine payment is swept and the invented credit held, as with two endpoints
    assert w.balance(w.contracts.treasury) == 25_000_000 and w.funds(genuine) == "swept"
    (held,) = candidates.short_held(w.network)
    assert held.address == lied["address"] and held.short is not None and held.short.endpoint == "only"
    # And the balances were read at the final block (head - 1 with 2 confirmations), not the head
    blocks = {params[1] for method, params in w.second.calls if method == "eth_call"}
    assert hex(head - 1) in blocks and "latest" not in blocks
    assert held.short.block == head - 1


def test_the_operator_waives_the_check_and_the_sweep_records_the_money_missing(evm: EvmWorld, gauges: Gauges) -> None:
    w = evm
    # Given an invented credit, held by the check
    lied = w.order("40.00")
    fake = fabricate(lied, w.merchant.merchant_id, 40_000_000, w.clock())
    w.later()
    assert w.run()["balance_short"] == 1
    # When the operator waives its check
    from usdt_gateway import admin

    out = admin.run(["release-deposits", "--network", w.network, "--balance-short"])
    assert [d["depositId"] for d in out["released"]] == [fake.deposit_id] and out["changed"] == []
    # Then the next sweep takes its address, finds nothing there, and records it missing: nothing
    # is counted swept, the candidate leaves, and the alarm's figure falls to 0
    reports = w.settle()
    (settlement_id,) = reports[-1]["marked"]
    record = store.get(*store.settlement_key(settlement_id))
    assert record is not None and record["settlementStatus"] == "completed"
    assert (record["units"], record["missingDepositIds"]) == (0, [fake.deposit_id])
    assert candidates.unsettled(w.network) == [] and w.balance(w.contracts.treasury) == 0
    assert gauges.short(w.network)[0] == 1 and gauges.short(w.network)[-1] == 0
    assert read_settlement(settlement_id) is not None


# -- Tron, on the fake full node -----------------------------------------------------------------------


class RecordingClient:
    """A full-node client recording the paths it asked."""

    def __init__(self, url: str, label: str) -> None:
        self.client = TronClient(url, timeout=10, label=label)
        self.label = label
        self.paths: list[str] = []

    def make_request(self, method: str, params: Any = None) -> Any:
        self.paths.append(method)
        return self.client.make_request(method, params)


@dataclass
class TronWorld:
    node: TronNode
    chain: TronChain
    merchant: Merchant
    api: ApiClient
    scanner: Scanner
    job: TronJob
    config: SettlementConfig
    clock: FakeClock
    treasury: str
    first: RecordingClient
    second: RecordingClient

    @property
    def network(self) -> str:
        return self.chain.network

    def order(self, amount: str) -> dict[str, Any]:
        return create(self.api, self.chain, amount)

    def paid_order(self, amount: str) -> tuple[dict[str, Any], int]:
        """An order paid in a block of its own, solidified and credited; and that block."""
        order = self.order(amount)
        self.chain.pay(order["address"], amount)
        block = self.chain.solidify()
        drive(self.scanner)
        return order, block

    def later(self) -> None:
        """A solidified block LATER_S after now: it follows every credit so far."""
        self.chain.warp(self.clock() + LATER_S * 1000)
        self.chain.solidify()

    def run(self) -> dict[str, Any]:
        def sweeper(node: Any) -> TronSweepRelayer:
            fee_limit = self.job.energy.fee_limit_sun
            return TronSweepRelayer(self.job.network, node, self.job.signer, fee_limit=fee_limit, lease_ms=LEASE_MS)

        return run_tron_network(self.job, self.config, sweeper)

    def settle(self, *, runs: int = 8) -> list[dict[str, Any]]:
        reports = []
        for _ in range(runs):
            reports.append(self.run())
            if reports[-1]["marked"]:
                return reports
            self.chain.mine()
            self.chain.solidify()
        raise AssertionError(f"no settlement marked: {reports}")

    def usdt(self, holder: str) -> int:
        return self.node.balance(self.chain.token, holder)

    def funds(self, order: dict[str, Any]) -> str | None:
        funds = status(self.api, order)["funds"]
        return None if funds is None else str(funds)


@pytest.fixture
def tron(
    settings_env: pytest.MonkeyPatch, api: ApiClient, merchant: Merchant, moto_server: str, fake_clock: FakeClock
) -> Iterator[TronWorld]:
    kms = boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signer = KmsSigner(key_id, client=kms)
    with start_tron_node(blocks=5, solid_lag=3) as node:
        chain = new_tron_chain(node, settings_env)
        cfg = ContractConfig(
            merchant.merchant_id,
            chain.network,
            factory=tron_address(),
            implementation=tron_address(),
            treasury=tron_address(),
            owner=tron_address(),
            updated_at=fake_clock(),
        )
        store.put(cfg.to_item())  # as `admin set-contract` stores it
        node.add_factory(cfg.factory, implementation=cfg.implementation, treasury=cfg.treasury)
        node.fund_trx(signer.tron_address, 1_000_000_000)
        first, second = RecordingClient(node.url, "first"), RecordingClient(node.url, "second")
        job = TronJob(networks()[chain.network], [first, second], signer, EnergySetting("burn", 50_000_000))
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
        yield TronWorld(node, chain, merchant, api, scanner, job, config, fake_clock, cfg.treasury, first, second)


def test_tron_credits_for_money_not_on_chain_are_held_while_genuine_ones_are_swept(
    tron: TronWorld, gauges: Gauges, caplog: pytest.LogCaptureFixture
) -> None:
    w = tron
    # Given a genuine payment, and an invented credit of 40.00 for another order
    genuine, _ = w.paid_order("25.00")
    lied = w.order("40.00")
    fake = fabricate(lied, w.merchant.merchant_id, 40_000_000, w.clock())
    w.later()
    # When the settlement runs until its sweep is solidified
    w.settle()
    # Then the genuine payment is in the treasury, the invented credit held and never swept
    assert w.usdt(w.treasury) == 25_000_000 and w.funds(genuine) == "swept"
    (held,) = candidates.unsettled(w.network)
    assert held.key == fake.key and held.sweep_id is None and held.short is not None
    assert (held.short.balance, held.short.expected, held.short.endpoint) == (0, 40_000_000, "second")
    # And the balances were read from the second node's solidified state, the sweep sent through
    # the first
    assert "walletsolidity/triggerconstantcontract" in w.second.paths
    assert "wallet/broadcasttransaction" in w.first.paths and "wallet/broadcasttransaction" not in w.second.paths
    assert set(gauges.short(w.network)) == {1} and len(held_logs(caplog)) == 1
    (row,) = settlement_status(w.network)["held"]
    assert (row["reason"], row["balance"], row["expected"]) == ("balance_short", "0.00", "40.00")


@pytest.mark.parametrize("trouble", ["lagging", "down"])
def test_a_tron_second_node_that_lags_or_fails_delays_the_sweep_and_loses_nothing(
    tron: TronWorld, gauges: Gauges, trouble: str
) -> None:
    w = tron
    # Given a genuine payment, credited once its block was solidified
    order, block = w.paid_order("25.00")
    # And a second node whose solidified state is before that block, or that fails its calls
    if trouble == "lagging":
        w.chain.solidify(block - 1)
    else:
        w.node.fail_next(2, path="/walletsolidity/getnowblock")  # one read per run
    # When the settlement runs (twice)
    reports = [w.run(), w.run()]
    # Then nothing is claimed, sent or held: the address waits, its money on it
    assert [(r["claimed"], r["balance_unknown"], r["balance_short"]) for r in reports] == [(None, 1, 0)] * 2
    assert "wallet/broadcasttransaction" not in w.first.paths and gauges.short(w.network) == [0, 0]
    assert w.funds(order) == "on_deposit_address" and w.usdt(order["address"]) == 25_000_000
    # When it catches up or answers again, Then the next runs sweep it
    w.chain.solidify()
    w.settle()
    assert w.usdt(w.treasury) == 25_000_000 and w.funds(order) == "swept"
    assert candidates.unsettled(w.network) == []


class RateLimited(RecordingClient):
    """A node that answers `allowed` balances per read (each read starts with the solidified
    head), then TronGrid's rate-limit error."""

    def __init__(self, url: str, label: str, allowed: int) -> None:
        super().__init__(url, label)
        self.allowed = allowed
        self.used = 0

    def make_request(self, method: str, params: Any = None) -> Any:
        if method == "walletsolidity/getnowblock":
            self.used = 0
        elif method == "walletsolidity/triggerconstantcontract":
            self.used += 1
            if self.used > self.allowed:
                raise RpcUnavailable(f"{self.label}: The key exceeds the frequency limit(15)")
        return super().make_request(method, params)


def test_a_tron_second_node_that_rate_limits_the_reads_sweeps_what_it_answered_and_the_rest_later(
    tron: TronWorld,
) -> None:
    w = tron
    # Given two genuine payments, and a second node that answers one balance per read
    w.job.endpoints = [w.first, RateLimited(w.node.url, "second", allowed=1)]
    first, _ = w.paid_order("25.00")
    second, _ = w.paid_order("30.00")
    # When the settlement runs, Then the address answered is swept, the other waits for a later run
    report = w.run()
    assert (report["balance_unknown"], report["balance_short"]) == (1, 0) and report["claimed"] is not None
    w.settle()
    assert {w.funds(first), w.funds(second)} == {"on_deposit_address", "swept"}
    # And the next sweep takes it: everything paid is in the treasury, nothing was held
    w.chain.mine()
    w.chain.solidify()
    w.settle()
    assert w.usdt(w.treasury) == 55_000_000 and w.funds(first) == w.funds(second) == "swept"
    assert candidates.unsettled(w.network) == []


def test_with_one_tron_node_the_check_reads_its_solidified_state(tron: TronWorld) -> None:
    w = tron
    # Given the network's only full node
    w.job.endpoints = [w.first]
    genuine, _ = w.paid_order("25.00")
    lied = w.order("40.00")
    fabricate(lied, w.merchant.merchant_id, 40_000_000, w.clock())
    w.later()
    # When the settlement runs until its sweep is solidified
    w.settle()
    # Then the genuine payment is swept and the invented credit held, read through that node
    assert w.usdt(w.treasury) == 25_000_000 and w.funds(genuine) == "swept"
    (held,) = candidates.short_held(w.network)
    assert held.address == lied["address"] and held.short is not None and held.short.endpoint == "first"
    assert "walletsolidity/triggerconstantcontract" in w.first.paths and w.second.paths == []


def test_the_fake_nodes_solidified_balance_is_the_solidified_blocks(tron: TronWorld) -> None:
    w = tron
    # Given a payment in a block above the solidified head
    order = w.order("25.00")
    w.chain.pay(order["address"], "25.00")
    client = TronClient(w.node.url, timeout=10)
    from usdt_gateway.chain import tron_tx

    # Then the solidified state does not hold it yet, the head's does; once solidified, both do
    assert tron_tx.token_balance(client, w.chain.token, order["address"], solidified=True) == 0
    assert tron_tx.token_balance(client, w.chain.token, order["address"]) == 25_000_000
    w.chain.solidify()
    assert tron_tx.token_balance(client, w.chain.token, order["address"], solidified=True) == 25_000_000
    assert w.node.requests["/walletsolidity/triggerconstantcontract"] == 2
