"""Which addresses the scanner watches, and which order a transfer to one of them belongs to.

Every order writes a WATCH item in its create transaction: partition WATCH#<network>, sorted by
creation time. The scanner reads the partition with strongly consistent queries, so an order is
in its watch list as soon as the create has committed: a customer cannot pay an address before
the order exists, and the scanner refreshes the list after reading the chain head, so every
block it scans was produced after the list it scans with was complete. Refreshes only read
entries created since the last one (with an overlap for clocks and in-flight creates).

A deposit address in contract mode's reuse pool (deposit_pool.py) is watched too, through
entries of mode `pooled` the settlement writes for it: money paid to it is found and recorded
(unmatched: no order takes it, its merchant is told), never credited to the order it served.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from usdt_gateway import store

# A create stamps its item with the time before it commits; a refresh re-reads this far back so
# an item that committed late is never skipped.
REFRESH_OVERLAP_MS = 60_000
# Block timestamps and Lambda clocks disagree a little: a transfer this much older than its
# order's creation still matches it.
CLOCK_SKEW_MS = 60_000
# The mode of a reuse-pool address's entry: watched for its merchant, no order takes its money.
POOLED = "pooled"


def watch_part(*, network: str, order: dict[str, Any], mode: str) -> dict[str, Any]:
    """The create transaction's write that puts the order on the scanner's watch list."""
    pk, sk = store.watch_key(network, int(order["createdAt"]), order["pk"])
    return store.put_part(
        {
            "pk": pk,
            "sk": sk,
            "orderPk": order["pk"],
            "merchantId": order["merchantId"],
            "address": order["address"],
            "units": order["amountUnits"],
            "mode": mode,
            "createdAt": order["createdAt"],
            "expiresAt": order["expiresAt"],
            "watchUntil": order["watchUntil"],
            "ttl": order["watchUntil"] // 1000 + 86_400,
        }
    )


def pool_watch_part(
    *, network: str, merchant_id: str, address: str, order_pk: str, now: int, until: int
) -> dict[str, Any]:
    """An entry that keeps a pooled deposit address watched from `now` to `until`. It names the
    order the address served last (the scanner reads the owner from it) but takes no payment,
    and is written closed: there is nothing to expire."""
    pk, sk = store.watch_key(network, now, order_pk)
    return store.put_part(
        {
            "pk": pk,
            "sk": sk,
            "orderPk": order_pk,
            "merchantId": merchant_id,
            "address": address,
            "units": 0,
            "mode": POOLED,
            "createdAt": now,
            "expiresAt": now,
            "watchUntil": until,
            "closed": True,
            "ttl": until // 1000 + 86_400,
        },
        # none -> watched; a pooled entry of the same millisecond (a quarantine that ends as it
        # starts) is extended, never an order's.
        condition="attribute_not_exists(pk) OR #mode = :pooled",
        values={":pooled": POOLED},
        names={"#mode": "mode"},
    )


@dataclass(frozen=True)
class WatchEntry:
    order_pk: str
    merchant_id: str
    address: str
    units: int
    mode: str  # "xpub", "contract": the address is the order's alone; "fixed": the amount tells orders
    # apart; "pooled": a reuse-pool address, watched for its merchant, taken by no order
    created_at: int
    expires_at: int
    watch_until: int
    closed: bool
    sk: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WatchEntry:
        return cls(
            item["orderPk"],
            item["merchantId"],
            item["address"],
            int(item["units"]),
            item["mode"],
            int(item["createdAt"]),
            int(item["expiresAt"]),
            int(item["watchUntil"]),
            bool(item.get("closed")),
            item["sk"],
        )

    def covers(self, block_time: int) -> bool:
        return self.created_at - CLOCK_SKEW_MS <= block_time <= self.watch_until


class WatchList:
    """The watched entries of one network, kept warm across the scanner's cycles."""

    def __init__(self, network: str) -> None:
        self.network = network
        self._entries: dict[str, WatchEntry] = {}  # by order pk
        self._by_address: dict[str, list[WatchEntry]] = {}
        self._ends: list[tuple[int, str]] = []  # heap of (watch_until, order pk): who leaves next
        self._addresses: tuple[str, ...] | None = None  # cached until an address comes or goes
        self._loaded_to: int | None = None  # newest createdAt read so far

    def refresh(self, *, first_from: int, keep_from: int) -> None:
        """Read entries created since the last refresh (the first time: since `first_from`), and
        forget those whose watch window ended before `keep_from`. Entries are added and removed
        one by one: at 100,000 entries a full rebuild of the index costs a third of a BSC block."""
        since = first_from if self._loaded_to is None else self._loaded_to - REFRESH_OVERLAP_MS
        pk, _ = store.watch_key(self.network, 0, "")
        items = store.query_partition(pk, sk_from=f"{max(0, since):013d}")
        for item in items:
            entry = WatchEntry.from_item(item)
            if self._entries.get(entry.order_pk) != entry:  # new, or changed (re-read in the overlap)
                self._put(entry)
        if items:
            self._loaded_to = max(self._loaded_to or 0, max(int(i["createdAt"]) for i in items))
        elif self._loaded_to is None:
            self._loaded_to = since
        while self._ends and self._ends[0][0] < keep_from:
            watch_until, order_pk = heapq.heappop(self._ends)
            leaving = self._entries.get(order_pk)
            if leaving is not None and leaving.watch_until == watch_until:  # not a replaced one
                self._drop(leaving)

    def _put(self, entry: WatchEntry) -> None:
        old = self._entries.get(entry.order_pk)
        if old is not None:
            self._drop(old)
        self._entries[entry.order_pk] = entry
        same = self._by_address.setdefault(entry.address, [])
        if not same:
            self._addresses = None
        same.append(entry)
        heapq.heappush(self._ends, (entry.watch_until, entry.order_pk))

    def _drop(self, entry: WatchEntry) -> None:
        del self._entries[entry.order_pk]
        same = [e for e in self._by_address.get(entry.address, []) if e.order_pk != entry.order_pk]
        if same:
            self._by_address[entry.address] = same
        else:
            self._by_address.pop(entry.address, None)
            self._addresses = None

    def addresses(self) -> tuple[str, ...]:
        """The watched addresses; the same object until one comes or goes (readers cache on it)."""
        if self._addresses is None:
            self._addresses = tuple(self._by_address)
        return self._addresses

    def entries(self) -> Iterable[WatchEntry]:
        return self._entries.values()

    def mark_closed(self, entry: WatchEntry) -> None:
        closed = replace(entry, closed=True)
        self._entries[entry.order_pk] = closed
        same = self._by_address.get(entry.address, [])
        self._by_address[entry.address] = [closed if e.order_pk == entry.order_pk else e for e in same]

    def match(
        self, address: str, units: int, block_time: int, *, chain_lag_ms: int = 0
    ) -> tuple[WatchEntry | None, str | None]:
        """(the order this transfer pays, or None; the merchant the address belongs to).
        `chain_lag_ms`: how far the chain's timestamps run behind the gateway's clock, on which
        the orders' windows are; a block's time plus it is when it was made, on that clock."""
        candidates = self._by_address.get(address, [])
        if not candidates:
            return None, None
        in_window = [e for e in candidates if e.mode != POOLED and e.covers(block_time + chain_lag_ms)]
        for e in in_window:
            # One order per derived or CREATE2 address; on a shared fixed address the exact amount decides.
            if e.mode != "fixed" or e.units == units:
                return e, e.merchant_id
        owner = max(candidates, key=lambda e: e.created_at)
        return None, owner.merchant_id

    def __len__(self) -> int:
        return len(self._entries)
