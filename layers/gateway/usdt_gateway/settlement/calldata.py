"""ABI encoding of DepositFactory.sweep(address,bytes32[]), by hand: eth-abi would bring web3's
import cost into the settlement function for one call shape."""

from __future__ import annotations

from collections.abc import Sequence

from usdt_gateway.address_codec import keccak256

SWEEP_SIGNATURE = "sweep(address,bytes32[])"
SWEEP_SELECTOR = keccak256(SWEEP_SIGNATURE.encode())[:4]
MAX_BATCH = 256  # DepositFactory.MAX_BATCH: a longer list reverts


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
