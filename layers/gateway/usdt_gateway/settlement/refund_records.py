"""A refund's item as a typed record: REFUND#<merchantId>#<orderId> / <refundId> (store.refund_key).

Addresses are stored lowercase 0x hex (base58 on Tron); the amount in base units; the nonce as a
decimal string (a 128-bit number has more digits than a DynamoDB number keeps); the deadline in
unix seconds, as the contract compares it with block timestamps. A refund waiting for the relayer (submitted) is in the
gsi1 partition REFUNDS#<network>, by the time it was signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usdt_gateway import store
from usdt_gateway.schemas import RefundStatus
from usdt_gateway.settlement.records import RefundCall
from usdt_gateway.settlement.refund_signing import RefundMessage


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Refund:
    refund_id: str
    merchant_id: str
    order_id: str
    network: str
    chain_id: int
    status: RefundStatus
    to: str
    units: int
    decimals: int
    deposit_address: str
    factory: str
    token: str
    owner: str  # the factory's OWNER when the refund was made: its signature is required
    salt: str
    nonce: int
    deadline: int  # unix seconds
    created_at: int
    updated_at: int
    signature: str | None = None  # 0x r ‖ s ‖ v (v 27 or 28), once accepted
    submitted_at: int | None = None
    closed_at: int | None = None
    tx_hash: str | None = None
    gas_paid: int | None = None  # wei, of the relayer's transaction that ran (or reverted)
    reason: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return store.refund_key(self.merchant_id, self.order_id, self.refund_id)

    @property
    def order_pk(self) -> str:
        return store.order_key(self.merchant_id, self.order_id)[0]

    @property
    def deadline_ms(self) -> int:
        return self.deadline * 1000

    def lapsed(self, now: int) -> bool:
        """Awaiting a signature past its deadline: no signature can make it run any more."""
        return self.status is RefundStatus.AWAITING_SIGNATURE and now > self.deadline_ms

    def message(self) -> RefundMessage:
        return RefundMessage(
            chain_id=self.chain_id,
            factory=self.factory,
            token=self.token,
            salt=self.salt,
            to=self.to,
            amount=self.units,
            nonce=self.nonce,
            deadline=self.deadline,
        )

    def call(self) -> RefundCall:
        """What the relayer sends, once signed."""
        if self.signature is None:
            raise ValueError(f"refund {self.refund_id} is not signed")
        return RefundCall(
            refund_id=self.refund_id,
            order_pk=self.order_pk,
            deposit=self.deposit_address,
            to=self.to,
            amount=self.units,
            nonce=self.nonce,
            deadline=self.deadline,
            signature=self.signature,
            created_at=self.created_at,
        )

    def index_sk(self, submitted_at: int) -> str:
        return f"{submitted_at:013d}#{self.refund_id}"

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Refund:
        return cls(
            refund_id=item["refundId"],
            merchant_id=item["merchantId"],
            order_id=item["orderId"],
            network=item["network"],
            chain_id=int(item["chainId"]),
            status=RefundStatus(item["refundStatus"]),
            to=item["to"],
            units=int(item["units"]),
            decimals=int(item["decimals"]),
            deposit_address=item["depositAddress"],
            factory=item["factory"],
            token=item["token"],
            owner=item["owner"],
            salt=item["salt"],
            nonce=int(item["nonce"]),
            deadline=int(item["deadline"]),
            created_at=int(item["createdAt"]),
            updated_at=int(item["updatedAt"]),
            signature=item.get("signature"),
            submitted_at=_int_or_none(item.get("submittedAt")),
            closed_at=_int_or_none(item.get("closedAt")),
            tx_hash=item.get("txHash"),
            gas_paid=_int_or_none(item.get("gasPaid")),
            reason=item.get("reason"),
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = self.key
        item: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "refundId": self.refund_id,
            "merchantId": self.merchant_id,
            "orderId": self.order_id,
            "network": self.network,
            "chainId": self.chain_id,
            "refundStatus": self.status.value,
            "to": self.to,
            "units": self.units,
            "decimals": self.decimals,
            "depositAddress": self.deposit_address,
            "factory": self.factory,
            "token": self.token,
            "owner": self.owner,
            "salt": self.salt,
            "nonce": str(self.nonce),
            "deadline": self.deadline,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "signature": self.signature,
            "submittedAt": self.submitted_at,
            "closedAt": self.closed_at,
            "txHash": self.tx_hash,
            "gasPaid": self.gas_paid,
            "reason": self.reason,
        }
        if self.status is RefundStatus.SUBMITTED and self.submitted_at is not None:
            item |= {"gsi1pk": store.refunds_index_pk(self.network), "gsi1sk": self.index_sk(self.submitted_at)}
        return item
