"""Settlement candidates: credited deposits whose money is still on a contract-mode deposit
address. One SWEEP#<network> item per deposit, written in the transaction that credits it
(deposits.py), so a credit without its candidate, or a candidate for money never credited,
cannot exist. The settlement (settlement/batches.py) claims candidates for a sweep, and deletes
them once that sweep is final; a deposit credited while a sweep is in flight is a new item the
sweep did not claim, and goes with the next one. The same transaction takes the address out of
the reuse pool (deposit_pool.leave_part): it holds money again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usdt_gateway import deposit_pool, store
from usdt_gateway.records import Order, deposit_id


@dataclass(frozen=True)
class Candidate:
    network: str
    merchant_id: str
    address: str  # the deposit address (EIP-55)
    txid: str
    log_index: int
    units: int
    order_pk: str | None  # None: money no order takes (unmatched), swept all the same
    factory: str
    salt: str  # 0x hex, the CREATE2 salt of `address` under `factory`
    token: str
    credited_at: int
    sweep_id: str | None = None  # the sweep that claimed it
    failures: int = 0  # sweeps that claimed it and failed

    @property
    def key(self) -> tuple[str, str]:
        return store.sweep_candidate_key(self.network, self.merchant_id, self.address, self.txid, self.log_index)

    @property
    def deposit_id(self) -> str:
        return deposit_id(self.network, self.txid, self.log_index)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Candidate:
        return cls(
            network=item["network"],
            merchant_id=item["merchantId"],
            address=item["address"],
            txid=item["txid"],
            log_index=int(item["logIndex"]),
            units=int(item["units"]),
            order_pk=item.get("orderPk"),
            factory=item["factory"],
            salt=item["salt"],
            token=item["token"],
            credited_at=int(item["creditedAt"]),
            sweep_id=item.get("sweepId"),
            failures=int(item.get("failures") or 0),
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = self.key
        return {
            "pk": pk,
            "sk": sk,
            "network": self.network,
            "merchantId": self.merchant_id,
            "address": self.address,
            "txid": self.txid,
            "logIndex": self.log_index,
            "units": self.units,
            "orderPk": self.order_pk,
            "factory": self.factory,
            "salt": self.salt,
            "token": self.token,
            "creditedAt": self.credited_at,
            "sweepId": self.sweep_id,
            "failures": self.failures,
        }


def credit_part(order: Order, *, txid: str, log_index: int, units: int, now: int) -> list[dict[str, Any]]:
    """The write that records a credited deposit's money as unsettled, for the credit's own
    transaction; none for an order that is not in contract mode."""
    if order.deposit_salt is None or order.deposit_factory is None:
        return []
    candidate = Candidate(
        network=order.network,
        merchant_id=order.merchant_id,
        address=order.address,
        txid=txid,
        log_index=log_index,
        units=units,
        order_pk=order.pk,
        factory=order.deposit_factory,
        salt=order.deposit_salt,
        token=order.token_contract,
        credited_at=now,
    )
    # none -> unsettled. A deposit is credited once (its DEP write's condition in the same
    # transaction), or again for the same order after a deep reorg reversed it and the chain holds
    # it again: its candidate is then written again (a claim it had is dropped; the sweep that
    # claimed it finds nothing to mark, and the next one takes it).
    return [
        store.put_part(
            candidate.to_item(), condition="attribute_not_exists(pk) OR orderPk = :o", values={":o": order.pk}
        ),
        deposit_pool.leave_part(order.network, order.address),  # money on it again: out of the reuse pool
    ]


def unmatched_part(
    network: str, owner: str, *, address: str, txid: str, log_index: int, units: int, now: int
) -> list[dict[str, Any]]:
    """The write that records money no order takes as unsettled, when it was paid to a
    contract-mode deposit address (its ADDR# item holds the salt); none for any other address."""
    claim = store.get(*store.address_key(network, address))
    if claim is None or "salt" not in claim:
        return []
    candidate = Candidate(
        network=network,
        merchant_id=owner,
        address=address,
        txid=txid,
        log_index=log_index,
        units=units,
        order_pk=None,
        factory=claim["factory"],
        salt=claim["salt"],
        token=claim["token"],
        credited_at=now,
    )
    # none -> unsettled. An unmatched deposit is recorded once (its DEP write's condition), or again
    # after a deep reorg reversed it and the chain holds it again: the same (unmatched) candidate.
    return [
        store.put_part(candidate.to_item(), condition="attribute_not_exists(pk) OR attribute_not_exists(orderPk)"),
        deposit_pool.leave_part(network, address),  # money on it again: out of the reuse pool
    ]


def unsettled(network: str) -> list[Candidate]:
    """Every candidate of the network, claimed or not (strongly consistent)."""
    pk, _ = store.sweep_candidate_key(network, "", "", "", 0)
    return [Candidate.from_item(i) for i in store.query_partition(pk, sk_from=" ")]  # every sort key
