"""The Tron settlement relayer against the fake full node, its key in the local KMS (moto with the
DIGEST fix) and its state in the local DynamoDB table: a sweep is built, signed, stored, sent once
and carried to the solidified block, with its energy and what it moved (the factory's Swept logs)
recorded; a run killed between any two steps resumes with exactly one transaction sent; a
transaction that expired unmined is rebuilt once, only after a solidified block passed its
expiration; OUT_OF_ENERGY is a failed sweep with its energy and fee. No TVM runs: the node's
receipts say what they are told to."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from tronpy.keys import PrivateKey
from tronpy.providers import HTTPProvider

from devstack.tron_node import (
    DEFAULT_CALL_ENERGY,
    ENERGY_PRICE_SUN,
    SWEEP_SELECTOR,
    SWEPT_TOPIC,
    TronNode,
    start_tron_node,
)
from usdt_gateway.create2 import keccak256, order_salt
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.networks import Network
from usdt_gateway.settlement.records import SettlementStatus
from usdt_gateway.settlement.relayer import (
    STEPS,
    Outcome,
    Progress,
    SweepRequest,
    new_settlement_id,
    read_settlement,
    read_state,
)
from usdt_gateway.settlement.tron_relayer import TronSweepRelayer

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
FACTORY = "TAtb9skGf5JU62NKYPY1G8THDWV9T7mx53"
FEE_LIMIT = 50_000_000  # 50 TRX
LEASE_MS = 60_000
SOLID_LAG = 3
AMOUNTS = (5_000_000, 7_250_000)


class Killed(BaseException):
    """A run stopped dead at a step boundary, as a killed process stops (nothing catches it)."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


class RecordingProvider:
    """tronpy's HTTPProvider that remembers the txID of every transaction broadcast through it."""

    def __init__(self, url: str) -> None:
        self._provider = HTTPProvider(url, timeout=10)
        self.sent: list[str] = []

    def make_request(self, method: str, params: Any = None) -> Any:
        if method == "wallet/broadcasttransaction":
            self.sent.append(str(params["txID"]))
        return self._provider.make_request(method, params)


@dataclass
class Setup:
    node: TronNode
    provider: RecordingProvider
    network: Network
    signer: KmsSigner
    clock: FakeClock
    salts: list[bytes]
    deposits: list[str]

    def relayer(self, hook: Callable[[str], None] | None = None) -> TronSweepRelayer:
        """A run of its own (a new lease owner), as each invocation of the function is."""
        return TronSweepRelayer(
            self.network, self.provider, self.signer, fee_limit=FEE_LIMIT, lease_ms=LEASE_MS, hook=hook or _none
        )

    def request(self) -> SweepRequest:
        return SweepRequest(new_settlement_id(), "merchant-1", FACTORY, USDT, tuple(self.salts))

    def funded(self) -> list[int]:
        """What each deposit address still holds on the node."""
        return [self.node.balance(USDT, deposit) for deposit in self.deposits]


def _none(step: str) -> None:
    pass


@pytest.fixture(scope="module")
def kms(moto_server: str) -> Any:
    return boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def setup(kms: Any, gateway_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    clock = FakeClock()
    monkeypatch.setattr("usdt_gateway.clock.now_ms", clock)
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    network = Network.model_validate(
        {
            "name": f"tron-{secrets.token_hex(4)}",
            "family": "tron",
            "chainId": 728126428,
            "displayName": "Tron (fake node)",
            "tokenContract": USDT,
            "decimals": 6,
            "finality": {"mode": "solidified"},
            "blockTimeMs": 3000,
        }
    )
    salts = [order_salt("merchant-1", f"ord_{secrets.token_hex(6)}") for _ in AMOUNTS]
    deposits = [PrivateKey.random().public_key.to_base58check_address() for _ in AMOUNTS]
    with start_tron_node(blocks=5, solid_lag=SOLID_LAG) as node:
        for salt, deposit, amount in zip(salts, deposits, AMOUNTS, strict=True):
            node.fund_deposit(FACTORY, USDT, salt, deposit, amount)
        yield Setup(node, RecordingProvider(node.url), network, KmsSigner(key_id, client=kms), clock, salts, deposits)


def kill_at(step: str) -> Callable[[str], None]:
    def hook(reached: str) -> None:
        if reached == step:
            raise Killed(step)

    return hook


def run_to_close(s: Setup, first: Progress | None = None, *, runs: int = 10) -> Progress:
    """Mine a block and run again until the sweep is closed."""
    progress = first or s.relayer().run()
    for _ in range(runs):
        if progress.outcome in (Outcome.COMPLETED, Outcome.FAILED):
            return progress
        s.node.mine()
        progress = s.relayer().run()
    raise AssertionError(f"not closed: {progress}")


def test_the_fake_nodes_sweep_selector_and_swept_topic_are_keccak_of_their_signatures() -> None:
    assert keccak256(b"sweep(address,bytes32[])")[:4].hex() == SWEEP_SELECTOR
    assert keccak256(b"Swept(address,address,uint256)").hex() == SWEPT_TOPIC


def test_a_sweep_is_sent_once_and_completed_once_solidified_with_its_energy_and_swept_logs(setup: Setup) -> None:
    s = setup
    request = s.request()
    # When a run takes the sweep
    first = s.relayer().run(request)
    # Then it is sent, and in flight with its one stored transaction
    assert first.outcome is Outcome.PENDING
    state = read_state(s.network.name)
    assert state is not None and state.sweep is not None
    (attempt,) = state.sweep.attempts
    assert s.provider.sent == [attempt.tx_hash] and attempt.broadcast_at is not None
    assert attempt.expiration is not None and attempt.gas == FEE_LIMIT
    # When it is mined, Then it waits for its block to be solidified
    s.node.mine()
    assert s.relayer().run().outcome is Outcome.MINED
    progress = run_to_close(s)
    # Then it completed once, with what it moved read from its Swept logs and its energy recorded
    assert progress.outcome is Outcome.COMPLETED, progress
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement.status is SettlementStatus.COMPLETED
    assert settlement.hashes == (attempt.tx_hash,) and settlement.nonce is None
    mined = settlement.mined
    assert mined is not None and mined.tx_hash == attempt.tx_hash and mined.result == "SUCCESS"
    assert mined.swept == dict(zip(s.deposits, AMOUNTS, strict=True))
    assert mined.gas_used == DEFAULT_CALL_ENERGY
    assert mined.energy_fee == DEFAULT_CALL_ENERGY * ENERGY_PRICE_SUN
    assert settlement.gas_paid == mined.fee == mined.energy_fee and mined.net_fee == 0
    assert s.funded() == [0, 0]
    assert set(s.provider.sent) == {attempt.tx_hash}
    # and the relayer is free, the item's record listing it
    state = read_state(s.network.name)
    assert state is not None and state.sweep is None and state.recent[0] == request.settlement_id


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_between_any_two_steps_is_resumed_with_exactly_one_transaction_sent(
    setup: Setup, step: str
) -> None:
    s = setup
    request = s.request()
    # Given a run killed at `step` (its lease held, as a dead process holds it)
    for i in range(10):
        try:
            s.relayer(kill_at(step)).run(request if i == 0 else None)
        except Killed:
            break
        s.node.mine()
    else:
        raise AssertionError(f"no run reached {step}")
    assert s.relayer().run().outcome is Outcome.BUSY
    # When its lease lapses and later runs carry on
    s.clock.now += LEASE_MS + 1
    progress = run_to_close(s)
    # Then the sweep completed once, through one transaction: every one that reached the node
    # is the one stored and recorded
    assert progress.outcome is Outcome.COMPLETED, progress
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement.mined is not None
    assert len(settlement.hashes) == 1 and set(s.provider.sent) == set(settlement.hashes)
    assert settlement.mined.swept == dict(zip(s.deposits, AMOUNTS, strict=True))
    mined_txids = [t for n in range(s.node.head + 1) for t in s.node.txids(n)]
    assert mined_txids == list(settlement.hashes)


def test_a_transaction_that_expired_unmined_is_rebuilt_once_after_a_solidified_block_passed_it(
    setup: Setup,
) -> None:
    s = setup
    request = s.request()
    assert s.relayer().run(request).outcome is Outcome.PENDING
    state = read_state(s.network.name)
    assert state is not None and state.sweep is not None
    (first,) = state.sweep.attempts
    assert first.expiration is not None
    # Given the node dropped it (no block will hold it)
    s.node.chain.pending.clear()
    # When the head passed its expiration but no solidified block did yet
    while s.node.chain.blocks[-1].timestamp < first.expiration:
        s.node.mine()
    solid = s.node.chain.block(s.node.solid)
    assert solid is not None and solid.timestamp < first.expiration
    progress = s.relayer().run()
    # Then nothing new is built: it is only sent again (the node says it expired)
    assert progress.outcome is Outcome.PENDING and "expired" in progress.detail
    assert s.node.requests["/wallet/triggersmartcontract"] == 1
    # When a solidified block passed its expiration
    while (block := s.node.chain.block(s.node.solid)) is not None and block.timestamp < first.expiration:
        s.node.mine()
    progress = s.relayer().run()
    # Then a new transaction is built, stored and sent, once
    assert progress.outcome is Outcome.PENDING
    assert s.node.requests["/wallet/triggersmartcontract"] == 2
    progress = run_to_close(s)
    assert progress.outcome is Outcome.COMPLETED, progress
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement.mined is not None
    assert len(settlement.hashes) == 2 and settlement.hashes[0] == first.tx_hash
    assert settlement.mined.tx_hash == settlement.hashes[1]
    assert s.node.requests["/wallet/triggersmartcontract"] == 2
    assert set(s.provider.sent) == set(settlement.hashes)


def test_out_of_energy_is_a_failed_sweep_with_its_energy_and_fee_recorded(setup: Setup) -> None:
    s = setup
    request = s.request()
    # Given the sweep runs out of energy
    s.node.next_call_outcome("OUT_OF_ENERGY")
    # When it is carried to its solidified block
    progress = run_to_close(s, s.relayer().run(request))
    # Then it failed, its energy (the whole fee limit burned) and fee recorded, nothing moved
    assert progress.outcome is Outcome.FAILED
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement.status is SettlementStatus.FAILED
    assert settlement.reason is not None and "OUT_OF_ENERGY" in settlement.reason
    mined = settlement.mined
    assert mined is not None and mined.status == 0 and mined.result == "OUT_OF_ENERGY"
    assert mined.energy_fee == FEE_LIMIT and mined.gas_used == FEE_LIMIT // ENERGY_PRICE_SUN
    assert settlement.gas_paid == FEE_LIMIT and mined.swept == {}
    assert s.funded() == list(AMOUNTS)
    # and it is not sent again
    assert len(settlement.hashes) == 1 and set(s.provider.sent) == set(settlement.hashes)


def test_a_reverted_sweep_is_failed_too(setup: Setup) -> None:
    s = setup
    request = s.request()
    s.node.next_call_outcome("REVERT", energy=1_284)
    progress = run_to_close(s, s.relayer().run(request))
    assert progress.outcome is Outcome.FAILED
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement.mined is not None
    assert settlement.mined.result == "REVERT" and settlement.mined.gas_used == 1_284
    assert s.funded() == list(AMOUNTS)
