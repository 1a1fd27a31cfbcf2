"""The relayer's signer for EVM chains and Tron: its key is an AWS KMS key of spec ECC_SECG_P256K1 and
never leaves KMS.

KMS signs a 32-byte digest (`Sign`, MessageType=DIGEST, ECDSA_SHA_256) and returns a DER
(r, s). Ethereum wants (r, s) with a low s (EIP-2) and the recovery id, which KMS does not give:
it is the one of the two candidates whose recovered key is the KMS key's public key (from
`GetPublicKey`, a DER SubjectPublicKeyInfo). Transactions are serialised here with a small RLP
encoder, so the settlement function needs neither web3 nor eth-account: EIP-1559 (type 2) and
legacy EIP-155 transactions.

    signer = KmsSigner(key_id)
    signed = signer.sign_transaction(Eip1559Transaction(chain_id=1, nonce=0, ...))
    rpc.call("eth_sendRawTransaction", ["0x" + signed.raw.hex()])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from coincurve import PublicKey

from usdt_gateway import aws
from usdt_gateway.address_codec import keccak256, pubkey_to_evm_address, pubkey_to_tron_address

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
KEY_SPEC = "ECC_SECG_P256K1"
SIGNING_ALGORITHM = "ECDSA_SHA_256"

_OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_SECP256K1 = bytes.fromhex("2b8104000a")  # 1.3.132.0.10


class SignerError(Exception):
    """KMS answered with something that is not a usable secp256k1 key or signature."""


# -- DER (only the shapes KMS returns) ------------------------------------------------------------


def _der_read(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """The content of the DER element with `tag` at `pos`, and the position after it."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise SignerError(f"DER: expected tag {tag:#x} at {pos}")
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        count = length & 0x7F
        if count == 0 or count > 2:
            raise SignerError("DER: unsupported length")
        length, pos = int.from_bytes(data[pos : pos + count]), pos + count
    if pos + length > len(data):
        raise SignerError("DER: truncated")
    return data[pos : pos + length], pos + length


def public_key_from_spki(der: bytes) -> bytes:
    """The 65-byte uncompressed secp256k1 point of a DER SubjectPublicKeyInfo (KMS GetPublicKey)."""
    spki, end = _der_read(der, 0, 0x30)
    if end != len(der):
        raise SignerError("DER: trailing bytes after the public key")
    algorithm, pos = _der_read(spki, 0, 0x30)
    oid, after = _der_read(algorithm, 0, 0x06)
    curve, _ = _der_read(algorithm, after, 0x06)
    if oid != _OID_EC_PUBLIC_KEY or curve != _OID_SECP256K1:
        raise SignerError("not a secp256k1 public key")
    bits, _ = _der_read(spki, pos, 0x03)
    point = bits[1:]  # the first byte counts unused bits (0)
    if bits[:1] != b"\x00" or len(point) != 65 or point[0] != 4:
        raise SignerError("not an uncompressed point")
    PublicKey(point)  # raises unless the point is on the curve
    return point


def signature_from_der(der: bytes) -> tuple[int, int]:
    """(r, s) of a DER ECDSA-Sig-Value."""
    body, end = _der_read(der, 0, 0x30)
    if end != len(der):
        raise SignerError("DER: trailing bytes after the signature")
    r, pos = _der_read(body, 0, 0x02)
    s, pos = _der_read(body, pos, 0x02)
    if pos != len(body):
        raise SignerError("DER: trailing bytes inside the signature")
    return int.from_bytes(r), int.from_bytes(s)


# -- RLP and transactions -------------------------------------------------------------------------

type Rlp = bytes | int | list[Rlp]


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8)
    return bytes([offset + 55 + len(size)]) + size


def rlp_encode(item: Rlp) -> bytes:
    """RLP of bytes, non-negative integers (big-endian, no leading zeros) and lists of them."""
    if isinstance(item, list):
        payload = b"".join(rlp_encode(i) for i in item)
        return _rlp_length(len(payload), 0xC0) + payload
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP integers are non-negative")
        item = item.to_bytes((item.bit_length() + 7) // 8)
    if len(item) == 1 and item[0] < 0x80:
        return item
    return _rlp_length(len(item), 0x80) + item


def _to(address: str | None) -> bytes:
    if address is None:  # contract creation
        return b""
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address}")
    return raw


@dataclass(frozen=True)
class Eip1559Transaction:
    """A type-2 transaction (EIP-1559). `to=None` creates a contract."""

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: str | None
    value: int = 0
    data: bytes = b""
    access_list: tuple[tuple[str, tuple[bytes, ...]], ...] = ()

    def _fields(self) -> list[Rlp]:
        access: list[Rlp] = [[_to(a), list(keys)] for a, keys in self.access_list]
        return [
            self.chain_id,
            self.nonce,
            self.max_priority_fee_per_gas,
            self.max_fee_per_gas,
            self.gas,
            _to(self.to),
            self.value,
            self.data,
            access,
        ]

    def signing_hash(self) -> bytes:
        return keccak256(b"\x02" + rlp_encode(self._fields()))

    def encode(self, recovery_id: int, r: int, s: int) -> bytes:
        return b"\x02" + rlp_encode([*self._fields(), recovery_id, r, s])


@dataclass(frozen=True)
class LegacyTransaction:
    """A legacy transaction with EIP-155 replay protection, for chains without EIP-1559."""

    chain_id: int
    nonce: int
    gas_price: int
    gas: int
    to: str | None
    value: int = 0
    data: bytes = b""

    def _fields(self) -> list[Rlp]:
        return [self.nonce, self.gas_price, self.gas, _to(self.to), self.value, self.data]

    def signing_hash(self) -> bytes:
        return keccak256(rlp_encode([*self._fields(), self.chain_id, 0, 0]))

    def encode(self, recovery_id: int, r: int, s: int) -> bytes:
        return rlp_encode([*self._fields(), recovery_id + 35 + 2 * self.chain_id, r, s])


type Transaction = Eip1559Transaction | LegacyTransaction


@dataclass(frozen=True)
class Signature:
    recovery_id: int  # 0 or 1 (y parity); v = 27 + recovery_id for messages
    r: int
    s: int

    def to_bytes(self) -> bytes:
        """r ‖ s ‖ v with v = 27 or 28: the 65 bytes ecrecover-based contracts take."""
        return self.r.to_bytes(32) + self.s.to_bytes(32) + bytes([27 + self.recovery_id])


@dataclass(frozen=True)
class SignedTransaction:
    raw: bytes  # for eth_sendRawTransaction
    hash: bytes  # the transaction's id
    sender: str


# -- The signer -----------------------------------------------------------------------------------


class KmsSigner:
    """Signs digests and transactions with one KMS key; the address is derived from its public key."""

    def __init__(self, key_id: str, client: Any | None = None) -> None:
        self.key_id = key_id
        self._client = client

    @cached_property
    def public_key(self) -> bytes:
        """The key's 65-byte uncompressed public point (one GetPublicKey call, then cached)."""
        kms = self._client or aws.client("kms")  # a local name: the IAM derivation (tests/aws_calls.py) reads it
        resp = kms.get_public_key(KeyId=self.key_id)
        if resp.get("KeySpec", KEY_SPEC) != KEY_SPEC:
            raise SignerError(f"KMS key {self.key_id} is {resp.get('KeySpec')}, not {KEY_SPEC}")
        return public_key_from_spki(resp["PublicKey"])

    @cached_property
    def address(self) -> str:
        """The key's EVM address, EIP-55 checksummed."""
        return pubkey_to_evm_address(self.public_key)

    @cached_property
    def tron_address(self) -> str:
        """The key's Tron address (base58check, `T...`): the same 20 bytes as its EVM address."""
        return pubkey_to_tron_address(self.public_key)

    def sign_tron_transaction(self, raw_data: bytes) -> bytes:
        """Tron's signature of a transaction's `raw_data` bytes: sha256 of them signed as a digest,
        65 bytes r ‖ s ‖ v with v the recovery id 0 or 1 (as tronpy writes it), low s."""
        signature = self.sign_digest(hashlib.sha256(raw_data).digest())
        return signature.r.to_bytes(32) + signature.s.to_bytes(32) + bytes([signature.recovery_id])

    def sign_digest(self, digest: bytes) -> Signature:
        """An Ethereum signature of a 32-byte digest: low s, with the recovery id that gives back
        this key."""
        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        kms = self._client or aws.client("kms")
        resp = kms.sign(KeyId=self.key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm=SIGNING_ALGORITHM)
        r, s = signature_from_der(resp["Signature"])
        if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
            raise SignerError("KMS returned an out-of-range signature")
        if s > SECP256K1_N // 2:  # EIP-2: the high-s twin is invalid on chain
            s = SECP256K1_N - s
        for recovery_id in (0, 1):
            compact = r.to_bytes(32) + s.to_bytes(32) + bytes([recovery_id])
            recovered = PublicKey.from_signature_and_message(compact, digest, hasher=None)
            if recovered.format(compressed=False) == self.public_key:
                return Signature(recovery_id, r, s)
        raise SignerError("the signature recovers to neither candidate: was the digest signed as RAW?")

    def sign_transaction(self, tx: Transaction) -> SignedTransaction:
        """The signed, serialised transaction."""
        signature = self.sign_digest(tx.signing_hash())
        raw = tx.encode(signature.recovery_id, signature.r, signature.s)
        return SignedTransaction(raw=raw, hash=keccak256(raw), sender=self.address)
