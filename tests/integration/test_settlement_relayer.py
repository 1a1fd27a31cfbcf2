"""The settlement relayer on anvil (mining by hand: automine off) with its key in the local KMS
(moto server) and its state in the local DynamoDB table: a sweep is sent once, carried to
finality, and recorded with its gas; a run killed between any two steps resumes without a second
transaction for the nonce; a lease keeps two runs off one nonce; fees wait under the maximum and
a stuck sweep is replaced; a reorg sends it again; a revert is recorded as failed."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest
from eth_account import Account
from eth_typing import HexStr
from web3 import Web3
from web3.contract import Contract

from devstack.evm import CHAIN_ID, Anvil, deploy_token, mint, start_anvil
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory
from usdt_gateway.chain.jsonrpc import Call, JsonRpc, RpcError
from usdt_gateway.create2 import deposit_address, order_salt
from usdt_gateway.kms_signer import Eip1559Transaction, KmsSigner
from usdt_gateway.networks import Finality, Network
from usdt_gateway.settlement import relayer
from usdt_gateway.settlement.records import SettlementStatus
from usdt_gateway.settlement.relayer import (
    BROADCAST,
    FINAL,
    MINED,
    RECORDED,
    SIGNED,
    STEPS,
    STORED,
    FeePolicy,
    Outcome,
    Progress,
    SweepRelayer,
    SweepRequest,
    new_settlement_id,
    read_settlement,
    read_state,
)

GWEI = 10**9
LEASE_MS = 60_000
REPLACE_AFTER_MS = 180_000
CONFIRMATIONS = 2
AMOUNTS = (5_000_000, 7_250_000, 1)


class Killed(BaseException):
    """A run stopped dead at a step boundary, as a killed process stops (nothing catches it)."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class RecordingRpc:
    """JsonRpc that remembers every raw transaction broadcast through it, and can answer another
    hash for a block (a node that follows another fork at that height)."""

    def __init__(self, url: str) -> None:
        self._rpc = JsonRpc(url, timeout=30)
        self.label = self._rpc.label
        self.sent: list[str] = []
        self.other_fork: dict[int, str] = {}

    def call(self, method: str, params: list[Any]) -> Any:
        if method == "eth_sendRawTransaction":
            self.sent.append(params[0])
        answer = self._rpc.call(method, params)
        if method == "eth_getBlockByNumber" and answer and int(answer["number"], 16) in self.other_fork:
            answer = {**answer, "hash": self.other_fork[int(answer["number"], 16)]}
        return answer

    def sent_hashes(self) -> set[str]:
        """The hashes of every transaction broadcast."""
        return {"0x" + bytes(Web3.keccak(hexstr=raw)).hex() for raw in self.sent}

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        return self._rpc.batch(calls)


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with start_anvil() as node:
        yield node


@pytest.fixture(scope="module")
def kms(moto_server: str) -> Any:
    return boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("usdt_gateway.clock.now_ms", fake)
    return fake


@dataclass
class Setup:
    anvil: Anvil
    w3: Web3
    network: Network
    signer: KmsSigner
    rpc: RecordingRpc
    factory: Contract
    token: Contract
    treasury: str
    salts: list[bytes]
    deposits: list[str]
    clock: FakeClock
    fees: FeePolicy = field(default_factory=lambda: FeePolicy(max_fee_per_gas=100 * GWEI))

    def relayer(self, *, hook: Callable[[str], None] | None = None, fees: FeePolicy | None = None) -> SweepRelayer:
        """A run of its own (a new lease owner), as each invocation of the function is."""
        return SweepRelayer(
            self.network,
            self.rpc,
            self.signer,
            fees=fees or self.fees,
            lease_ms=LEASE_MS,
            hook=hook or (lambda step: None),
        )

    def request(self, salts: list[bytes] | None = None, token: str | None = None) -> SweepRequest:
        return SweepRequest(
            settlement_id=new_settlement_id(),
            merchant_id="merchant-1",
            factory=self.factory.address,
            token=token or self.token.address,
            salts=tuple(self.salts if salts is None else salts),
        )

    def mine(self, blocks: int = 1) -> None:
        self.anvil.rpc("anvil_mine", [hex(blocks)])

    def balance(self, holder: str) -> int:
        return int(self.token.functions.balanceOf(holder).call())

    def pool(self) -> dict[int, str]:
        """The relayer's transactions waiting in the node's pool: nonce -> hash."""
        pending = self.anvil.rpc("txpool_content")["pending"]
        mine: dict[str, Any] = next(
            (txs for sender, txs in pending.items() if sender.lower() == self.signer.address.lower()), {}
        )
        return {int(nonce): tx["hash"] for nonce, tx in mine.items()}

    def chain_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(self.signer.address)))

    def stored_hashes(self) -> tuple[str, ...]:
        state = read_state(self.network.name)
        assert state is not None
        return state.sweep.hashes if state.sweep else ()


def _fund_deposits(
    w3: Web3, factory: Contract, implementation: str, token: Contract, owner: str
) -> tuple[list[bytes], list[str]]:
    salts = [order_salt("merchant-1", f"ord_{secrets.token_hex(6)}") for _ in AMOUNTS]
    deposits: list[str] = [Web3.to_checksum_address(deposit_address(factory.address, implementation, s)) for s in salts]
    for address, amount in zip(deposits, AMOUNTS, strict=True):
        mint(token, address, amount, owner=owner)
    return salts, deposits


@pytest.fixture
def setup(anvil: Anvil, kms: Any, gateway_env: dict[str, str], clock: FakeClock) -> Iterator[Setup]:
    """A merchant's factory and three funded deposit addresses, the relayer's KMS key funded with
    ether, and a network of its own (its own RELAYER item); anvil then mines only when told."""
    snapshot = anvil.rpc("evm_snapshot")
    w3 = anvil.web3()
    deployer = w3.eth.accounts[0]
    implementation = deploy_deposit_implementation(w3, deployer)
    treasury = Account.create().address
    factory = deploy_factory(
        w3, deployer, treasury=treasury, owner=Account.create().address, implementation=implementation.address
    )
    token = deploy_token(w3, deployer)
    salts, deposits = _fund_deposits(w3, factory, implementation.address, token, deployer)
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signer = KmsSigner(key_id, client=kms)
    anvil.rpc("anvil_setBalance", [signer.address, hex(10**19)])
    network = Network.model_validate(
        {
            "name": f"anvil-{secrets.token_hex(4)}",
            "family": "evm",
            "chainId": CHAIN_ID,
            "displayName": "Anvil",
            "tokenContract": token.address,
            "decimals": 6,
            "finality": {"mode": "confirmations", "confirmations": CONFIRMATIONS},
            "blockTimeMs": 1000,
        }
    )
    anvil.rpc("evm_setAutomine", [False])
    try:
        yield Setup(
            anvil, w3, network, signer, RecordingRpc(anvil.url), factory, token, treasury, salts, deposits, clock
        )
    finally:
        anvil.rpc("evm_setAutomine", [True])
        assert anvil.rpc("evm_revert", [snapshot]) is True


def kill_at(step: str) -> Callable[[str], None]:
    def hook(reached: str) -> None:
        if reached == step:
            raise Killed(step)

    return hook


def run_to_completion(s: Setup, first: Progress | None = None, *, runs: int = 8) -> Progress:
    """Mine a block and run again until the sweep is closed."""
    progress = first or s.relayer().run()
    for _ in range(runs):
        if progress.outcome in (Outcome.COMPLETED, Outcome.FAILED):
            return progress
        s.mine()
        progress = s.relayer().run()
    raise AssertionError(f"not closed: {progress}")


def assert_swept_once(s: Setup, progress: Progress) -> None:
    """The sweep completed with one mined transaction, the treasury holds every deposit's money,
    and the relayer's nonce moved by one."""
    assert progress.outcome is Outcome.COMPLETED, progress
    assert s.balance(s.treasury) == sum(AMOUNTS)
    assert [s.balance(d) for d in s.deposits] == [0, 0, 0]
    assert s.chain_nonce() == 1
    state = read_state(s.network.name)
    assert state is not None and state.sweep is None and state.next_nonce == 1


# --- the path without trouble ---------------------------------------------------------------


def test_a_sweep_is_sent_mined_and_completed_once_final_with_its_gas_recorded(setup: Setup) -> None:
    s = setup
    ether_before = s.w3.eth.get_balance(Web3.to_checksum_address(s.signer.address))
    request = s.request()

    # When a run takes the sweep: it is signed, stored and sent (nothing mined yet)
    progress = s.relayer().run(request)
    assert progress.outcome is Outcome.PENDING
    state = read_state(s.network.name)
    assert state is not None and state.sweep is not None
    (attempt,) = state.sweep.attempts
    assert attempt.nonce == 0 and attempt.broadcast_at == s.clock.now
    assert s.pool() == {0: attempt.tx_hash}
    assert s.rpc.sent == [attempt.raw]

    # When it is mined: one confirmation of the two the network wants, so not done yet
    s.mine()
    progress = s.relayer().run()
    assert progress.outcome is Outcome.MINED
    assert progress.sweep is not None and progress.sweep.mined is not None
    assert progress.sweep.mined.tx_hash == attempt.tx_hash
    assert read_settlement(request.settlement_id) is None

    # When a second block confirms it: completed, recorded with its receipt and gas
    s.mine()
    progress = s.relayer().run()
    assert_swept_once(s, progress)
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement == progress.settlement
    assert settlement.status is SettlementStatus.COMPLETED
    assert settlement.tx_hash == attempt.tx_hash and settlement.hashes == (attempt.tx_hash,)
    assert settlement.nonce == 0 and settlement.salts == tuple("0x" + x.hex() for x in s.salts)
    receipt = s.w3.eth.get_transaction_receipt(HexStr(attempt.tx_hash))
    assert settlement.mined is not None and settlement.mined.block_hash == "0x" + bytes(receipt["blockHash"]).hex()
    assert settlement.gas_paid == receipt["gasUsed"] * receipt["effectiveGasPrice"] > 0
    # and what it moved, read from its receipt's Swept logs: each deposit's whole balance
    assert settlement.swept == dict(zip(s.deposits, AMOUNTS, strict=True))
    assert s.w3.eth.get_balance(Web3.to_checksum_address(s.signer.address)) == ether_before - settlement.gas_paid
    # and the relayer is free: nothing left to do, nothing sent again
    assert s.relayer().run().outcome is Outcome.IDLE
    assert s.rpc.sent == [attempt.raw]


def test_on_a_chain_with_a_finality_gadget_a_sweep_completes_once_its_block_is_finalized(setup: Setup) -> None:
    # Given a network whose policy is the `finalized` tag (anvil finalizes 64 blocks behind the head)
    s = replace(setup, network=setup.network.model_copy(update={"finality": Finality(mode="finalized")}))
    s.relayer().run(s.request())
    s.mine()
    mined = s.relayer().run()
    assert mined.outcome is Outcome.MINED and mined.sweep is not None and mined.sweep.mined is not None

    # When 63 more blocks leave it one short of the finalized tag: still waiting
    s.mine(63)
    finalized = int(s.anvil.rpc("eth_getBlockByNumber", ["finalized", False])["number"], 16)
    assert finalized == mined.sweep.mined.block_number - 1
    assert s.relayer().run().outcome is Outcome.MINED

    # Then one more block finalizes it, and the sweep completes
    s.mine()
    assert_swept_once(s, s.relayer().run())


def test_a_run_finds_the_relayer_busy_while_another_holds_its_lease(setup: Setup) -> None:
    s = setup
    holder = s.relayer()
    assert holder.acquire() is not None
    # Then another run does nothing until the holder lets go or its lease lapses
    assert s.relayer().run(s.request()).outcome is Outcome.BUSY
    s.clock.advance(LEASE_MS + 1)
    assert s.relayer().run(s.request()).outcome is Outcome.PENDING


# --- crashes --------------------------------------------------------------------------------


def _kill_run_at(s: Setup, step: str, request: SweepRequest | None) -> None:
    """Runs (mining between them) until one is killed at `step`."""
    for _ in range(4):
        try:
            s.relayer(hook=kill_at(step)).run(request)
        except Killed:
            return
        s.mine()
    raise AssertionError(f"no run reached {step}")


@pytest.mark.parametrize("step", STEPS)
def test_a_run_killed_between_any_two_steps_is_resumed_without_a_second_transaction(setup: Setup, step: str) -> None:
    s = setup
    request = s.request()

    # Given a run killed at `step` (its lease held, as a dead process holds it)
    _kill_run_at(s, step, request)
    assert s.relayer().run().outcome is Outcome.BUSY

    # When its lease lapses and later runs carry on
    s.clock.advance(LEASE_MS + 1)
    progress = run_to_completion(s)

    # Then the sweep completed once, and every transaction that reached the node is one stored:
    # one signed transaction for nonce 0, sent again as stored, never a second one
    assert_swept_once(s, progress)
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and len(settlement.hashes) == 1
    assert s.rpc.sent_hashes() == set(settlement.hashes)


@pytest.mark.parametrize("step", [SIGNED, STORED, BROADCAST, RECORDED])
def test_a_replacement_killed_between_any_two_steps_is_resumed_and_every_transaction_sent_is_recorded(
    setup: Setup, step: str
) -> None:
    s = setup
    first = s.relayer().run(s.request())
    assert first.outcome is Outcome.PENDING

    # Given a run killed at `step` while it replaces the sweep, stuck past the replacement time
    s.clock.advance(REPLACE_AFTER_MS)
    with pytest.raises(Killed):
        s.relayer(hook=kill_at(step)).run()

    # When its lease lapses and later runs carry on
    s.clock.advance(LEASE_MS + 1)
    done = run_to_completion(s)

    # Then one replacement was stored and sent (signed again if the first was never stored), it
    # is the one mined, and no transaction reached the node that the record does not name
    assert_swept_once(s, done)
    assert done.settlement is not None and len(done.settlement.hashes) == 2
    assert done.settlement.tx_hash == done.settlement.hashes[1]
    assert s.rpc.sent_hashes() == set(done.settlement.hashes)


def test_two_runs_never_share_a_nonce(setup: Setup) -> None:
    s = setup
    request = s.request()
    late: list[Progress] = []

    def stall_past_the_lease(step: str) -> None:
        # Run A stalls after signing; its lease lapses and run B sends the sweep meanwhile
        if step == "signed" and not late:
            s.clock.advance(LEASE_MS + 1)
            late.append(s.relayer().run())

    # When run A submits, signs, stalls, and then tries to store what it signed
    progress = s.relayer(hook=stall_past_the_lease).run(request)

    # Then B sent the sweep at nonce 0 and A, having lost the lease, stored and sent nothing
    assert late[0].outcome is Outcome.PENDING
    assert progress.outcome is Outcome.BUSY
    state = read_state(s.network.name)
    assert state is not None and state.sweep is not None
    (attempt,) = state.sweep.attempts
    assert s.rpc.sent == [attempt.raw] and s.pool() == {0: attempt.tx_hash}
    assert_swept_once(s, run_to_completion(s, late[0]))


# --- fees -----------------------------------------------------------------------------------


def test_the_relayer_waits_while_the_gas_price_is_above_its_maximum(setup: Setup) -> None:
    s = setup
    # Given a next block whose base fee alone is above the maximum
    s.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(150 * GWEI)])
    request = s.request()

    # When a run takes the sweep
    progress = s.relayer().run(request)

    # Then it waits, says why, and has signed and sent nothing
    assert progress.outcome is Outcome.WAITING_FOR_GAS
    assert "above the maximum" in progress.detail and str(100 * GWEI) in progress.detail
    state = read_state(s.network.name)
    assert state is not None and state.sweep is not None and state.sweep.attempts == ()
    assert s.rpc.sent == [] and s.pool() == {}

    # When the base fee falls back, Then the next run sends it, within the maximum
    s.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
    progress = s.relayer().run()
    assert progress.outcome is Outcome.PENDING
    assert progress.sweep is not None and progress.sweep.attempts[0].max_fee_per_gas <= 100 * GWEI
    assert_swept_once(s, run_to_completion(s, progress))


def test_a_sweep_not_mined_in_time_is_replaced_with_higher_fees_at_the_same_nonce(setup: Setup) -> None:
    s = setup
    request = s.request()
    first = s.relayer().run(request)
    assert first.sweep is not None
    (stuck,) = first.sweep.attempts

    # When it is not mined before the replacement time
    s.clock.advance(REPLACE_AFTER_MS - 1)
    assert s.relayer().run().outcome is Outcome.PENDING
    assert len(s.stored_hashes()) == 1
    s.clock.advance(1)
    progress = s.relayer().run()

    # Then a second transaction replaces it at nonce 0 with both fees at least 12.5 % higher
    assert progress.outcome is Outcome.PENDING and progress.sweep is not None
    first_attempt, replacement = progress.sweep.attempts
    assert first_attempt == replace(stuck, raw=None)  # superseded: its hash is what is kept
    assert replacement.nonce == 0 and replacement.gas == stuck.gas
    assert replacement.max_fee_per_gas * 1000 >= stuck.max_fee_per_gas * 1125
    assert replacement.max_priority_fee_per_gas * 1000 >= stuck.max_priority_fee_per_gas * 1125
    assert s.pool() == {0: replacement.tx_hash}
    assert set(s.rpc.sent) == {stuck.raw, replacement.raw}

    # and the replacement is the one mined: the record names it and both hashes sent
    done = run_to_completion(s, progress)
    assert_swept_once(s, done)
    assert done.settlement is not None
    assert done.settlement.tx_hash == replacement.tx_hash
    assert done.settlement.hashes == (stuck.tx_hash, replacement.tx_hash)


def test_a_replacement_never_goes_above_the_maximum(setup: Setup) -> None:
    s = setup
    # Given a maximum the first transaction already uses (2 * base + tip is above it)
    s.anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
    fees = FeePolicy(max_fee_per_gas=2 * GWEI, min_priority_fee_per_gas=GWEI // 2)
    first = s.relayer(fees=fees).run(s.request())
    assert first.sweep is not None
    assert first.sweep.attempts[0].max_fee_per_gas == 2 * GWEI

    # When it is stuck past the replacement time
    s.clock.advance(REPLACE_AFTER_MS)
    progress = s.relayer(fees=fees).run()

    # Then no replacement is made (it would exceed the maximum): the relayer says so and waits
    assert progress.outcome is Outcome.PENDING and "maximum" in progress.detail
    assert progress.sweep is not None and len(progress.sweep.attempts) == 1
    assert set(s.rpc.sent) == {first.sweep.attempts[0].raw}


def test_on_a_chain_without_eip_1559_the_sweep_is_a_legacy_transaction_replaced_the_same_way(setup: Setup) -> None:
    s = setup
    fees = FeePolicy(max_fee_per_gas=100 * GWEI, legacy=True)
    price = int(s.anvil.rpc("eth_gasPrice"), 16)

    # When a run sends the sweep with a legacy policy: one gas price, the node's
    first = s.relayer(fees=fees).run(s.request())
    assert first.sweep is not None
    (stuck,) = first.sweep.attempts
    assert stuck.max_fee_per_gas == stuck.max_priority_fee_per_gas == price
    assert s.anvil.rpc("eth_getTransactionByHash", [stuck.tx_hash])["type"] == "0x0"

    # and it is stuck past the replacement time: Then it is replaced at 12.5 % more, legacy too
    s.clock.advance(REPLACE_AFTER_MS)
    progress = s.relayer(fees=fees).run()
    assert progress.sweep is not None
    replacement = progress.sweep.attempts[-1]
    assert replacement.nonce == 0 and replacement.max_fee_per_gas * 1000 >= price * 1125
    assert s.pool() == {0: replacement.tx_hash}
    for _ in range(CONFIRMATIONS):
        s.mine()
        progress = s.relayer(fees=fees).run()
    assert_swept_once(s, progress)
    receipt = s.w3.eth.get_transaction_receipt(HexStr(replacement.tx_hash))
    assert receipt["type"] == 0 and receipt["status"] == 1


def test_whichever_transaction_sent_for_the_nonce_is_mined_counts(setup: Setup) -> None:
    s = setup
    request = s.request()
    first = s.relayer().run(request)
    assert first.sweep is not None
    (original,) = first.sweep.attempts

    # Given a replacement signed and stored by a run killed before it broadcast it
    s.clock.advance(REPLACE_AFTER_MS)
    with pytest.raises(Killed):
        s.relayer(hook=kill_at("stored")).run()
    assert len(s.stored_hashes()) == 2

    # When the original is mined
    s.mine()
    s.clock.advance(LEASE_MS + 1)
    progress = run_to_completion(s)

    # Then the original counts: the sweep completes with it, the replacement never sent
    assert_swept_once(s, progress)
    assert progress.settlement is not None and progress.settlement.tx_hash == original.tx_hash
    assert len(progress.settlement.hashes) == 2
    assert s.rpc.sent == [original.raw]


def test_a_nonce_taken_by_another_transaction_of_the_key_moves_the_sweep_to_the_next(setup: Setup) -> None:
    s = setup
    first = s.relayer().run(s.request())
    assert first.sweep is not None
    (ours,) = first.sweep.attempts

    # Given another transaction of the same key that outbids ours at nonce 0 and is mined
    other = s.signer.sign_transaction(
        Eip1559Transaction(
            chain_id=CHAIN_ID,
            nonce=0,
            max_priority_fee_per_gas=50 * GWEI,
            max_fee_per_gas=90 * GWEI,
            gas=21_000,
            to=s.signer.address,
        )
    )
    s.w3.eth.send_raw_transaction(other.raw)
    s.mine()

    # When the relayer runs on: Then it signs the sweep again at nonce 1 and completes it
    progress = s.relayer().run()
    assert progress.sweep is not None
    assert [a.nonce for a in progress.sweep.attempts] == [0, 1]
    done = run_to_completion(s, progress)
    assert done.outcome is Outcome.COMPLETED
    assert s.balance(s.treasury) == sum(AMOUNTS) and s.chain_nonce() == 2
    assert done.settlement is not None and done.settlement.nonce == 1 and done.settlement.tx_hash != ours.tx_hash
    state = read_state(s.network.name)
    assert state is not None and state.next_nonce == 2


# --- reorgs and failures --------------------------------------------------------------------


def test_a_reorg_before_finality_sends_the_sweep_again(setup: Setup) -> None:
    s = setup
    request = s.request()
    first = s.relayer().run(request)
    assert first.sweep is not None
    (attempt,) = first.sweep.attempts
    before = s.anvil.rpc("evm_snapshot")

    # Given the sweep mined in a block, one confirmation short of final
    s.mine()
    mined = s.relayer().run()
    assert mined.outcome is Outcome.MINED and mined.sweep is not None and mined.sweep.mined is not None
    old_block = mined.sweep.mined

    # When a reorg replaces that block with chain that does not hold the sweep, longer than before
    assert s.anvil.rpc("evm_revert", [before]) is True
    s.mine(2)
    assert s.balance(s.treasury) == 0
    assert s.w3.eth.get_block(old_block.block_number)["hash"].hex() != old_block.block_hash.removeprefix("0x")

    # Then the next run notices, and sends the stored transaction again (its nonce is free)
    progress = s.relayer().run()
    assert progress.outcome is Outcome.PENDING and progress.sweep is not None
    assert progress.sweep.mined is None and progress.sweep.reorgs == 1
    assert progress.sweep.attempts == (replace(attempt, broadcast_at=s.clock.now),)
    assert s.pool() == {0: attempt.tx_hash}

    # and it completes in a block of the new chain, recorded there, the money moved once
    done = run_to_completion(s, progress)
    assert_swept_once(s, done)
    assert done.settlement is not None and done.settlement.reorgs == 1
    assert done.settlement.mined is not None and done.settlement.mined.block_hash != old_block.block_hash
    assert done.settlement.hashes == (attempt.tx_hash,)
    assert set(s.rpc.sent) == {attempt.raw}


@pytest.mark.parametrize("step", [BROADCAST, RECORDED, MINED, FINAL])
def test_a_run_killed_while_it_sends_a_reorganised_sweep_again_is_resumed(setup: Setup, step: str) -> None:
    s = setup
    first = s.relayer().run(s.request())
    assert first.sweep is not None
    before = s.anvil.rpc("evm_snapshot")
    s.mine()
    assert s.relayer().run().outcome is Outcome.MINED

    # Given a reorg that drops the sweep's block, and a run killed at `step` as it sends it again
    assert s.anvil.rpc("evm_revert", [before]) is True
    s.mine(2)
    _kill_run_at(s, step, None)

    # When later runs carry on, Then it completes once, with the one transaction it ever signed
    s.clock.advance(LEASE_MS + 1)
    done = run_to_completion(s)
    assert_swept_once(s, done)
    assert done.settlement is not None and done.settlement.reorgs == 1
    assert done.settlement.hashes == first.sweep.hashes
    assert s.rpc.sent_hashes() == set(first.sweep.hashes)


def test_a_reorg_deeper_than_finality_taking_a_closed_sweep_away_does_not_wedge_the_next(setup: Setup) -> None:
    s = setup
    before = s.anvil.rpc("evm_snapshot")
    # Given a sweep completed at nonce 0, then a reorg deeper than finality that takes it away
    assert_swept_once(s, run_to_completion(s, s.relayer().run(s.request())))
    assert s.anvil.rpc("evm_revert", [before]) is True
    s.mine(CONFIRMATIONS + 1)
    assert s.chain_nonce() == 0 and s.balance(s.treasury) == 0

    # When the next sweep is sent at the stored next nonce, 1, which waits behind the free nonce 0
    first = s.relayer().run(s.request())
    assert first.sweep is not None and [a.nonce for a in first.sweep.attempts] == [1]
    s.mine()
    assert s.chain_nonce() == 0

    # Then the next run sends it at the free nonce, and it completes, the money moved once
    progress = s.relayer().run()
    assert progress.outcome is Outcome.PENDING and progress.sweep is not None
    assert [a.nonce for a in progress.sweep.attempts] == [1, 0]
    done = run_to_completion(s, progress)
    assert done.outcome is Outcome.COMPLETED and done.settlement is not None and done.settlement.nonce == 0
    assert s.balance(s.treasury) == sum(AMOUNTS) and [s.balance(d) for d in s.deposits] == [0, 0, 0]
    # And the relayer follows on from the chain: its first transaction, behind the gap, was mined
    # after the second (moving nothing), and the next sweep takes the nonce after both
    assert s.chain_nonce() == 2
    state = read_state(s.network.name)
    assert state is not None and state.sweep is None and state.next_nonce == 1
    again = s.relayer().run(s.request())
    assert again.sweep is not None and [a.nonce for a in again.sweep.attempts] == [2]


def test_a_block_no_longer_canonical_at_its_height_is_not_final(setup: Setup) -> None:
    s = setup
    s.relayer().run(s.request())
    s.mine(CONFIRMATIONS)
    state = read_state(s.network.name)
    assert state is not None and state.sweep is not None
    height = int(s.w3.eth.get_transaction_receipt(HexStr(state.sweep.hashes[0]))["blockNumber"])

    # Given a node that still has the receipt but another block at its height
    s.rpc.other_fork[height] = "0x" + "ee" * 32

    # When the sweep has its confirmations: Then it is not done while that block is not canonical
    progress = s.relayer().run()
    assert progress.outcome is Outcome.MINED
    assert read_settlement(state.sweep.settlement_id) is None

    # and once the node agrees with the receipt again, it is
    s.rpc.other_fork.clear()
    assert_swept_once(s, s.relayer().run())


def test_a_sweep_that_reverts_is_recorded_failed_with_its_receipt_and_not_sent_again(setup: Setup) -> None:
    s = setup
    request = s.request()
    first = s.relayer().run(request)
    assert first.sweep is not None
    (attempt,) = first.sweep.attempts

    # Given a token that reverts every call by the time the sweep is mined
    s.anvil.rpc("anvil_setCode", [s.token.address, "0x60006000fd"])
    s.mine()

    # When the relayer runs until it lets go of the sweep
    progress = run_to_completion(s, s.relayer().run())

    # Then it is recorded failed, with the receipt and the gas the revert cost, nothing sent again
    assert progress.outcome is Outcome.FAILED
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement.status is SettlementStatus.FAILED
    assert settlement.mined is not None and settlement.mined.status == 0
    assert settlement.tx_hash == attempt.tx_hash and settlement.gas_paid > 0
    assert s.rpc.sent == [attempt.raw]
    state = read_state(s.network.name)
    assert state is not None and state.sweep is None and state.next_nonce == 1


def test_a_sweep_that_would_revert_is_recorded_failed_without_a_transaction(setup: Setup) -> None:
    s = setup
    # Given a sweep of a "token" that is no contract (the factory's balanceOf call reverts)
    request = s.request(token=Account.create().address)

    # When a run takes it
    progress = s.relayer().run(request)

    # Then it fails at the gas estimate: recorded, nothing signed or sent, the nonce unused
    assert progress.outcome is Outcome.FAILED and "eth_estimateGas" in progress.detail
    settlement = read_settlement(request.settlement_id)
    assert settlement is not None and settlement.status is SettlementStatus.FAILED and settlement.hashes == ()
    assert s.rpc.sent == [] and s.chain_nonce() == 0
    state = read_state(s.network.name)
    assert state is not None and state.sweep is None and state.next_nonce is None


def test_a_node_error_at_the_gas_estimate_is_not_taken_for_a_revert(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = setup
    real = s.rpc.call

    def limited(method: str, params: list[Any]) -> Any:
        if method == "eth_estimateGas":
            raise RpcError(-32005, "limit exceeded")
        return real(method, params)

    # Given a node that refuses the estimate for its own reasons
    monkeypatch.setattr(s.rpc, "call", limited)
    request = s.request()
    with pytest.raises(RpcError, match="limit exceeded"):
        s.relayer().run(request)

    # Then the sweep stays in flight, unsent and not failed, and the next run sends it
    assert read_settlement(request.settlement_id) is None
    assert s.stored_hashes() == () and s.rpc.sent == []
    monkeypatch.setattr(s.rpc, "call", real)
    assert_swept_once(s, run_to_completion(s))


def test_a_settlement_id_already_recorded_is_refused(setup: Setup) -> None:
    s = setup
    request = s.request(token=Account.create().address)  # fails at once: recorded without a transaction
    assert s.relayer().run(request).outcome is Outcome.FAILED
    # When the same id is offered again, Then it is refused before anything is stored
    with pytest.raises(ValueError, match="already recorded"):
        s.relayer().run(request)
    state = read_state(s.network.name)
    assert state is not None and state.sweep is None
    assert s.relayer().run().outcome is Outcome.IDLE


def test_a_request_is_refused_while_a_sweep_is_in_flight(setup: Setup) -> None:
    s = setup
    first = s.relayer().run(s.request(s.salts[:1]))
    assert first.outcome is Outcome.PENDING
    # When another sweep is offered: the one in flight goes on, the new one is not queued
    second = s.request(s.salts[1:])
    progress = s.relayer().run(second)
    assert first.sweep is not None and progress.sweep is not None
    assert progress.sweep.settlement_id == first.sweep.settlement_id
    state = read_state(s.network.name)
    assert state is not None and state.sweep is not None
    assert state.sweep.settlement_id != second.settlement_id
    assert relayer.read_settlement(second.settlement_id) is None
