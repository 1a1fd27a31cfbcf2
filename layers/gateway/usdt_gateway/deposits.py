"""Where a deposit is matched to an order, recorded, credited, dropped or reversed after a reorg,
listed and attached by the merchant.

A deposit is one Transfer log, recorded once under DEP#<network>#<txid>#<n>, where n is the log's
position within its transaction: a transfer that a reorg re-includes in another block (at
another block-wide log index on EVM chains) is the same deposit, so re-scans, overlapping ranges,
re-inclusions and retries never count it twice. Its `depositStatus`:
    seen      found in a block that is not final yet; its order is `confirming`
    credited  found in a final block and counted in its order
    unmatched found in a final block, but no open order takes it (the merchant can attach it)
    ignored   found in a final block, below the network's minimum deposit (dust): it changes no
              order and sends no webhook, and is listed with its reason
    dropped   a seen deposit whose transaction a reorg removed; it may be recorded again if it returns
    reversed  a final deposit that a reorg deeper than the finality policy removed; its order is
              recomputed without it and the merchant told (order.payment_reversed / deposit.reversed);
              in contract mode its settlement candidate goes too (candidates.reversal_part)
    disputed  found in a final block, but a second RPC endpoint contradicts it (chain/second_source.py):
              held, not counted; its order stays as it was
    unverified found in a final block through the network's only endpoint, above its
              secondSourceAbove: held, not counted, until a second endpoint (configured later) or
              the operator (admin confirm-deposit) confirms it
    rejected  a held deposit the operator found on no explorer (admin reject-deposit): never
              counted, whatever an endpoint shows of it later
A held deposit (disputed, unverified) is listed on its order (`held`): pending while the order is
open, counted for nothing once it closes, so the order expires (or fails) as it would without it.
It is credited later only through credit_final, as any other, from its held status: to an open
order as usual, to a closed one as a late payment (paid_late) inside the order's late-payment
grace window and recorded unmatched after it, as a payment found then would be. A deep reorg
that removes its transaction clears it (dropped). The merchant hears of each step:
deposit.held, then deposit.released, deposit.rejected or (cleared) deposit.reversed, each in the
transaction of its change, so exactly once.
Zero-value transfers are never recorded. Every final deposit (credited, unmatched, ignored) and
every held one also has a LEDGER#<network> item by block, so a range read again after a deep
reorg can be compared with what was recorded in it; a held one a HELD#<network> item too, for
the operator. The deposit write and its order's write are one transaction (transitions.apply).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace
from enum import StrEnum
from typing import Any

from usdt_gateway import clock, events, outbox, store, transitions
from usdt_gateway.chain.transfers import ChainMoved, Transfer
from usdt_gateway.config import networks, settings
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.lifecycle import ACCEPTING
from usdt_gateway.money import format_units
from usdt_gateway.observability import log_keys, logger, order_keys
from usdt_gateway.records import (
    FINAL_STATUSES,
    HELD_STATUSES,
    Deposit,
    DepositStatus,
    LedgerEntry,
    Order,
    OrderDeposit,
    deposit_id,
)
from usdt_gateway.schemas import DepositListView, DepositRecordView, OrderStatus
from usdt_gateway.settlement import candidates
from usdt_gateway.transitions import Applied
from usdt_gateway.watchlist import WatchEntry

SEEN, CREDITED, UNMATCHED = DepositStatus.SEEN, DepositStatus.CREDITED, DepositStatus.UNMATCHED
IGNORED, DROPPED, REVERSED = DepositStatus.IGNORED, DepositStatus.DROPPED, DepositStatus.REVERSED
DISPUTED, UNVERIFIED = DepositStatus.DISPUTED, DepositStatus.UNVERIFIED
REJECTED = DepositStatus.REJECTED
BELOW_MINIMUM, REORG, NOT_ON_CHAIN = "below_minimum", "reorg", "not_on_chain"
HELD_REASONS = {DISPUTED: "second_source_disagrees", UNVERIFIED: "awaiting_second_source"}
BY_OPERATOR = "operator"  # confirmedBy of a held deposit the operator confirmed by hand
NAMES = {"#ds": "depositStatus"}
LEDGER_TTL_S = 30 * 86_400  # far beyond any network's maxReorgDepth; an operator's resume reads it too

# Where a transaction is on the chain now: its block number, or None when no block has it.
Locate = Callable[[str], int | None]


class Outcome(StrEnum):
    """What became of a final transfer (credit_final, and the scanner's count of them)."""

    CREDITED = "credited"  # counted in its order
    UNMATCHED = "unmatched"  # recorded; no open order takes it
    IGNORED = "ignored"  # below the network's minimum deposit: recorded only
    DISPUTED = "disputed"  # held: a second endpoint contradicts it
    UNVERIFIED = "unverified"  # held: awaiting a second source
    ALREADY = "already"  # recorded before (a re-scan, an overlapping range, a retry)


def _map_key(t: Transfer) -> str:
    return f"{t.txid}:{t.log_index}"


def _order_deposit(t: Transfer, *, final: bool) -> OrderDeposit:
    """How a deposit appears inside its order item (the order view lists these)."""
    return OrderDeposit(
        txid=t.txid,
        log_index=t.log_index,
        units=t.units,
        block_number=t.block_number,
        block_hash=t.block_hash,
        block_time=t.block_time,
        sender=t.sender,
        final=final,
    )


def _with_deposit(order: Order, key: str, deposit: OrderDeposit) -> Order:
    return replace(order, deposits={**order.deposits, key: deposit})


def _log_fields(t: Transfer) -> dict[str, Any]:
    return {
        "network": t.network,
        "deposit_id": deposit_id(t.network, t.txid, t.log_index),
        "txid": t.txid,
        "block": t.block_number,
        "units": t.units,
        "recipient": t.recipient,
    }


def _block_fields(t: Transfer) -> dict[str, Any]:
    return {"blockNumber": t.block_number, "blockHash": t.block_hash, "blockTime": t.block_time}


def _deposit(t: Transfer, status: DepositStatus, **extra: Any) -> Deposit:
    return Deposit(
        network=t.network,
        txid=t.txid,
        log_index=t.log_index,
        block_number=t.block_number,
        block_hash=t.block_hash,
        block_time=t.block_time,
        sender=t.sender,
        recipient=t.recipient,
        units=t.units,
        decimals=networks()[t.network].decimals,
        status=status,
        recorded_at=clock.now_ms(),
        **extra,
    )


def _final_deposit(
    t: Transfer,
    status: DepositStatus,
    merchant_id: str | None,
    order_pk: str | None,
    reason: str | None = None,
    **extra: Any,
) -> Deposit:
    # Final (and held) deposits are listed per merchant by block time (gsi1); `unmatched` is the filter.
    index = (
        {"index_pk": store.deposits_index_pk(merchant_id), "index_sk": f"{t.block_time:013d}#{t.txid}#{t.log_index}"}
        if merchant_id
        else {}
    )
    return _deposit(
        t,
        status,
        merchant_id=merchant_id,
        order_pk=order_pk,
        unmatched=status == UNMATCHED,
        reason=reason,
        **index,
        **extra,
    )


def _ledger_put(t: Transfer) -> dict[str, Any]:
    dep_pk, _ = store.deposit_key(t.network, t.txid, t.log_index)
    entry = LedgerEntry(t.network, t.block_number, t.txid, t.log_index, dep_pk, clock.now_ms() // 1000 + LEDGER_TTL_S)
    # none -> recorded; a re-recorded block position (after a reversal) is the same entry again.
    return store.put_part(
        entry.to_item(), condition="attribute_not_exists(pk) OR depositPk = :d", values={":d": dep_pk}
    )


def _ledger_delete(dep: Deposit, block_number: int | None = None) -> dict[str, Any]:
    number = dep.block_number if block_number is None else block_number
    return store.delete_part(*store.ledger_key(dep.network, number, dep.txid, dep.log_index))


def record_seen(t: Transfer, entry: WatchEntry) -> Applied:
    """A payment in a block that is not final yet: recorded as seen, its order -> confirming. Seen
    again in another block (a reorg re-included it), the record follows it: still one deposit."""
    dep = _deposit(
        t,
        SEEN,
        order_pk=entry.order_pk,
        merchant_id=entry.merchant_id,
        index_pk=store.seen_index_pk(t.network),
        index_sk=f"{t.block_number:012d}",
    )

    def change(order: Order) -> tuple[Order, list[dict[str, Any]]] | None:
        known = order.deposits.get(_map_key(t))
        if known is not None:
            if known.final or known.reversed or known.held or known.block_hash == t.block_hash:
                return None
            # seen -> seen, in the block that holds it now
            moved = store.set_part(
                *dep.key,
                set_values={**_block_fields(t), "gsi1sk": dep.index_sk},
                condition="#ds = :seen",
                values={":seen": SEEN},
                names=NAMES,
            )
            return _with_deposit(order, _map_key(t), _order_deposit(t, final=False)), [moved]
        if order.status not in ACCEPTING:
            return None  # a closed order's payment is decided when final (unmatched)
        # none (or dropped) -> seen
        claim = store.put_part(
            dep.to_item(),
            condition="attribute_not_exists(pk) OR #ds = :dropped",
            values={":dropped": DROPPED},
            names=NAMES,
        )
        return _with_deposit(order, _map_key(t), _order_deposit(t, final=False)), [claim]

    with log_keys(**order_keys(entry.order_pk)):
        applied = transitions.apply(entry.order_pk, change)
        if applied.order is not None:
            logger.info("deposit seen (not final yet)", extra=_log_fields(t))
    return applied


def credit_final(
    t: Transfer, entry: WatchEntry | None, owner: str | None, *, confirmed_by: str | None = None
) -> tuple[Outcome, Applied | None]:
    """A transfer in a final block: credit it to its order, or record it unmatched.
    Returns what became of it: credited, unmatched, or already (recorded before). Its lines carry
    the order's order_id and merchant_id (merchant_id alone for an unmatched one). A held deposit
    is credited to the order it was held for; `confirmed_by` (who confirmed it) is recorded then."""
    if entry is not None:
        with log_keys(**{"merchant_id": entry.merchant_id, **order_keys(entry.order_pk)}):
            credited = _credit_matched(t, entry)
        if credited is not None:
            return Outcome.CREDITED, credited
    item = store.get(*store.deposit_key(t.network, t.txid, t.log_index))
    existing = Deposit.from_item(item) if item else None
    values: dict[str, Any]
    release: list[dict[str, Any]] = []
    if existing and existing.status in FINAL_STATUSES:
        if existing.block_hash != t.block_hash:
            _move_final(existing, t)
        return Outcome.ALREADY, None
    if existing and existing.status == REJECTED:
        return Outcome.ALREADY, None  # the operator found it on no explorer: never counted (reject_held)
    if existing and existing.status in HELD_STATUSES:
        order_pk, owner = existing.order_pk, existing.merchant_id or owner
        # disputed/unverified -> credited (or unmatched): a second source, or the operator, confirmed it
        condition, values = "#ds = :held", {":held": existing.status}
        release = [store.delete_part(*_held_at(existing))]
        if existing.block_number != t.block_number:
            release.append(_ledger_delete(existing))
    elif existing and existing.status == SEEN:
        order_pk = existing.order_pk
        owner = existing.merchant_id or owner
        # seen -> credited (or unmatched)
        condition, values = "#ds = :seen", {":seen": SEEN}
    elif existing and existing.status == REVERSED and existing.order_pk:
        # A reversed payment the chain holds again: it counts again, towards the same order.
        order_pk, owner = existing.order_pk, existing.merchant_id or owner
        # reversed -> credited (or unmatched)
        condition, values = "#ds = :reversed", {":reversed": REVERSED}
    else:
        order_pk = entry.order_pk if entry else None
        # none (or dropped, or reversed while unmatched) -> credited (or unmatched)
        condition = "attribute_not_exists(pk) OR #ds = :dropped OR #ds = :reversed"
        values = {":dropped": DROPPED, ":reversed": REVERSED}
    confirmed_by = confirmed_by if release else None  # recorded for a deposit that was held
    with log_keys(**{"merchant_id": owner, **order_keys(order_pk)}):
        return _credit_final(
            t, order_pk, owner, condition, values, release=release, confirmed_by=confirmed_by, released=bool(release)
        )


def _unsettled(order: Order, t: Transfer) -> list[dict[str, Any]]:
    """Contract mode: the credited money is on the order's deposit address until a sweep takes it."""
    return candidates.credit_part(order, txid=t.txid, log_index=t.log_index, units=t.units, now=clock.now_ms())


def _credit_matched(t: Transfer, entry: WatchEntry) -> Applied | None:
    """The common case in one read: the order the watch list matched tells from its own deposits
    whether this one is new to it or was seen, and the deposit's conditional write checks it.
    None when it is anything else (recorded final before, reversed, the order closed, or seen
    for another order): credit_final's full path decides then."""
    dep = _final_deposit(t, CREDITED, entry.merchant_id, entry.order_pk)

    def change(order: Order) -> tuple[Order, list[dict[str, Any]]] | None:
        known = order.deposits.get(_map_key(t))
        values: dict[str, Any]
        if known is None and order.status in ACCEPTING:
            # none (or dropped, or reversed while unmatched) -> credited
            condition, values = (
                "attribute_not_exists(pk) OR #ds = :dropped OR #ds = :reversed",
                {":dropped": DROPPED, ":reversed": REVERSED},
            )
        elif known is not None and not known.final and not known.reversed and not known.held:
            # seen -> credited, for the order that saw it
            condition, values = "#ds = :seen AND orderPk = :order", {":seen": SEEN, ":order": entry.order_pk}
        else:
            return None
        return _with_deposit(order, _map_key(t), _order_deposit(t, final=True)), [
            store.put_part(dep.to_item(), condition=condition, values=values, names=NAMES),
            _ledger_put(t),
            *_unsettled(order, t),
        ]

    applied = transitions.apply(entry.order_pk, change)
    if applied.order is None or applied.conflict:
        return None
    logger.info("deposit credited", extra=_log_fields(t))
    return applied


def _released_event(owner: str | None, dep: Deposit, released: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """deposit.released, for a held deposit confirmed (where it went: `status`); nothing otherwise."""
    if not (released and owner):
        return [], []
    event_id, parts = events.for_deposit(
        owner,
        record_view(dep).model_dump(mode="json", by_alias=True),
        event_type=events.DEPOSIT_RELEASED,
        sequence=events.HOLD_ENDED_SEQUENCE,
    )
    return [event_id], parts


def _unmatched_parts(
    t: Transfer,
    owner: str | None,
    condition: str,
    values: dict[str, Any],
    *,
    release: list[dict[str, Any]],
    confirmed_by: str | None,
    released: bool,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The writes that record a final transfer unmatched, with its event (deposit.unmatched, or
    deposit.released for one that was held) and, in contract mode, its settlement candidate."""
    dep = _final_deposit(t, UNMATCHED, owner, None, confirmed_by=confirmed_by)
    event_ids: list[str] = []
    event_parts: list[dict[str, Any]] = []
    unsettled: list[dict[str, Any]] = []
    if owner:  # the merchant the address belongs to hears of it
        if released:
            event_ids, event_parts = _released_event(owner, dep, released)
        else:
            event_id, event_parts = events.for_deposit(owner, record_view(dep).model_dump(mode="json", by_alias=True))
            event_ids = [event_id]
        # Paid to a contract-mode deposit address, it is swept to the treasury all the same.
        unsettled = candidates.unmatched_part(
            t.network, owner, address=t.recipient, txid=t.txid, log_index=t.log_index, units=t.units, now=clock.now_ms()
        )
    parts = [
        store.put_part(dep.to_item(), condition=condition, values=values, names=NAMES),
        _ledger_put(t),
        *release,
        *event_parts,
        *unsettled,
    ]
    return event_ids, parts


def _past_grace(order: Order) -> bool:
    """The order's late-payment grace window is over: a payment counted now would not be its."""
    return clock.now_ms() > order.expires_at + settings().late_payment_grace_seconds * 1000


def _credit_final(
    t: Transfer,
    order_pk: str | None,
    owner: str | None,
    condition: str,
    values: dict[str, Any],
    *,
    release: list[dict[str, Any]],
    confirmed_by: str | None,
    released: bool = False,
) -> tuple[Outcome, Applied | None]:
    """`release`: what goes with the write (a held deposit's HELD# entry); `released`: the
    deposit was held. One released after its order closed is a late payment: counted (paid_late)
    inside the order's grace window, recorded unmatched (and out of the order's list) after it."""
    if order_pk:
        credited = _final_deposit(t, CREDITED, owner, order_pk, confirmed_by=confirmed_by)
        credited_ids, credited_events = _released_event(owner, credited, released)
        unmatched_ids: list[str] | None = None  # set when it goes unmatched (past the grace window)

        def change(order: Order) -> tuple[Order, list[dict[str, Any]]] | None:
            nonlocal unmatched_ids
            if _map_key(t) not in order.deposits and order.status not in ACCEPTING:
                return None
            late = released and order.closed_at is not None
            if late and _past_grace(order):
                unmatched_ids, parts = _unmatched_parts(
                    t, owner, condition, values, release=release, confirmed_by=confirmed_by, released=True
                )
                listed = {k: v for k, v in order.deposits.items() if k != _map_key(t)}
                return replace(order, deposits=listed), parts
            unmatched_ids = None
            return _with_deposit(order, _map_key(t), replace(_order_deposit(t, final=True), late=late)), [
                store.put_part(credited.to_item(), condition=condition, values=values, names=NAMES),
                _ledger_put(t),
                *release,
                *credited_events,
                *_unsettled(order, t),
            ]

        applied = transitions.apply(order_pk, change)
        if applied.conflict:
            return Outcome.ALREADY, None
        if applied.order is not None:
            if unmatched_ids is not None:
                logger.info("held deposit released after its order's grace window: unmatched", extra=_log_fields(t))
                outbox.publish(unmatched_ids)
                return Outcome.UNMATCHED, applied
            logger.info("deposit credited", extra=_log_fields(t))
            outbox.publish(credited_ids)
            return Outcome.CREDITED, applied
    event_ids, parts = _unmatched_parts(
        t, owner, condition, values, release=release, confirmed_by=confirmed_by, released=released
    )
    for attempt in range(3):
        try:
            store.transact(parts)
            break
        except store.TransactionConflict as conflict:
            if "ConditionalCheckFailed" in conflict.reasons:
                return Outcome.ALREADY, None  # recorded before
            if attempt == 2:
                raise
            # A concurrent write on one of its items (a create taking the address from the reuse
            # pool): written again.
    with log_keys(order_id=None, merchant_id=owner):
        logger.info("deposit unmatched: no open order takes it", extra=_log_fields(t))
        outbox.publish(event_ids)
    return Outcome.UNMATCHED, None


def record_ignored(t: Transfer, owner: str | None) -> Outcome:
    """A final transfer below the network's minimum deposit (dust, or address poisoning): kept
    for the deposits listing with its reason, and nothing else. `already` if recorded before."""
    dep = _final_deposit(t, IGNORED, owner, None, reason=BELOW_MINIMUM)
    try:
        # none (or dropped, or reversed) -> ignored
        store.transact(
            [
                store.put_part(
                    dep.to_item(),
                    condition="attribute_not_exists(pk) OR #ds = :dropped OR #ds = :rev",
                    values={":dropped": DROPPED, ":rev": REVERSED},
                    names=NAMES,
                ),
                _ledger_put(t),
            ]
        )
    except store.TransactionConflict:
        return Outcome.ALREADY
    with log_keys(order_id=None, merchant_id=owner):
        logger.info("deposit ignored: below the network's minimum", extra=_log_fields(t))
    return Outcome.IGNORED


def _held_at(dep: Deposit | Transfer) -> tuple[str, str]:
    return store.held_key(dep.network, dep.block_number, dep.txid, dep.log_index)


def hold(
    t: Transfer,
    entry: WatchEntry | None,
    owner: str | None,
    status: DepositStatus,
    *,
    source: str | None,
    detail: str = "",
) -> Outcome:
    """A final transfer held, not counted: `disputed` (a second endpoint contradicts it) or
    `unverified` (one endpoint, above the network's secondSourceAbove). Recorded for the order
    the watch list matched (or that saw it) and listed on it (`held`: pending while the order is
    open, nothing once it closes), listed for the merchant and in `admin status`, and the merchant
    told (deposit.held), all in one transaction. `already` when recorded before (held, final or
    rejected): a replay records nothing and tells nothing twice. An unverified deposit a second
    endpoint then contradicts becomes disputed (a second deposit.held)."""
    assert status in HELD_STATUSES
    item = store.get(*store.deposit_key(t.network, t.txid, t.log_index))
    existing = Deposit.from_item(item) if item else None
    order_pk, merchant_id = (entry.order_pk, entry.merchant_id) if entry else (None, owner)
    condition, values = "attribute_not_exists(pk)", {}
    if existing is not None:
        if existing.status not in (SEEN, DROPPED, REVERSED) and (existing.status, status) != (UNVERIFIED, DISPUTED):
            return Outcome.ALREADY
        if existing.status in (SEEN, REVERSED, UNVERIFIED) and existing.order_pk:
            order_pk, merchant_id = existing.order_pk, existing.merchant_id or merchant_id
        # seen/dropped/reversed (or unverified) -> disputed/unverified, from the status read
        condition, values = "#ds = :was", {":was": existing.status}
    dep = _final_deposit(
        t, status, merchant_id, order_pk, reason=HELD_REASONS[status], source=source, held_detail=detail or None
    )
    held_pk, held_sk = _held_at(t)
    parts = [
        store.put_part(dep.to_item(), condition=condition, values=values, names=NAMES if values else None),
        _ledger_put(t),
        store.put_part(
            {"pk": held_pk, "sk": held_sk, "depositPk": dep.key[0]},
            condition="attribute_not_exists(pk) OR depositPk = :d",
            values={":d": dep.key[0]},
        ),
    ]
    event_ids: list[str] = []
    if merchant_id:
        event_id, event_parts = events.for_deposit(
            merchant_id,
            record_view(dep).model_dump(mode="json", by_alias=True),
            event_type=events.DEPOSIT_HELD,
            sequence=events.HELD_SEQUENCE[status],
        )
        parts, event_ids = [*parts, *event_parts], [event_id]
    if not _hold_on_order(t, order_pk, parts):
        return Outcome.ALREADY
    outbox.publish(event_ids)
    fields = {**_log_fields(t), "source": source, "detail": detail}
    with log_keys(**{"merchant_id": merchant_id, **order_keys(order_pk)}):
        if status == DISPUTED:
            logger.error("deposit held: a second RPC endpoint contradicts it", extra=fields)
            return Outcome.DISPUTED
        logger.warning("deposit held: awaiting a second source (one RPC endpoint)", extra=fields)
    return Outcome.UNVERIFIED


def _hold_on_order(t: Transfer, order_pk: str | None, parts: list[dict[str, Any]]) -> bool:
    """Writes the hold, with the order's listing of it when the order lists it or takes
    deposits (a closed order outside its window is left as it is); False when it lost to a
    concurrent writer of the deposit (another scanner, a replay)."""
    if order_pk:

        def change(order: Order) -> tuple[Order, list[dict[str, Any]]] | None:
            if _map_key(t) not in order.deposits and order.status not in ACCEPTING:
                return None
            return _with_deposit(order, _map_key(t), replace(_order_deposit(t, final=False), held=True)), parts

        applied = transitions.apply(order_pk, change)
        if applied.conflict:
            return False
        if applied.order is not None:
            return True
    try:
        store.transact(parts)
    except store.TransactionConflict:
        return False
    return True


def held(network: str) -> list[Deposit]:
    """The network's held deposits (disputed, unverified), oldest block first."""
    pk, _ = store.held_key(network, 0, "", 0)
    # One read per held deposit: there are few, and the scanner needs no BatchGetItem.
    items = [store.get(str(i["depositPk"]), "DEP") for i in store.query_partition(pk, sk_from="0")]
    deps = [Deposit.from_item(item) for item in items if item]
    return [d for d in deps if d.status in HELD_STATUSES]


def transfer_of(dep: Deposit) -> Transfer:
    """The transfer a recorded deposit was made from (as the chain reader reported it)."""
    return _transfer(dep)


def confirm_held(network: str, txid: str, log_index: int) -> dict[str, Any]:
    """The operator confirms a held deposit by hand, after checking it on an explorer: it is
    credited as the scanner credits, through credit_final from its held status (the write is
    conditional on it: a concurrent credit or clearing wins, and this reports it)."""
    item = store.get(*store.deposit_key(network, txid, log_index))
    dep = Deposit.from_item(item) if item else None
    if dep is None:
        raise NotFound(f"no deposit '{deposit_id(network, txid, log_index)}'", code="DEPOSIT_NOT_FOUND")
    if dep.status not in HELD_STATUSES:
        raise Conflict(
            f"deposit '{dep.deposit_id}' is {dep.status.value}: only a held one (disputed, unverified) is "
            "confirmed by hand",
            code="DEPOSIT_NOT_HELD",
        )
    outcome, _ = credit_final(_transfer(dep), None, None, confirmed_by=BY_OPERATOR)
    if outcome == Outcome.ALREADY:
        raise Conflict(f"deposit '{dep.deposit_id}' changed meanwhile; look at it again", code="DEPOSIT_NOT_HELD")
    logger.warning(
        "held deposit confirmed by the operator", extra={**_log_fields(_transfer(dep)), "was": dep.status.value}
    )
    return {
        "depositId": dep.deposit_id,
        "was": dep.status.value,
        "status": outcome.value,
        "orderId": dep.order_pk.split("#", 2)[2] if dep.order_pk and outcome == Outcome.CREDITED else None,
    }


def reject_held(network: str, txid: str, log_index: int) -> dict[str, Any]:
    """The operator closes a held deposit as rejected, having found on an explorer that its
    transaction does not exist: never counted, listed `rejected` for the merchant, who is told
    (deposit.rejected); its order is recomputed without it.

    It stays rejected for good, whatever an endpoint shows of it later: every write that records
    or credits a deposit is conditional on its status (none, seen, dropped, reversed, held), and
    `rejected` is none of them, so a replay of the forged log neither holds it again nor
    credits it. No genuine payment is lost so: a txid is the hash of a signed transaction, so a
    transaction that does not exist under it now cannot appear under it later."""
    item = store.get(*store.deposit_key(network, txid, log_index))
    dep = Deposit.from_item(item) if item else None
    if dep is None:
        raise NotFound(f"no deposit '{deposit_id(network, txid, log_index)}'", code="DEPOSIT_NOT_FOUND")
    if dep.status not in HELD_STATUSES:
        raise Conflict(
            f"deposit '{dep.deposit_id}' is {dep.status.value}: only a held one (disputed, unverified) is "
            "rejected by hand",
            code="DEPOSIT_NOT_HELD",
        )
    rejected = replace(dep, status=REJECTED, reason=NOT_ON_CHAIN, unmatched=False)
    # disputed/unverified -> rejected, from the status read: a concurrent confirmation, reorg
    # clearing or second operator wins, and this one is refused. It stays in the merchant's listing.
    mark = store.set_part(
        *dep.key,
        set_values={
            "depositStatus": REJECTED,
            "reason": NOT_ON_CHAIN,
            "unmatched": False,
            "rejectedAt": clock.now_ms(),
        },
        condition="#ds = :held",
        values={":held": dep.status},
        names=NAMES,
    )
    if not _end_hold(dep, mark, dep.block_number, rejected, events.DEPOSIT_REJECTED, reverted=False):
        raise Conflict(f"deposit '{dep.deposit_id}' changed meanwhile; look at it again", code="DEPOSIT_NOT_HELD")
    logger.warning("held deposit rejected by the operator", extra={**_log_fields(_transfer(dep)), "was": dep.status})
    return {"depositId": dep.deposit_id, "was": dep.status.value, "status": REJECTED.value}


def _end_hold(
    dep: Deposit, mark: dict[str, Any], ledger_block: int, view: Deposit, event_type: str, *, reverted: bool
) -> bool:
    """A hold that ends without a credit: `mark` (the deposit's conditional write), its ledger
    and HELD# entries gone, the merchant told (`event_type`, showing `view`), and its order, if
    it lists it, recomputed without it. False when `mark`'s condition failed (changed meanwhile)."""
    parts = [mark, _ledger_delete(dep, ledger_block), store.delete_part(*_held_at(dep))]
    event_ids: list[str] = []
    if dep.merchant_id:
        event_id, event_parts = events.for_deposit(
            dep.merchant_id,
            record_view(view).model_dump(mode="json", by_alias=True),
            event_type=event_type,
            sequence=events.HOLD_ENDED_SEQUENCE,
        )
        parts, event_ids = [*parts, *event_parts], [event_id]
    if dep.order_pk and dep.order_key in _order_deposits(dep.order_pk):

        def change(order: Order) -> tuple[Order, list[dict[str, Any]]]:
            deposits = {k: v for k, v in order.deposits.items() if k != dep.order_key}
            return replace(order, deposits=deposits), parts

        if transitions.apply(dep.order_pk, change, reverted=reverted).order is None:
            return False
    else:
        try:
            store.transact(parts)
        except store.TransactionConflict:
            return False
    outbox.publish(event_ids)
    return True


def _clear_held(dep: Deposit, ledger_block: int) -> None:
    """A held deposit whose transaction no block holds any more: held -> dropped, out of the
    listings (the merchant told: deposit.reversed); an order that saw it (confirming) goes back
    to the status it had without it."""
    clear = store.set_part(
        *dep.key,
        set_values={"depositStatus": DROPPED, "droppedAt": clock.now_ms(), "reason": REORG},
        condition="#ds = :st",
        values={":st": dep.status},
        remove=("gsi1pk", "gsi1sk"),
        names=NAMES,
    )
    view = replace(dep, status=REVERSED, reason=REORG, unmatched=False)
    if not _end_hold(dep, clear, ledger_block, view, events.DEPOSIT_REVERSED, reverted=True):
        return  # confirmed or cleared meanwhile
    logger.warning(
        "held deposit cleared: a reorg removed it",
        extra={"network": dep.network, "deposit_id": dep.deposit_id, "txid": dep.txid, "block": ledger_block},
    )


def _order_deposits(order_pk: str) -> dict[str, Any]:
    item = store.get(order_pk, "ORDER")
    return dict(item.get("deposits") or {}) if item else {}


def _move_final(existing: Deposit, t: Transfer) -> None:
    """A final deposit found again in another final block (a deep reorg re-included it): the
    record, its ledger entry and its order's view follow it; the money never left."""
    moved = store.set_part(
        *existing.key,
        set_values=_block_fields(t),
        # credited/unmatched/ignored -> the same status, in its new block
        condition="#ds = :st",
        values={":st": existing.status},
        names=NAMES,
    )
    ledger = [_ledger_delete(existing), _ledger_put(t)]
    if existing.status != CREDITED:
        store.transact([moved, *ledger])
        return
    assert existing.order_pk is not None  # a credited deposit names its order

    def change(order: Order) -> tuple[Order, list[dict[str, Any]]]:
        listed, found = order.deposits.get(_map_key(t)), _order_deposit(t, final=True)
        if listed is not None:  # its flags (reversed, attached) stay
            found = replace(found, reversed=listed.reversed, attached=listed.attached)
        return _with_deposit(order, _map_key(t), found), [moved, *ledger]

    transitions.apply(existing.order_pk, change)
    logger.info("final deposit re-included in another block", extra=_log_fields(t))


def drop_reorged(network: str, final_block: int, found: Collection[tuple[str, int]], locate: Locate) -> list[Applied]:
    """Seen deposits at or below the final cursor that the final scan did not find. Only money
    that is really gone is dropped: a transaction a reorg moved to a later block is still on its
    way (the seen pass follows it there); one no block has any more is dropped, and its order
    goes back to the status it had without it. `found`: the (txid, n) the final range holds."""
    dropped = []
    for hit in map(Deposit.from_item, store.query_index_all(store.seen_index_pk(network), sk_to=f"{final_block:012d}")):
        if (hit.txid, hit.log_index) in found:
            continue  # credited by this pass
        item = store.get(*hit.key)
        dep = Deposit.from_item(item) if item else None
        if dep is None or dep.status != SEEN or dep.block_number > final_block:
            continue  # credited meanwhile, or followed to a later block (the index lags the table)
        where = locate(dep.txid)
        if where is not None:
            if where <= final_block:
                raise ChainMoved(f"{dep.txid} is in block {where}, which the final range read did not show")
            continue  # re-included above the final blocks: not gone
        applied = _drop(network, dep)
        if applied.order is not None:
            dropped.append(applied)
    return dropped


def _drop(network: str, dep: Deposit) -> Applied:
    assert dep.order_pk is not None  # a seen deposit names its order
    order_pk = dep.order_pk

    def change(order: Order) -> tuple[Order, list[dict[str, Any]]]:
        deposits = {k: v for k, v in order.deposits.items() if k != dep.order_key}
        # seen -> dropped
        drop = store.set_part(
            *dep.key,
            set_values={"depositStatus": DROPPED, "droppedAt": clock.now_ms()},
            condition="#ds = :seen",
            values={":seen": SEEN},
            remove=("gsi1pk", "gsi1sk"),
            names=NAMES,
        )
        return replace(order, deposits=deposits), [drop]

    applied = transitions.apply(order_pk, change, reverted=True)
    if applied.order is not None:
        with log_keys(**order_keys(order_pk)):
            logger.warning(
                "deposit dropped: a reorg removed it",
                extra={"network": network, "deposit_id": dep.deposit_id, "txid": dep.txid, "block": dep.block_number},
            )
    return applied


def reverse_vanished(
    network: str, from_block: int, to_block: int, found: Collection[tuple[str, int]], locate: Locate
) -> tuple[list[str], int | None]:
    """After a reorg deeper than the finality policy, for the re-read range [from, to]: every
    deposit recorded final there that the chain no longer has is reversed. One re-included in a
    later block is followed there (its ledger entry moves), and checked again when that block is
    read. Returns the reversed deposit ids and the highest block a deposit was followed to."""
    pk, _ = store.ledger_key(network, 0, "", 0)
    reversed_ids: list[str] = []
    followed: int | None = None
    for entry in map(
        LedgerEntry.from_item, store.query_between(pk, sk_from=f"{from_block:012d}", sk_to=f"{to_block:012d}~")
    ):
        item = store.get(entry.deposit_pk, "DEP")
        dep = Deposit.from_item(item) if item else None
        if dep is None or dep.status not in FINAL_STATUSES | HELD_STATUSES:
            continue
        if (dep.txid, dep.log_index) in found:
            continue
        where = locate(dep.txid)
        if where is not None:
            if where <= to_block:
                raise ChainMoved(f"{dep.txid} is in block {where}, which the final range read did not show")
            # Followed to a later block: its ledger entry moves there, to be checked when it is read.
            store.transact([_ledger_delete(dep, entry.block_number), _ledger_put(_transfer(dep, block_number=where))])
            followed = max(followed or 0, where)
            continue
        if dep.status in HELD_STATUSES:
            _clear_held(dep, entry.block_number)  # never counted: nothing to reverse
        elif _reverse(dep, entry.block_number):
            reversed_ids.append(dep.deposit_id)
    return reversed_ids, followed


def _transfer(dep: Deposit, *, block_number: int | None = None) -> Transfer:
    return Transfer(
        network=dep.network,
        txid=dep.txid,
        log_index=dep.log_index,
        block_number=dep.block_number if block_number is None else block_number,
        block_hash=dep.block_hash,
        sender=dep.sender,
        recipient=dep.recipient,
        units=dep.units,
        block_time=dep.block_time,
    )


def _reverse(dep: Deposit, ledger_block: int) -> bool:
    """A final deposit no block holds any more: marked reversed, its order recomputed without
    it (order.payment_reversed), or, unmatched, the merchant told (deposit.reversed). In
    contract mode its settlement candidate goes in the same transaction (candidates.reversal_part);
    a candidate that a sweep claims or releases meanwhile fails it, and it is made again."""
    for _ in range(transitions.MAX_ATTEMPTS):
        done = _reverse_once(dep, ledger_block)
        if done is not None:
            return done
    raise RuntimeError(f"the settlement candidate of {dep.deposit_id} kept changing under the reversal")


def _reverse_once(dep: Deposit, ledger_block: int) -> bool | None:
    """One attempt of _reverse: None when only the candidate's condition failed."""
    status = dep.status
    # credited/unmatched/ignored -> reversed
    mark = store.set_part(
        *dep.key,
        set_values={
            "depositStatus": REVERSED,
            "reason": REORG,
            "unmatched": False,
            "reversedAt": clock.now_ms(),
            "reversedFrom": status,
        },
        condition="#ds = :st",
        values={":st": status},
        names=NAMES,
    )
    unsettled = (
        candidates.reversal_part(
            dep.network,
            dep.merchant_id,
            address=dep.recipient,
            txid=dep.txid,
            log_index=dep.log_index,
            now=clock.now_ms(),
        )
        if dep.merchant_id and status != IGNORED
        else []
    )
    parts = [mark, _ledger_delete(dep, ledger_block), *unsettled]

    def lost(reasons: list[str]) -> bool | None:
        """False when the deposit's own condition failed (another run reversed it); None when
        only its candidate's did (claimed, released or swept since it was read)."""
        return None if unsettled and reasons[0] != "ConditionalCheckFailed" else False

    view = record_view(replace(dep, status=REVERSED, reason=REORG, unmatched=False))
    with log_keys(**{"merchant_id": dep.merchant_id, **order_keys(dep.order_pk)}):
        if status == CREDITED and dep.order_pk:

            def change(order: Order) -> tuple[Order, list[dict[str, Any]]]:
                listed = order.deposits.get(dep.order_key)
                if listed is None:
                    return order, parts
                return _with_deposit(order, dep.order_key, replace(listed, reversed=True)), parts

            applied = transitions.apply(dep.order_pk, change, reversal=view.model_dump(mode="json", by_alias=True))
            if applied.conflict:
                return lost(applied.conflict)
        else:
            event_ids: list[str] = []
            if status == UNMATCHED and dep.merchant_id:
                event_id, event_parts = events.for_deposit(
                    dep.merchant_id, view.model_dump(mode="json", by_alias=True), event_type=events.DEPOSIT_REVERSED
                )
                parts, event_ids = [*parts, *event_parts], [event_id]
            try:
                store.transact(parts)
            except store.TransactionConflict as conflict:
                return lost(conflict.reasons)
            outbox.publish(event_ids)
        logger.error(
            "final deposit reversed: a reorg deeper than the finality policy removed it",
            extra={
                "network": dep.network,
                "deposit_id": dep.deposit_id,
                "txid": dep.txid,
                "block": ledger_block,
                "units": dep.units,
                "was": status.value,
            },
        )
    return True


def parse_deposit_id(value: str) -> tuple[str, str, int]:
    network, _, rest = value.partition(":")
    txid, _, index = rest.rpartition(":")
    if not (network and txid and index.isdigit()) or len(value) > 200:
        raise InvalidRequest("depositId must look like <network>:<txid>:<logIndex>", code="INVALID_DEPOSIT_ID")
    return network, txid, int(index)


def attach(merchant_id: str, deposit_id_: str, order_id: str) -> Order:
    """The merchant assigns one of its unmatched deposits to one of its orders."""
    network, txid, index = parse_deposit_id(deposit_id_)
    dep_pk, dep_sk = store.deposit_key(network, txid, index)
    item = store.get(dep_pk, dep_sk)
    dep = Deposit.from_item(item) if item else None
    if dep is None or dep.merchant_id != merchant_id:
        raise NotFound(f"no deposit '{deposit_id_}'", code="DEPOSIT_NOT_FOUND")
    if dep.status != UNMATCHED:
        why = {
            CREDITED: "is already credited to an order",
            IGNORED: "is below the network's minimum deposit",
            REVERSED: "was reversed: no block holds it any more",
            DISPUTED: "is held: a second RPC endpoint contradicts it",
            UNVERIFIED: "is held until a second source confirms it",
        }.get(dep.status, "is not final yet")
        raise Conflict(f"deposit '{deposit_id_}' {why}", code="DEPOSIT_NOT_UNMATCHED")
    order_pk, _ = store.order_key(merchant_id, order_id)
    transfer = _transfer(dep)

    def change(order: Order) -> tuple[Order, list[dict[str, Any]]]:
        if order.network != network:
            raise Conflict(f"the deposit is on {network}, the order on {order.network}", code="NETWORK_MISMATCH")
        if order.status == OrderStatus.CANCELLED:
            raise Conflict(f"order '{order_id}' is cancelled", code="ORDER_CANCELLED")
        attached = replace(_order_deposit(transfer, final=True), attached=True)
        # unmatched -> credited (attached by the merchant)
        claim = store.set_part(
            dep_pk,
            dep_sk,
            set_values={
                "depositStatus": CREDITED,
                "orderPk": order_pk,
                "unmatched": False,
                "attachedAt": clock.now_ms(),
            },
            condition="#ds = :unmatched AND merchantId = :m",
            values={":unmatched": UNMATCHED, ":m": merchant_id},
            names=NAMES,
        )
        return _with_deposit(order, _map_key(transfer), attached), [claim]

    try:
        applied = transitions.apply(order_pk, change)
    except LookupError as exc:
        raise NotFound(f"no order with orderId '{order_id}'", code="ORDER_NOT_FOUND") from exc
    if applied.order is None:
        raise Conflict(f"deposit '{deposit_id_}' was attached meanwhile", code="DEPOSIT_NOT_UNMATCHED")
    with log_keys(**order_keys(order_pk)):
        logger.info("deposit attached by the merchant", extra=_log_fields(transfer))
    return applied.order


def list_deposits(merchant_id: str, *, unmatched_only: bool, limit: int, cursor: str | None) -> DepositListView:
    filters = {"unmatched": True} if unmatched_only else None
    items, next_cursor = store.query_index(
        store.deposits_index_pk(merchant_id), sk_from="0", sk_to="~", limit=limit, cursor=cursor, filters=filters
    )
    return DepositListView(deposits=[record_view(Deposit.from_item(i)) for i in items], next_cursor=next_cursor)


def record_view(dep: Deposit) -> DepositRecordView:
    """A final deposit as GET /v1/deposits lists it (and deposit.unmatched / deposit.reversed
    events carry it)."""
    return DepositRecordView(
        deposit_id=dep.deposit_id,
        network=dep.network,
        txid=dep.txid,
        log_index=dep.log_index,
        block_number=dep.block_number,
        block_time=dep.block_time,
        sender=dep.sender,
        recipient=dep.recipient,
        amount=format_units(dep.units, dep.decimals),
        unmatched=bool(dep.unmatched),
        status=dep.status.value,
        reason=dep.reason,
        order_id=dep.order_pk.split("#", 2)[2] if dep.order_pk else None,
    )
