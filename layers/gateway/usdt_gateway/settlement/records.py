"""The relayer's items as typed records: RELAYER#<network> (lease, next nonce, the transaction in
flight: a sweep, or a signed refund) and SETTLEMENT#<settlementId> (a sweep carried to its end).
Keys from store.relayer_key and store.settlement_key; each record reads its item with
`from_item` and writes it with `to_item`.

Hashes, raw transactions, addresses and salts are 0x-prefixed lowercase hex strings; fees and gas
are integers in wei and gas units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from usdt_gateway import store


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Attempt:
    """One signed transaction of a sweep. Stored before it is broadcast, so every transaction the
    relayer ever sent is here: replacements at the same nonce add attempts, never overwrite one.
    Only the newest keeps its raw bytes (the one broadcast again); the others keep their hash,
    which is all their receipts need, so a sweep of 256 deposits replaced many times still fits
    its item."""

    tx_hash: str
    raw: str | None
    nonce: int
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    signed_at: int
    broadcast_at: int | None = None  # None: signed and stored, not known to have reached a node
    # Tron only (no nonces there): the transaction's raw_data.expiration (ms); `raw` holds the
    # JSON body wallet/broadcasttransaction takes, `gas` its fee limit (sun), nonce and fees 0.
    expiration: int | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Attempt:
        return cls(
            tx_hash=item["txHash"],
            raw=item.get("raw"),
            nonce=int(item["nonce"]),
            gas=int(item["gas"]),
            max_fee_per_gas=int(item["maxFeePerGas"]),
            max_priority_fee_per_gas=int(item["maxPriorityFeePerGas"]),
            signed_at=int(item["signedAt"]),
            broadcast_at=_int_or_none(item.get("broadcastAt")),
            expiration=_int_or_none(item.get("expiration")),
        )

    def to_item(self) -> dict[str, Any]:
        item = {
            "txHash": self.tx_hash,
            "raw": self.raw,
            "nonce": self.nonce,
            "gas": self.gas,
            "maxFeePerGas": self.max_fee_per_gas,
            "maxPriorityFeePerGas": self.max_priority_fee_per_gas,
            "signedAt": self.signed_at,
            "broadcastAt": self.broadcast_at,
        }
        return item if self.expiration is None else item | {"expiration": self.expiration}


@dataclass(frozen=True)
class Mined:
    """The receipt of the attempt a block holds: where, whether it ran, what it cost, and what it
    moved (the factory's Swept logs in it)."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int  # 1 ran, 0 reverted
    gas_used: int
    effective_gas_price: int
    # Deposit address (EIP-55) -> units it gave up to the treasury; an address the sweep found
    # empty is absent. None: a receipt recorded before its logs were read (it is not evidence).
    swept: Mapping[str, int] | None = None
    # Tron only: `gas_used` is the receipt's energy_usage_total, `effective_gas_price` 0, and the
    # sun it burned: `fee` in all, `energy_fee` for energy, `net_fee` for bandwidth; `result` the
    # receipt's (SUCCESS, REVERT, OUT_OF_ENERGY, ...).
    fee: int | None = None
    energy_fee: int | None = None
    net_fee: int | None = None
    result: str | None = None

    @property
    def gas_paid(self) -> int:
        """Wei the relayer paid for it (sun on Tron)."""
        return self.fee if self.fee is not None else self.gas_used * self.effective_gas_price

    @classmethod
    def from_receipt(cls, receipt: Mapping[str, Any], *, swept: Mapping[str, int] | None = None) -> Mined:
        """From an eth_getTransactionReceipt answer (hex quantities); `swept` read from its logs."""
        return cls(
            tx_hash=str(receipt["transactionHash"]).lower(),
            block_number=int(receipt["blockNumber"], 16),
            block_hash=str(receipt["blockHash"]).lower(),
            status=int(receipt["status"], 16),
            gas_used=int(receipt["gasUsed"], 16),
            effective_gas_price=int(receipt["effectiveGasPrice"], 16),
            swept=swept,
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Mined:
        swept = item.get("swept")
        return cls(
            tx_hash=item["txHash"],
            block_number=int(item["blockNumber"]),
            block_hash=item["blockHash"],
            status=int(item["status"]),
            gas_used=int(item["gasUsed"]),
            effective_gas_price=int(item["effectiveGasPrice"]),
            swept=None if swept is None else {k: int(v) for k, v in swept.items()},
            fee=_int_or_none(item.get("fee")),
            energy_fee=_int_or_none(item.get("energyFee")),
            net_fee=_int_or_none(item.get("netFee")),
            result=item.get("result"),
        )

    def to_item(self) -> dict[str, Any]:
        item = {
            "txHash": self.tx_hash,
            "blockNumber": self.block_number,
            "blockHash": self.block_hash,
            "status": self.status,
            "gasUsed": self.gas_used,
            "effectiveGasPrice": self.effective_gas_price,
            "swept": None if self.swept is None else dict(self.swept),
        }
        if self.fee is None:
            return item  # an EVM receipt
        return item | {"fee": self.fee, "energyFee": self.energy_fee, "netFee": self.net_fee, "result": self.result}


@dataclass(frozen=True)
class RefundCall:
    """A signed refund as the relayer sends it: `factory.refund(token, salt, to, amount, nonce,
    deadline, signature)`. Its record is REFUND# (settlement/refunds.py)."""

    refund_id: str
    order_pk: str
    deposit: str  # the deposit address (lowercase; base58 on Tron): the Refunded log's indexed `deposit`
    to: str  # lowercase (base58 on Tron)
    amount: int
    nonce: int
    deadline: int  # unix seconds: no block after it runs the refund
    signature: str  # 0x r ‖ s ‖ v, as checked when it was accepted
    created_at: int  # the refund's creation (ms): its signature cannot be on chain before

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RefundCall:
        return cls(
            refund_id=item["refundId"],
            order_pk=item["orderPk"],
            deposit=item["deposit"],
            to=item["to"],
            amount=int(item["amount"]),
            nonce=int(item["nonce"]),  # a string: 128 bits are more digits than a DynamoDB number holds
            deadline=int(item["deadline"]),
            signature=item["signature"],
            created_at=int(item["createdAt"]),
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "refundId": self.refund_id,
            "orderPk": self.order_pk,
            "deposit": self.deposit,
            "to": self.to,
            "amount": self.amount,
            "nonce": str(self.nonce),
            "deadline": self.deadline,
            "signature": self.signature,
            "createdAt": self.created_at,
        }


@dataclass(frozen=True)
class Sweep:
    """The transaction in flight on a network, from the relayer's key: `factory.sweep(token,
    salts)`, or, with `refund` set, `factory.refund(...)` of one deposit address (its salt the one
    of `salts`, `settlement_id` the refund's id). Both are carried alike; only the calldata and
    the close differ."""

    settlement_id: str
    merchant_id: str
    factory: str
    token: str
    salts: tuple[str, ...]
    created_at: int
    attempts: tuple[Attempt, ...] = ()
    mined: Mined | None = None  # the receipt last seen; cleared when a reorg takes it away
    reorgs: int = 0
    refund: RefundCall | None = None
    # A transaction not the relayer's that ran the refund (its signature submitted by another):
    # its receipt is followed to finality like one of the attempts.
    external: str | None = None

    @property
    def hashes(self) -> tuple[str, ...]:
        return tuple(a.tx_hash for a in self.attempts)

    def with_attempt(self, attempt: Attempt) -> Sweep:
        """`attempt` added as the newest; the one it supersedes was broadcast and keeps its hash."""
        return replace(self, attempts=(*(replace(a, raw=None) for a in self.attempts), attempt))

    def salt_bytes(self) -> list[bytes]:
        return [bytes.fromhex(s[2:]) for s in self.salts]

    def broadcast(self, tx_hash: str, at: int | None) -> Sweep:
        """The attempt `tx_hash` marked broadcast at `at` (None: to be broadcast again)."""
        attempts = tuple(replace(a, broadcast_at=at) if a.tx_hash == tx_hash else a for a in self.attempts)
        return replace(self, attempts=attempts)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Sweep:
        mined = item.get("mined")
        return cls(
            settlement_id=item["settlementId"],
            merchant_id=item["merchantId"],
            factory=item["factory"],
            token=item["token"],
            salts=tuple(item["salts"]),
            created_at=int(item["createdAt"]),
            attempts=tuple(Attempt.from_item(a) for a in item.get("attempts") or []),
            mined=Mined.from_item(mined) if mined else None,
            reorgs=int(item.get("reorgs") or 0),
            refund=RefundCall.from_item(item["refund"]) if item.get("refund") else None,
            external=item.get("external"),
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "settlementId": self.settlement_id,
            "merchantId": self.merchant_id,
            "factory": self.factory,
            "token": self.token,
            "salts": list(self.salts),
            "createdAt": self.created_at,
            "attempts": [a.to_item() for a in self.attempts],
            "mined": self.mined.to_item() if self.mined else None,
            "reorgs": self.reorgs,
            "refund": self.refund.to_item() if self.refund else None,
            "external": self.external,
        }


RECENT_SETTLEMENTS = 10


@dataclass(frozen=True)
class RelayerState:
    """A RELAYER item. `revision` grows with every write: each write is conditional on the
    revision read (and on holding the lease), so a run acts only on the state it saw."""

    network: str
    lease_owner: str | None
    lease_until: int
    revision: int
    next_nonce: int | None  # None before the first sweep: the chain's count is taken then
    sweep: Sweep | None
    recent: tuple[str, ...] = ()  # the ids of the last RECENT_SETTLEMENTS sweeps closed, newest first

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RelayerState:
        inflight = item.get("inflight")
        return cls(
            network=item["network"],
            lease_owner=item.get("leaseOwner"),
            lease_until=int(item.get("leaseUntil") or 0),
            revision=int(item.get("revision") or 0),
            next_nonce=_int_or_none(item.get("nextNonce")),
            sweep=Sweep.from_item(inflight) if inflight else None,
            recent=tuple(item.get("recentSettlements") or ()),
        )

    def closing(self, settlement_id: str) -> list[str]:
        """`recent` once `settlement_id` closed (the operator's settlement-status lists them: the
        SETTLEMENT records are indexed by merchant, not by network)."""
        return [settlement_id, *self.recent][:RECENT_SETTLEMENTS]


class SettlementStatus(StrEnum):
    COMPLETED = "completed"  # the sweep ran in a final, canonical block
    FAILED = "failed"  # it reverted (final), or could not be sent at all (`reason`)


@dataclass(frozen=True)
class Settlement:
    """A SETTLEMENT item: written once, when the relayer lets go of the sweep."""

    settlement_id: str
    network: str
    merchant_id: str
    factory: str
    token: str
    salts: tuple[str, ...]
    status: SettlementStatus
    created_at: int
    closed_at: int
    hashes: tuple[str, ...]  # every transaction sent for it, in order
    mined: Mined | None = None
    nonce: int | None = None
    reorgs: int = 0
    reason: str | None = None

    @property
    def tx_hash(self) -> str | None:
        return self.mined.tx_hash if self.mined else None

    @property
    def gas_paid(self) -> int:
        return self.mined.gas_paid if self.mined else 0

    @property
    def swept(self) -> Mapping[str, int] | None:
        """What the mined sweep moved, per deposit address (its receipt's Swept logs); None when
        nothing was mined or the receipt was recorded before its logs were read."""
        return self.mined.swept if self.mined else None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Settlement:
        mined = item.get("mined")
        return cls(
            settlement_id=item["settlementId"],
            network=item["network"],
            merchant_id=item["merchantId"],
            factory=item["factory"],
            token=item["token"],
            salts=tuple(item["salts"]),
            status=SettlementStatus(item["settlementStatus"]),
            created_at=int(item["createdAt"]),
            closed_at=int(item["closedAt"]),
            hashes=tuple(item.get("hashes") or []),
            mined=Mined.from_item(mined) if mined else None,
            nonce=_int_or_none(item.get("nonce")),
            reorgs=int(item.get("reorgs") or 0),
            reason=item.get("reason"),
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.settlement_key(self.settlement_id)
        return {
            "pk": pk,
            "sk": sk,
            "settlementId": self.settlement_id,
            "network": self.network,
            "merchantId": self.merchant_id,
            "factory": self.factory,
            "token": self.token,
            "salts": list(self.salts),
            "settlementStatus": self.status.value,
            "createdAt": self.created_at,
            "closedAt": self.closed_at,
            "hashes": list(self.hashes),
            "mined": self.mined.to_item() if self.mined else None,
            "txHash": self.tx_hash,
            "gasPaid": self.gas_paid,
            "nonce": self.nonce,
            "reorgs": self.reorgs,
            "reason": self.reason,
            # The merchant's settlements, oldest first (a later GET /v1/settlements).
            "gsi1pk": store.settlements_index_pk(self.merchant_id),
            "gsi1sk": f"{self.created_at:013d}#{self.settlement_id}",
        }
