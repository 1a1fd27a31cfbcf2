"""The scanner's watch list: what it reads, what it forgets, and which order a transfer pays."""

from __future__ import annotations

from typing import Any

import pytest

from usdt_gateway import store, watchlist
from usdt_gateway.watchlist import CLOCK_SKEW_MS, WatchList

MIN = 60_000


def item(
    n: int,
    address: str,
    *,
    units: int = 25_000_000,
    mode: str = "xpub",
    created: int = 10 * MIN,
    expires: int = 40 * MIN,
    watch_until: int = 100 * MIN,
    closed: bool = False,
) -> dict[str, Any]:
    return {
        "orderPk": f"ORDER#m1#o{n}",
        "merchantId": "m1",
        "address": address,
        "units": units,
        "mode": mode,
        "createdAt": created,
        "expiresAt": expires,
        "watchUntil": watch_until,
        "closed": closed,
        "sk": f"{created:013d}#ORDER#m1#o{n}",
    }


class Partition:
    """The WATCH# partition as store.query_partition serves it (sorted by creation time)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.items: list[dict[str, Any]] = []
        self.reads: list[str] = []
        monkeypatch.setattr(store, "query_partition", self.query)

    def query(self, pk: str, *, sk_from: str) -> list[dict[str, Any]]:
        self.reads.append(sk_from)
        return [i for i in self.items if i["sk"] >= sk_from]


def test_refresh_reads_only_what_is_new_and_forgets_ended_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    part = Partition(monkeypatch)
    part.items = [item(1, "A", watch_until=50 * MIN), item(2, "B", created=20 * MIN)]
    watch = WatchList("eth")
    watch.refresh(first_from=0, keep_from=30 * MIN)
    assert sorted(watch.addresses()) == ["A", "B"]
    # A later refresh starts one overlap before the newest creation it has seen
    part.items.append(item(3, "C", created=30 * MIN))
    before = watch.addresses()
    watch.refresh(first_from=0, keep_from=30 * MIN)
    assert part.reads[-1] == f"{20 * MIN - watchlist.REFRESH_OVERLAP_MS:013d}"
    assert sorted(watch.addresses()) == ["A", "B", "C"] and watch.addresses() is not before
    # Nothing new and nothing ended: the address list is the same object (readers cache on it)
    before = watch.addresses()
    watch.refresh(first_from=0, keep_from=40 * MIN)
    assert watch.addresses() is before
    # Once A's window has ended it is forgotten
    watch.refresh(first_from=0, keep_from=51 * MIN)
    assert sorted(watch.addresses()) == ["B", "C"] and len(watch) == 2


def test_match_by_address_amount_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    part = Partition(monkeypatch)
    part.items = [
        item(1, "X"),
        item(2, "F", mode="fixed", units=25_000_000),
        item(3, "F", mode="fixed", units=25_010_000, created=11 * MIN),
    ]
    watch = WatchList("bsc")
    watch.refresh(first_from=0, keep_from=0)
    # A derived address takes any amount in its window (partial and over payments included)
    assert watch.match("X", 1, 20 * MIN)[0].order_pk == "ORDER#m1#o1"  # type: ignore[union-attr]
    # A fixed address: the exact tagged amount decides
    assert watch.match("F", 25_010_000, 20 * MIN)[0].order_pk == "ORDER#m1#o3"  # type: ignore[union-attr]
    assert watch.match("F", 25_000_000, 20 * MIN)[0].order_pk == "ORDER#m1#o2"  # type: ignore[union-attr]
    # An amount no order asked for, or a time outside every window: no order, but the owner is known
    assert watch.match("F", 24_000_000, 20 * MIN) == (None, "m1")
    assert watch.match("X", 1, 100 * MIN + 1) == (None, "m1")
    assert watch.match("X", 1, 10 * MIN - CLOCK_SKEW_MS - 1) == (None, "m1")
    assert watch.match("X", 1, 10 * MIN - CLOCK_SKEW_MS)[0] is not None  # block clocks run a little behind
    assert watch.match("unknown", 1, 20 * MIN) == (None, None)


def test_a_closed_entry_stays_matchable(monkeypatch: pytest.MonkeyPatch) -> None:
    part = Partition(monkeypatch)
    part.items = [item(1, "X")]
    watch = WatchList("eth")
    watch.refresh(first_from=0, keep_from=0)
    entry = next(iter(watch.entries()))
    watch.mark_closed(entry)
    # Closed at expiry, still watched for late payments inside the grace window
    found, _ = watch.match("X", 5, 50 * MIN)
    assert found is not None and found.closed and next(iter(watch.entries())).closed


def test_a_changed_entry_replaces_the_old_one_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an entry that is re-read closed (in the refresh overlap) on a shared fixed address
    part = Partition(monkeypatch)
    part.items = [item(1, "F", mode="fixed", units=1), item(2, "F", mode="fixed", units=2, watch_until=200 * MIN)]
    watch = WatchList("eth")
    watch.refresh(first_from=0, keep_from=0)
    part.items[0] = item(1, "F", mode="fixed", units=1, closed=True)
    watch.refresh(first_from=0, keep_from=0)
    # Then it is there once, closed, and leaves at the end of its window while the other stays
    assert len(watch) == 2 and watch.match("F", 1, 20 * MIN)[0].closed  # type: ignore[union-attr]
    watch.refresh(first_from=0, keep_from=150 * MIN)
    assert len(watch) == 1 and watch.addresses() == ("F",)
    assert watch.match("F", 1, 20 * MIN)[0] is None and watch.match("F", 2, 20 * MIN)[0] is not None


def test_a_pooled_address_is_watched_for_its_merchant_but_no_order_takes_its_money(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a reuse-pool address's entry (naming the expired order it served), in its window, and
    # later a new order's entry on the same address
    part = Partition(monkeypatch)
    part.items = [item(1, "A", mode=watchlist.POOLED, created=10 * MIN, watch_until=500 * MIN, closed=True)]
    watch = WatchList("eth")
    watch.refresh(first_from=0, keep_from=10 * MIN)
    # Then the address is watched, and a transfer to it is its merchant's, for no order
    assert watch.addresses() == ("A",)
    assert watch.match("A", 25_000_000, 20 * MIN) == (None, "m1")
    # And once an order has taken the address, that order's payments are its own
    part.items.append(item(2, "A", mode="contract", created=30 * MIN, watch_until=100 * MIN))
    watch.refresh(first_from=0, keep_from=30 * MIN)
    entry, owner = watch.match("A", 25_000_000, 40 * MIN)
    assert entry is not None and (entry.order_pk, owner) == ("ORDER#m1#o2", "m1")
