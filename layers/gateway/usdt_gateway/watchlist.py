"""Which addresses the scanner watches, and which order a transfer to one of them belongs to.

Every order writes a WATCH item in its create transaction: partition WATCH#<network>, sorted by
creation time. The scanner reads the partition with strongly consistent queries, so an order is
in its watch list as soon as the create has committed: a customer cannot pay an address before
the order exists, and the scanner refreshes the list after reading the chain head, so every
block it scans was produced after the list it scans with was complete. Refreshes only read
entries created since the last one (with an overlap for clocks and in-flight creates).
"""

from __future__ import annotations

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
NEVER = 2**63


def watch_part(*, network: str, order: dict[str, Any], mode: str) -> dict[str, Any]:
    """The create transaction's write that puts the order on the scanner's watch list."""
    pk, sk = store.watch_key(network, int(order["createdAt"]), order["pk"])
    return store.put_part({
        "pk": pk, "sk": sk, "orderPk": order["pk"], "merchantId": order["merchantId"], "address": order["address"],
        "units": order["amountUnits"], "mode": mode, "createdAt": order["createdAt"],
        "expiresAt": order["expiresAt"], "watchUntil": order["watchUntil"], "ttl": order["watchUntil"] // 1000 + 86_400,
    })


@dataclass(frozen=True)
class WatchEntry:
    order_pk: str
    merchant_id: str
    address: str
    units: int
    mode: str  # "xpub": the address is the order's alone; "fixed": the amount tells orders apart
    created_at: int
    expires_at: int
    watch_until: int
    closed: bool
    sk: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WatchEntry:
        return cls(item["orderPk"], item["merchantId"], item["address"], int(item["units"]), item["mode"],
                   int(item["createdAt"]), int(item["expiresAt"]), int(item["watchUntil"]),
                   bool(item.get("closed")), item["sk"])

    def covers(self, block_time: int) -> bool:
        return self.created_at - CLOCK_SKEW_MS <= block_time <= self.watch_until


class WatchList:
    """The watched entries of one network, kept warm across the scanner's cycles."""

    def __init__(self, network: str) -> None:
        self.network = network
        self._entries: dict[str, WatchEntry] = {}  # by order pk
        self._by_address: dict[str, list[WatchEntry]] = {}
        self._loaded_to: int | None = None  # newest createdAt read so far
        self._earliest_end = NEVER  # the soonest watch_until among the entries

    def refresh(self, *, first_from: int, keep_from: int) -> None:
        """Read entries created since the last refresh (the first time: since `first_from`), and
        forget those whose watch window ended before `keep_from`. The indexes are rebuilt only
        when something changed: with 100,000 entries a rebuild costs more than a BSC block."""
        since = first_from if self._loaded_to is None else self._loaded_to - REFRESH_OVERLAP_MS
        pk, _ = store.watch_key(self.network, 0, "")
        items = store.query_partition(pk, sk_from=f"{max(0, since):013d}")
        changed = False
        for item in items:
            entry = WatchEntry.from_item(item)
            if self._entries.get(entry.order_pk) != entry:  # new, or re-read in the overlap
                self._entries[entry.order_pk] = entry
                changed = True
        if items:
            self._loaded_to = max(self._loaded_to or 0, max(int(i["createdAt"]) for i in items))
        elif self._loaded_to is None:
            self._loaded_to = since
        if keep_from > self._earliest_end:
            self._entries = {k: e for k, e in self._entries.items() if e.watch_until >= keep_from}
            changed = True
        if changed:
            by_address: dict[str, list[WatchEntry]] = {}
            for e in self._entries.values():
                by_address.setdefault(e.address, []).append(e)
            self._by_address = by_address
            self._earliest_end = min((e.watch_until for e in self._entries.values()), default=NEVER)

    def addresses(self) -> list[str]:
        return list(self._by_address)

    def entries(self) -> Iterable[WatchEntry]:
        return self._entries.values()

    def mark_closed(self, entry: WatchEntry) -> None:
        closed = replace(entry, closed=True)
        self._entries[entry.order_pk] = closed
        same = self._by_address.get(entry.address, [])
        self._by_address[entry.address] = [closed if e.order_pk == entry.order_pk else e for e in same]

    def match(self, address: str, units: int, block_time: int) -> tuple[WatchEntry | None, str | None]:
        """(the order this transfer pays, or None; the merchant the address belongs to)."""
        candidates = self._by_address.get(address, [])
        if not candidates:
            return None, None
        in_window = [e for e in candidates if e.covers(block_time)]
        for e in in_window:
            # One order per derived address; on a shared fixed address the exact amount decides.
            if e.mode == "xpub" or e.units == units:
                return e, e.merchant_id
        owner = max(candidates, key=lambda e: e.created_at)
        return None, owner.merchant_id

    def __len__(self) -> int:
        return len(self._entries)
