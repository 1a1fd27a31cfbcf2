"""EVM and Tron address encoding: base58check, keccak256, EIP-55, public key -> address.

Deliberately free of web3/tronpy/eth_utils so the API Lambda stays light: coincurve validates
and decompresses secp256k1 points, pycryptodome provides keccak256, the rest is stdlib. Both are
loaded on first use: most API requests handle no EVM address and derive no key.
Every validation failure raises ValueError with a message fit to show a merchant.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from types import ModuleType


@functools.cache
def _load_keccak() -> ModuleType:
    """pycryptodome's keccak, bound to its C code through ctypes. With cffi importable (coincurve
    brings it) pycryptodome binds through cffi, which parses the C declarations with pycparser:
    about 30 ms more on the first hash of a cold container. The ctypes
    binding is pycryptodome's own fallback (as under `python -OO`) and runs the same C code.
    Cached: loaded on the first hash, not at import."""
    saved = sys.modules.get("cffi")
    sys.modules["cffi"] = None  # type: ignore[assignment]  # None: `import cffi` raises ImportError
    try:
        from Crypto.Hash import keccak
    finally:
        if saved is None:
            del sys.modules["cffi"]
        else:
            sys.modules["cffi"] = saved
    return keccak


B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: value for value, char in enumerate(B58_ALPHABET)}
TRON_VERSION = 0x41  # Tron's address version byte; base58 renders it as a leading "T"
TRON_ADDRESS_LENGTH = 34

_EVM_HEX = re.compile(r"0x[0-9a-fA-F]{40}")
_TRON_HEX = re.compile(r"41[0-9a-fA-F]{40}")


def keccak256(data: bytes) -> bytes:
    digest: bytes = _load_keccak().new(digest_bits=256, data=data).digest()
    return digest


# -- base58check ------------------------------------------------------------------------------


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(B58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))  # each zero byte is written as "1"
    return "1" * leading_zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        value = _B58_INDEX.get(char)
        if value is None:
            raise ValueError(f"contains {char!r}, which is not a base58 character")
        number = number * 58 + value
    leading_ones = len(text) - len(text.lstrip("1"))
    return b"\0" * leading_ones + number.to_bytes((number.bit_length() + 7) // 8, "big")


def _b58_checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58check_encode(payload: bytes) -> str:
    return b58encode(payload + _b58_checksum(payload))


def b58check_decode(text: str) -> bytes:
    """Payload without its 4-byte checksum; ValueError on a bad character or checksum."""
    raw = b58decode(text)
    if len(raw) < 5:
        raise ValueError("is too short for base58check")
    payload, checksum = raw[:-4], raw[-4:]
    if _b58_checksum(payload) != checksum:
        raise ValueError("has an invalid base58check checksum (probably a typo)")
    return payload


# -- EVM ----------------------------------------------------------------------------------------


def to_checksum_address(addr20: bytes | str) -> str:
    """EIP-55 form of a 20-byte address, given as bytes or "0x" + 40 hex in any case.

    Does not verify an existing checksum; `normalize_evm_address` does that for user input.
    """
    if isinstance(addr20, bytes):
        if len(addr20) != 20:
            raise ValueError(f"an EVM address is 20 bytes, got {len(addr20)}")
        hex_body = addr20.hex()
    elif isinstance(addr20, str) and _EVM_HEX.fullmatch(addr20):
        hex_body = addr20[2:].lower()
    else:
        raise ValueError('an EVM address must be 20 bytes or "0x" followed by 40 hex digits')
    digest = keccak256(hex_body.encode("ascii")).hex()
    # EIP-55: uppercase a letter when the matching nibble of keccak(lowercase hex) is >= 8.
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(hex_body, digest[:40], strict=True))


def normalize_evm_address(s: str) -> str:
    """Validate user input and return the EIP-55 form.

    All-lowercase and all-uppercase carry no checksum and are accepted; mixed case must be a
    correct EIP-55 checksum, because a wrong one almost always means a mistyped address.
    """
    if not isinstance(s, str) or not _EVM_HEX.fullmatch(s):
        raise ValueError('an EVM address must be "0x" followed by 40 hex digits')
    checksummed = to_checksum_address(s)
    body = s[2:]
    if body not in (body.lower(), body.upper()) and s != checksummed:
        raise ValueError("EVM address has mixed case but an invalid EIP-55 checksum; it is probably mistyped")
    return checksummed


# -- Tron ---------------------------------------------------------------------------------------


def tron_address_from_body(body20: bytes) -> str:
    if len(body20) != 20:
        raise ValueError(f"a Tron address body is 20 bytes, got {len(body20)}")
    return b58check_encode(bytes([TRON_VERSION]) + body20)


def normalize_tron_address(s: str) -> str:
    """Validate a base58 "T..." address or hex "41" + 40 hex digits; return the base58 form."""
    if not isinstance(s, str):
        raise ValueError("a Tron address must be a string")
    if _TRON_HEX.fullmatch(s):
        return tron_address_from_body(bytes.fromhex(s[2:]))
    if len(s) != TRON_ADDRESS_LENGTH or not s.startswith("T"):
        raise ValueError(
            f'a Tron address is {TRON_ADDRESS_LENGTH} base58 characters starting with "T" '
            '(or hex: "41" followed by 40 hex digits)'
        )
    try:
        payload = b58check_decode(s)
    except ValueError as exc:
        raise ValueError(f"Tron address {exc}") from None
    if len(payload) != 21 or payload[0] != TRON_VERSION:
        raise ValueError("not a Tron mainnet address (version byte 0x41 expected)")
    return s


def tron_body20(address: str) -> bytes:
    """The 20 bytes after the 0x41 prefix: the same bytes an EVM log topic carries."""
    return b58check_decode(normalize_tron_address(address))[1:]


# -- public keys --------------------------------------------------------------------------------


def _pubkey_body20(pubkey: bytes) -> bytes:
    if not isinstance(pubkey, bytes) or len(pubkey) not in (33, 65):
        raise ValueError("a secp256k1 public key is 33 (compressed) or 65 (uncompressed) bytes")
    from coincurve import PublicKey  # on first use: only key derivation needs it

    # coincurve also checks the point is on the curve, so a corrupt key cannot become an address.
    uncompressed = PublicKey(pubkey).format(compressed=False)
    return keccak256(uncompressed[1:])[12:]


def pubkey_to_evm_address(pubkey: bytes) -> str:
    return to_checksum_address(_pubkey_body20(pubkey))


def pubkey_to_tron_address(pubkey: bytes) -> str:
    return tron_address_from_body(_pubkey_body20(pubkey))
