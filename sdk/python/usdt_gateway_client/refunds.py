"""Checking and signing a refund (contract mode), so a compromised or faulty gateway cannot make
your owner key sign something other than the refund you asked for.

A refund moves money from one of your deposit addresses only with the EIP-712 signature of your
DepositFactory's OWNER key over `Refund(token, salt, to, amount, nonce, deadline)`. The gateway
builds that typed data (Client.create_refund); nothing here trusts it:

- refund_digest(typed_data) accepts only the factory's exact typed data (primaryType, types,
  domain name and version) and computes the digest itself (Keccak-256 and the EIP-712 encoding
  of this one struct, in the standard library);
- check_refund(refund, ...) also requires that digest to equal the one the gateway sent, and the
  signed recipient, amount, token, deadline, factory and chain to equal the refund's fields and
  what you expect; it returns the digest to sign, for a key in AWS KMS or an HSM;
- sign_refund(refund, private_key, ...) checks the same, then signs with eth_account (the
  optional "signing" extra: pip install "usdt-gateway-client[signing]");
- signature_from_der / signature_from_rs turn a KMS or HSM signature of that digest into the
  r || s || v form the gateway and the contract take (low s, v 27 or 28).

On Tron the factory is the same contract on TVM: the API names the recipient, the factory, the
token and the owner in base58 (`T...`), and the typed data holds their 20-byte bodies (0x and 40
hex digits, without Tron's 0x41 prefix), which is what the contract's `address` is; chainId is
the network's chain id as the contract reads block.chainid (the last 4 bytes of the genesis block
id: 728126428 on mainnet, 3448148188 on Nile). Every check here compares a base58 address by its
body, so pass expected_to and expected_factory in either form.

Every refusal raises RefundVerificationError, saying what differs. The checks are worth only what
you expect: pass expected_to (and expected_amount, expected_factory, expected_chain_id) from your
own records, not from the gateway's answer.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Any

from .client import Amount, _amount
from .models import Refund
from .tron import from_base58check

__all__ = [
    "RefundMessage",
    "RefundVerificationError",
    "check_refund",
    "keccak256",
    "parse_refund_typed_data",
    "recover_address",
    "refund_digest",
    "sign_refund",
    "signature_from_der",
    "signature_from_rs",
]


class RefundVerificationError(Exception):
    """The refund is not the one to sign: do not sign it, and tell the gateway's operator."""


# --- Keccak-256 (the pre-standard padding Ethereum uses; hashlib's sha3_256 differs) -----------

_RATE = 136  # bytes: 1600-bit state, 512-bit capacity
_MASK = (1 << 64) - 1


def _round_constants() -> tuple[int, ...]:
    """The 24 iota constants, from the LFSR of the Keccak reference."""
    constants, lfsr = [], 1
    for _ in range(24):
        constant = 0
        for j in range(7):
            lfsr = ((lfsr << 1) ^ ((lfsr >> 7) * 0x71)) % 256
            if lfsr & 2:
                constant ^= 1 << ((1 << j) - 1)
        constants.append(constant)
    return tuple(constants)


_ROUND_CONSTANTS = _round_constants()


def _rotl(value: int, shift: int) -> int:
    shift %= 64
    return ((value << shift) | (value >> (64 - shift))) & _MASK


def _keccak_f(lanes: list[list[int]]) -> None:
    """Keccak-f[1600] in place; lanes[x][y]."""
    for constant in _ROUND_CONSTANTS:
        # theta
        c = [lanes[x][0] ^ lanes[x][1] ^ lanes[x][2] ^ lanes[x][3] ^ lanes[x][4] for x in range(5)]
        d = [c[(x + 4) % 5] ^ _rotl(c[(x + 1) % 5], 1) for x in range(5)]
        for x in range(5):
            for y in range(5):
                lanes[x][y] ^= d[x]
        # rho and pi
        x, y = 1, 0
        current = lanes[x][y]
        for t in range(24):
            x, y = y, (2 * x + 3 * y) % 5
            current, lanes[x][y] = lanes[x][y], _rotl(current, (t + 1) * (t + 2) // 2)
        # chi
        for y in range(5):
            row = [lanes[x][y] for x in range(5)]
            for x in range(5):
                lanes[x][y] = row[x] ^ ((~row[(x + 1) % 5]) & row[(x + 2) % 5])
        # iota
        lanes[0][0] ^= constant


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 of `data`."""
    padded = bytearray(data)
    padded.append(0x01)
    padded.extend(b"\x00" * (-len(padded) % _RATE))
    padded[-1] |= 0x80
    lanes = [[0] * 5 for _ in range(5)]
    for offset in range(0, len(padded), _RATE):
        block = padded[offset : offset + _RATE]
        for i in range(_RATE // 8):
            lanes[i % 5][i // 5] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        _keccak_f(lanes)
    return b"".join(lanes[i % 5][i // 5].to_bytes(8, "little") for i in range(4))


# --- The factory's typed data (contracts/DepositFactory.vy) -------------------------------------

DOMAIN_NAME = "USDT Gateway Deposits"
DOMAIN_VERSION = "1"
PRIMARY_TYPE = "Refund"
TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Refund": [
        {"name": "token", "type": "address"},
        {"name": "salt", "type": "bytes32"},
        {"name": "to", "type": "address"},
        {"name": "amount", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}
_DOMAIN_TYPEHASH = keccak256(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_REFUND_TYPEHASH = keccak256(
    b"Refund(address token,bytes32 salt,address to,uint256 amount,uint256 nonce,uint256 deadline)"
)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")
_UINT = re.compile(r"0|[1-9][0-9]*")
_ZERO_ADDRESS = "0x" + "00" * 20
# Enough digits for any uint256 at up to 36 decimals; anything inexact raises.
_EXACT = Context(prec=120, traps=[Inexact, InvalidOperation, Overflow])

# USDT of the gateway's built-in networks (a Tron token by its body; Tron's chain id is the last 4
# bytes of its genesis block id): facts the gateway cannot change, so its answers
# are checked against them. (chain id, token) -> (network, decimals).
KNOWN_TOKENS: dict[tuple[int, str], tuple[str, int]] = {
    (1, "0xdac17f958d2ee523a2206206994597c13d831ec7"): ("eth", 6),
    (56, "0x55d398326f99059ff775485246999027b3197955"): ("bsc", 18),
    (137, "0xc2132d05d31c914a87c6611c10748aeb04b58e8f"): ("polygon", 6),
    (42161, "0xfd086bc7cd5c481dcc9c85ebe478a1c0b69fcbb9"): ("arbitrum", 6),
    (11155111, "0xaa8e23fb1079ea71e0a56f48a2aa51851d8433d0"): ("sepolia", 6),
    (97, "0x337610d27c682e347c9cd60bd4b3b107c9d34ddd"): ("bsc-testnet", 18),
    # Tron (TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t, Nile's TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf) by their bodies
    (728126428, "0xa614f803b6fd780986a42c78ec9c7f77e6ded13c"): ("tron", 6),
    (3448148188, "0xeca9bc828a3005b9a3b909f2cc5c2a54794de05f"): ("nile", 6),
}
# The chain of each built-in network name: a refund for "eth" is signed for chain 1 only.
KNOWN_CHAINS: dict[str, int] = {
    **{network: chain_id for (chain_id, _), (network, _) in KNOWN_TOKENS.items()},
    "local": 31337,
}


@dataclass(frozen=True)
class RefundMessage:
    """The values a Refund typed data signs, parsed strictly."""

    chain_id: int
    factory: str  # domain.verifyingContract, lowercase hex
    token: str  # lowercase hex
    salt: bytes
    to: str  # lowercase hex
    amount: int  # token base units
    nonce: int
    deadline: int  # unix seconds

    def typed_data(self) -> dict[str, Any]:
        """This message as the canonical typed data (integers as integers, lowercase addresses)."""
        return {
            "types": copy.deepcopy(TYPES),  # a copy: no signer can change the one checked against
            "primaryType": PRIMARY_TYPE,
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": self.chain_id,
                "verifyingContract": self.factory,
            },
            "message": {
                "token": self.token,
                "salt": "0x" + self.salt.hex(),
                "to": self.to,
                "amount": self.amount,
                "nonce": self.nonce,
                "deadline": self.deadline,
            },
        }

    def digest(self) -> bytes:
        """keccak256(0x1901 || domainSeparator || structHash): the factory's refund_digest()."""
        domain = keccak256(
            _DOMAIN_TYPEHASH
            + keccak256(DOMAIN_NAME.encode())
            + keccak256(DOMAIN_VERSION.encode())
            + _word(self.chain_id)
            + _address_word(self.factory)
        )
        struct = keccak256(
            _REFUND_TYPEHASH
            + _address_word(self.token)
            + self.salt
            + _address_word(self.to)
            + _word(self.amount)
            + _word(self.nonce)
            + _word(self.deadline)
        )
        return keccak256(b"\x19\x01" + domain + struct)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def _exact_keys(where: str, value: Any, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RefundVerificationError(f"typed data: {where} is not an object")
    if set(value) != keys:
        raise RefundVerificationError(f"typed data: {where} has the fields {sorted(value)}, not {sorted(keys)}")
    return value


def _address(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise RefundVerificationError(f"typed data: {where} is not an address: {value!r}")
    return value.lower()


def _uint(where: str, value: Any) -> int:
    """A uint256 as a JSON integer or a decimal string; nothing that could be read two ways
    (hex, signs, leading zeros, fractions) is taken."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _UINT.fullmatch(value):
        number = int(value)
    else:
        raise RefundVerificationError(f"typed data: {where} is not an unsigned integer: {value!r}")
    if not 0 <= number < 2**256:
        raise RefundVerificationError(f"typed data: {where} is out of the uint256 range: {value!r}")
    return number


def parse_refund_typed_data(typed_data: Mapping[str, Any]) -> RefundMessage:
    """The values of the factory's Refund typed data; RefundVerificationError for anything else:
    another primary type, types that differ in any way, another domain name or version, missing
    or extra fields, values not of their type."""
    top = _exact_keys("the typed data", typed_data, {"types", "primaryType", "domain", "message"})
    if top["primaryType"] != PRIMARY_TYPE:
        raise RefundVerificationError(f"typed data: primaryType is {top['primaryType']!r}, not {PRIMARY_TYPE!r}")
    if top["types"] != TYPES:
        raise RefundVerificationError("typed data: types are not exactly the factory's EIP712Domain and Refund")
    domain = _exact_keys("domain", top["domain"], {"name", "version", "chainId", "verifyingContract"})
    if domain["name"] != DOMAIN_NAME or domain["version"] != DOMAIN_VERSION:
        raise RefundVerificationError(
            f"typed data: domain is {domain['name']!r} version {domain['version']!r}, "
            f"not {DOMAIN_NAME!r} version {DOMAIN_VERSION!r}"
        )
    message = _exact_keys("message", top["message"], {"token", "salt", "to", "amount", "nonce", "deadline"})
    salt = message["salt"]
    if not isinstance(salt, str) or not _BYTES32.fullmatch(salt):
        raise RefundVerificationError(f"typed data: message.salt is not 32 bytes of hex: {salt!r}")
    return RefundMessage(
        chain_id=_uint("domain.chainId", domain["chainId"]),
        factory=_address("domain.verifyingContract", domain["verifyingContract"]),
        token=_address("message.token", message["token"]),
        salt=bytes.fromhex(salt[2:]),
        to=_address("message.to", message["to"]),
        amount=_uint("message.amount", message["amount"]),
        nonce=_uint("message.nonce", message["nonce"]),
        deadline=_uint("message.deadline", message["deadline"]),
    )


def refund_digest(typed_data: Mapping[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest of the factory's Refund typed data, computed here (standard
    library only); RefundVerificationError if the typed data is not exactly the factory's form.
    This checks the form only: check_refund also checks what it moves, where and on which chain."""
    return parse_refund_typed_data(typed_data).digest()


# --- The checks -----------------------------------------------------------------------------------


def _checksummed(address: str) -> bool:
    """EIP-55: an address in mixed case carries a checksum, which must hold; one in a single
    case carries none."""
    digits = address[2:]
    if digits == digits.lower() or digits == digits.upper():
        return True
    hashed = keccak256(digits.lower().encode()).hex()
    expected = "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(digits.lower(), hashed[:40], strict=True))
    return digits == expected


def _tron_body(address: Any) -> str | None:
    """The 20-byte body of a base58 Tron address as 0x hex (what the typed data holds); None for
    anything else."""
    if not isinstance(address, str) or not address.startswith("T"):
        return None
    try:
        return "0x" + from_base58check(address)[1:].hex()
    except ValueError:
        return None


def _same_address(what: str, signed: str, other: str, source: str, *, yours: bool = False) -> None:
    """`other` (the refund's, or `yours`: from the caller's records) names the signed address; a
    Tron address (base58, its checksum checked) by its 20-byte body."""
    body = _tron_body(other)
    if body is not None:
        if body != signed:
            raise RefundVerificationError(f"the signed {what} is {signed}, but {source} {other} is {body}")
        return
    if not isinstance(other, str) or not _ADDRESS.fullmatch(other):
        raise RefundVerificationError(f"{source} is not an address: {other!r}")
    if yours and not _checksummed(other):
        # A typo in your own records would pass if the gateway was handed the same address.
        raise RefundVerificationError(f"{source} {other} fails its EIP-55 checksum: a mistyped address?")
    if other.lower() != signed:
        raise RefundVerificationError(f"the signed {what} is {signed}, but {source} is {other.lower()}")


def _units(amount: Decimal, decimals: int, source: str) -> int:
    """`amount` in base units, exactly, whatever the caller's decimal context."""
    if not amount.is_finite():
        raise RefundVerificationError(f"{source} {amount} is not a number")
    try:
        scaled = amount.scaleb(decimals, context=_EXACT)
        exact = scaled == scaled.to_integral_value(context=_EXACT)
    except ArithmeticError:  # Inexact: more digits than any uint256 amount has
        exact = False
    if not exact:
        raise RefundVerificationError(f"{source} {amount} is not a whole number of base units at {decimals} decimals")
    if scaled < 0 or scaled.adjusted() >= 78:
        raise RefundVerificationError(f"{source} {amount} is out of the uint256 range")
    return int(scaled)


def _decimals(message: RefundMessage, network: str, decimals: int | None) -> int:
    known = KNOWN_TOKENS.get((message.chain_id, message.token))
    if known is not None:
        if network != known[0]:
            raise RefundVerificationError(
                f"the signed token {message.token} on chain {message.chain_id} is {known[0]}'s USDT, "
                f"but the refund is for network {network!r}"
            )
        if decimals is not None and decimals != known[1]:
            raise RefundVerificationError(
                f"decimals={decimals} contradicts the {known[1]} decimals of {known[0]}'s USDT {message.token}"
            )
        return known[1]
    if decimals is None:
        raise RefundVerificationError(
            f"the decimals of token {message.token} on chain {message.chain_id} are not known here: "
            "pass decimals= (from your own configuration, not from the gateway) to check the amount"
        )
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 36:
        raise ValueError(f"decimals must be an int from 0 to 36, not {decimals!r}")
    return decimals


def check_refund(
    refund: Refund,
    *,
    expected_to: str | None = None,
    expected_amount: Amount | None = None,
    expected_factory: str | None = None,
    expected_chain_id: int | None = None,
    decimals: int | None = None,
    now: float | None = None,
) -> bytes:
    """The digest to sign for `refund`, once every check passed; RefundVerificationError otherwise.

    Checked: the typed data is exactly the factory's Refund (refund_digest); its digest,
    recomputed here, equals the gateway's `digest`; the signed recipient, token, deadline and
    verifyingContract equal the refund's to, token_contract, deadline and factory; the signed
    base units equal the refund's amount at the token's decimals; the deadline has not passed
    (`now`: unix seconds, default the current time); the recipient is not the zero address; and
    each expectation given: expected_to, expected_amount (in USDT, like the refund's amount),
    expected_factory, expected_chain_id. For a built-in network's USDT the decimals and the chain
    are known here, and the network name must match the chain; for any other token pass
    `decimals` from your own configuration.
    """
    if refund.typed_data is None:
        raise RefundVerificationError("the refund has no typed data (refund events carry none): get_refund it")
    message = parse_refund_typed_data(refund.typed_data)
    digest = message.digest()
    claimed = refund.digest
    if not isinstance(claimed, str) or not _BYTES32.fullmatch(claimed):
        raise RefundVerificationError(f"the gateway's digest is not 32 bytes of hex: {claimed!r}")
    if bytes.fromhex(claimed[2:]) != digest:
        raise RefundVerificationError(
            f"the gateway's digest {claimed.lower()} is not the typed data's 0x{digest.hex()}: "
            "it would have you sign something else than what the typed data shows"
        )
    _same_address("verifyingContract", message.factory, refund.factory, "the refund's factory")
    _same_address("token", message.token, refund.token_contract, "the refund's token_contract")
    _same_address("recipient", message.to, refund.to, "the refund's to")
    if message.deadline != refund.deadline:
        raise RefundVerificationError(
            f"the signed deadline is {message.deadline}, but the refund's is {refund.deadline}"
        )
    if message.to == _ZERO_ADDRESS:
        raise RefundVerificationError("the signed recipient is the zero address")
    known_chain = KNOWN_CHAINS.get(refund.network)
    if known_chain is not None and known_chain != message.chain_id:
        raise RefundVerificationError(
            f"the signed chainId is {message.chain_id}, but network {refund.network!r} is chain {known_chain}"
        )
    places = _decimals(message, refund.network, decimals)
    units = _units(refund.amount, places, "the refund's amount")
    if message.amount != units:
        raise RefundVerificationError(
            f"the signed amount is {message.amount} base units, but the refund's {refund.amount} "
            f"is {units} at the token's {places} decimals"
        )
    if message.amount == 0:
        raise RefundVerificationError("the signed amount is zero")
    if expected_to is not None:
        _same_address("recipient", message.to, expected_to, "expected_to", yours=True)
    if expected_factory is not None:
        _same_address("verifyingContract", message.factory, expected_factory, "expected_factory", yours=True)
    if expected_chain_id is not None and message.chain_id != expected_chain_id:
        raise RefundVerificationError(
            f"the signed chainId is {message.chain_id}, not expected_chain_id {expected_chain_id}"
        )
    if expected_amount is not None:
        wanted = Decimal(_amount(expected_amount))
        if message.amount != _units(wanted, places, "expected_amount"):
            raise RefundVerificationError(
                f"the signed amount is {message.amount} base units ({refund.amount}), not expected_amount {wanted}"
            )
    current = time.time() if now is None else now
    if message.deadline < current:
        raise RefundVerificationError(
            f"the deadline {message.deadline} has passed: the contract would refuse the signature"
        )
    return digest


# --- secp256k1 public-key recovery (verification only: no secret is handled here) ----------------

_P = 2**256 - 2**32 - 977
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _N // 2
_G = (
    0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
)
_Point = tuple[int, int] | None  # None: the point at infinity


def _add(a: _Point, b: _Point) -> _Point:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0]:
        if (a[1] + b[1]) % _P == 0:
            return None
        slope = 3 * a[0] * a[0] * pow(2 * a[1], -1, _P) % _P
    else:
        slope = (b[1] - a[1]) * pow(b[0] - a[0], -1, _P) % _P
    x = (slope * slope - a[0] - b[0]) % _P
    return x, (slope * (a[0] - x) - a[1]) % _P


def _multiply(k: int, point: _Point) -> _Point:
    result: _Point = None
    while k:
        if k & 1:
            result = _add(result, point)
        point = _add(point, point)
        k >>= 1
    return result


def recover_address(digest: bytes, r: int, s: int, v: int) -> str | None:
    """The lowercase address whose key made the signature (r, s, v 27/28) of `digest`, as the
    contract's ecrecover finds it; None if no key did."""
    if len(digest) != 32 or v not in (27, 28) or not (0 < r < _N and 0 < s < _N):
        return None
    y_squared = (pow(r, 3, _P) + 7) % _P
    y = pow(y_squared, (_P + 1) // 4, _P)
    if y * y % _P != y_squared:
        return None
    if y % 2 != v - 27:
        y = _P - y
    r_inverse = pow(r, -1, _N)
    z = int.from_bytes(digest, "big")
    public = _add(_multiply(s * r_inverse % _N, (r, y)), _multiply(-z * r_inverse % _N, _G))
    if public is None:
        return None
    return "0x" + keccak256(public[0].to_bytes(32, "big") + public[1].to_bytes(32, "big"))[-20:].hex()


def signature_from_rs(r: int, s: int, digest: bytes, owner: str) -> str:
    """The 0x r || s || v signature (65 bytes, low s, v 27 or 28) of a raw ECDSA signature (r, s)
    of `digest` by `owner`'s key (a KMS key, an HSM): s is normalised to the low half (the
    contract and the gateway refuse a high s), and v is the one that recovers to `owner`.
    RefundVerificationError if neither does: the key is not the owner's, or it signed another
    digest."""
    owner = _tron_body(owner) or owner
    if not isinstance(owner, str) or not _ADDRESS.fullmatch(owner):
        raise ValueError(f"owner must be an address (0x, or Tron's T...), not {owner!r}")
    if s > _HALF_N:
        s = _N - s  # the same signature's twin; its recovery id flips, found below anyway
    for v in (27, 28):
        if recover_address(digest, r, s, v) == owner.lower():
            return "0x" + (r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])).hex()
    raise RefundVerificationError(
        f"the signature does not recover to the owner {owner.lower()}: "
        "the key is not the factory's owner, or it signed something else than this digest"
    )


def _der_integer(data: bytes, at: int) -> tuple[int, int]:
    if at + 2 > len(data) or data[at] != 0x02:
        raise ValueError("not a DER ECDSA signature: INTEGER expected")
    length = data[at + 1]
    start, end = at + 2, at + 2 + length
    if length == 0 or length > 33 or end > len(data):
        raise ValueError("not a DER ECDSA signature: bad INTEGER length")
    return int.from_bytes(data[start:end], "big"), end


def signature_from_der(der: bytes, digest: bytes, owner: str) -> str:
    """As signature_from_rs, for a DER-encoded ECDSA-Sig-Value: what AWS KMS Sign returns
    (ECDSA_SHA_256 over MessageType=DIGEST) for an ECC_SECG_P256K1 key."""
    if len(der) < 8 or der[0] != 0x30 or der[1] != len(der) - 2:
        raise ValueError("not a DER ECDSA signature: SEQUENCE expected")
    r, at = _der_integer(der, 2)
    s, end = _der_integer(der, at)
    if end != len(der):
        raise ValueError("not a DER ECDSA signature: trailing bytes")
    return signature_from_rs(r, s, digest, owner)


# --- Signing with a local key ---------------------------------------------------------------------


def _eth_account() -> tuple[Any, Any]:
    try:
        from eth_account import Account
        from eth_account.messages import encode_typed_data
    except ImportError as exc:
        raise ImportError(
            'sign_refund needs eth_account: pip install "usdt-gateway-client[signing]" '
            "(or sign check_refund()'s digest with your own signer, e.g. AWS KMS: see the README)"
        ) from exc
    return Account, encode_typed_data


def sign_refund(
    refund: Refund,
    private_key: str | bytes,
    *,
    expected_to: str | None = None,
    expected_amount: Amount | None = None,
    expected_factory: str | None = None,
    expected_chain_id: int | None = None,
    decimals: int | None = None,
    now: float | None = None,
) -> str:
    """The owner's signature of `refund`, 0x and 65 bytes r || s || v (v 27 or 28, low s), for
    Client.submit_refund_signature, once check_refund passed (RefundVerificationError otherwise).
    private_key: the factory owner's key, hex or 32 bytes; a key that is not `refund.owner` is
    refused before it signs. Needs eth_account (pip install "usdt-gateway-client[signing]")."""
    digest = check_refund(
        refund,
        expected_to=expected_to,
        expected_amount=expected_amount,
        expected_factory=expected_factory,
        expected_chain_id=expected_chain_id,
        decimals=decimals,
        now=now,
    )
    account_class, encode_typed_data = _eth_account()
    account = account_class.from_key(private_key)
    address = str(account.address).lower()
    owner = _tron_body(refund.owner) or refund.owner.lower()  # a Tron owner by its body
    if address != owner:
        raise RefundVerificationError(f"the key is {address}, but the refund needs the owner {refund.owner}")
    assert refund.typed_data is not None  # check_refund refused it otherwise
    # The checked values, re-encoded by eth_account: two encoders must agree on what is signed.
    signable = encode_typed_data(full_message=parse_refund_typed_data(refund.typed_data).typed_data())
    if keccak256(b"\x19" + bytes(signable.version) + bytes(signable.header) + bytes(signable.body)) != digest:
        raise RefundVerificationError("eth_account encodes the typed data to another digest: nothing was signed")
    signed = account.sign_message(signable)
    return signature_from_rs(int(signed.r), int(signed.s), digest, address)
