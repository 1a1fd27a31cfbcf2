"""The settlement relayer of a Tron network: the EVM relayer's lease, state item, records and close
(settlement/relayer.py), with Tron's transactions (chain/tron_tx.py) in place of nonces.

Tron has no account nonces: a transaction is unique by its txID, sha256 of raw_data, which holds a
reference block and an expiration. Crash safety is therefore:

    build (wallet/triggersmartcontract, checked) + sign (KMS) -> store the signed transaction
         (txID, the broadcast body, expiration) -> broadcast -> record the broadcast
         -> receipt (wallet/gettransactioninfobyid, and its Swept logs) -> record mined
         -> final (solidified, or N confirmations) and canonical -> closed

A stored transaction is broadcast again, as stored, while it may still be mined (a node that has
it answers DUP_TRANSACTION_ERROR). A new one is built only once the stored one can never be mined:
no block holds it and the solidified block's timestamp is at or past its expiration (a block
accepts a transaction only before its expiration, and every block that can still come follows
the solidified one). So one sweep never has two live transactions.

A receipt whose result is not SUCCESS (REVERT, OUT_OF_ENERGY: the energy the fee limit bought
burned) is a failed sweep once its block is final, its energy and fee recorded; the batching
releases its deposits as for a reverted EVM sweep.

A signed refund (settlement/refunds.py) goes before new sweeps, carried the same way:
`factory.refund(token, salt, to, amount, nonce, deadline, signature)`, addresses by their 20-byte
bodies. Its outcome comes from the chain only, as on EVM:

- its transaction succeeded in a final block: completed;
- it failed in a final block, or the relayer is about to build one: the factory's `nonce_used`
  decides. Used: someone else submitted the signature first; the factory's Refunded log of that
  deposit and nonce is looked for in the blocks since the refund was made (blocks holding a
  transaction to the factory, read back from the head), and its transaction is carried to
  finality instead (completed), or, if it sent another amount or recipient, the refund failed.
  Unused: failed once its transaction reverted in a final block, or once the solidified block is
  past its deadline (no block that can still come may run it);
- otherwise it is in flight.

The refund's close is the EVM one (refunds.close): the record, the holds, the order's funds and
the event in one transaction with the relayer's state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from usdt_gateway import clock
from usdt_gateway.address_codec import tron_address_from_body, tron_body20
from usdt_gateway.chain import tron_tx
from usdt_gateway.chain.tron import Provider
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.networks import Network
from usdt_gateway.observability import logger
from usdt_gateway.schemas import RefundStatus
from usdt_gateway.settlement.calldata import REFUNDED_TOPIC, nonce_used_calldata, refund_calldata, swept_amounts
from usdt_gateway.settlement.records import Attempt, Mined, RefundCall, RelayerState, SettlementStatus, Sweep
from usdt_gateway.settlement.refund_records import Refund
from usdt_gateway.settlement.refund_signing import typed_address
from usdt_gateway.settlement.relayer import (
    BROADCAST,
    FINAL,
    LOG_SEARCH_SKEW_S,
    MINED,
    RECORDED,
    SIGNED,
    STORED,
    FeePolicy,
    Outcome,
    Progress,
    SweepRelayer,
    SweepRequest,
    _no_hook,
    read_settlement,
)

# What a node answers for a transaction it already has (sent before a crash): the broadcast is done.
_DUPLICATE = "DUP_TRANSACTION_ERROR"
# ... for one past its expiration: it can no longer be sent; whether it was mined the receipts say.
_EXPIRED = "TRANSACTION_EXPIRATION_ERROR"
_BLOCKS_PER_READ = 100  # wallet/getblockbylimitnext answers at most 100 blocks


def refund_parameter(sweep: Sweep) -> bytes:
    """The ABI arguments of the refund in flight (its calldata without the selector), Tron
    addresses by their 20-byte bodies."""
    call = sweep.refund
    assert call is not None
    data = refund_calldata(
        typed_address(sweep.token),
        bytes.fromhex(sweep.salts[0].removeprefix("0x")),
        typed_address(call.to),
        call.amount,
        call.nonce,
        call.deadline,
        bytes.fromhex(call.signature.removeprefix("0x")),
    )
    return data[4:]


def tron_swept(info: Mapping[str, Any], *, factory: str, token: str) -> dict[str, int]:
    """Units each deposit address (base58) gave up in this TransactionInfo, from its Swept logs.
    TRON's log shape (address as 20-byte hex without 41, topics and data hex without 0x) is turned
    into the EVM one here, so the same reading applies (calldata.swept_amounts)."""
    logs = [
        {
            "address": "0x" + str(log.get("address", "")).lower()[-40:],
            "topics": ["0x" + str(t) for t in log.get("topics") or []],
            "data": "0x" + (str(log.get("data") or "") or "0"),
        }
        for log in info.get("log") or []
    ]
    moved = swept_amounts(
        {"logs": logs}, factory="0x" + tron_body20(factory).hex(), token="0x" + tron_body20(token).hex()
    )
    return {tron_address_from_body(bytes.fromhex(a[2:])): units for a, units in moved.items()}


class TronSweepRelayer(SweepRelayer):
    """The relayer of one Tron network. `fee_limit` is the most sun a sweep may burn for energy."""

    def __init__(
        self,
        network: Network,
        provider: Provider,
        signer: KmsSigner,
        *,
        fee_limit: int,
        owner: str | None = None,
        lease_ms: int = 120_000,
        hook: Callable[[str], None] = _no_hook,
    ) -> None:
        if not 0 < fee_limit <= tron_tx.MAX_FEE_LIMIT_SUN:
            raise ValueError(f"fee_limit is 1 to {tron_tx.MAX_FEE_LIMIT_SUN} sun, not {fee_limit}")
        # The EVM parts (rpc, fees) are unused: Tron's calls go through `provider`.
        no_rpc: Any = None
        super().__init__(
            network, no_rpc, signer, fees=FeePolicy(max_fee_per_gas=0), owner=owner, lease_ms=lease_ms, hook=hook
        )
        self.provider = provider
        self.fee_limit = fee_limit

    # -- queueing -------------------------------------------------------------------------------

    def submit(self, state: RelayerState, request: SweepRequest) -> RelayerState:
        """nothing in flight -> `request` in flight; addresses kept in base58, as Tron writes them."""
        if state.sweep is not None:
            raise ValueError(f"sweep {state.sweep.settlement_id} is in flight on {self.network.name}")
        tron_tx.sweep_parameter(request.token, list(request.salts))  # refuses a malformed request
        tron_body20(request.factory)
        if read_settlement(request.settlement_id) is not None:
            raise ValueError(f"settlement {request.settlement_id} is already recorded")
        sweep = Sweep(
            settlement_id=request.settlement_id,
            merchant_id=request.merchant_id,
            factory=request.factory,
            token=request.token,
            salts=tuple("0x" + s.hex() for s in request.salts),
            created_at=clock.now_ms(),
        )
        return self._write(state, sweep)

    def submit_refund(self, state: RelayerState, refund: Refund) -> RelayerState:
        """nothing in flight -> the signed `refund` in flight (nothing sent yet); base58 kept."""
        if state.sweep is not None:
            raise ValueError(f"{state.sweep.settlement_id} is in flight on {self.network.name}")
        if refund.status is not RefundStatus.SUBMITTED:
            raise ValueError(f"refund {refund.refund_id} is {refund.status.value}, not submitted")
        sweep = Sweep(
            settlement_id=refund.refund_id,
            merchant_id=refund.merchant_id,
            factory=refund.factory,
            token=refund.token,
            salts=(refund.salt.lower(),),
            created_at=clock.now_ms(),
            refund=refund.call(),
        )
        refund_parameter(sweep)  # refuses a malformed refund before it is stored
        return self._write(state, sweep)

    # -- carrying the sweep ---------------------------------------------------------------------

    def advance(self, state: RelayerState) -> Progress:
        sweep = state.sweep
        if sweep is None:
            return Progress(Outcome.IDLE)
        found = self._located(sweep)
        if found is not None:
            return self._mined_tron(state, sweep, *found)
        if sweep.mined is not None:
            logger.warning(
                "sweep's block was reorganised away; sending it again",
                extra={"settlementId": sweep.settlement_id, "block": sweep.mined.block_number},
            )
            # Another's transaction that ran a refund is forgotten with its block: the chain decides again.
            sweep = replace(sweep, mined=None, external=None, reorgs=sweep.reorgs + 1)
            if sweep.attempts:
                sweep = sweep.broadcast(sweep.attempts[-1].tx_hash, None)
            state = self._write(state, sweep)
        latest = sweep.attempts[-1] if sweep.attempts else None
        if latest is None:
            return self._build_and_send(state, sweep)
        assert latest.expiration is not None, "a Tron attempt carries its expiration"
        solid = self.provider.make_request("walletsolidity/getnowblock", {})
        solid_ts = int(solid["block_header"]["raw_data"].get("timestamp", 0)) if solid else 0
        if solid_ts >= latest.expiration:
            # No block holds it and none that can still come may: it can never be mined.
            logger.warning(
                "sweep transaction expired without being mined; building a new one",
                extra={"settlementId": sweep.settlement_id, "txId": latest.tx_hash, "expiration": latest.expiration},
            )
            return self._build_and_send(state, sweep)
        return self._broadcast_tron(state, sweep, latest)

    def _build_and_send(self, state: RelayerState, sweep: Sweep) -> Progress:
        if sweep.refund is not None:
            decided = self._refund_decided(state, sweep, sweep.refund)
            if decided is not None:
                return decided
            built = tron_tx.build_call(
                self.provider,
                owner=self.signer.tron_address,
                contract=sweep.factory,
                signature=tron_tx.REFUND_SIGNATURE,
                parameter=refund_parameter(sweep),
                fee_limit=self.fee_limit,
            )
        else:
            built = tron_tx.build_sweep(
                self.provider,
                owner=self.signer.tron_address,
                factory=sweep.factory,
                token=sweep.token,
                salts=sweep.salt_bytes(),
                fee_limit=self.fee_limit,
            )
        signed = tron_tx.sign(self.signer, built)
        self.hook(SIGNED)
        attempt = Attempt(
            tx_hash=signed.txid,
            raw=json.dumps(signed.to_json(), separators=(",", ":")),
            nonce=0,
            gas=self.fee_limit,
            max_fee_per_gas=0,
            max_priority_fee_per_gas=0,
            signed_at=clock.now_ms(),
            expiration=int(signed.raw_data["expiration"]),
        )
        sweep = sweep.with_attempt(attempt)
        state = self._write(state, sweep)  # stored before it can reach any node
        self.hook(STORED)
        return self._broadcast_tron(state, sweep, attempt)

    def _broadcast_tron(self, state: RelayerState, sweep: Sweep, attempt: Attempt) -> Progress:
        """Send the stored transaction (again): a node that has it says so."""
        assert attempt.raw is not None, "only the newest attempt is broadcast, and it keeps its body"
        stored = json.loads(attempt.raw)
        tx = tron_tx.TronTransaction(
            stored["txID"], stored["raw_data"], stored["raw_data_hex"], tuple(stored["signature"])
        )
        detail = f"sent {attempt.tx_hash}, expiring at {attempt.expiration}"
        try:
            tron_tx.broadcast(self.provider, tx)
        except tron_tx.TronTxError as exc:
            if exc.code not in (_DUPLICATE, _EXPIRED):
                raise
            logger.info("broadcast answered", extra={"txId": attempt.tx_hash, "answer": str(exc)})
            if exc.code == _EXPIRED:
                detail = f"{attempt.tx_hash} expired; waiting for a solidified block past it to build a new one"
        self.hook(BROADCAST)
        if attempt.broadcast_at is None:
            sweep = sweep.broadcast(attempt.tx_hash, clock.now_ms())
            state = self._write(state, sweep)
            self.hook(RECORDED)
        return Progress(Outcome.PENDING, detail, sweep)

    # -- mined, final ---------------------------------------------------------------------------

    def _located(self, sweep: Sweep) -> tuple[dict[str, Any], str] | None:
        """The TransactionInfo of whichever stored transaction a block holds (one at most: a new
        one is built only once the previous can never be mined), with that block's id; None when
        none is, or its block changed between the two reads (the next run looks again). Another's
        transaction that ran the refund comes first: once it is known, it is what counts."""
        for txid in (*([sweep.external] if sweep.external else []), *reversed(sweep.hashes)):
            info = self.provider.make_request("wallet/gettransactioninfobyid", {"value": txid})
            if not isinstance(info, dict) or info.get("blockNumber") is None:
                continue
            block = self.provider.make_request("wallet/getblockbynum", {"num": int(info["blockNumber"])})
            if block and any(tx.get("txID") == txid for tx in block.get("transactions") or []):
                return dict(info), str(block["blockID"])
            return None
        return None

    def _mined_tron(self, state: RelayerState, sweep: Sweep, info: dict[str, Any], block_id: str) -> Progress:
        receipt = info.get("receipt") or {}
        result = str(receipt.get("result") or ("FAILED" if info.get("result") == "FAILED" else "SUCCESS"))
        if info.get("result") == "FAILED" and result == "SUCCESS":
            result = "FAILED"
        ok = result == "SUCCESS"
        mined = Mined(
            tx_hash=str(info["id"]),
            block_number=int(info["blockNumber"]),
            block_hash=block_id,
            status=1 if ok else 0,
            gas_used=int(receipt.get("energy_usage_total", 0)),  # protobuf-JSON leaves zeros out
            effective_gas_price=0,
            swept=tron_swept(info, factory=sweep.factory, token=sweep.token) if ok else {},
            fee=int(info.get("fee", 0)),
            energy_fee=int(receipt.get("energy_fee", 0)),
            net_fee=int(receipt.get("net_fee", 0)),
            result=result,
        )
        if sweep.mined != mined:
            if sweep.mined is not None:
                logger.warning(
                    "sweep moved to another block",
                    extra={"settlementId": sweep.settlement_id, "from": sweep.mined.block_hash, "to": block_id},
                )
            sweep = replace(sweep, mined=mined, reorgs=sweep.reorgs + (sweep.mined is not None))
            state = self._write(state, sweep)
            self.hook(MINED)
        if not self._final_tron(mined):
            return Progress(Outcome.MINED, f"{mined.tx_hash} in block {mined.block_number}, not final yet", sweep)
        self.hook(FINAL)
        if sweep.refund is not None:
            if ok:  # its transaction (the relayer's, or another's that ran it) succeeded
                return self._close(state, sweep, SettlementStatus.COMPLETED)
            return self._tron_refund_not_run(
                state,
                sweep,
                sweep.refund,
                f"the refund failed: {result} (energy {mined.gas_used}, fee {mined.fee} sun)",
            )
        if not ok:
            return self._close(
                state,
                sweep,
                SettlementStatus.FAILED,
                reason=f"the sweep failed: {result} (energy {mined.gas_used}, fee {mined.fee} sun)",
            )
        return self._close(state, sweep, SettlementStatus.COMPLETED)

    def _final_tron(self, mined: Mined) -> bool:
        """Final under the network's policy (the solidified block, or N confirmations) and still
        the block at its height."""
        if self.network.finality.mode == "confirmations":
            head = self.provider.make_request("wallet/getnowblock", {})
            number = int(head["block_header"]["raw_data"].get("number", 0))
            if number - mined.block_number + 1 < max(1, self.network.finality.confirmations):
                return False
        else:
            solid = self.provider.make_request("walletsolidity/getnowblock", {})
            if not solid or int(solid["block_header"]["raw_data"].get("number", 0)) < mined.block_number:
                return False
        block = self.provider.make_request("wallet/getblockbynum", {"num": mined.block_number})
        return bool(block) and str(block.get("blockID")) == mined.block_hash

    # -- refunds: what the chain says ------------------------------------------------------------

    def _nonce_used(self, factory: str, nonce: int) -> bool:
        answer = tron_tx.call_view(self.provider, factory, "nonce_used(uint256)", nonce_used_calldata(nonce)[4:])
        return int.from_bytes(answer[:32] or b"\x00") != 0

    def _refund_decided(self, state: RelayerState, sweep: Sweep, call: RefundCall) -> Progress | None:
        """Before a (new) refund transaction is built: whether the chain already decided it (its
        nonce used by another, or its deadline past for good); None when it may still run."""
        if self._nonce_used(sweep.factory, call.nonce):
            return self._run_by_another(state, sweep, call, "its nonce is used on chain")
        head = self.provider.make_request("wallet/getnowblock", {})
        head_ts = int(head["block_header"]["raw_data"].get("timestamp", 0)) // 1000
        if head_ts <= call.deadline:
            return None
        solid = self.provider.make_request("walletsolidity/getnowblock", {})
        solid_ts = int(solid["block_header"]["raw_data"].get("timestamp", 0)) // 1000 if solid else 0
        if solid_ts > call.deadline:
            # Every block that can still come follows the solidified one: none may run it.
            return self._close(
                state,
                sweep,
                SettlementStatus.FAILED,
                reason=f"its deadline ({call.deadline}) passed before it ran",
            )
        return Progress(Outcome.PENDING, "the refund's deadline passed; waiting for a solidified block past it", sweep)

    def _tron_refund_not_run(self, state: RelayerState, sweep: Sweep, call: RefundCall, reason: str) -> Progress:
        """The refund's transaction failed in a final block: what the factory's nonce says decides."""
        if not self._nonce_used(sweep.factory, call.nonce):
            return self._close(state, sweep, SettlementStatus.FAILED, reason=reason)
        return self._run_by_another(state, sweep, call, reason)

    def _run_by_another(self, state: RelayerState, sweep: Sweep, call: RefundCall, reason: str) -> Progress:
        """The refund's nonce is used, not by a transaction of the relayer's that succeeded: the
        factory's Refunded log of it names the transaction that ran it."""
        found = self._tron_refunded_log(sweep, call)
        if found is None:
            logger.error(
                "refund's nonce is used on chain but its Refunded log was not found; waiting",
                extra={"refundId": call.refund_id, "nonce": str(call.nonce)},
            )
            return Progress(
                Outcome.PENDING, "the refund's nonce is used on chain; its Refunded log is not found yet", sweep
            )
        txid, to, amount = found
        if to != typed_address(call.to) or amount != call.amount:
            return self._close(
                state, sweep, SettlementStatus.FAILED, reason=f"{reason}; its nonce was used by another refund"
            )
        logger.warning(
            "refund was run by another transaction (its signature submitted directly)",
            extra={"refundId": call.refund_id, "txId": txid},
        )
        sweep = replace(sweep, external=txid, mined=None)
        state = self._write(state, sweep)
        located = self._located(sweep)
        if located is None:
            return Progress(Outcome.PENDING, f"the refund ran in {txid}, whose block is not read yet", sweep)
        return self._mined_tron(state, sweep, *located)

    def _tron_refunded_log(self, sweep: Sweep, call: RefundCall) -> tuple[str, str, int] | None:
        """(txid, recipient 0x body, amount) of the factory's Refunded log of this deposit and
        nonce, looked for from the head back to the refund's creation in the blocks holding a
        transaction to the factory (a full node has no log filter)."""
        factory = "41" + tron_body20(sweep.factory).hex()
        topics = [
            REFUNDED_TOPIC.hex(),
            tron_body20(sweep.token).rjust(32, b"\x00").hex(),
            tron_body20(call.deposit).rjust(32, b"\x00").hex(),
        ]
        earliest_ms = call.created_at - LOG_SEARCH_SKEW_S * 1000
        head = self.provider.make_request("wallet/getnowblock", {})
        end = int(head["block_header"]["raw_data"].get("number", 0)) + 1
        while end > 0:
            start = max(0, end - _BLOCKS_PER_READ)
            answer = self.provider.make_request("wallet/getblockbylimitnext", {"startNum": start, "endNum": end})
            blocks = (answer.get("block") or []) if isinstance(answer, dict) else []
            for block in sorted(blocks, key=lambda b: -int(b["block_header"]["raw_data"].get("number", 0))):
                raw = block["block_header"]["raw_data"]
                if int(raw.get("timestamp", 0)) < earliest_ms:
                    return None
                if not any(_calls(tx, factory) for tx in block.get("transactions") or []):
                    continue
                infos = self.provider.make_request("wallet/gettransactioninfobyblocknum", {"num": raw.get("number", 0)})
                for info in infos if isinstance(infos, list) else []:
                    for log in info.get("log") or []:
                        logged = [str(t).lower() for t in log.get("topics") or []]
                        data = bytes.fromhex(str(log.get("data") or ""))
                        if (
                            str(log.get("address", "")).lower()[-40:] == factory[2:]
                            and len(logged) == 4
                            and logged[:3] == topics
                            and len(data) >= 64
                            and int.from_bytes(data[32:64]) == call.nonce
                        ):
                            return str(info["id"]), "0x" + logged[3][-40:], int.from_bytes(data[:32])
            end = start
        return None


def _calls(tx: Mapping[str, Any], contract: str) -> bool:
    """Whether a block's transaction (visible=false) calls `contract` (41-hex)."""
    for entry in tx.get("raw_data", {}).get("contract") or []:
        value = entry.get("parameter", {}).get("value", {})
        if str(value.get("contract_address", "")).lower() == contract:
            return True
    return False
