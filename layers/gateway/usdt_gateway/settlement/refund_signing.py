"""The owner's authorisation of a refund: the EIP-712 typed data DepositFactory.refund checks, its
digest, and the check of a signature over it, all offline.

The digest is built the way the contract builds it (contracts/DepositFactory.vy), with keccak
and plain 32-byte words, never an EIP-712 library:

    domainSeparator = keccak256(DOMAIN_TYPEHASH ‖ keccak256(name) ‖ keccak256(version) ‖ chainId ‖ factory)
    structHash      = keccak256(REFUND_TYPEHASH ‖ token ‖ salt ‖ to ‖ amount ‖ nonce ‖ deadline)
    digest          = keccak256(0x1901 ‖ domainSeparator ‖ structHash)

On Tron the same contract runs on TVM: `chainId` is the network's chain id as the contract reads
`block.chainid` there (the last 4 bytes of the genesis block id: mainnet 728126428), and every
address in the typed data (verifyingContract, token, to) is the 20-byte body of the base58 `T...`
address, written as 0x and 40 hex digits, as Solidity's and Vyper's `address` is on TVM (the
0x41 prefix is Tron's address version byte, not part of the address the contract sees). The
refund's record and the API keep the base58 forms; typed_address converts.

A signature is accepted only in the form the contract takes (r ‖ s ‖ v, v 27 or 28, s at most
n/2; v 0 or 1 is normalised to 27 or 28) and only when it recovers, with coincurve, to the
factory's owner: a signature the contract would refuse is refused here first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from usdt_gateway.address_codec import keccak256, tron_body20

DOMAIN_NAME = "USDT Gateway Deposits"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
REFUND_TYPE = "Refund(address token,bytes32 salt,address to,uint256 amount,uint256 nonce,uint256 deadline)"
# secp256k1's group order, and the highest s the contract takes (EIP-2).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2
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


def typed_address(address: str) -> str:
    """An address as the typed data and the digest hold it: 0x and 40 lowercase hex digits; a Tron
    address (base58 `T...` or 41-hex) by its 20-byte body."""
    if address.startswith("0x"):
        return address.lower()
    return "0x" + tron_body20(address).hex()


class InvalidSignature(ValueError):
    """The signature is malformed, in a form the contract refuses, or not the owner's."""


@dataclass(frozen=True)
class RefundMessage:
    """What the owner signs: the refund's fields and its domain (chain and factory).
    Addresses are 0x hex (any case) or Tron's (base58), the salt 0x and 64 hex digits."""

    chain_id: int
    factory: str
    token: str
    salt: str
    to: str
    amount: int
    nonce: int
    deadline: int  # unix seconds

    def typed_data(self) -> dict[str, Any]:
        """The JSON eth_signTypedData_v4 and eth_account's encode_typed_data(full_message=...) take;
        amount and nonce as decimal strings (a uint256 does not fit a JSON number safely)."""
        return {
            "types": {name: [dict(f) for f in fields] for name, fields in TYPES.items()},
            "primaryType": "Refund",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": self.chain_id,
                "verifyingContract": typed_address(self.factory),
            },
            "message": {
                "token": typed_address(self.token),
                "salt": self.salt.lower(),
                "to": typed_address(self.to),
                "amount": str(self.amount),
                "nonce": str(self.nonce),
                "deadline": self.deadline,
            },
        }

    def domain_separator(self) -> bytes:
        return keccak256(
            keccak256(DOMAIN_TYPE.encode())
            + keccak256(DOMAIN_NAME.encode())
            + keccak256(DOMAIN_VERSION.encode())
            + _uint(self.chain_id)
            + _address(self.factory)
        )

    def struct_hash(self) -> bytes:
        salt = bytes.fromhex(self.salt.removeprefix("0x"))
        if len(salt) != 32:
            raise ValueError("a salt is 32 bytes")
        return keccak256(
            keccak256(REFUND_TYPE.encode())
            + _address(self.token)
            + salt
            + _address(self.to)
            + _uint(self.amount)
            + _uint(self.nonce)
            + _uint(self.deadline)
        )

    def digest(self) -> bytes:
        """What the owner signs, equal to the factory's refund_digest(...)."""
        return keccak256(b"\x19\x01" + self.domain_separator() + self.struct_hash())


def _uint(value: int) -> bytes:
    if not 0 <= value < 2**256:
        raise ValueError(f"{value} is not a uint256")
    return value.to_bytes(32)


def _address(address: str) -> bytes:
    raw = bytes.fromhex(typed_address(address).removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address}")
    return raw.rjust(32, b"\x00")


def normalize_signature(hex_signature: str) -> bytes:
    """r ‖ s ‖ v as the contract takes it: 65 bytes, v 27 or 28 (0 or 1 moved there), s at most
    n/2, r and s inside the group. InvalidSignature for anything else."""
    try:
        raw = bytes.fromhex(hex_signature.removeprefix("0x"))
    except ValueError as exc:
        raise InvalidSignature("the signature is not hex") from exc
    if len(raw) != 65:
        raise InvalidSignature(f"the signature is {len(raw)} bytes, not 65 (r ‖ s ‖ v)")
    r, s, v = int.from_bytes(raw[:32]), int.from_bytes(raw[32:64]), raw[64]
    if v in (0, 1):
        v += 27
    if v not in (27, 28):
        raise InvalidSignature(f"the signature's v is {raw[64]}: it must be 27 or 28 (or 0 or 1)")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise InvalidSignature("the signature's r or s is outside the curve's range")
    if s > HALF_N:
        raise InvalidSignature("the signature's s is high (EIP-2): the factory takes only its low-s form")
    return raw[:64] + bytes([v])


def signer_of(digest: bytes, signature: bytes) -> str:
    """The lowercase address whose key made `signature` (normalized, 65 bytes) over `digest`."""
    from coincurve import PublicKey  # the signature route only: the API's other routes never load it

    try:
        key = PublicKey.from_signature_and_message(signature[:64] + bytes([signature[64] - 27]), digest, hasher=None)
    except Exception as exc:  # coincurve raises ValueError or its own errors for an unrecoverable point
        raise InvalidSignature("no public key recovers from this signature") from exc
    return "0x" + keccak256(key.format(compressed=False)[1:])[12:].hex()


def check_signature(message: RefundMessage, owner: str, hex_signature: str) -> bytes:
    """The normalized signature if it is the owner's over the message's digest (a Tron owner
    compared by its 20-byte body); InvalidSignature otherwise."""
    signature = normalize_signature(hex_signature)
    if signer_of(message.digest(), signature) != typed_address(owner):
        raise InvalidSignature(
            "the signature is not the factory owner's over this refund's digest: sign this refund's "
            "typedData (or its digest) with the owner key"
        )
    return signature
