"""A network's scan cursor and the lease that lets one scanner at a time move it.

The item CURSOR#<network> holds how far the chain has been scanned: `finalBlock` (every block up
to it was scanned final and its deposits committed), `seenBlock` (early detection, not final),
plus the newest head seen (for confirmations in the API). A scanner takes the lease before it
scans and renews it with every write; each write is conditional on still holding it, and the
final cursor moves only from the value the scanner read, so two overlapping invocations never
scan the same range twice and a killed one never skips a block: its successor resumes from the
last committed `finalBlock` once the lease lapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usdt_gateway import store


class LeaseLost(Exception):
    """Another scanner holds the cursor now (ours lapsed): stop scanning at once."""


@dataclass(frozen=True)
class Cursor:
    final_block: int | None
    final_hash: str | None
    final_time: int  # timestamp (ms) of the final block, 0 before the first scan
    seen_block: int | None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Cursor:
        fb = item.get("finalBlock")
        sb = item.get("seenBlock")
        return cls(None if fb is None else int(fb), item.get("finalHash"), int(item.get("finalTime") or 0),
                   None if sb is None else int(sb))


def read(network: str) -> dict[str, Any] | None:
    return store.get(*store.cursor_key(network), consistent=False)


def acquire(network: str, owner: str, *, now: int, lease_ms: int) -> Cursor | None:
    """Take or renew the lease; None while another scanner holds it."""
    pk, sk = store.cursor_key(network)
    item = store.update(
        pk, sk, set_values={"leaseOwner": owner, "leaseUntil": now + lease_ms},
        # free (or lapsed) -> held by `owner`; renewal by the holder.
        condition="attribute_not_exists(pk) OR leaseUntil < :now OR leaseOwner = :me",
        values={":now": now, ":me": owner},
    )
    return None if item is None else Cursor.from_item(item)


def start(network: str, owner: str, *, block: int, block_hash: str | None, block_time: int, now: int,
          lease_ms: int) -> Cursor:
    """First scan of a network: the final cursor starts at `block` (no cursor -> started)."""
    pk, sk = store.cursor_key(network)
    item = store.update(
        pk, sk, set_values={"finalBlock": block, "finalHash": block_hash, "finalTime": block_time,
                            "leaseUntil": now + lease_ms, "updatedAt": now},
        condition="leaseOwner = :me AND attribute_not_exists(finalBlock)", values={":me": owner},
    )
    if item is None:
        raise LeaseLost(network)
    return Cursor.from_item(item)


def advance_final(network: str, owner: str, *, expected: int, block: int, block_hash: str | None, block_time: int,
                  now: int, lease_ms: int) -> Cursor:
    """final cursor `expected` -> `block`, after the range's deposits are committed; only by the
    lease holder and only from the value it scanned from."""
    pk, sk = store.cursor_key(network)
    item = store.update(
        pk, sk, set_values={"finalBlock": block, "finalHash": block_hash, "finalTime": block_time,
                            "leaseUntil": now + lease_ms, "updatedAt": now},
        condition="leaseOwner = :me AND finalBlock = :expected", values={":me": owner, ":expected": expected},
    )
    if item is None:
        raise LeaseLost(network)
    return Cursor.from_item(item)


def note_progress(network: str, owner: str, *, seen_block: int | None, head: int, now: int, lease_ms: int) -> None:
    """Record the early-detection cursor and the head (for confirmations), renewing the lease."""
    values: dict[str, Any] = {"head": head, "leaseUntil": now + lease_ms, "updatedAt": now}
    if seen_block is not None:
        values["seenBlock"] = seen_block
    pk, sk = store.cursor_key(network)
    # lease held -> held (renewed); no state change of the cursor's final part.
    if store.update(pk, sk, set_values=values, condition="leaseOwner = :me", values={":me": owner}) is None:
        raise LeaseLost(network)


def renew(network: str, owner: str, *, now: int, lease_ms: int) -> None:
    pk, sk = store.cursor_key(network)
    # held by `owner` -> held (extended); LeaseLost if it lapsed to another scanner.
    if store.update(pk, sk, set_values={"leaseUntil": now + lease_ms}, condition="leaseOwner = :me",
                    values={":me": owner}) is None:
        raise LeaseLost(network)


def release(network: str, owner: str) -> None:
    pk, sk = store.cursor_key(network)
    # held by `owner` -> free, so the next scheduled scanner starts without waiting for the lapse.
    store.update(pk, sk, set_values={"leaseUntil": 0}, condition="leaseOwner = :me", values={":me": owner})
