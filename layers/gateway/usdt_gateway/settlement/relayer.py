"""The settlement relayer of an EVM network: it sends one transaction at a time, signed by the
relayer's KMS key, and carries it to finality: a sweep, `factory.sweep(token, salts)`, or a
refund the owner signed, `factory.refund(token, salt, to, amount, nonce, deadline, signature)`.
Both are carried alike (the text below says "sweep" for either); each has its own calldata and
its own close.

One transaction in flight per network. The RELAYER#<network> item holds a lease, the next nonce
and the sweep in flight; a run takes the lease, and every write it makes is conditional on still
holding it and on the item's revision it read. A run that lost its lease (it stalled past it and
another took over) fails its next write and stops before its next external effect, so two runs
never sign different transactions for one nonce and broadcast both.

Each step records its intent before the external effect it leads to:

    sign -> store the signed raw transaction and its hash -> broadcast -> record the broadcast
         -> receipt -> record mined (block number and hash) -> final and canonical -> closed

A run killed between any two steps leaves a state the next run resumes from: a transaction
signed but not stored was never sent (it is signed again); one stored is rebroadcast as stored
(nodes answer "already known" or "nonce too low", and the receipts of every stored hash decide);
a mined one is looked up again. Nothing is ever broadcast that is not stored first, so the
stored attempts are every transaction sent for the sweep, and whichever of them is mined counts.

Fees are EIP-1559, from eth_feeHistory (eth_gasPrice where a node has none; a legacy gas price
where the chain has no EIP-1559), never above the configured maximum: while the market needs
more, the relayer waits and says so. A transaction not mined `replace_after_ms` after its
broadcast is replaced at the same nonce, its fees bumped by 12.5 % (geth needs 10 %) and capped
by the maximum.

A sweep is done once its block is final under the network's policy and is still the canonical
block at its height. A reorg that takes it away before that sends it again: the stored
transaction while its nonce is free, else a new one (a sweep moves balances, so running it twice
moves nothing twice). A reorg deeper than finality can take away a transaction the relayer had
counted (a closed sweep's): the next one, sent at the stored next nonce, then waits behind a free
nonce for ever; once the chain's pending count is below its nonce, it is sent at that count. A
transaction that reverted is recorded failed with its receipt once its block is final; it is not
retried here (the batching picks the deposits again).

A refund runs at most once whoever sends it: the factory spends its nonce. Its outcome is decided
from the chain only. Its transaction ran in a final block: completed. It reverted, or would revert
(eth_estimateGas): completed if the factory's Refunded log of that deposit and nonce is on chain
(the signature was submitted by another first; that transaction is then carried to finality
instead, and the relayer's own one still to its nonce), failed if the factory says the nonce is
unused (a deadline passed, the money is gone), and neither while the nonce is used but its log
not found. Its close is one transaction (settlement/refunds.py): the refund's record, its holds,
the order's funds, its event, and the relayer freed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from usdt_gateway import clock, store
from usdt_gateway.chain.jsonrpc import Rpc, RpcError
from usdt_gateway.kms_signer import Eip1559Transaction, KmsSigner, LegacyTransaction, Transaction
from usdt_gateway.networks import Network
from usdt_gateway.observability import logger
from usdt_gateway.schemas import RefundStatus
from usdt_gateway.settlement import refunds
from usdt_gateway.settlement.calldata import (
    REFUNDED_TOPIC,
    address_word,
    nonce_used_calldata,
    refund_calldata,
    sweep_calldata,
    swept_amounts,
)
from usdt_gateway.settlement.records import (
    Attempt,
    Mined,
    RefundCall,
    RelayerState,
    Settlement,
    SettlementStatus,
    Sweep,
)
from usdt_gateway.settlement.refund_records import Refund

# The step boundaries a run passes, in order; `hook(step)` is called at each (tests stop a run
# there as a crash would).
SIGNED = "signed"  # signed, not stored
STORED = "stored"  # stored, not broadcast
BROADCAST = "broadcast"  # broadcast, not recorded
RECORDED = "recorded"  # the broadcast recorded
MINED = "mined"  # the receipt recorded, finality not checked
FINAL = "final"  # final and canonical, not closed
STEPS = (SIGNED, STORED, BROADCAST, RECORDED, MINED, FINAL)

# What nodes answer when the transaction is already in their pool or its nonce already used: the
# broadcast is done or moot, and the receipts of the stored hashes say which.
_BENIGN_SEND_ERRORS = (
    "already known",
    "known transaction",
    "already imported",
    "already exists",
    "nonce too low",
    "replacement transaction underpriced",
)
# How far before a refund's creation its Refunded log is looked for: block timestamps and the
# gateway's clock disagree a little, and the signature cannot exist before the refund did.
LOG_SEARCH_SKEW_S = 3600
CLOSE_ATTEMPTS = 3  # a refund's close read again when its address or order moved meanwhile


class LeaseLost(Exception):
    """Another run holds the relayer of this network now: stop before the next external effect."""


@dataclass(frozen=True)
class FeePolicy:
    max_fee_per_gas: int  # the most the relayer ever offers per gas; above it, it waits
    min_priority_fee_per_gas: int = 10**9  # the tip, at least
    replace_after_ms: int = 180_000  # broadcast and not mined this long: replaced with higher fees
    bump_permille: int = 125  # a replacement's raise of both fees; geth refuses less than 100
    gas_margin_permille: int = 250  # over eth_estimateGas: a deposit paid meanwhile costs a deployment
    fee_history_blocks: int = 10
    # Legacy (type 0) transactions, for a chain without EIP-1559: one gas price, from
    # eth_gasPrice, stored as both fees of the attempt and bumped the same way.
    legacy: bool = False

    def bumped(self, fee: int) -> int:
        return fee + -(-fee * self.bump_permille // 1000)  # rounded up


@dataclass(frozen=True)
class SweepRequest:
    settlement_id: str
    merchant_id: str
    factory: str
    token: str
    salts: tuple[bytes, ...]


def new_settlement_id() -> str:
    return f"stl_{secrets.token_hex(12)}"


class Outcome(StrEnum):
    IDLE = "idle"  # nothing in flight
    BUSY = "busy"  # another run holds the lease
    WAITING_FOR_GAS = "waiting-for-gas"  # the market's fee is above the maximum: nothing sent
    PENDING = "pending"  # sent, not mined yet
    MINED = "mined"  # mined, not final yet
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class Progress:
    outcome: Outcome
    detail: str = ""
    sweep: Sweep | None = None
    settlement: Settlement | None = None
    refund: Refund | None = None  # a refund closed by this run


def calldata(sweep: Sweep) -> bytes:
    """The call the transaction in flight makes on its factory."""
    call = sweep.refund
    if call is None:
        return sweep_calldata(sweep.token, sweep.salt_bytes())
    signature = bytes.fromhex(call.signature.removeprefix("0x"))
    salt = bytes.fromhex(sweep.salts[0].removeprefix("0x"))
    return refund_calldata(sweep.token, salt, call.to, call.amount, call.nonce, call.deadline, signature)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _no_hook(step: str) -> None:
    pass


class SweepRelayer:
    """The relayer of one network. `owner` names this run in the lease (one per invocation)."""

    def __init__(
        self,
        network: Network,
        rpc: Rpc,
        signer: KmsSigner,
        *,
        fees: FeePolicy,
        owner: str | None = None,
        lease_ms: int = 120_000,
        hook: Callable[[str], None] = _no_hook,
    ) -> None:
        self.network = network
        self.rpc = rpc
        self.signer = signer
        self.fees = fees
        self.owner = owner or f"run_{secrets.token_hex(6)}"
        self.lease_ms = lease_ms
        self.hook = hook

    # -- the lease and the state item -----------------------------------------------------------

    def acquire(self) -> RelayerState | None:
        """Take or renew the lease; None while another run holds it."""
        now = clock.now_ms()
        pk, sk = store.relayer_key(self.network.name)
        item = store.update(
            pk,
            sk,
            set_values={"network": self.network.name, "leaseOwner": self.owner, "leaseUntil": now + self.lease_ms},
            # free (or lapsed) -> held by this run; renewal by the holder.
            condition="attribute_not_exists(pk) OR leaseUntil < :now OR leaseOwner = :me",
            values={":now": now, ":me": self.owner},
        )
        return None if item is None else RelayerState.from_item(item)

    def release(self) -> None:
        pk, sk = store.relayer_key(self.network.name)
        # held by this run -> free, so the next run need not wait for the lapse.
        store.update(pk, sk, set_values={"leaseUntil": 0}, condition="leaseOwner = :me", values={":me": self.owner})

    def _held(self, state: RelayerState) -> tuple[str, dict[str, Any]]:
        """The condition of every write: the lease is this run's and the item is as it was read."""
        if state.revision == 0:
            return "leaseOwner = :me AND attribute_not_exists(revision)", {":me": self.owner}
        return "leaseOwner = :me AND revision = :rev", {":me": self.owner, ":rev": state.revision}

    def _write(self, state: RelayerState, sweep: Sweep | None, *, next_nonce: int | None = None) -> RelayerState:
        pk, sk = store.relayer_key(self.network.name)
        values: dict[str, Any] = {
            "inflight": sweep.to_item() if sweep else None,
            "revision": state.revision + 1,
            "leaseUntil": clock.now_ms() + self.lease_ms,
        }
        if next_nonce is not None:
            values["nextNonce"] = next_nonce
        condition, condition_values = self._held(state)
        # as read, lease held -> the sweep's next step (and the nonce after the one it took).
        item = store.update(pk, sk, set_values=values, condition=condition, values=condition_values)
        if item is None:
            raise LeaseLost(self.network.name)
        return RelayerState.from_item(item)

    # -- entry points ---------------------------------------------------------------------------

    def run(self, request: SweepRequest | Refund | None = None) -> Progress:
        """One run: take the lease, queue `request` (a sweep, or a signed refund) if nothing is in
        flight, carry the transaction in flight as far as it goes now, and let the lease go. A
        crash leaves the lease to lapse."""
        state = self.acquire()
        if state is None:
            return Progress(Outcome.BUSY, "another run holds the relayer")
        try:
            if isinstance(request, Refund) and state.sweep is None:
                state = self.submit_refund(state, request)
            elif isinstance(request, SweepRequest) and state.sweep is None:
                state = self.submit(state, request)
            progress = self.advance(state)
        except LeaseLost:
            logger.warning("relayer lease lost to another run; stopping", extra={"network": self.network.name})
            return Progress(Outcome.BUSY, "lease lost to another run")
        except Exception:
            self.release()
            raise
        self.release()
        return progress

    def submit(self, state: RelayerState, request: SweepRequest) -> RelayerState:
        """nothing in flight -> `request` in flight (nothing signed yet)."""
        if state.sweep is not None:
            raise ValueError(f"sweep {state.sweep.settlement_id} is in flight on {self.network.name}")
        sweep_calldata(request.token, request.salts)  # refuses a malformed request before it is stored
        if read_settlement(request.settlement_id) is not None:
            # Its record could never be written: the relayer would hold the sweep for ever.
            raise ValueError(f"settlement {request.settlement_id} is already recorded")
        sweep = Sweep(
            settlement_id=request.settlement_id,
            merchant_id=request.merchant_id,
            factory=request.factory.lower(),
            token=request.token.lower(),
            salts=tuple(_hex(s) for s in request.salts),
            created_at=clock.now_ms(),
        )
        return self._write(state, sweep)

    def submit_refund(self, state: RelayerState, refund: Refund) -> RelayerState:
        """nothing in flight -> the signed `refund` in flight (nothing sent yet)."""
        if state.sweep is not None:
            raise ValueError(f"{state.sweep.settlement_id} is in flight on {self.network.name}")
        if refund.status is not RefundStatus.SUBMITTED:
            raise ValueError(f"refund {refund.refund_id} is {refund.status.value}, not submitted")
        sweep = Sweep(
            settlement_id=refund.refund_id,
            merchant_id=refund.merchant_id,
            factory=refund.factory.lower(),
            token=refund.token.lower(),
            salts=(refund.salt.lower(),),
            created_at=clock.now_ms(),
            refund=refund.call(),
        )
        calldata(sweep)  # refuses a malformed refund before it is stored
        return self._write(state, sweep)

    def advance(self, state: RelayerState) -> Progress:
        """Carry the sweep in flight from where the state says it is, as far as it goes now."""
        sweep = state.sweep
        if sweep is None:
            return Progress(Outcome.IDLE)
        # The count before the receipts: a count past our nonce with no receipt of ours then
        # really means another transaction took the nonce.
        chain_nonce = self._nonce("latest")
        receipt = self._receipt(sweep)
        if receipt is not None:
            return self._mined(state, sweep, receipt, chain_nonce)
        if sweep.mined is not None:
            # Its block is gone and no other block holds it: send it again.
            logger.warning(
                "sweep's block was reorganised away; sending it again",
                extra={"settlementId": sweep.settlement_id, "block": sweep.mined.block_number},
            )
            # Broadcast again at once (its replacement timer starts over): marked not broadcast.
            # Another's transaction that ran a refund is forgotten with its block: the chain decides again.
            sweep = replace(sweep, mined=None, external=None, reorgs=sweep.reorgs + 1)
            if sweep.attempts:
                sweep = sweep.broadcast(sweep.attempts[-1].tx_hash, None)
            state = self._write(state, sweep)
        latest = sweep.attempts[-1] if sweep.attempts else None
        if latest is None or chain_nonce > latest.nonce:
            if latest is not None:
                logger.warning(
                    "the sweep's nonce was used by another transaction; sending at a new nonce",
                    extra={"settlementId": sweep.settlement_id, "nonce": latest.nonce},
                )
            return self._send_new(state, sweep)
        if (free := self._nonce("pending")) < latest.nonce:
            # A nonce below ours is free, so ours is never mined: a reorg deeper than finality
            # took a transaction the relayer had counted. Whichever of the two is mined counts.
            logger.warning(
                "a nonce below the sweep's is free on the chain; sending at it",
                extra={"settlementId": sweep.settlement_id, "nonce": latest.nonce, "free": free},
            )
            return self._send_new(state, sweep, at=free)
        return self._push(state, sweep, latest)

    def _push(self, state: RelayerState, sweep: Sweep, latest: Attempt, *, detail: str = "") -> Progress:
        """The newest attempt not mined: replaced once it waited too long, else broadcast again."""
        if latest.broadcast_at is not None and clock.now_ms() - latest.broadcast_at >= self.fees.replace_after_ms:
            return self._replace(state, sweep, latest)
        return self._broadcast(state, sweep, latest, detail=detail)

    # -- sending --------------------------------------------------------------------------------

    def _nonce(self, tag: str) -> int:
        return int(self.rpc.call("eth_getTransactionCount", [self.signer.address, tag]), 16)

    def _market(self) -> tuple[int, int]:
        """(base fee of the next block, tip) as the chain asks now; (gas price, 0) for legacy."""
        if self.fees.legacy:
            return int(self.rpc.call("eth_gasPrice", []), 16), 0
        tip = self.fees.min_priority_fee_per_gas
        try:
            history = self.rpc.call("eth_feeHistory", [hex(self.fees.fee_history_blocks), "latest", [50]])
            base = int(history["baseFeePerGas"][-1], 16)  # the last entry is the next block's
            rewards = sorted(int(r[0], 16) for r in history.get("reward") or [] if r)
            if rewards:
                tip = max(tip, rewards[len(rewards) // 2])
        except (RpcError, KeyError, IndexError, TypeError):
            base = int(self.rpc.call("eth_gasPrice", []), 16)  # a node without fee history
        return base, tip

    def _fees_now(self) -> tuple[int, int] | str:
        """(max fee, tip) for a new transaction, or why none may be sent now."""
        base, tip = self._market()
        cap = self.fees.max_fee_per_gas
        if base + tip > cap:
            return f"the next block needs {base + tip} wei/gas (base {base} + tip {tip}), above the maximum {cap}"
        if self.fees.legacy:
            return base, base  # the gas price the node suggests, paid whole
        # Twice the base fee rides out six full blocks of rises before it is outbid.
        return min(2 * base + tip, cap), tip

    def _gas(self, sweep: Sweep, data: bytes) -> int:
        estimate = int(
            self.rpc.call("eth_estimateGas", [{"from": self.signer.address, "to": sweep.factory, "data": _hex(data)}]),
            16,
        )
        return estimate + estimate * self.fees.gas_margin_permille // 1000

    def _send_new(self, state: RelayerState, sweep: Sweep, *, at: int | None = None) -> Progress:
        """A first transaction for the sweep, at the next nonce (or `at`, a nonce the chain left free)."""
        fees = self._fees_now()
        if isinstance(fees, str):
            logger.warning("sweep waits for the gas price", extra={"reason": fees, "network": self.network.name})
            return Progress(Outcome.WAITING_FOR_GAS, fees, sweep)
        max_fee, tip = fees
        data = calldata(sweep)
        try:
            gas = self._gas(sweep, data)
        except RpcError as exc:
            if exc.code != 3 and "revert" not in exc.message.lower():
                raise  # the node's trouble (a rate limit, say), not the sweep's: the next run asks again
            # It would revert as it stands: record why, send nothing.
            reason = f"eth_estimateGas: {exc.message}"
            if sweep.refund is not None:
                return self._refund_not_run(state, sweep, reason)
            return self._close(state, sweep, SettlementStatus.FAILED, reason=reason)
        nonce = max(state.next_nonce or 0, self._nonce("pending")) if at is None else at
        return self._sign_and_send(
            state, sweep, nonce=nonce, gas=gas, max_fee=max_fee, tip=tip, data=data, rewind=at is not None
        )

    def _replace(self, state: RelayerState, sweep: Sweep, stuck: Attempt) -> Progress:
        """The same sweep at the same nonce with fees bumped, as long as the cap allows the bump."""
        base, tip = self._market()
        cap = self.fees.max_fee_per_gas
        market = base if self.fees.legacy else 2 * base + tip
        max_fee = min(max(self.fees.bumped(stuck.max_fee_per_gas), market), cap)
        tip = min(max(self.fees.bumped(stuck.max_priority_fee_per_gas), tip), max_fee)
        if max_fee < self.fees.bumped(stuck.max_fee_per_gas) or tip < self.fees.bumped(stuck.max_priority_fee_per_gas):
            logger.warning(
                "sweep not mined and its fees are at the maximum: waiting",
                extra={"settlementId": sweep.settlement_id, "txHash": stuck.tx_hash, "maxFeePerGas": cap},
            )
            return self._broadcast(state, sweep, stuck, detail="stuck at the maximum gas price")
        data = calldata(sweep)
        logger.info(
            "replacing a sweep not mined in time",
            extra={"settlementId": sweep.settlement_id, "txHash": stuck.tx_hash, "maxFeePerGas": max_fee},
        )
        return self._sign_and_send(state, sweep, nonce=stuck.nonce, gas=stuck.gas, max_fee=max_fee, tip=tip, data=data)

    def _sign_and_send(
        self,
        state: RelayerState,
        sweep: Sweep,
        *,
        nonce: int,
        gas: int,
        max_fee: int,
        tip: int,
        data: bytes,
        rewind: bool = False,  # the stored next nonce is ahead of the chain: follow on from `nonce`
    ) -> Progress:
        tx: Transaction
        if self.fees.legacy:
            tip = max_fee  # one price: all of it above the base fee is the tip
            tx = LegacyTransaction(
                chain_id=self.network.chain_id, nonce=nonce, gas_price=max_fee, gas=gas, to=sweep.factory, data=data
            )
        else:
            tx = Eip1559Transaction(
                chain_id=self.network.chain_id,
                nonce=nonce,
                max_priority_fee_per_gas=tip,
                max_fee_per_gas=max_fee,
                gas=gas,
                to=sweep.factory,
                data=data,
            )
        signed = self.signer.sign_transaction(tx)
        self.hook(SIGNED)
        attempt = Attempt(
            tx_hash=_hex(signed.hash),
            raw=_hex(signed.raw),
            nonce=nonce,
            gas=gas,
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=tip,
            signed_at=clock.now_ms(),
        )
        sweep = sweep.with_attempt(attempt)
        next_nonce = nonce + 1 if rewind else max(state.next_nonce or 0, nonce + 1)
        state = self._write(state, sweep, next_nonce=next_nonce)
        self.hook(STORED)
        return self._broadcast(state, sweep, attempt)

    def _broadcast(self, state: RelayerState, sweep: Sweep, attempt: Attempt, *, detail: str = "") -> Progress:
        """Send a stored transaction (again): idempotent, a node that has it or its nonce says so."""
        assert attempt.raw is not None, "only the newest attempt is broadcast, and it keeps its raw bytes"
        try:
            self.rpc.call("eth_sendRawTransaction", [attempt.raw])
        except RpcError as exc:
            if not any(known in exc.message.lower() for known in _BENIGN_SEND_ERRORS):
                raise
            logger.info("broadcast answered", extra={"txHash": attempt.tx_hash, "answer": exc.message})
        self.hook(BROADCAST)
        if attempt.broadcast_at is None:
            sweep = sweep.broadcast(attempt.tx_hash, clock.now_ms())
            state = self._write(state, sweep)
            self.hook(RECORDED)
        return Progress(Outcome.PENDING, detail or f"sent {attempt.tx_hash} at nonce {attempt.nonce}", sweep)

    # -- mined, final, closed -------------------------------------------------------------------

    def _receipt(self, sweep: Sweep) -> dict[str, Any] | None:
        """The receipt of whichever stored transaction a block holds (one at most: they share a
        nonce, but for one sent again at a new nonce after its own was taken). Another's
        transaction that ran the refund comes first: once it is known, it is what counts."""
        for tx_hash in (*([sweep.external] if sweep.external else []), *reversed(sweep.hashes)):
            receipt = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt and receipt.get("blockHash"):
                return dict(receipt)
        return None

    def _mined(self, state: RelayerState, sweep: Sweep, receipt: dict[str, Any], chain_nonce: int) -> Progress:
        # What it moved is read from this receipt's own logs: the evidence the settlement marks by.
        mined = Mined.from_receipt(receipt, swept=swept_amounts(receipt, factory=sweep.factory, token=sweep.token))
        if sweep.mined != mined:
            if sweep.mined is not None:
                logger.warning(
                    "sweep moved to another block",
                    extra={"settlementId": sweep.settlement_id, "from": sweep.mined.block_hash, "to": mined.block_hash},
                )
            sweep = replace(sweep, mined=mined, reorgs=sweep.reorgs + (sweep.mined is not None))
            state = self._write(state, sweep)
            self.hook(MINED)
        if not self._final(mined):
            return Progress(Outcome.MINED, f"{mined.tx_hash} in block {mined.block_number}, not final yet", sweep)
        self.hook(FINAL)
        if sweep.refund is not None:
            return self._refund_final(state, sweep, mined, chain_nonce)
        if mined.status != 1:
            return self._close(state, sweep, SettlementStatus.FAILED, reason="the sweep reverted")
        return self._close(state, sweep, SettlementStatus.COMPLETED)

    def _refund_final(self, state: RelayerState, sweep: Sweep, mined: Mined, chain_nonce: int) -> Progress:
        if mined.tx_hash != sweep.external:
            if mined.status == 1:  # the relayer's own transaction ran the refund
                return self._close(state, sweep, SettlementStatus.COMPLETED)
            return self._refund_not_run(state, sweep, "the refund reverted")
        # Another's transaction ran it. The relayer's own, if any, holds its nonce until mined
        # (it reverts): freeing the refund before would leave a gap in the relayer's nonces.
        latest = sweep.attempts[-1] if sweep.attempts else None
        if latest is not None and chain_nonce <= latest.nonce:
            detail = (
                f"run by {mined.tx_hash}; the relayer's own transaction at nonce {latest.nonce} is still to be mined"
            )
            return self._push(state, sweep, latest, detail=detail)
        return self._close(state, sweep, SettlementStatus.COMPLETED)

    def _refund_not_run(self, state: RelayerState, sweep: Sweep, reason: str) -> Progress:
        """The relayer's refund transaction reverted in a final block, or would revert: what the
        chain says decides (see the module's docstring)."""
        call = sweep.refund
        assert call is not None
        answer = self.rpc.call(
            "eth_call", [{"to": sweep.factory, "data": _hex(nonce_used_calldata(call.nonce))}, "latest"]
        )
        if int(str(answer), 16) == 0:
            return self._close(state, sweep, SettlementStatus.FAILED, reason=reason)
        log = self._refunded_log(sweep.factory, sweep.token, call)
        if log is None:
            logger.error(
                "refund's nonce is used on chain but its Refunded log was not found; waiting",
                extra={"refundId": call.refund_id, "nonce": str(call.nonce)},
            )
            return Progress(
                Outcome.PENDING, "the refund's nonce is used on chain; its Refunded log is not found yet", sweep
            )
        data = bytes.fromhex(str(log["data"]).removeprefix("0x"))
        to = "0x" + str(log["topics"][3])[-40:].lower()
        if to != call.to or int.from_bytes(data[:32]) != call.amount:
            return self._close(
                state, sweep, SettlementStatus.FAILED, reason=f"{reason}; its nonce was used by another refund"
            )
        receipt = self.rpc.call("eth_getTransactionReceipt", [log["transactionHash"]])
        if not receipt or not receipt.get("blockHash"):
            return Progress(
                Outcome.PENDING, f"the refund ran in {log['transactionHash']}, whose receipt is not found yet", sweep
            )
        logger.warning(
            "refund was run by another transaction (its signature submitted directly)",
            extra={"refundId": call.refund_id, "txHash": log["transactionHash"]},
        )
        # The transaction that ran it is what counts from now on (the relayer's own receipt aside).
        sweep = replace(sweep, external=str(receipt["transactionHash"]).lower(), mined=None)
        state = self._write(state, sweep)
        return self._mined(state, sweep, dict(receipt), self._nonce("latest"))

    def _refunded_log(self, factory: str, token: str, call: RefundCall) -> dict[str, Any] | None:
        """The factory's Refunded log of this deposit and nonce, looked for from the head back to
        the refund's creation, a log range at a time."""
        topics = [_hex(REFUNDED_TOPIC), _hex(address_word(token)), _hex(address_word(call.deposit))]
        earliest = call.created_at // 1000 - LOG_SEARCH_SKEW_S
        to_block = int(self.rpc.call("eth_blockNumber", []), 16)
        while to_block >= 0:
            from_block = max(0, to_block - self.network.max_log_range + 1)
            logs = self.rpc.call(
                "eth_getLogs",
                [{"address": factory, "fromBlock": hex(from_block), "toBlock": hex(to_block), "topics": topics}],
            )
            for log in logs or []:
                data = bytes.fromhex(str(log["data"]).removeprefix("0x"))
                if not log.get("removed") and len(data) >= 64 and int.from_bytes(data[32:64]) == call.nonce:
                    return dict(log)
            if from_block == 0:
                return None
            block = self.rpc.call("eth_getBlockByNumber", [hex(from_block), False])
            if not block or int(block["timestamp"], 16) < earliest:
                return None
            to_block = from_block - 1
        return None

    def _final(self, mined: Mined) -> bool:
        """Final under the network's policy and still the canonical block at its height."""
        if self.network.finality.mode == "confirmations":
            head = int(self.rpc.call("eth_blockNumber", []), 16)
            if head - mined.block_number + 1 < max(1, self.network.finality.confirmations):
                return False
        else:
            finalized = self.rpc.call("eth_getBlockByNumber", ["finalized", False])
            if not finalized or int(finalized["number"], 16) < mined.block_number:
                return False
        block = self.rpc.call("eth_getBlockByNumber", [hex(mined.block_number), False])
        return bool(block) and str(block["hash"]).lower() == mined.block_hash

    def _close(
        self, state: RelayerState, sweep: Sweep, status: SettlementStatus, *, reason: str | None = None
    ) -> Progress:
        if sweep.refund is not None:
            return self._close_refund(state, sweep, sweep.refund, status, reason=reason)
        mined = sweep.mined
        settlement = Settlement(
            settlement_id=sweep.settlement_id,
            network=self.network.name,
            merchant_id=sweep.merchant_id,
            factory=sweep.factory,
            token=sweep.token,
            salts=sweep.salts,
            status=status,
            created_at=sweep.created_at,
            closed_at=clock.now_ms(),
            hashes=sweep.hashes,
            mined=mined,
            # (Tron has no nonces: its attempts carry an expiration instead)
            nonce=next(
                (a.nonce for a in sweep.attempts if mined and a.tx_hash == mined.tx_hash and a.expiration is None), None
            ),
            reorgs=sweep.reorgs,
            reason=reason,
        )
        pk, sk = store.relayer_key(self.network.name)
        condition, values = self._held(state)
        try:
            # in flight -> closed: its record written once, and the relayer free for the next sweep.
            store.transact(
                [
                    store.put_part(settlement.to_item()),
                    store.set_part(
                        pk,
                        sk,
                        set_values={
                            "inflight": None,
                            "revision": state.revision + 1,
                            "leaseUntil": clock.now_ms() + self.lease_ms,
                            "recentSettlements": state.closing(sweep.settlement_id),
                        },
                        condition=condition,
                        values=values,
                    ),
                ]
            )
        except store.TransactionConflict as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":  # submit refuses an id already recorded
                raise RuntimeError(f"settlement {sweep.settlement_id} was recorded by someone else") from exc
            raise LeaseLost(self.network.name) from exc
        log = logger.info if status is SettlementStatus.COMPLETED else logger.error
        log(
            f"sweep {status.value}",
            extra={"settlementId": sweep.settlement_id, "txHash": settlement.tx_hash, "reason": reason},
        )
        outcome = Outcome.COMPLETED if status is SettlementStatus.COMPLETED else Outcome.FAILED
        return Progress(outcome, reason or "", None, settlement)

    def _close_refund(
        self, state: RelayerState, sweep: Sweep, call: RefundCall, status: SettlementStatus, *, reason: str | None
    ) -> Progress:
        """in flight -> closed, in one transaction with the refund's own close (refunds.close)."""
        mined = sweep.mined
        ours = mined is not None and mined.tx_hash in sweep.hashes
        pk, sk = store.relayer_key(self.network.name)
        for _ in range(CLOSE_ATTEMPTS):
            closed, event_ids, parts = refunds.close(
                call,
                completed=status is SettlementStatus.COMPLETED,
                tx_hash=mined.tx_hash if mined else None,
                gas_paid=mined.gas_paid if mined and ours else None,
                reason=reason,
            )
            condition, values = self._held(state)
            freed = {"inflight": None, "revision": state.revision + 1, "leaseUntil": clock.now_ms() + self.lease_ms}
            try:
                # in flight -> closed, the relayer free for the next transaction
                store.transact([*parts, store.set_part(pk, sk, set_values=freed, condition=condition, values=values)])
            except store.TransactionConflict as exc:
                if exc.reasons[-1] == "ConditionalCheckFailed":
                    raise LeaseLost(self.network.name) from exc
                continue  # the refund's address or order moved since read: close it from fresh reads
            refunds.announce(closed, event_ids)
            outcome = Outcome.COMPLETED if status is SettlementStatus.COMPLETED else Outcome.FAILED
            return Progress(outcome, reason or "", None, None, closed)
        raise RuntimeError(f"refund {call.refund_id} could not be closed: its records keep changing")


def read_settlement(settlement_id: str) -> Settlement | None:
    item = store.get(*store.settlement_key(settlement_id))
    return None if item is None else Settlement.from_item(item)


def read_state(network: str) -> RelayerState | None:
    item = store.get(*store.relayer_key(network))
    return None if item is None else RelayerState.from_item(item)
