"""A token transfer as read from a chain, in one shape for every network."""

from __future__ import annotations

from dataclasses import dataclass

# keccak("Transfer(address,address,uint256)"), the first topic of every ERC-20/TRC-20 Transfer log
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


class ChainMoved(Exception):
    """The chain changed while it was read (a reorg): answers that no longer agree with each
    other. The scan cycle is retried from the cursor."""


@dataclass(frozen=True)
class Transfer:
    network: str
    txid: str  # 0x-prefixed on EVM, bare hex on Tron, as each chain's explorers show it
    log_index: int  # position of the log among its transaction's logs (stable across re-inclusion)
    block_number: int
    block_hash: str
    sender: str
    recipient: str  # EIP-55 on EVM, base58 on Tron
    units: int  # token base units
    block_time: int = 0  # ms since the epoch; 0 when the chain's answer did not carry it

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes a deposit unique: it is recorded, and credited, once per (network, txid, log)."""
        return self.network, self.txid, self.log_index
