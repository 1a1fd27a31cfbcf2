"""Watch-only BIP32 derivation: an account-level xpub -> deposit addresses m/0/i.

The gateway only ever holds public keys. The merchant exports the account xpub from their
wallet (m/44'/60'/0' for EVM chains, m/44'/195'/0' for Tron) and keeps the private key there;
the i-th deposit address is the wallet's external-chain address i, so the wallet can spend it.
Only coincurve is needed: non-hardened (public) child derivation is an HMAC plus a point add.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from usdt_gateway.address_codec import b58check_decode, pubkey_to_evm_address, pubkey_to_tron_address

if TYPE_CHECKING:
    from coincurve import PublicKey


def _public_key(data: bytes) -> PublicKey:
    """coincurve, imported on the first xpub parsed or address derived: most API requests (and
    the API function's init) never touch a key."""
    from coincurve import PublicKey

    return PublicKey(data)


XPUB_VERSION = bytes.fromhex("0488B21E")
ACCOUNT_DEPTH = 3  # m / purpose' / coin' / account'
HARDENED = 2**31
_CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_PRIVATE_KEY_MESSAGE = (
    "this is an extended PRIVATE key; never give the gateway a private key. "
    "Export the account-level extended public key (xpub) from your wallet instead"
)


@dataclass(frozen=True, slots=True)
class AccountKey:
    chain_code: bytes  # 32 bytes
    public_key: bytes  # 33-byte compressed secp256k1 point
    depth: int
    parent_fingerprint: bytes  # 4 bytes, as serialized in the xpub
    child_number: int


@dataclass(frozen=True, slots=True)
class _Node:
    public_key: bytes
    chain_code: bytes


def parse_xpub(xpub: str) -> AccountKey:
    """Decode and validate an account-level mainnet xpub; ValueError explains any refusal."""
    if not isinstance(xpub, str):
        raise ValueError("the xpub must be a string")
    # xprv, tprv, yprv, zprv, ...: refuse by prefix even when the rest is mangled.
    if xpub[1:4] == "prv":
        raise ValueError(_PRIVATE_KEY_MESSAGE)
    try:
        raw = b58check_decode(xpub)
    except ValueError as exc:
        raise ValueError(f"not a valid extended public key: it {exc}") from None
    if len(raw) != 78:
        raise ValueError(f"not a valid extended public key: decodes to {len(raw)} bytes instead of 78")
    version, depth, key = raw[:4], raw[4], raw[45:78]
    if key[0] == 0:  # BIP32 serializes a private key as 0x00 || k, whatever the version bytes
        raise ValueError(_PRIVATE_KEY_MESSAGE)
    if version != XPUB_VERSION:
        raise ValueError(f"unsupported key version 0x{version.hex()}; expected a mainnet 'xpub' (0x0488B21E)")
    if depth != ACCOUNT_DEPTH:
        raise ValueError(
            f"the xpub is at depth {depth}; expected an account-level key (depth 3) at m/44'/60'/0' for "
            "EVM chains or m/44'/195'/0' for Tron, not a master, change-level or address-level key"
        )
    try:
        _public_key(key)
    except ValueError:
        raise ValueError("not a valid extended public key: the public key is not a secp256k1 point") from None
    return AccountKey(
        chain_code=raw[13:45],
        public_key=key,
        depth=depth,
        parent_fingerprint=raw[5:9],
        child_number=int.from_bytes(raw[9:13], "big"),
    )


def _ckd_pub(node: _Node, index: int) -> _Node:
    """BIP32 CKDpub: public parent -> public child, non-hardened indexes only."""
    digest = hmac.new(node.chain_code, node.public_key + index.to_bytes(4, "big"), hashlib.sha512).digest()
    tweak, chain_code = digest[:32], digest[32:]
    # BIP32 says to skip such an index; the odds are below 2**-127, so refusing is enough.
    if int.from_bytes(tweak, "big") >= _CURVE_ORDER:
        raise ValueError(f"index {index} yields an invalid key; use another index")
    child = _public_key(node.public_key).add(tweak)  # ValueError on the point at infinity (same odds)
    return _Node(public_key=child.format(compressed=True), chain_code=chain_code)


@functools.lru_cache(maxsize=64)
def _external_chain(xpub: str) -> _Node:
    """The account's change-0 (receive) node, so deriving index i is a single CKDpub step."""
    account = parse_xpub(xpub)
    return _ckd_pub(_Node(public_key=account.public_key, chain_code=account.chain_code), 0)


def derive_public_key(xpub: str, index: int) -> bytes:
    """Compressed public key at m/0/index below the account key."""
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < HARDENED:
        raise ValueError(f"address index must be an integer from 0 to {HARDENED - 1}")
    return _ckd_pub(_external_chain(xpub), index).public_key


def derive_address(xpub: str, family: Literal["evm", "tron"], index: int) -> str:
    """Deposit address `index`: EIP-55 for EVM chains, base58 for Tron."""
    if family == "evm":
        return pubkey_to_evm_address(derive_public_key(xpub, index))
    if family == "tron":
        return pubkey_to_tron_address(derive_public_key(xpub, index))
    raise ValueError(f"unknown chain family {family!r}; expected 'evm' or 'tron'")


def key_fingerprint(xpub: str) -> str:
    """A stable id of the account key's address space (its public key and chain code), to
    remember its derivation index under without storing the xpub in a key."""
    account = parse_xpub(xpub)
    return hashlib.sha256(account.public_key + account.chain_code).hexdigest()[:32]
