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
releases its deposits as for a reverted EVM sweep. Refunds are not built for Tron.
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
from usdt_gateway.settlement.calldata import swept_amounts
from usdt_gateway.settlement.records import Attempt, Mined, RelayerState, SettlementStatus, Sweep
from usdt_gateway.settlement.refund_records import Refund
from usdt_gateway.settlement.relayer import (
    BROADCAST,
    FINAL,
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
        raise ValueError(f"refunds are not built for Tron ({self.network.name})")

    # -- carrying the sweep ---------------------------------------------------------------------

    def advance(self, state: RelayerState) -> Progress:
        sweep = state.sweep
        if sweep is None:
            return Progress(Outcome.IDLE)
        if sweep.refund is not None:
            raise ValueError(f"refund {sweep.settlement_id} in flight on Tron: refunds are not built for Tron")
        found = self._located(sweep)
        if found is not None:
            return self._mined_tron(state, sweep, *found)
        if sweep.mined is not None:
            logger.warning(
                "sweep's block was reorganised away; sending it again",
                extra={"settlementId": sweep.settlement_id, "block": sweep.mined.block_number},
            )
            sweep = replace(sweep, mined=None, reorgs=sweep.reorgs + 1)
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
        none is, or its block changed between the two reads (the next run looks again)."""
        for txid in reversed(sweep.hashes):
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
