"""A merchant's settlements as the API shows them (GET /v1/settlements and
/v1/settlements/{settlementId}): read from the SETTLEMENT records, never from the relayer's state,
so only sweeps carried to their end are listed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from usdt_gateway import store
from usdt_gateway.errors import NotFound
from usdt_gateway.money import format_units
from usdt_gateway.schemas import SettlementListView, SettlementView
from usdt_gateway.settlement.records import Settlement, SettlementStatus


def _covered(item: Mapping[str, Any]) -> tuple[int, int, list[str], list[str]]:
    """Units, decimals, orderIds and depositIds of a sweep. Marking a closed sweep copies them
    onto its record; until then (a run stopped between the relayer's close and the mark) they are
    read from its BATCH item, one GetItem."""
    if "units" in item:
        return int(item["units"]), int(item["decimals"]), list(item["orderIds"]), list(item["depositIds"])
    batch = store.get(*store.settlement_batch_key(item["settlementId"]))
    if batch is None:  # no batch: a sweep the relayer was handed without one covers nothing known
        return 0, 0, [], []
    orders = sorted(pk.split("#", 2)[2] for pk in batch["orders"])
    return int(batch["units"]), int(batch["decimals"]), orders, list(batch["depositIds"])


def view(item: Mapping[str, Any]) -> SettlementView:
    settlement = Settlement.from_item(item)
    units, decimals, orders, deposits = _covered(item)
    return SettlementView(
        settlement_id=settlement.settlement_id,
        network=settlement.network,
        status="completed" if settlement.status is SettlementStatus.COMPLETED else "failed",
        factory=settlement.factory,
        token_contract=settlement.token,
        amount=format_units(units, decimals),
        orders=orders,
        deposits=deposits,
        tx_hash=settlement.tx_hash,
        gas_paid=str(settlement.gas_paid),
        reason=settlement.reason,
        created_at=settlement.created_at,
        closed_at=settlement.closed_at,
    )


def list_settlements(merchant_id: str, *, limit: int, cursor: str | None) -> SettlementListView:
    items, next_cursor = store.query_index(
        store.settlements_index_pk(merchant_id), sk_from="0", sk_to="~", limit=limit, cursor=cursor
    )
    return SettlementListView(settlements=[view(i) for i in items], next_cursor=next_cursor)


def get_settlement(merchant_id: str, settlement_id: str) -> SettlementView:
    item = store.get(*store.settlement_key(settlement_id))
    # Another merchant's settlement is as absent as one that never was.
    if item is None or item.get("merchantId") != merchant_id:
        raise NotFound(f"no settlement with settlementId '{settlement_id}'", code="SETTLEMENT_NOT_FOUND")
    return view(item)
