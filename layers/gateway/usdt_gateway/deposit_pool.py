"""What the gateway knows about each contract-mode deposit address beyond the order it serves,
kept on its ADDR#<network>#<address> item (the address -> order mapping):

- the sweep ledger: units the gateway's own sweeps moved from the address (their receipts' Swept
  logs) that no credited deposit has been counted against yet (`spareUnits`). A sweep moves the
  whole balance, so it also takes money paid in the blocks before it that was not final (not
  credited) when the sweep was claimed; once credited, the next sweep of the address finds it
  gone, and that deposit is counted swept from this spare rather than reported missing. Each
  sweep is applied once (`recentSweeps`, the last ids applied; `ledgerRev` guards the write).
"""

from __future__ import annotations

from typing import Any

from usdt_gateway import store
from usdt_gateway.observability import logger

RECENT_SWEEPS = 16  # ids kept to apply each sweep once; marks of one address never lag this far


def _address_item(network: str, address: str) -> dict[str, Any] | None:
    return store.get(*store.address_key(network, address))


def spare_units(network: str, address: str) -> int:
    """Units the gateway's sweeps moved from `address` that no credit has been counted against."""
    item = _address_item(network, address)
    return int(item.get("spareUnits") or 0) if item else 0


def record_sweep(network: str, address: str, settlement_id: str, spare_delta: int) -> None:
    """Apply one completed sweep to the address's ledger, once: its spare grows by what the sweep
    moved beyond the deposits it counted (or shrinks by what they drew from it)."""
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
        # ledger as read -> this sweep applied (and the next revision)
        condition = "attribute_not_exists(ledgerRev)" if rev is None else "ledgerRev = :rev"
        applied = store.update(
            pk,
            sk,
            set_values={
                "spareUnits": spare,
                "recentSweeps": [*recent[-(RECENT_SWEEPS - 1) :], settlement_id],
                "ledgerRev": int(rev or 0) + 1,
            },
            condition=condition,
            values=None if rev is None else {":rev": int(rev)},
        )
        if applied is not None:
            return
    raise RuntimeError(f"the sweep ledger of {address} kept changing under concurrent writers")
