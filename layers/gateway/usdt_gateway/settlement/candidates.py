"""Settlement candidates: credited deposits whose money is still on a contract-mode deposit
address. One SWEEP#<network> item per deposit, written in the transaction that credits it
(deposits.py), so a credit without its candidate, or a candidate for money never credited,
cannot exist. The settlement (settlement/batches.py) claims candidates for a sweep, and deletes
them once that sweep is final; a deposit credited while a sweep is in flight is a new item the
sweep did not claim, and goes with the next one. The same transaction takes the address out of
the reuse pool (deposit_pool.leave_part): it holds money again. A deposit that a deep reorg
reverses takes its candidate with it in the reversal's transaction, unless a sweep claimed it
(reversal_part).

A refund (settlement/refunds.py) holds the candidates of its deposit address (`refundId`): a sweep
moves an address's whole balance, so no sweep may claim money a refund is waiting to send. The
hold lasts until the refund's deadline (`holdUntil`) while its signature is awaited, and without
a time limit once it is signed, until the refund closes.

The balance cross-check (settlement/balance_check.py) holds the candidates of an address whose
token balance at a final block does not cover them (`balanceShort`: the balance seen, the units
expected); the operator may waive that check for them (`balanceWaived`, admin release-deposits
--balance-short), and the next sweep then takes them whatever the balance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from usdt_gateway import deposit_pool, store
from usdt_gateway.records import Order, deposit_id

# A deposit whose sweeps failed this often is no longer picked: it waits for the operator
# (admin release-deposits).
MAX_FAILURES = 3
# The condition a sweep's claim puts on each candidate of the addresses it sweeps (:now, ms): no
# refund holds it, or its hold lapsed (a refund whose signature did not come by its deadline).
UNHELD = "(attribute_not_exists(refundId) OR holdUntil < :now)"


@dataclass(frozen=True)
class BalanceShort:
    """What the balance cross-check saw at an address that holds less than its credits."""

    balance: int  # units the address held at `block`
    expected: int  # units credited on it that a sweep was to settle
    block: int  # the final block read
    endpoint: str  # the endpoint's name (never its URL)
    since: int  # ms: when the address was first found short

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> BalanceShort:
        return cls(
            balance=int(item["balance"]),
            expected=int(item["expected"]),
            block=int(item["block"]),
            endpoint=str(item["endpoint"]),
            since=int(item["since"]),
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "balance": self.balance,
            "expected": self.expected,
            "block": self.block,
            "endpoint": self.endpoint,
            "since": self.since,
        }


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
    refund_id: str | None = None  # the refund that holds it
    hold_until: int | None = None  # ms; None while its refund is signed (held until the refund closes)
    # Money its order did not take when it was credited (an overpayment's excess, a payment after
    # the order was paid in full, unmatched money): its address waits the refund window before a
    # sweep takes it, so the merchant can refund it from the address (batches.select).
    spare: bool = False
    # Its address's balance at a final block fell short of the credits (balance_check.py): no
    # sweep picks the address while this is set.
    short: BalanceShort | None = None
    waived_at: int | None = None  # ms: the operator waived the balance check for it

    @property
    def key(self) -> tuple[str, str]:
        return store.sweep_candidate_key(self.network, self.merchant_id, self.address, self.txid, self.log_index)

    @property
    def deposit_id(self) -> str:
        return deposit_id(self.network, self.txid, self.log_index)

    def held(self, now: int) -> bool:
        """A refund holds it now (a hold whose deadline passed holds nothing)."""
        return self.refund_id is not None and (self.hold_until is None or self.hold_until >= now)

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
            refund_id=item.get("refundId"),
            hold_until=None if item.get("holdUntil") is None else int(item["holdUntil"]),
            spare=bool(item.get("spare")),
            short=BalanceShort.from_item(item["balanceShort"]) if item.get("balanceShort") else None,
            waived_at=None if item.get("balanceWaived") is None else int(item["balanceWaived"]),
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
            "refundId": self.refund_id,
            "holdUntil": self.hold_until,
            "spare": self.spare,
            "balanceShort": self.short.to_item() if self.short else None,
            "balanceWaived": self.waived_at,
        }


def credit_part(order: Order, *, txid: str, log_index: int, units: int, now: int) -> list[dict[str, Any]]:
    """The write that records a credited deposit's money as unsettled, for the credit's own
    transaction; none for an order that is not in contract mode. `order` is as it was before the
    credit: money beyond its amount is spare (refundable, so its sweep waits the refund window)."""
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
        spare=order.paid_units + units > order.amount_units,
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
        spare=True,  # no order takes it: refundable all of it
    )
    # none -> unsettled. An unmatched deposit is recorded once (its DEP write's condition), or again
    # after a deep reorg reversed it and the chain holds it again: the same (unmatched) candidate.
    return [
        store.put_part(candidate.to_item(), condition="attribute_not_exists(pk) OR attribute_not_exists(orderPk)"),
        deposit_pool.leave_part(network, address),  # money on it again: out of the reuse pool
    ]


def reversal_part(
    network: str, merchant_id: str, *, address: str, txid: str, log_index: int, now: int
) -> list[dict[str, Any]]:
    """The write that takes a deposit a deep reorg reversed off the unsettled money, for the
    reversal's own transaction; none when it has no candidate (not contract mode, or swept).

    Unclaimed, the candidate is deleted: no sweep will look for money that never stayed. Claimed
    by a sweep, it is left to that sweep, marked `reversedAt`: the sweep moves what the address
    holds on chain, whatever the records say, so its outcome decides. Completed, the candidate
    leaves with the others (its units are counted in the sweep's records all the same); failed,
    it is deleted instead of released for the next sweep (batches.mark)."""
    key = store.sweep_candidate_key(network, merchant_id, address, txid, log_index)
    item = store.get(*key)
    if item is None:
        return []
    sweep_id = Candidate.from_item(item).sweep_id
    if sweep_id is None:
        # unclaimed -> gone. A claim made since fails the reversal's transaction, read again then.
        return [store.delete_part(*key, condition="attribute_exists(pk) AND attribute_not_exists(sweepId)")]
    # claimed -> claimed and reversed (the sweep's outcome decides)
    return [
        store.update_part(
            *key, expression="SET reversedAt = :now", condition="sweepId = :id", values={":id": sweep_id, ":now": now}
        )
    ]


def unsettled(network: str) -> list[Candidate]:
    """Every candidate of the network, claimed or not (strongly consistent)."""
    pk, _ = store.sweep_candidate_key(network, "", "", "", 0)
    return [Candidate.from_item(i) for i in store.query_partition(pk, sk_from=" ")]  # every sort key


def held(network: str, merchant_id: str | None = None) -> list[Candidate]:
    """Candidates no sweep picks any more (failed MAX_FAILURES times), oldest first."""
    return sorted(
        (
            c
            for c in unsettled(network)
            if c.sweep_id is None and c.failures >= MAX_FAILURES and merchant_id in (None, c.merchant_id)
        ),
        key=lambda c: (c.credited_at, c.key),
    )


def release(candidate: Candidate) -> bool:
    """A held candidate's failures reset to 0: the next runs pick it again. False when it changed
    since it was read (claimed, swept, released by someone else)."""
    # held, as read -> unclaimed with no failures
    return store.update_expression(
        *candidate.key,
        expression="SET failures = :zero",
        condition="failures = :read AND attribute_not_exists(sweepId)",
        values={":zero": 0, ":read": candidate.failures},
    )


def at_address(network: str, merchant_id: str, address: str) -> list[Candidate]:
    """The candidates of one deposit address (strongly consistent): the money on it, as recorded."""
    pk, _ = store.sweep_candidate_key(network, "", "", "", 0)
    prefix = f"{merchant_id}#{address}#"
    return [Candidate.from_item(i) for i in store.query_between(pk, sk_from=prefix, sk_to=prefix + "~")]


def hold_short(candidate: Candidate, short: BalanceShort) -> bool:
    """The candidate held from sweeps by the balance cross-check, with what it saw; False when it
    was claimed or removed meanwhile."""
    # unclaimed -> held short (or its hold updated to what the last check saw)
    return store.update_expression(
        *candidate.key,
        expression="SET balanceShort = :short",
        condition="attribute_exists(pk) AND attribute_not_exists(sweepId)",
        values={":short": short.to_item()},
    )


def lift_short(candidate: Candidate) -> bool:
    """The balance cross-check's hold lifted: its address's balance covers it now."""
    assert candidate.short is not None
    # held short, as read -> unclaimed, for the next sweep
    return store.update_expression(
        *candidate.key,
        expression="REMOVE balanceShort",
        condition="balanceShort.since = :since AND attribute_not_exists(sweepId)",
        values={":since": candidate.short.since},
    )


def short_held(network: str, merchant_id: str | None = None) -> list[Candidate]:
    """Candidates the balance cross-check holds (unclaimed), oldest first."""
    return sorted(
        (
            c
            for c in unsettled(network)
            if c.sweep_id is None and c.short is not None and merchant_id in (None, c.merchant_id)
        ),
        key=lambda c: (c.credited_at, c.key),
    )


def waive(candidate: Candidate, now: int) -> bool:
    """A candidate held short sent to the next sweep without the balance check (the operator's
    call): what that sweep moves from its address is counted, the rest recorded missing. False
    when it changed since it was read."""
    assert candidate.short is not None
    # held short, as read -> unclaimed, its balance check waived
    return store.update_expression(
        *candidate.key,
        expression="SET balanceWaived = :now REMOVE balanceShort",
        condition="balanceShort.since = :since AND attribute_not_exists(sweepId)",
        values={":now": now, ":since": candidate.short.since},
    )
