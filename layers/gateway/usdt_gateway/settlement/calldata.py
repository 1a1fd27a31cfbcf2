"""ABI encoding of DepositFactory.sweep(address,bytes32[]), and decoding of the Swept logs its
receipt holds, by hand: eth-abi would bring web3's import cost into the settlement function for
one call shape and one event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from usdt_gateway.address_codec import keccak256, to_checksum_address

SWEEP_SIGNATURE = "sweep(address,bytes32[])"
SWEEP_SELECTOR = keccak256(SWEEP_SIGNATURE.encode())[:4]
MAX_BATCH = 256  # DepositFactory.MAX_BATCH: a longer list reverts
# event Swept(token indexed, deposit indexed, amount): one per deposit address a sweep took money from.
SWEPT_TOPIC = "0x" + keccak256(b"Swept(address,address,uint256)").hex()


def _word(value: int) -> bytes:
    return value.to_bytes(32)


def sweep_calldata(token: str, salts: Sequence[bytes]) -> bytes:
    """selector ‖ token (a padded word) ‖ offset of the array (two words in) ‖ its length ‖ salts."""
    raw_token = bytes.fromhex(token.removeprefix("0x"))
    if len(raw_token) != 20:
        raise ValueError(f"not a 20-byte address: {token}")
    if not 0 < len(salts) <= MAX_BATCH:
        raise ValueError(f"a sweep takes 1 to {MAX_BATCH} salts, got {len(salts)}")
    if any(len(salt) != 32 for salt in salts):
        raise ValueError("a salt is 32 bytes")
    head = raw_token.rjust(32, b"\x00") + _word(64)
    return SWEEP_SELECTOR + head + _word(len(salts)) + b"".join(salts)


def _topic_address(topic: str) -> str | None:
    raw = bytes.fromhex(topic.removeprefix("0x"))
    return to_checksum_address(raw[12:]) if len(raw) == 32 and not any(raw[:12]) else None


def swept_amounts(receipt: Mapping[str, Any], *, factory: str, token: str) -> dict[str, int]:
    """Units each deposit address gave up to the treasury in this receipt (EIP-55 address ->
    units), from its Swept logs: only logs `factory` emitted (another contract can emit an event
    of the same signature) for `token`, and none a node marks removed. A reverted receipt has none."""
    moved: dict[str, int] = {}
    for log in receipt.get("logs") or []:
        topics = [str(t).lower() for t in log.get("topics") or []]
        if (
            log.get("removed")
            or str(log.get("address", "")).lower() != factory.lower()
            or len(topics) != 3
            or topics[0] != SWEPT_TOPIC
            or _topic_address(topics[1]) != to_checksum_address(token)
        ):
            continue
        deposit = _topic_address(topics[2])
        if deposit is None:
            continue
        moved[deposit] = moved.get(deposit, 0) + int(str(log.get("data") or "0x0"), 16)
    return moved
