"""A network's scan cursor and the lease that lets one scanner at a time move it.

The item CURSOR#<network> holds how far the chain has been scanned: `finalBlock` (every block up
to it was scanned final and its deposits committed), `seenBlock` (early detection, not final),
plus the newest head seen (for confirmations in the API). A scanner takes the lease before it
scans and renews it with every write; each write is conditional on still holding it, and the
final cursor moves only from the value the scanner read, so two overlapping invocations never
scan the same range twice and a killed one never skips a block: its successor resumes from the
last committed `finalBlock` once the lease lapses.

Reorgs deeper than the finality policy: `checkpoints` keeps the (block, hash) of recent final
cursor positions, so a scanner that finds its final block replaced can walk back to the newest
checkpoint still on the chain and rewind there (`rewind`). `rescanTo` then marks the re-read
range: deposits recorded final in it that the new chain no longer has are reversed. A reorg
deeper than the network's `maxReorgDepth` stops the cursor (`halted`) until an operator resumes
it (`resume`): the scanner never guesses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from usdt_gateway import store

# The scanner's own fresh head while it writes orders (`scanning_at`): the views in their events
# then need no read of the cursor each.
_scanning_at: ContextVar[tuple[str, int] | None] = ContextVar("scanning_at", default=None)


@contextmanager
def scanning_at(network: str, head: int) -> Iterator[None]:
    token = _scanning_at.set((network, head))
    try:
        yield
    finally:
        _scanning_at.reset(token)


def known_head(network: str) -> int | None:
    """The head the scanner of `network` read this cycle, inside `scanning_at`; else None."""
    known = _scanning_at.get()
    return known[1] if known is not None and known[0] == network else None


def view_head(network: str) -> int | None:
    """The newest block the scanner saw on `network`, for the confirmations an order view shows:
    the scanner's own head inside `scanning_at`, else the cursor's (one eventually consistent read)."""
    known = known_head(network)
    if known is not None:
        return known
    scan = read(network)
    return int(scan["head"]) if scan and scan.get("head") is not None else None


class LeaseLost(Exception):
    """Another scanner holds the cursor now (ours lapsed): stop scanning at once."""


# Checkpoints kept across maxReorgDepth: a rewind lands at most depth / CHECKPOINTS blocks below
# the common ancestor (a little more re-read), and the cursor item, written every cycle, stays
# small (a write's cost grows with the item's size).
CHECKPOINTS = 16
RECENT_CHECKPOINTS = 8  # shallow reorgs, the common ones, rewind exactly


@dataclass(frozen=True)
class Cursor:
    final_block: int | None
    final_hash: str | None
    final_time: int  # timestamp (ms) of the final block, 0 before the first scan
    seen_block: int | None
    checkpoints: tuple[tuple[int, str], ...] = ()  # recent (final block, hash), oldest first
    rescan_to: int | None = None  # blocks up to here are being re-read after a deep reorg
    halted: dict[str, Any] | None = None  # why the cursor stopped, for the operator

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Cursor:
        fb = item.get("finalBlock")
        sb = item.get("seenBlock")
        rt = item.get("rescanTo")
        checkpoints = tuple((int(b), str(h)) for b, h in item.get("checkpoints") or [])
        return cls(
            None if fb is None else int(fb),
            item.get("finalHash"),
            int(item.get("finalTime") or 0),
            None if sb is None else int(sb),
            checkpoints,
            None if rt is None else int(rt),
            item.get("halted"),
        )


def _checkpoints(kept: tuple[tuple[int, str], ...], block: int, block_hash: str | None, depth: int) -> list[list[Any]]:
    """The checkpoints after the final cursor moves to `block`: the new one, and among those a
    reorg of at most `depth` blocks could still need, the last RECENT_CHECKPOINTS and, before
    them, the newest of each depth / CHECKPOINTS blocks."""
    recent = [(b, h) for b, h in kept if block - depth <= b < block]
    if block_hash:
        recent.append((block, block_hash))
    step = max(1, depth // CHECKPOINTS)
    older, latest = recent[:-RECENT_CHECKPOINTS], recent[-RECENT_CHECKPOINTS:]
    newest = {b // step: (b, h) for b, h in older}  # later entries replace earlier ones
    return [[b, h] for b, h in sorted(newest.values()) + latest]


def read(network: str) -> dict[str, Any] | None:
    return store.get(*store.cursor_key(network), consistent=False)


def acquire(network: str, owner: str, *, now: int, lease_ms: int) -> Cursor | None:
    """Take or renew the lease; None while another scanner holds it."""
    pk, sk = store.cursor_key(network)
    item = store.update(
        pk,
        sk,
        set_values={"leaseOwner": owner, "leaseUntil": now + lease_ms},
        # free (or lapsed) -> held by `owner`; renewal by the holder.
        condition="attribute_not_exists(pk) OR leaseUntil < :now OR leaseOwner = :me",
        values={":now": now, ":me": owner},
    )
    return None if item is None else Cursor.from_item(item)


def start(
    network: str, owner: str, *, block: int, block_hash: str | None, block_time: int, now: int, lease_ms: int
) -> Cursor:
    """First scan of a network: the final cursor starts at `block` (no cursor -> started)."""
    pk, sk = store.cursor_key(network)
    item = store.update(
        pk,
        sk,
        set_values={
            "finalBlock": block,
            "finalHash": block_hash,
            "finalTime": block_time,
            "checkpoints": _checkpoints((), block, block_hash, 0),
            "leaseUntil": now + lease_ms,
            "updatedAt": now,
        },
        condition="leaseOwner = :me AND attribute_not_exists(finalBlock)",
        values={":me": owner},
    )
    if item is None:
        raise LeaseLost(network)
    return Cursor.from_item(item)


def _move(network: str, owner: str, state: Cursor, values: dict[str, Any]) -> Cursor:
    pk, sk = store.cursor_key(network)
    # final `state.final_block` -> the new one: only by the lease holder, and only from the value
    # it read (a concurrent rewind or resume makes this fail: LeaseLost, the scanner stops).
    item = store.update(
        pk,
        sk,
        set_values=values,
        condition="leaseOwner = :me AND finalBlock = :expected",
        values={":me": owner, ":expected": state.final_block},
    )
    if item is None:
        raise LeaseLost(network)
    return Cursor.from_item(item)


def advance_final(
    network: str,
    owner: str,
    *,
    state: Cursor,
    block: int,
    block_hash: str | None,
    block_time: int,
    depth: int,
    now: int,
    lease_ms: int,
) -> Cursor:
    """final cursor `state.final_block` -> `block`, after the range's deposits are committed. A
    re-read range ends once passed."""
    rescan_to = state.rescan_to if state.rescan_to is not None and state.rescan_to > block else None
    return _move(
        network,
        owner,
        state,
        {
            "finalBlock": block,
            "finalHash": block_hash,
            "finalTime": block_time,
            "checkpoints": _checkpoints(state.checkpoints, block, block_hash, depth),
            "rescanTo": rescan_to,
            "leaseUntil": now + lease_ms,
            "updatedAt": now,
        },
    )


def rewind(
    network: str, owner: str, *, state: Cursor, block: int, block_hash: str, block_time: int, now: int, lease_ms: int
) -> Cursor:
    """final cursor `state.final_block` -> `block`, the common ancestor of a reorg deeper than the
    finality policy: what lies above it is read again, up to `rescanTo`."""
    assert state.final_block is not None
    return _move(
        network,
        owner,
        state,
        {
            "finalBlock": block,
            "finalHash": block_hash,
            "finalTime": block_time,
            "checkpoints": [[b, h] for b, h in state.checkpoints if b <= block],
            "rescanTo": max(state.final_block, state.rescan_to or 0),
            "leaseUntil": now + lease_ms,
            "updatedAt": now,
        },
    )


def halt(network: str, owner: str, *, state: Cursor, reason: str, now: int) -> None:
    """running -> halted: the cursor stays where it is until an operator resumes it."""
    pk, sk = store.cursor_key(network)
    halted = {"reason": reason, "finalBlock": state.final_block, "at": now}
    if (
        store.update(
            pk,
            sk,
            set_values={"halted": halted, "updatedAt": now},
            condition="leaseOwner = :me AND finalBlock = :expected",
            values={":me": owner, ":expected": state.final_block},
        )
        is None
    ):
        raise LeaseLost(network)


def resume(network: str, *, from_block: int, now: int) -> Cursor:
    """The operator's way out of a halt (or a deliberate re-read): scanning resumes after
    `from_block`, and every deposit recorded final above it is checked against the chain again
    up to the old final block. Allowed at any time; a running scanner's next write fails and it
    stops (its successor starts from here)."""
    pk, sk = store.cursor_key(network)
    old = store.get(pk, sk)
    if old is None or old.get("finalBlock") is None:
        raise LookupError(f"network {network} has no scan cursor yet")
    rescan_to = max(int(old["finalBlock"]), int(old.get("rescanTo") or 0))
    item = store.update(
        pk,
        sk,
        set_values={
            "finalBlock": from_block,
            "finalHash": None,
            "finalTime": int(old.get("finalTime") or 0),
            "checkpoints": [],
            "rescanTo": rescan_to if rescan_to > from_block else None,
            "halted": None,
            "leaseUntil": 0,
            "updatedAt": now,
        },
        # halted (or running) -> running from `from_block`, only over the cursor the operator saw.
        condition="finalBlock = :old",
        values={":old": int(old["finalBlock"])},
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
    if (
        store.update(
            pk, sk, set_values={"leaseUntil": now + lease_ms}, condition="leaseOwner = :me", values={":me": owner}
        )
        is None
    ):
        raise LeaseLost(network)


def release(network: str, owner: str) -> None:
    pk, sk = store.cursor_key(network)
    # held by `owner` -> free, so the next scheduled scanner starts without waiting for the lapse.
    store.update(pk, sk, set_values={"leaseUntil": 0}, condition="leaseOwner = :me", values={":me": owner})
