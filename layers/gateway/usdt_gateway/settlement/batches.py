"""The settlement of one EVM network, run on a schedule: batch the unsettled deposits of contract
mode (settlement/candidates.py), hand the batch to the SweepRelayer, and once the relayer closed
the sweep, mark what it covered and tell the merchant.

A run holds the relayer's lease throughout (one run per network at a time) and does, in order:

    resume   sweeps whose candidates are claimed but not done: one the relayer closed is marked
             (below); one never handed over (a crash between the claim and the submit) is
             submitted now, under the id it was claimed with
    refund   nothing in flight: the oldest signed refund of the network (settlement/refunds.py)
             is handed to the relayer before any new sweep; the relayer closes it itself
    select   nothing in flight: the oldest merchant's unclaimed candidates, once their money
             reaches `min_units` or the oldest waited `max_age_ms`; at most `max_deposits`;
             never an address a refund holds money on (a sweep moves an address's whole balance),
             nor one the balance cross-check holds
    check    each chosen address's token balance at a final block, read from a second endpoint,
             must cover its credits (settlement/balance_check.py): one that does not is held, one
             not answered waits for the next run, the others go on; addresses held earlier are
             read again in the same request, and their hold lifted once covered
    claim    one transaction: the BATCH item (what the sweep covers) and each candidate's sweepId
             (condition: not claimed, not held by a refund; each other candidate of those
             addresses checked unheld too), then each covered order's sweepingId (its funds: sweeping)
    submit, advance: the relayer's own crash-safe steps (settlement/relayer.py), fees capped
             by the relayer's FeePolicy (the maximum gas price)
    mark     once the relayer closed the sweep: one transaction moves the BATCH open -> completed
             or failed (with what the sweep moved for each deposit, below), adds what it moved
             to the SETTLEMENT record and writes the settlement.completed / settlement.failed
             event (the outbox publishes it); then each swept address's ledger takes the sweep
             (deposit_pool.record_sweep), each order's sweptUnits grows by its units the sweep
             moved and missingUnits by those it found gone (condition: its sweepingId is this
             sweep), and each candidate is deleted (completed) or released for the next sweep
             (failed, `failures` + 1; deleted if a deep reorg reversed its deposit meanwhile), each
             conditional on its sweepId being this sweep
Every step is conditional on the state the previous one left, so a run killed anywhere is
resumed by the next without a second claim, a second event, or money marked swept twice.

What a completed sweep moved is read from its receipt's Swept logs (the relayer keeps them with
the mined receipt), never assumed: money may have left a deposit address by another path first
(anyone may sweep it, always to the treasury; the owner may sign a refund and have it sent
directly). Per address, its claimed deposits, oldest first, are counted swept against what the
sweep moved from it, then against the address's spare (money earlier sweeps of it moved before
its deposit was credited: a deposit credited while a sweep is in flight is a candidate that
sweep did not claim, and if its money was on the address when the sweep ran, the next sweep
finds it gone); what neither covers is missing: reported nowhere as swept, and its order's
`funds` says `moved_elsewhere`. The settlement's amount is the sum of the Swept logs (money no
order took included); its deposits and orders are those the sweep moved money for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from usdt_gateway import clock, deposit_pool, events, outbox, store
from usdt_gateway.money import format_units
from usdt_gateway.networks import Network
from usdt_gateway.observability import logger
from usdt_gateway.schemas import SettlementView
from usdt_gateway.settlement import balance_check, candidates, refunds
from usdt_gateway.settlement.calldata import MAX_BATCH
from usdt_gateway.settlement.candidates import UNHELD, Candidate
from usdt_gateway.settlement.records import RelayerState, Settlement, SettlementStatus
from usdt_gateway.settlement.relayer import (
    LeaseLost,
    Outcome,
    Progress,
    SweepRelayer,
    SweepRequest,
    new_settlement_id,
    read_settlement,
)

# One claim transaction holds the BATCH item and one update per candidate (DynamoDB: 100 items).
MAX_DEPOSITS = 99
assert MAX_DEPOSITS < MAX_BATCH  # a sweep's addresses always fit one factory call


@dataclass(frozen=True)
class BatchPolicy:
    min_units: int  # a merchant's unsettled money is swept once it reaches this ...
    max_age_ms: int  # ... or once its oldest credit waited this long
    max_deposits: int = 50  # per sweep, at most MAX_DEPOSITS
    max_failures: int = candidates.MAX_FAILURES  # a deposit whose sweeps failed this often waits for the operator
    # An address with spare money (an order's excess, unmatched money) credited less than this ago
    # is not swept yet: a sweep takes an address's whole balance, and the merchant may want to
    # refund that money from the address (settlement/refunds.py) rather than from its treasury.
    refund_window_ms: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.max_deposits <= MAX_DEPOSITS:
            raise ValueError(f"a sweep covers 1 to {MAX_DEPOSITS} deposits")


class BatchStatus(StrEnum):
    OPEN = "open"  # claimed, the sweep not closed (or its outcome not marked yet)
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class Batch:
    """A SETTLEMENT#<id>/BATCH item: what a sweep covers, written with the claims."""

    settlement_id: str
    network: str
    merchant_id: str
    factory: str
    token: str
    decimals: int
    deposits: tuple[str, ...]  # the candidates' sort keys
    deposit_ids: tuple[str, ...]
    orders: Mapping[str, int]  # order pk -> units covered
    salts: tuple[str, ...]  # one per deposit address
    units: int
    created_at: int
    status: BatchStatus = BatchStatus.OPEN
    # Per deposit, in `deposits` order: its units and order (None: unmatched). None on a batch
    # claimed before they were kept: its sweep is marked as covering all it claimed.
    deposit_units: tuple[int, ...] | None = None
    deposit_orders: tuple[str | None, ...] | None = None
    # Written when a completed sweep is marked, from its Swept logs: per deposit the units it
    # moved, per address the change to the address's spare, and the sum of the logs.
    moved: tuple[int, ...] | None = None
    spare: Mapping[str, int] | None = None
    moved_units: int | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Batch:
        return cls(
            settlement_id=item["settlementId"],
            network=item["network"],
            merchant_id=item["merchantId"],
            factory=item["factory"],
            token=item["token"],
            decimals=int(item["decimals"]),
            deposits=tuple(item["candidates"]),
            deposit_ids=tuple(item["depositIds"]),
            orders={k: int(v) for k, v in item["orders"].items()},
            salts=tuple(item["salts"]),
            units=int(item["units"]),
            created_at=int(item["createdAt"]),
            status=BatchStatus(item["batchStatus"]),
            deposit_units=_ints(item.get("depositUnits")),
            deposit_orders=tuple(item["depositOrders"]) if item.get("depositOrders") is not None else None,
            moved=_ints(item.get("moved")),
            spare={k: int(v) for k, v in item["spare"].items()} if item.get("spare") is not None else None,
            moved_units=int(item["movedUnits"]) if item.get("movedUnits") is not None else None,
        )

    def to_item(self) -> dict[str, Any]:
        pk, sk = store.settlement_batch_key(self.settlement_id)
        return {
            "pk": pk,
            "sk": sk,
            "settlementId": self.settlement_id,
            "network": self.network,
            "merchantId": self.merchant_id,
            "factory": self.factory,
            "token": self.token,
            "decimals": self.decimals,
            "candidates": list(self.deposits),
            "depositIds": list(self.deposit_ids),
            "orders": dict(self.orders),
            "salts": list(self.salts),
            "units": self.units,
            "createdAt": self.created_at,
            "batchStatus": self.status.value,
            "depositUnits": _list(self.deposit_units),
            "depositOrders": _list(self.deposit_orders),
            **self.accounting(),
        }

    def accounting(self) -> dict[str, Any]:
        """What the mark of a completed sweep stores: moved per deposit, spare per address."""
        if self.moved is None:
            return {}
        return {"moved": list(self.moved), "spare": dict(self.spare or {}), "movedUnits": self.moved_units}

    def addresses(self) -> tuple[str, ...]:
        """Each deposit's address, in `deposits` order (read from the candidate's sort key)."""
        return tuple(sk.split("#")[1] for sk in self.deposits)

    def missing_deposit_ids(self) -> list[str]:
        """Deposits whose money (or part of it) the sweep found gone from their address."""
        if self.moved is None or self.deposit_units is None:
            return []
        pairs = zip(self.deposit_ids, self.deposit_units, self.moved, strict=True)
        return [deposit for deposit, units, moved in pairs if moved < units]

    def short_addresses(self) -> set[str]:
        """Addresses where the sweep found less than was credited (money left another way)."""
        if self.moved is None or self.deposit_units is None:
            return set()
        pairs = zip(self.addresses(), self.deposit_units, self.moved, strict=True)
        return {address for address, units, moved in pairs if moved < units}

    def covered(self) -> tuple[dict[str, int], dict[str, int]]:
        """Per order, the units the sweep moved and the units it found gone (all it claimed
        moved, for a batch without evidence)."""
        if self.moved is None or self.deposit_units is None or self.deposit_orders is None:
            return dict(self.orders), {}
        swept: dict[str, int] = {}
        missing: dict[str, int] = {}
        for order_pk, units, moved in zip(self.deposit_orders, self.deposit_units, self.moved, strict=True):
            if order_pk is not None:
                swept[order_pk] = swept.get(order_pk, 0) + moved
                if units > moved:
                    missing[order_pk] = missing.get(order_pk, 0) + units - moved
        return swept, missing

    def request(self) -> SweepRequest:
        return SweepRequest(
            settlement_id=self.settlement_id,
            merchant_id=self.merchant_id,
            factory=self.factory,
            token=self.token,
            salts=tuple(bytes.fromhex(s.removeprefix("0x")) for s in self.salts),
        )


def _ints(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(int(v) for v in value)


def _list(value: tuple[Any, ...] | None) -> list[Any] | None:
    return None if value is None else list(value)


def read_batch(settlement_id: str) -> Batch | None:
    item = store.get(*store.settlement_batch_key(settlement_id))
    return None if item is None else Batch.from_item(item)


@dataclass
class RunReport:
    outcome: str
    detail: str = ""
    claimed: str | None = None  # the settlement id claimed this run
    marked: list[str] = field(default_factory=list)  # settlements whose outcome was marked this run
    in_flight_since: int | None = None  # when the sweep (or refund) still in flight was handed over
    unsettled: int = 0  # candidates the run found (claimed or not)
    refund: str | None = None  # the signed refund handed to the relayer this run
    refunds_closed: list[str] = field(default_factory=list)  # refunds completed or failed this run
    balance_short: int = 0  # addresses held by the balance cross-check after this run
    balance_unknown: int = 0  # addresses left out of this run's sweep: their balance not answered


# -- selection and claim ----------------------------------------------------------------------------


def select(unclaimed: Sequence[Candidate], policy: BatchPolicy, *, now: int) -> list[Candidate]:
    """The next sweep's deposits: the merchant (factory and token) whose oldest unsettled credit is
    the oldest, if its money reaches the minimum or that credit waited the maximum age; its
    oldest deposits first, at most `max_deposits` (fewer than the factory's MAX_BATCH addresses).
    Addresses a refund or the balance cross-check holds, or with spare money younger than the
    refund window, are left out."""
    held = {c.address for c in unclaimed if c.held(now)}  # a refund waits for their money
    held |= balance_check.held_addresses(unclaimed)  # their balance does not cover their credits
    # ... or the merchant may still refund their spare money
    held |= {c.address for c in unclaimed if c.spare and now - c.credited_at < policy.refund_window_ms}
    groups: dict[tuple[str, str, str], list[Candidate]] = {}
    for c in sorted(unclaimed, key=lambda c: (c.credited_at, c.key)):
        if c.sweep_id is None and c.failures < policy.max_failures and c.address not in held:
            groups.setdefault((c.merchant_id, c.factory, c.token), []).append(c)
    for group in groups.values():  # oldest first: dicts keep the insertion order
        if sum(c.units for c in group) < policy.min_units and now - group[0].credited_at < policy.max_age_ms:
            continue
        return group[: policy.max_deposits]
    return []


def _batch(network: Network, chosen: Sequence[Candidate], now: int) -> Batch:
    orders: dict[str, int] = {}
    salts: dict[str, str] = {}
    for c in chosen:
        if c.order_pk is not None:  # unmatched money is swept, counted in no order
            orders[c.order_pk] = orders.get(c.order_pk, 0) + c.units
        salts.setdefault(c.address, c.salt)
    first = chosen[0]
    return Batch(
        settlement_id=new_settlement_id(),
        network=network.name,
        merchant_id=first.merchant_id,
        factory=first.factory,
        token=first.token,
        decimals=network.decimals,
        deposits=tuple(c.key[1] for c in chosen),
        deposit_ids=tuple(c.deposit_id for c in chosen),
        orders=orders,
        salts=tuple(salts.values()),
        units=sum(c.units for c in chosen),
        created_at=now,
        deposit_units=tuple(c.units for c in chosen),
        deposit_orders=tuple(c.order_pk for c in chosen),
    )


def _fit(chosen: Sequence[Candidate], known: Sequence[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """The chosen candidates the claim takes, and the others of their addresses it checks, within
    one transaction (the BATCH item and MAX_DEPOSITS more): whole addresses, oldest first (a
    sweep moves an address's whole balance, so each of its candidates is taken or checked)."""
    chosen_keys = {c.key for c in chosen}
    by_address: dict[str, list[Candidate]] = {}
    for c in chosen:
        by_address.setdefault(c.address, []).append(c)
    taken: list[Candidate] = []
    checked: list[Candidate] = []
    for address, group in by_address.items():
        others = [o for o in known if o.address == address and o.key not in chosen_keys]
        if len(taken) + len(checked) + len(group) + len(others) > MAX_DEPOSITS:
            break
        taken += group
        checked += others
    return taken, checked


def claim(network: Network, chosen: Sequence[Candidate], known: Sequence[Candidate] = ()) -> Batch | None:
    """Claim `chosen` for a new sweep; None when one of them was claimed or removed meanwhile, or
    a refund holds money on one of their addresses (`known`: every candidate the run read)."""
    now = clock.now_ms()
    chosen, others = _fit(chosen, known)
    if not chosen:
        return None
    batch = _batch(network, chosen, now)
    parts = [store.put_part(batch.to_item())]  # none -> open
    for c in chosen:
        # unclaimed, unheld (or its hold lapsed) -> claimed by this sweep
        parts.append(
            store.update_part(
                *c.key,
                expression="SET sweepId = :id",
                condition=f"attribute_exists(pk) AND attribute_not_exists(sweepId) AND {UNHELD}",
                values={":id": batch.settlement_id, ":now": now},
            )
        )
    for c in others:
        # the sweep moves this one's money too: it must not be held by a refund either (gone is fine)
        parts.append(store.check_part(*c.key, condition=f"attribute_not_exists(pk) OR {UNHELD}", values={":now": now}))
    try:
        store.transact(parts)
    except store.TransactionConflict:
        return None
    logger.info(
        "deposits claimed for a sweep",
        extra={"settlementId": batch.settlement_id, "deposits": len(chosen), "units": batch.units},
    )
    return batch


def _mark_sweeping(batch: Batch) -> None:
    for order_pk in batch.orders:
        # any -> swept by this sweep (the order's funds read `sweeping` until it is marked)
        store.update(
            order_pk,
            "ORDER",
            set_values={"sweepingId": batch.settlement_id},
            condition="attribute_exists(pk)",
        )


# -- marking --------------------------------------------------------------------------------------


def account(batch: Batch, settlement: Settlement) -> Batch:
    """The batch with what its completed sweep moved (see the module's docstring); unchanged
    when there is no evidence to read (a receipt or batch recorded before it was kept)."""
    swept = settlement.swept
    if swept is None or batch.deposit_units is None:
        return batch
    by_address: dict[str, list[int]] = {}
    for i, address in enumerate(batch.addresses()):
        by_address.setdefault(address, []).append(i)
    moved = [0] * len(batch.deposits)
    spare: dict[str, int] = {}
    for address, indexes in by_address.items():
        claimed = sum(batch.deposit_units[i] for i in indexes)
        available = swept.get(address, 0)
        if available < claimed:  # money an earlier sweep of the address moved before its credit
            available += deposit_pool.spare_units(batch.network, address)
        for i in indexes:  # oldest first, as claimed
            moved[i] = min(batch.deposit_units[i], available)
            available -= moved[i]
        spare[address] = swept.get(address, 0) - sum(moved[i] for i in indexes)
    return replace(batch, moved=tuple(moved), spare=spare, moved_units=sum(swept.values()))


def view(batch: Batch, settlement: Settlement) -> SettlementView:
    amount, orders, deposits = batch.units, list(batch.orders), list(batch.deposit_ids)
    if batch.moved is not None and batch.moved_units is not None:  # what the chain shows it moved
        amount = batch.moved_units
        orders = [pk for pk, units in batch.covered()[0].items() if units > 0]
        deposits = [d for d, units in zip(batch.deposit_ids, batch.moved, strict=True) if units > 0]
    return SettlementView(
        settlement_id=batch.settlement_id,
        network=batch.network,
        status="completed" if settlement.status is SettlementStatus.COMPLETED else "failed",
        factory=batch.factory,
        token_contract=batch.token,
        amount=format_units(amount, batch.decimals),
        orders=sorted(pk.split("#", 2)[2] for pk in orders),
        deposits=deposits,
        tx_hash=settlement.tx_hash,
        gas_paid=str(settlement.gas_paid),
        reason=settlement.reason,
        created_at=batch.created_at,
        closed_at=settlement.closed_at,
    )


def mark(batch: Batch, settlement: Settlement) -> None:
    """Mark what a closed sweep covered, and announce it (idempotent: see the module's steps)."""
    completed = settlement.status is SettlementStatus.COMPLETED
    status = BatchStatus.COMPLETED if completed else BatchStatus.FAILED
    event_ids: list[str] = []
    if batch.status is BatchStatus.OPEN:
        if completed:
            batch = account(batch, settlement)
        data = view(batch, settlement).model_dump(mode="json", by_alias=True)
        missing = batch.missing_deposit_ids()
        event_id, event_parts = events.for_settlement(batch.merchant_id, data, completed=completed)
        pk, sk = store.settlement_batch_key(batch.settlement_id)
        spk, ssk = store.settlement_key(batch.settlement_id)
        try:
            store.transact(
                [
                    # open -> completed | failed: once, with its event (and what the sweep moved)
                    store.set_part(
                        pk,
                        sk,
                        set_values={"batchStatus": status.value, "closedAt": settlement.closed_at} | batch.accounting(),
                        condition="batchStatus = :open",
                        values={":open": BatchStatus.OPEN.value},
                    ),
                    # the relayer's record -> with what it moved (read by a settlement's listing)
                    store.set_part(
                        spk,
                        ssk,
                        set_values={
                            "orderIds": data["orders"],
                            "depositIds": data["deposits"],
                            "units": batch.units if batch.moved_units is None else batch.moved_units,
                            "decimals": batch.decimals,
                            "missingDepositIds": missing,
                        },
                        condition="attribute_exists(pk)",
                    ),
                    *event_parts,
                ]
            )
            event_ids = [event_id]
        except store.TransactionConflict:
            # Marked by an earlier run that stopped before the orders and candidates: go on with
            # what that run found the sweep moved.
            batch = read_batch(batch.settlement_id) or batch
    if completed:
        short = batch.short_addresses()
        for address, delta in (batch.spare or {}).items():
            # An address the sweep emptied of all that was credited on it may be reused.
            reusable = address not in short
            deposit_pool.record_sweep(batch.network, address, batch.settlement_id, delta, reusable=reusable)
    swept, missing_units = batch.covered()
    for order_pk in batch.orders:
        # sweeping (this sweep) -> what it moved counted swept, what it found gone missing
        # (completed), or back to on its address (failed)
        expression = "REMOVE sweepingId"
        values: dict[str, Any] = {":id": batch.settlement_id}
        if completed:
            expression = "ADD sweptUnits :u REMOVE sweepingId"
            values[":u"] = swept.get(order_pk, 0)
            if missing_units.get(order_pk):
                expression = "ADD sweptUnits :u, missingUnits :m REMOVE sweepingId"
                values[":m"] = missing_units[order_pk]
        store.update_expression(order_pk, "ORDER", expression=expression, condition="sweepingId = :id", values=values)
    candidate_pk, _ = store.sweep_candidate_key(batch.network, "", "", "", 0)
    for sk in batch.deposits:
        claimed = {":id": batch.settlement_id}
        if completed:
            # claimed by this sweep -> gone: its money is in the treasury
            store.delete_if(candidate_pk, sk, condition="sweepId = :id", values=claimed)
        else:
            # claimed by this sweep -> unclaimed, for the next one; or, when a deep reorg reversed
            # its deposit meanwhile (reversedAt: candidates.reversal_part), -> gone: no money to sweep
            released = store.update_expression(
                candidate_pk,
                sk,
                expression="REMOVE sweepId ADD failures :one",
                condition="sweepId = :id AND attribute_not_exists(reversedAt)",
                values=claimed | {":one": 1},
            )
            if not released:
                store.delete_if(
                    candidate_pk, sk, condition="sweepId = :id AND attribute_exists(reversedAt)", values=claimed
                )
    outbox.publish(event_ids)
    log = logger.info if completed else logger.error
    log(
        f"settlement {status.value}",
        extra={
            "settlementId": batch.settlement_id,
            "merchant_id": batch.merchant_id,
            "txHash": settlement.tx_hash,
            "gasPaid": settlement.gas_paid,
            "deposits": len(batch.deposits),
            "units": batch.units,
            "moved": batch.moved_units,
        },
    )


# -- the run --------------------------------------------------------------------------------------


def _resume(state: RelayerState, claimed_ids: set[str]) -> tuple[list[str], Batch | None]:
    """Claimed sweeps the relayer is not carrying: those it closed are marked (their ids
    returned); one it never got is returned to be submitted."""
    in_flight = state.sweep.settlement_id if state.sweep else None
    marked: list[str] = []
    unsent: Batch | None = None
    for settlement_id in sorted(claimed_ids - {in_flight} if in_flight else claimed_ids):
        batch = read_batch(settlement_id)
        if batch is None:
            continue  # not a sweep of the batching
        settlement = read_settlement(settlement_id)
        if settlement is not None:
            mark(batch, settlement)
            marked.append(settlement_id)
        elif unsent is None and in_flight is None:
            unsent = batch
    return marked, unsent


def run(
    network: Network, relayer: SweepRelayer, policy: BatchPolicy, balances: balance_check.Source | None = None
) -> RunReport:
    """One scheduled run for `network` (see the module's docstring); `balances` reads the final
    balances the check needs (None: no check, as for a relayer's own tests)."""
    state = relayer.acquire()
    if state is None:
        return RunReport(Outcome.BUSY.value, "another run holds the relayer")
    try:
        unsettled = candidates.unsettled(network.name)
        marked, batch = _resume(state, {c.sweep_id for c in unsettled if c.sweep_id})
        claimed: str | None = None
        refund = None
        screening = balance_check.Screening(held=balance_check.held_addresses(unsettled))
        if batch is None and state.sweep is None:
            # Signed refunds go before new sweeps: their holds keep their addresses from sweeps.
            refund = refunds.next_to_send(network.name)
            if refund is not None:
                state = relayer.submit_refund(state, refund)
            else:
                now = clock.now_ms()
                chosen = select(unsettled, policy, now=now)
                if balances is not None:
                    chosen, screening = balance_check.screen(
                        network, chosen, unsettled, balances, max_failures=policy.max_failures, now=now
                    )
                if chosen and (batch := claim(network, chosen, unsettled)) is not None:
                    claimed = batch.settlement_id
        if batch is not None:
            _mark_sweeping(batch)
            state = relayer.submit(state, batch.request())
        progress = relayer.advance(state)
    except LeaseLost:
        logger.warning("relayer lease lost to another run; stopping", extra={"network": network.name})
        return RunReport(Outcome.BUSY.value, "lease lost to another run")
    except Exception:
        relayer.release()
        raise
    relayer.release()
    marked += _mark_closed(progress)
    in_flight = progress.sweep.created_at if progress.sweep is not None else None
    closed = [progress.refund.refund_id] if progress.refund is not None else []
    return RunReport(
        progress.outcome.value,
        progress.detail,
        claimed,
        marked,
        in_flight,
        len(unsettled),
        refund.refund_id if refund is not None else None,
        closed,
        balance_short=len(screening.held),
        balance_unknown=len(screening.unknown),
    )


def _mark_closed(progress: Progress) -> list[str]:
    if progress.settlement is None:
        return []
    batch = read_batch(progress.settlement.settlement_id)
    if batch is None:
        return []  # a sweep not made by the batching (the relayer's own tests, an operator's)
    mark(batch, progress.settlement)
    return [batch.settlement_id]
