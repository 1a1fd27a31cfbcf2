"""Contract mode's reuse pool: deposit contracts a sweep deployed, handed to new orders again so
their sweeps pay no deployment (about 41,600 gas of a fresh address's sweep). Kept on each
address's ADDR#<network>#<address> item, the address -> order mapping itself, so every step is
one conditional write on the item a create, a credit and the settlement already share.

An address goes, in `poolState` and its gsi1 keys:

    (in service) -> waiting      a completed sweep moved all that was credited on it (its Swept
                                 logs cover every deposit it claimed there): POOLWAIT#<network>,
                                 due when the order it serves leaves the scanner's watch list
    waiting -> quarantined       the settlement (settlement/pooling.py) found, at or after that
                                 time: the scanner's final blocks past the order's watch window +
                                 grace, the order terminal, no credit unswept (no SWEEP#
                                 candidate), no refund pending, nothing on the address on chain;
                                 a `pooled` watch entry keeps it watched (watchlist.py), renewed
                                 until the quarantine ends
    quarantined -> available     its quarantine over: POOL#<merchantId>#<network>#<factory>,
                                 sorted by when it became available
    available -> (in service)    an order's create takes the oldest (`take`, `take_part`): in the
                                 create's own transaction, only while the item is still available
                                 and still names the order it served; a create that loses the race
                                 takes a fresh salt instead
    any -> (in service)          a credit to the address (late money, seen by that watch entry):
                                 in the credit's transaction (`leave_part`); its next sweep puts
                                 it back on the way

A condition that cannot hold yet postpones the address; one that says it must not be reused
(money the gateway never recorded is on it, a refund or credit is pending, reuse is off, the
merchant moved to another factory) drops it out (back in service state; its next sweep may put
it on the way again). The create path reads the pool with one Query and makes no RPC call.

Each item also keeps the sweep ledger: units the gateway's own sweeps moved from the address (their
receipts' Swept logs) that no credited deposit has been counted against yet (`spareUnits`). A
sweep moves the whole balance, so it also takes money paid in the blocks before it that was not
final (not credited) when the sweep was claimed; once credited, the next sweep of the address finds
it gone, and that deposit is counted swept from this spare rather than reported missing. Each
sweep is applied once (`recentSweeps`, the last ids applied; `ledgerRev` guards the write).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usdt_gateway import store, watchlist
from usdt_gateway.config import settings
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.observability import logger

RECENT_SWEEPS = 16  # ids kept to apply each sweep once; marks of one address never lag this far
WAITING, QUARANTINED, AVAILABLE = "waiting", "quarantined", "available"
# A pooled watch entry is renewed this long before it ends (the settlement runs every 5 minutes).
RENEW_MARGIN_MS = 3_600_000
_LEAVE = "REMOVE gsi1pk, gsi1sk, poolState, availableAt"


def watch_span_ms() -> int:
    """The longest a watch entry is reliably read back by the scanner (watchlist.refresh reads
    entries created within the longest order window plus grace): a pooled address's entry lasts
    this long, and is renewed before it ends."""
    s = settings()
    return (s.max_expires_in + s.late_payment_grace_seconds) * 1000


def address_of(item: dict[str, Any]) -> str:
    """The deposit address of an ADDR# item (from its key)."""
    return str(item["pk"]).split("#", 2)[2]


def _due(at: int, address: str) -> str:
    return f"{at:013d}#{address}"


# -- the create path ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pooled:
    """An available deposit contract, as the pool's index showed it."""

    address: str
    salt: str
    factory: str
    order_pk: str  # the order it served last
    sort_key: str  # its place in the pool


def take(cfg: ContractConfig, network: str, *, now: int) -> Pooled | None:
    """The merchant's oldest available deposit contract under its current factory, or None (reuse
    off, or none). One eventually consistent Query: a stale answer only makes `take_part` fail."""
    if not cfg.reuse:
        return None
    item = store.first_in_index(store.pool_index_pk(cfg.merchant_id, network, cfg.factory), sk_to=f"{now:013d}~")
    if item is None:
        return None
    return Pooled(address_of(item), item["salt"], item["factory"], item["orderPk"], item["gsi1sk"])


def take_part(network: str, pooled: Pooled, *, order_pk: str, watch_until: int) -> dict[str, Any]:
    """The create transaction's write that hands `pooled` to the new order."""
    pk, sk = store.address_key(network, pooled.address)
    # available, still naming the order it served -> this order's (out of the pool)
    return store.update_part(
        pk,
        sk,
        expression=f"SET orderPk = :new, watchUntil = :until, previousOrderPk = :old {_LEAVE}",
        condition="poolState = :available AND gsi1sk = :at AND orderPk = :old AND factory = :factory",
        values={
            ":new": order_pk,
            ":until": watch_until,
            ":old": pooled.order_pk,
            ":available": AVAILABLE,
            ":at": pooled.sort_key,
            ":factory": pooled.factory,
        },
    )


# -- credits ----------------------------------------------------------------------------------------


def leave_part(network: str, address: str) -> dict[str, Any]:
    """A credit's write to its contract-mode address: it has money again, so it leaves the pool
    (whatever its state), and the count of credits moves (what the settlement read it with is no
    longer so). Never fails: a credit is never held back by it."""
    pk, sk = store.address_key(network, address)
    return store.update_part(
        pk,
        sk,
        expression=f"ADD credits :one {_LEAVE}",
        condition="attribute_exists(pk) OR attribute_not_exists(pk)",
        values={":one": 1},
    )


# -- sweeps: the ledger, and the way into the pool ---------------------------------------------------


def spare_units(network: str, address: str) -> int:
    """Units the gateway's sweeps moved from `address` that no credit has been counted against."""
    item = store.get(*store.address_key(network, address))
    return int(item.get("spareUnits") or 0) if item else 0


def record_sweep(network: str, address: str, settlement_id: str, spare_delta: int, *, reusable: bool) -> None:
    """Apply one completed sweep to the address, once: its spare grows by what the sweep moved
    beyond the deposits it counted (or shrinks by what they drew from it); `reusable` (the sweep
    moved all that was credited on it) puts it on the way into the pool."""
    pk, sk = store.address_key(network, address)
    for _ in range(5):
        item = store.get(pk, sk)
        if item is None:
            logger.warning("swept deposit address has no ADDR# item", extra={"network": network, "address": address})
            return
        recent = [str(s) for s in item.get("recentSweeps") or []]
        if settlement_id in recent:
            return  # applied by an earlier (or a concurrent) mark of this sweep
        spare = int(item.get("spareUnits") or 0) + spare_delta
        if spare < 0:  # drawn by a mark that read an older spare: never below nothing
            logger.warning("sweep ledger drawn below zero", extra={"address": address, "settlementId": settlement_id})
            spare = 0
        rev = item.get("ledgerRev")
        values: dict[str, Any] = {
            ":spare": spare,
            ":recent": [*recent[-(RECENT_SWEEPS - 1) :], settlement_id],
            ":rev": int(rev or 0) + 1,
        }
        expression = "SET spareUnits = :spare, recentSweeps = :recent, ledgerRev = :rev"
        if reusable:
            # Due once the scanner no longer watches for the order it serves.
            due = int(item.get("watchUntil") or 0) + watchlist.CLOCK_SKEW_MS
            expression += ", gsi1pk = :wait, gsi1sk = :due, poolState = :waiting REMOVE availableAt"
            values |= {":wait": store.pool_waiting_index_pk(network), ":due": _due(due, address), ":waiting": WAITING}
        # ledger as read -> this sweep applied (and the next revision)
        condition = "attribute_not_exists(ledgerRev)" if rev is None else "ledgerRev = :read"
        if rev is not None:
            values[":read"] = int(rev)
        if store.update_expression(pk, sk, expression=expression, condition=condition, values=values):
            return
    raise RuntimeError(f"the sweep ledger of {address} kept changing under concurrent writers")


# -- the settlement's pooling step (settlement/pooling.py) -----------------------------------------


def _as_read(item: dict[str, Any], state: str) -> tuple[str, dict[str, Any]]:
    """The condition that the item is still in `state` at the place it was read."""
    return "poolState = :state AND gsi1sk = :read", {":state": state, ":read": item["gsi1sk"]}


def _watch(network: str, item: dict[str, Any], merchant_id: str, now: int) -> dict[str, Any]:
    return watchlist.pool_watch_part(
        network=network,
        merchant_id=merchant_id,
        address=address_of(item),
        order_pk=item["orderPk"],
        now=now,
        until=now + watch_span_ms(),
    )


def _next_due(now: int, available_at: int) -> int:
    """When a quarantined address is looked at next: before its watch entry ends, or when its
    quarantine does."""
    span = watch_span_ms()
    return min(now + span - min(RENEW_MARGIN_MS, span // 2), available_at)


def quarantine(network: str, item: dict[str, Any], *, merchant_id: str, now: int, quarantine_ms: int) -> bool:
    """waiting -> quarantined, watched from now on; only if no credit reached the address since
    `item` was read. Its spare starts again from nothing: no deposit of the order it served can be
    credited any more, so what is left was moved but never credited (an ignored dust transfer),
    and must not cover a later order's deposit. False when the item moved meanwhile."""
    address, available_at = address_of(item), now + quarantine_ms
    condition, values = _as_read(item, WAITING)
    credits = item.get("credits")
    condition += " AND orderPk = :order AND " + ("attribute_not_exists(credits)" if credits is None else "credits = :c")
    values |= {":order": item["orderPk"]} | ({} if credits is None else {":c": int(credits)})
    pk, sk = store.address_key(network, address)
    move = store.set_part(
        pk,
        sk,
        set_values={
            "poolState": QUARANTINED,
            "gsi1sk": _due(_next_due(now, available_at), address),
            "merchantId": merchant_id,
            "pooledAt": now,
            "availableAt": available_at,
            "spareUnits": 0,
        },
        condition=condition,
        values=values,
    )
    return _transact([move, _watch(network, item, merchant_id, now)])


def renew(network: str, item: dict[str, Any], *, now: int) -> bool:
    """quarantined -> quarantined with a new watch entry before the last one ends."""
    condition, values = _as_read(item, QUARANTINED)
    address = address_of(item)
    due = _due(_next_due(now, int(item["availableAt"])), address)
    move = store.set_part(
        *store.address_key(network, address), set_values={"gsi1sk": due}, condition=condition, values=values
    )
    return _transact([move, _watch(network, item, item["merchantId"], now)])


def release(network: str, item: dict[str, Any], *, now: int) -> bool:
    """quarantined -> available to the merchant's next orders, watched a while longer."""
    condition, values = _as_read(item, QUARANTINED)
    address, available_at = address_of(item), int(item["availableAt"])
    move = store.set_part(
        *store.address_key(network, address),
        set_values={
            "poolState": AVAILABLE,
            "gsi1pk": store.pool_index_pk(item["merchantId"], network, item["factory"]),
            "gsi1sk": _due(available_at, address),
        },
        condition=condition,
        values=values,
    )
    return _transact([move, _watch(network, item, item["merchantId"], now)])


def postpone(network: str, item: dict[str, Any], *, until: int) -> bool:
    """Looked at again at `until` (a condition that cannot hold yet)."""
    condition, values = _as_read(item, str(item.get("poolState")))
    set_values = {"gsi1sk": _due(until, address_of(item))}
    return store.update(item["pk"], item["sk"], set_values=set_values, condition=condition, values=values) is not None


def drop(network: str, item: dict[str, Any], reason: str) -> bool:
    """Out of the way into the pool (its next sweep may put it back)."""
    condition, values = _as_read(item, str(item.get("poolState")))
    dropped = store.update_expression(item["pk"], item["sk"], expression=_LEAVE, condition=condition, values=values)
    if dropped:
        logger.info("deposit address left out of the reuse pool", extra={"address": address_of(item), "reason": reason})
    return dropped


def _transact(parts: list[dict[str, Any]]) -> bool:
    try:
        store.transact(parts)
    except store.TransactionConflict:
        return False  # the address moved (a credit, a create, another run): looked at again later
    return True
