"""ABI encoding of the DepositFactory calls the relayer makes, by hand: eth-abi would bring web3's
import cost into the settlement function for a few call shapes. Addresses are 0x hex strings,
salts 32 bytes."""

from __future__ import annotations

from collections.abc import Sequence

from usdt_gateway.address_codec import keccak256

SWEEP_SIGNATURE = "sweep(address,bytes32[])"
SWEEP_SELECTOR = keccak256(SWEEP_SIGNATURE.encode())[:4]
REFUND_SIGNATURE = "refund(address,bytes32,address,uint256,uint256,uint256,bytes)"
REFUND_SELECTOR = keccak256(REFUND_SIGNATURE.encode())[:4]
NONCE_USED_SELECTOR = keccak256(b"nonce_used(uint256)")[:4]
# topic0 of `Refunded(token indexed, deposit indexed, to indexed, amount, nonce)`.
REFUNDED_TOPIC = keccak256(b"Refunded(address,address,address,uint256,uint256)")
MAX_BATCH = 256  # DepositFactory.MAX_BATCH: a longer list reverts
SIGNATURE_BYTES = 65  # r ‖ s ‖ v, as `refund` takes it


def _word(value: int) -> bytes:
    return value.to_bytes(32)


def address_word(address: str) -> bytes:
    """A 20-byte address as an ABI word (left-padded with zeros)."""
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address}")
    return raw.rjust(32, b"\x00")


def sweep_calldata(token: str, salts: Sequence[bytes]) -> bytes:
    """selector ‖ token (a padded word) ‖ offset of the array (two words in) ‖ its length ‖ salts."""
    if not 0 < len(salts) <= MAX_BATCH:
        raise ValueError(f"a sweep takes 1 to {MAX_BATCH} salts, got {len(salts)}")
    if any(len(salt) != 32 for salt in salts):
        raise ValueError("a salt is 32 bytes")
    head = address_word(token) + _word(64)
    return SWEEP_SELECTOR + head + _word(len(salts)) + b"".join(salts)


def refund_calldata(
    token: str, salt: bytes, to: str, amount: int, nonce: int, deadline: int, signature: bytes
) -> bytes:
    """selector ‖ six static words ‖ offset of the signature (seven words in) ‖ its length ‖ its
    65 bytes padded to three words."""
    if len(salt) != 32:
        raise ValueError("a salt is 32 bytes")
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"a signature is {SIGNATURE_BYTES} bytes")
    if not all(0 <= n < 2**256 for n in (amount, nonce, deadline)):
        raise ValueError("amount, nonce and deadline are uint256")
    head = address_word(token) + salt + address_word(to) + _word(amount) + _word(nonce) + _word(deadline)
    tail = _word(len(signature)) + signature.ljust(96, b"\x00")
    return REFUND_SELECTOR + head + _word(7 * 32) + tail


def nonce_used_calldata(nonce: int) -> bytes:
    return NONCE_USED_SELECTOR + _word(nonce)
