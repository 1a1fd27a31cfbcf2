"""A lying Tron full node for the second-source tests: it serves an honest node's chain, live, with
forged transactions added to some of its blocks (same block ids): the block's transaction list,
its transaction infos and each forged transaction's own info and body all agree, as a hostile or
compromised provider could make them. Run it as a TronNode of its own on a ForgingChain."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from devstack.tron_node import FakeBlock, FakeChain, FakeTransaction, Trc20Transfer


class ForgingChain(FakeChain):
    """`honest`'s chain as it is at each request, plus forged transactions. Only what the node's
    read routes use is answered from here; everything else is the honest chain's."""

    def __init__(self, honest: FakeChain) -> None:  # no FakeChain state of its own: it reads honest's
        self._honest = honest
        self._forged: dict[int, list[FakeTransaction]] = {}
        self._forged_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._honest, name)

    @property
    def head(self) -> int:
        return self._honest.head

    @property
    def solid(self) -> int:
        return self._honest.solid

    def forge(self, number: int, transfer: Trc20Transfer) -> str:
        """Show `transfer` as one more transaction of block `number` (which must exist); its txid."""
        block = self._honest.block(number)
        assert block is not None, f"no block {number} to forge into"
        tx = FakeChain._make_tx(transfer, block.parent_hash, block.timestamp)
        with self._forged_lock:
            self._forged.setdefault(number, []).append(tx)
        return tx.txid

    def block(self, number: int) -> FakeBlock | None:
        block = self._honest.block(number)
        with self._forged_lock:
            extra = list(self._forged.get(number, ()))
        if block is None or not extra:
            return block
        return dataclasses.replace(block, transactions=[*block.transactions, *extra])

    def block_by_id(self, block_id: str) -> FakeBlock | None:
        found = self._honest.block_by_id(block_id)
        return self.block(found.number) if found is not None else None

    def transaction(self, txid: str) -> tuple[FakeTransaction, FakeBlock] | None:
        with self._forged_lock:
            forged = [(n, tx) for n, txs in self._forged.items() for tx in txs if tx.txid == txid.lower()]
        if forged:
            number, tx = forged[0]
            block = self.block(number)
            return (tx, block) if block is not None else None
        return self._honest.transaction(txid)
