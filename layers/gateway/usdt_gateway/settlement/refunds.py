"""Refunds: money an order did not take, sent from its contract-mode deposit address to an address
the merchant names, with the factory owner's EIP-712 signature (which the gateway cannot make).

A refund's life (REFUND# item, settlement/refund_records.py):

    create     awaiting_signature: the typed data to sign (refund_signing.py); the address's
               SWEEP# candidates held until the deadline (24 h), the order's refundingId set
    signature  awaiting_signature -> submitted: the signature checked offline (coincurve) to be
               the owner's over the digest; the holds kept until the refund closes
    relayer    submitted -> completed | failed: sent and carried to finality by the settlement
               relayer like a sweep (settlement/relayer.py); closed in one transaction with the
               holds released (the refunded units taken off them), the order's funds and the
               refund.completed / refund.failed event
    deadline   awaiting_signature -> expired: no signature came in time; its holds lapsed already

What is refundable is read from the records: the address's candidates are the money on it (a
sweep moves all of it, so none may be claimed), of which the order keeps what it took (the amount
of a confirmed order; all of an order that may still be paid in full, until its watch window
ends); the rest is refundable: an overpayment, a closed order's partial payment, late and
unmatched payments. Completed refunds took their units off the candidates, so they are not
counted again, and one refund at a time is made per order.

A sweep's claim and a refund's holds exclude each other: the claim is conditional on each
candidate it takes and each other candidate of those addresses being unheld, a refund's holds on
each candidate being unclaimed. A candidate credited after the refund read the address is not
held by it; if a sweep claims such a one before the refund's holds commit, the refund sees the
claim when it reads the address again, and undoes itself (409): never do both win.

On Tron the refund is the same (the same contract, built for TVM): its addresses are kept and
shown in base58 (`T...`), and the typed data holds their 20-byte bodies (refund_signing.py); the
Tron relayer sends it (settlement/tron_relayer.py) and closes it here, as the EVM one does.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from usdt_gateway import clock, events, outbox, store
from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.lifecycle import ACCEPTING
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.money import format_units, parse_amount, to_base_units
from usdt_gateway.observability import logger
from usdt_gateway.records import Order
from usdt_gateway.schemas import (
    OrderStatus,
    RefundListView,
    RefundRequest,
    RefundStatus,
    RefundTypedData,
    RefundView,
)
from usdt_gateway.settlement import candidates
from usdt_gateway.settlement.candidates import UNHELD, Candidate
from usdt_gateway.settlement.records import RefundCall
from usdt_gateway.settlement.refund_records import Refund
from usdt_gateway.settlement.refund_signing import (
    InvalidSignature,
    check_signature,
    normalize_signature,
    typed_address,
)

REFUND_DEADLINE_S = 24 * 3600  # the owner's signature is void this long after the refund is made
# Candidates one refund may hold: its close is one transaction of at most 100 items (the refund,
# the order, the event and its outbox marker, the relayer's state, and these).
MAX_HELD = 90
ATTEMPTS = 4  # a refund's write recomputed from fresh reads when the order or its address moved
TREASURY_HINT = "refund it from the merchant's treasury"
ZERO_ADDRESS = "0x" + "00" * 20


def new_refund_id() -> str:
    return f"rfd_{secrets.token_hex(12)}"


def new_nonce() -> int:
    """A random 128-bit refund nonce: the factory runs a nonce once, and no two refunds of a
    factory draw the same one (the chance is 2^-128 per pair)."""
    return secrets.randbits(128)


def _not_available(message: str) -> Conflict:
    return Conflict(message, code="REFUND_NOT_AVAILABLE")


# -- what is refundable --------------------------------------------------------------------------


@dataclass(frozen=True)
class Refundable:
    units: int
    at_address: tuple[Candidate, ...]  # every candidate of the deposit address, as read


def accepting(order: Order, now: int) -> bool:
    """The order may still be paid in full: it takes deposits, and its watch window is open."""
    return order.status in ACCEPTING and now <= (order.watch_until or order.expires_at)


def taken_units(order: Order, now: int) -> int:
    """What the order keeps of the money credited to it: a confirmed order its amount (all it
    was paid within the tolerance), an order that may still be paid in full all of it, any
    other (closed unpaid, cancelled) nothing."""
    if order.status is OrderStatus.CONFIRMED:
        return order.paid_units - order.excess_units
    return order.paid_units if accepting(order, now) else 0


def refundable(order: Order, at_address: Sequence[Candidate], *, now: int) -> Refundable:
    """The units a new refund of `order` may send now: the money on its deposit address (its
    candidates) less what the order took and is still there. Conflict (REFUND_NOT_AVAILABLE)
    when a sweep carries the address's money, or nothing is left to refund."""
    if order.sweeping_id is not None or any(c.sweep_id for c in at_address):
        raise _not_available(
            f"a sweep is carrying the money of deposit address {order.address} to the treasury; once it "
            f"is final, {TREASURY_HINT}"
        )
    on_address = sum(c.units for c in at_address)
    taken = taken_units(order, now)
    # A sweep takes the whole address: what it swept of the order came out of what it took first.
    kept = min(on_address, max(0, taken - order.swept_units))
    units = on_address - kept
    if units > 0:
        if len(at_address) > MAX_HELD:
            raise _not_available(
                f"{len(at_address)} deposits wait on deposit address {order.address}, more than one refund "
                f"can hold ({MAX_HELD}); once they are swept, {TREASURY_HINT}"
            )
        return Refundable(units, tuple(at_address))
    if accepting(order, now) and order.paid_units > 0:
        raise _not_available(
            f"order '{order.order_id}' is {order.status.value} and may still be paid in full until its "
            f"watch window ends ({order.watch_until} ms): its money is refundable after that"
        )
    if order.paid_units - taken > order.refunded_paid_units:
        raise _not_available(
            f"nothing refundable is left on deposit address {order.address}: what the order did not take "
            f"was swept to the treasury; {TREASURY_HINT}"
        )
    raise _not_available(
        f"nothing refundable is on deposit address {order.address}: order '{order.order_id}' took all it was "
        f"credited, and no other money waits there (money already swept is in the treasury: {TREASURY_HINT})"
    )


# -- reads ---------------------------------------------------------------------------------------


def _order(merchant_id: str, order_id: str) -> Order:
    item = store.get(*store.order_key(merchant_id, order_id))
    if item is None:
        raise NotFound(f"no order with orderId '{order_id}'", code="ORDER_NOT_FOUND")
    return Order.from_item(item)


def read(merchant_id: str, order_id: str, refund_id: str) -> Refund | None:
    item = store.get(*store.refund_key(merchant_id, order_id, refund_id))
    return None if item is None else Refund.from_item(item)


def _refund(merchant_id: str, order_id: str, refund_id: str) -> Refund:
    refund = read(merchant_id, order_id, refund_id)
    if refund is None:
        raise NotFound(f"no refund '{refund_id}' of order '{order_id}'", code="REFUND_NOT_FOUND")
    return refund


def _stored(address: str) -> str:
    """An address as a refund keeps it: lowercase 0x hex on EVM networks, base58 on Tron (where
    case is part of the address)."""
    return address.lower() if address.startswith("0x") else normalize_tron_address(address)


def _owner(order: Order) -> str:
    """The owner of the order's factory, as `set-contract` stored it after checking it on chain."""
    item = store.get(*store.contract_config_key(order.merchant_id, order.network))
    cfg = ContractConfig.from_item(item) if item else None
    if cfg is None or order.deposit_factory is None or _stored(cfg.factory) != _stored(order.deposit_factory):
        raise _not_available(
            f"the factory of order '{order.order_id}' is no longer the network's configured one, so its owner "
            f"is not on record; refund with the factory's refund() directly, or {TREASURY_HINT}"
        )
    return _stored(cfg.owner)


# -- views ---------------------------------------------------------------------------------------


def view(refund: Refund, *, now: int | None = None) -> RefundView:
    """The Refund object of the API; one whose signature can no longer come reads `expired`."""
    message = refund.message()
    status = RefundStatus.EXPIRED if refund.lapsed(clock.now_ms() if now is None else now) else refund.status
    return RefundView(
        refund_id=refund.refund_id,
        order_id=refund.order_id,
        network=refund.network,
        status=status,
        to=refund.to,
        amount=format_units(refund.units, refund.decimals),
        deposit_address=refund.deposit_address,
        factory=refund.factory,
        token_contract=refund.token,
        owner=refund.owner,
        deadline=refund.deadline,
        digest="0x" + message.digest().hex(),
        typed_data=RefundTypedData.model_validate(message.typed_data()),
        tx_hash=refund.tx_hash,
        gas_paid=None if refund.gas_paid is None else str(refund.gas_paid),
        reason=refund.reason,
        created_at=refund.created_at,
        updated_at=refund.updated_at,
    )


def event_data(refund: Refund) -> dict[str, Any]:
    """What refund.completed and refund.failed carry: the Refund object without typedData."""
    return view(refund).model_dump(mode="json", by_alias=True, exclude={"typed_data"})


def list_refunds(merchant_id: str, order_id: str) -> RefundListView:
    _order(merchant_id, order_id)  # an unknown order is a 404, not an empty list
    pk, _ = store.refund_key(merchant_id, order_id, "")
    refunds = sorted(
        (Refund.from_item(i) for i in store.query_partition(pk, sk_from=" ")),
        key=lambda r: (r.created_at, r.refund_id),
        reverse=True,
    )
    now = clock.now_ms()
    return RefundListView(items=[view(r, now=now) for r in refunds])


def get_refund(merchant_id: str, order_id: str, refund_id: str) -> RefundView:
    return view(_refund(merchant_id, order_id, refund_id))


# -- holds ---------------------------------------------------------------------------------------


def _release(refund_id: str, held: Sequence[Candidate]) -> list[dict[str, Any]]:
    # held by this refund -> free for the next sweep
    return [
        store.update_part(
            *c.key,
            expression="REMOVE refundId, holdUntil",
            condition="refundId = :rid",
            values={":rid": refund_id},
        )
        for c in held
    ]


def _held_by(refund: Refund) -> list[Candidate]:
    at_address = candidates.at_address(refund.network, refund.merchant_id, _checksummed(refund.deposit_address))
    return [c for c in at_address if c.refund_id == refund.refund_id]


def _checksummed(address: str) -> str:
    """Candidates are keyed by the address as the order has it (EIP-55; base58 on Tron)."""
    return normalize_evm_address(address) if address.startswith("0x") else address


# -- create --------------------------------------------------------------------------------------


def _recipient(text: str, *, tron: bool) -> str:
    """The recipient as the refund keeps it: an EVM address of an EVM order, a base58 `T...`
    address of a Tron order."""
    try:
        if tron:
            if not text.startswith("T"):
                raise ValueError('a Tron order is refunded to a base58 Tron address ("T...")')
            address = normalize_tron_address(text)
        else:
            if not text.startswith("0x"):
                raise ValueError("an EVM order is refunded to an EVM address (0x and 40 hex digits)")
            address = normalize_evm_address(text).lower()
    except ValueError as exc:
        raise InvalidRequest(f"to: {exc}", code="INVALID_ADDRESS") from exc
    if typed_address(address) == ZERO_ADDRESS:
        raise InvalidRequest("to is the zero address: the money would be lost", code="INVALID_ADDRESS")
    return address


def _units(text: str | None, decimals: int, refundable_units: int) -> int:
    if text is None:
        return refundable_units
    try:
        units = to_base_units(parse_amount(text), decimals)
    except ValueError as exc:
        raise InvalidRequest(f"amount {exc}", code="INVALID_AMOUNT") from exc
    if units > refundable_units:
        raise InvalidRequest(
            f"amount {text} is above what is refundable now, {format_units(refundable_units, decimals)}",
            code="AMOUNT_EXCEEDS_REFUNDABLE",
        )
    return units


def _in_progress(order: Order, now: int) -> bool:
    """Whether the order has a refund awaiting its signature or submitted (REFUND_IN_PROGRESS);
    one whose deadline passed unsigned is expired here, and False returned to read again."""
    if order.refunding_id is None:
        return False
    current = read(order.merchant_id, order.order_id, order.refunding_id)
    if current is not None and current.lapsed(now):
        expire(current)
        return False
    raise Conflict(
        f"refund '{order.refunding_id}' of order '{order.order_id}' is awaiting its signature or being sent; "
        "a new one can be made once it is closed",
        code="REFUND_IN_PROGRESS",
    )


def _create_parts(refund: Refund, order: Order, at_address: Sequence[Candidate], now: int) -> list[dict[str, Any]]:
    parts = [
        # none -> awaiting_signature
        store.put_part(refund.to_item()),
        # no refund in progress, no sweep carrying its money, no state change since read -> this refund's
        store.update_part(
            order.pk,
            "ORDER",
            expression="SET refundingId = :rid",
            condition="attribute_not_exists(refundingId) AND attribute_not_exists(sweepingId) AND #v = :v",
            values={":rid": refund.refund_id, ":v": order.version},
            names={"#v": "version"},
        ),
    ]
    for c in at_address:
        # unclaimed, unheld (or its hold lapsed), its units as read -> held by this refund until its deadline
        parts.append(
            store.update_part(
                *c.key,
                expression="SET refundId = :rid, holdUntil = :until",
                condition=f"attribute_exists(pk) AND attribute_not_exists(sweepId) AND units = :u AND {UNHELD}",
                values={":rid": refund.refund_id, ":until": refund.deadline_ms, ":u": c.units, ":now": now},
            )
        )
    return parts


def create_refund(merchant_id: str, order_id: str, request: RefundRequest) -> RefundView:
    """A new refund awaiting the owner's signature, the address's money held for it."""
    for _ in range(ATTEMPTS):
        now = clock.now_ms()
        order = _order(merchant_id, order_id)
        if order.deposit_salt is None or order.deposit_factory is None:
            raise _not_available(
                f"order '{order_id}' is not in contract mode: its money went to the merchant's own wallet, "
                "refund it from there"
            )
        to = _recipient(request.to, tron=not order.address.startswith("0x"))
        if _in_progress(order, now):
            continue
        if to == _stored(order.address):
            raise InvalidRequest("to is the order's own deposit address", code="INVALID_ADDRESS")
        owner = _owner(order)
        available = refundable(order, candidates.at_address(order.network, merchant_id, order.address), now=now)
        units = _units(request.amount, order.decimals, available.units)
        refund = Refund(
            refund_id=new_refund_id(),
            merchant_id=merchant_id,
            order_id=order_id,
            network=order.network,
            chain_id=order.chain_id,
            status=RefundStatus.AWAITING_SIGNATURE,
            to=to,
            units=units,
            decimals=order.decimals,
            deposit_address=_stored(order.address),
            factory=_stored(order.deposit_factory),
            token=_stored(order.token_contract),
            owner=owner,
            salt=order.deposit_salt.lower(),
            nonce=new_nonce(),
            deadline=now // 1000 + REFUND_DEADLINE_S,
            created_at=now,
            updated_at=now,
        )
        try:
            store.transact(_create_parts(refund, order, available.at_address, now))
        except store.TransactionConflict:
            continue  # the order or its address moved since read: decide again from fresh reads
        _undo_if_claimed(refund)
        logger.info(
            "refund created, awaiting the owner's signature",
            extra={"refundId": refund.refund_id, "units": units, "held": len(available.at_address)},
        )
        return view(refund, now=now)
    raise Conflict(
        f"the money of order '{order_id}' kept moving while the refund was made; try again",
        code="REFUND_NOT_AVAILABLE",
    )


def _undo_if_claimed(refund: Refund) -> None:
    """A sweep may have claimed money credited to the address after the refund read it (its
    candidate was not held): the sweep would take the refund's money too. Then the refund is
    undone before anyone sees it, and the sweep goes on."""
    at_address = candidates.at_address(refund.network, refund.merchant_id, _checksummed(refund.deposit_address))
    if not any(c.sweep_id for c in at_address):
        return
    held = [c for c in at_address if c.refund_id == refund.refund_id]
    store.transact(
        [
            # awaiting_signature, never shown -> none
            store.delete_part(
                *refund.key,
                condition="refundStatus = :awaiting",
                values={":awaiting": RefundStatus.AWAITING_SIGNATURE.value},
            ),
            # this refund's -> none
            store.update_part(
                refund.order_pk,
                "ORDER",
                expression="REMOVE refundingId",
                condition="refundingId = :rid",
                values={":rid": refund.refund_id},
            ),
            *_release(refund.refund_id, held),
        ]
    )
    logger.warning("refund undone: a sweep claimed its deposit address meanwhile", extra={"refundId": refund.refund_id})
    raise _not_available(
        f"a sweep claimed the money of deposit address {refund.deposit_address} while the refund was made; "
        f"once it is final, {TREASURY_HINT}"
    )


# -- signature -----------------------------------------------------------------------------------


def _same_signature(refund: Refund, text: str) -> bool:
    try:
        return refund.signature == "0x" + normalize_signature(text).hex()
    except InvalidSignature:
        return False


def submit_signature(merchant_id: str, order_id: str, refund_id: str, signature: str) -> tuple[RefundView, int]:
    """The owner's signature accepted (202, the refund submitted to the relayer), or the same
    signature again (200, the refund as it is)."""
    for _ in range(ATTEMPTS):
        now = clock.now_ms()
        refund = _refund(merchant_id, order_id, refund_id)
        if refund.signature is not None and _same_signature(refund, signature):
            return view(refund, now=now), 200
        if refund.lapsed(now) or refund.status is RefundStatus.EXPIRED:
            expire(refund)
            raise Conflict(
                f"refund '{refund_id}' expired at its deadline ({refund.deadline}); make a new one",
                code="REFUND_EXPIRED",
            )
        if refund.status is not RefundStatus.AWAITING_SIGNATURE:
            raise Conflict(
                f"refund '{refund_id}' is {refund.status.value}, not awaiting a signature",
                code="REFUND_NOT_AWAITING_SIGNATURE",
            )
        try:
            accepted = "0x" + check_signature(refund.message(), refund.owner, signature).hex()
        except InvalidSignature as exc:
            raise InvalidRequest(str(exc), code="INVALID_SIGNATURE") from exc
        submitted = replace(refund, status=RefundStatus.SUBMITTED, signature=accepted, submitted_at=now, updated_at=now)
        parts = [
            # awaiting_signature -> submitted: in the relayer's queue (gsi1)
            store.set_part(
                *refund.key,
                set_values={
                    "refundStatus": submitted.status.value,
                    "signature": accepted,
                    "submittedAt": now,
                    "updatedAt": now,
                    "gsi1pk": store.refunds_index_pk(refund.network),
                    "gsi1sk": refund.index_sk(now),
                },
                condition="refundStatus = :awaiting",
                values={":awaiting": RefundStatus.AWAITING_SIGNATURE.value},
            )
        ]
        for c in _held_by(refund):
            # held until the deadline -> held until the refund closes (the relayer may send it late)
            parts.append(
                store.update_part(
                    *c.key,
                    expression="REMOVE holdUntil",
                    condition="refundId = :rid AND attribute_not_exists(sweepId)",
                    values={":rid": refund_id},
                )
            )
        try:
            store.transact(parts)
        except store.TransactionConflict:
            continue  # signed, expired or moved meanwhile: read it again
        logger.info("refund signed by the owner, submitted", extra={"refundId": refund_id})
        return view(submitted, now=now), 202
    raise Conflict(f"refund '{refund_id}' kept changing; read it and try again", code="REFUND_NOT_AWAITING_SIGNATURE")


def expire(refund: Refund) -> None:
    """awaiting_signature past its deadline -> expired: the order free for a new refund, the
    (lapsed) holds removed. A concurrent expiry makes this one a no-op."""
    now = clock.now_ms()
    try:
        store.transact(
            [
                # awaiting_signature, its deadline passed -> expired
                store.set_part(
                    *refund.key,
                    set_values={"refundStatus": RefundStatus.EXPIRED.value, "updatedAt": now, "closedAt": now},
                    condition="refundStatus = :awaiting",
                    values={":awaiting": RefundStatus.AWAITING_SIGNATURE.value},
                ),
                # this refund's -> none
                store.update_part(
                    refund.order_pk,
                    "ORDER",
                    expression="REMOVE refundingId",
                    condition="refundingId = :rid",
                    values={":rid": refund.refund_id},
                ),
                *_release(refund.refund_id, _held_by(refund)),
            ]
        )
    except store.TransactionConflict:
        return
    logger.info("refund expired unsigned", extra={"refundId": refund.refund_id})


# -- the relayer's side --------------------------------------------------------------------------


def next_to_send(network: str) -> Refund | None:
    """The oldest submitted refund of the network (read again strongly: the index lags)."""
    for hit in store.query_index_all(store.refunds_index_pk(network), sk_to="~"):
        item = store.get(hit["pk"], hit["sk"])
        if item is not None and item.get("refundStatus") == RefundStatus.SUBMITTED.value:
            return Refund.from_item(item)
    return None


def read_call(call: RefundCall) -> Refund:
    merchant_id, order_id = call.order_pk.split("#", 2)[1:]
    refund = read(merchant_id, order_id, call.refund_id)
    if refund is None:
        raise LookupError(f"refund {call.refund_id} is missing")
    return refund


def _consume(refund: Refund, held: Sequence[Candidate], units: int) -> tuple[list[dict[str, Any]], int, int]:
    """The candidates' writes once `units` left the address: money no order took first, then the
    order's own, each taken down by what left (deleted when nothing is left of it), the rest
    released. Returns the writes, the units taken from the order's own and in all."""
    parts: list[dict[str, Any]] = []
    left = units
    own = 0
    for c in sorted(held, key=lambda c: (c.order_pk is not None, c.credited_at, c.key)):
        take = min(left, c.units)
        left -= take
        if c.order_pk is not None:
            own += take
        values = {":rid": refund.refund_id, ":u": c.units}
        if take == c.units:
            # held by this refund, all of it refunded -> gone
            parts.append(store.delete_part(*c.key, condition="refundId = :rid AND units = :u", values=values))
        elif take:
            # held by this refund, part of it refunded -> the rest, free for the next sweep
            parts.append(
                store.update_part(
                    *c.key,
                    expression="SET units = :rest REMOVE refundId, holdUntil",
                    condition="refundId = :rid AND units = :u",
                    values=values | {":rest": c.units - take},
                )
            )
        else:
            parts += _release(refund.refund_id, [c])
    return parts, own, units - left


def close(
    call: RefundCall, *, completed: bool, tx_hash: str | None, gas_paid: int | None, reason: str | None
) -> tuple[Refund, list[str], list[dict[str, Any]]]:
    """The writes that close a submitted refund, for the relayer's closing transaction: the
    refund completed or failed, its holds released (the refunded units taken off them), the
    order's refunds counted and the refund.completed / refund.failed event."""
    refund = read_call(call)
    now = clock.now_ms()
    status = RefundStatus.COMPLETED if completed else RefundStatus.FAILED
    closed = replace(
        refund, status=status, tx_hash=tx_hash, gas_paid=gas_paid, reason=reason, closed_at=now, updated_at=now
    )
    order_item = store.get(refund.order_pk, "ORDER")
    if order_item is None:
        raise LookupError(f"order {refund.order_pk} is missing")
    order = Order.from_item(order_item)
    at_address = candidates.at_address(refund.network, refund.merchant_id, order.address)
    held = [c for c in at_address if c.refund_id == refund.refund_id]
    parts = [
        # submitted -> completed | failed, out of the relayer's queue
        store.set_part(
            *refund.key,
            set_values={
                "refundStatus": status.value,
                "txHash": tx_hash,
                "gasPaid": gas_paid,
                "reason": reason,
                "closedAt": now,
                "updatedAt": now,
            },
            condition="refundStatus = :submitted",
            values={":submitted": RefundStatus.SUBMITTED.value},
            remove=("gsi1pk", "gsi1sk"),
        )
    ]
    values: dict[str, Any] = {":rid": refund.refund_id}
    if completed:
        released, own, sent = _consume(refund, held, refund.units)
        remaining = sum(c.units for c in at_address) - sent
        everything = remaining <= 0 and order.swept_units == 0 and order.sweeping_id is None
        expression = "SET refundedAll = :all ADD refundedUnits :u, refundedPaidUnits :own REMOVE refundingId"
        values |= {":all": everything, ":u": refund.units, ":own": own}
    else:
        released = _release(refund.refund_id, held)
        expression = "REMOVE refundingId"
    parts += released
    # this refund's -> none (and, completed, its units counted)
    parts.append(
        store.update_part(order.pk, "ORDER", expression=expression, condition="refundingId = :rid", values=values)
    )
    event_id, event_parts = events.for_refund(order, event_data(closed), completed=completed)
    return closed, [event_id], parts + event_parts


def announce(closed: Refund, event_ids: list[str]) -> None:
    """After the closing transaction committed: hand its event to the queue, and say so."""
    outbox.publish(event_ids)
    log = logger.info if closed.status is RefundStatus.COMPLETED else logger.error
    log(
        f"refund {closed.status.value}",
        extra={
            "refundId": closed.refund_id,
            "merchant_id": closed.merchant_id,
            "order_id": closed.order_id,
            "txHash": closed.tx_hash,
            "gasPaid": closed.gas_paid,
            "units": closed.units,
            "reason": closed.reason,
        },
    )
