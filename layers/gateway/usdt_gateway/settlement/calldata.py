"""ABI encoding of the DepositFactory calls the relayer makes, and decoding of the Swept logs a
sweep's receipt holds, by hand: eth-abi would bring web3's import cost into the settlement function
for a few call shapes and one event. Addresses are 0x hex strings, salts 32 bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from usdt_gateway.address_codec import keccak256, to_checksum_address

SWEEP_SIGNATURE = "sweep(address,bytes32[])"
SWEEP_SELECTOR = keccak256(SWEEP_SIGNATURE.encode())[:4]
REFUND_SIGNATURE = "refund(address,bytes32,address,uint256,uint256,uint256,bytes)"
REFUND_SELECTOR = keccak256(REFUND_SIGNATURE.encode())[:4]
NONCE_USED_SELECTOR = keccak256(b"nonce_used(uint256)")[:4]
# topic0 of `Refunded(token indexed, deposit indexed, to indexed, amount, nonce)`.
REFUNDED_TOPIC = keccak256(b"Refunded(address,address,address,uint256,uint256)")
MAX_BATCH = 256  # DepositFactory.MAX_BATCH: a longer list reverts
SIGNATURE_BYTES = 65  # r ‖ s ‖ v, as `refund` takes it
# event Swept(token indexed, deposit indexed, amount): one per deposit address a sweep took money from.
SWEPT_TOPIC = "0x" + keccak256(b"Swept(address,address,uint256)").hex()


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
