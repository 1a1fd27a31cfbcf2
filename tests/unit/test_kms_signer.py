"""The KMS relayer signer without KMS: DER and RLP decoding, low-s normalisation and recovery
ids against a stand-in KMS client that holds a local key, and transactions that eth-account
reads back with the right sender."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import rlp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from usdt_gateway.kms_signer import (
    SECP256K1_N,
    Eip1559Transaction,
    KmsSigner,
    LegacyTransaction,
    SignerError,
    public_key_from_spki,
    rlp_encode,
    signature_from_der,
)


class LocalKms:
    """Answers GetPublicKey and Sign (DIGEST) like KMS, with a local secp256k1 key; `high_s`
    returns the high-s twin of each signature, which KMS may do."""

    def __init__(self, *, high_s: bool = False, curve: ec.EllipticCurve | None = None) -> None:
        self.private_key = ec.generate_private_key(curve or ec.SECP256K1())
        self.high_s = high_s
        self.requests: list[dict[str, Any]] = []

    @property
    def local_account_key(self) -> bytes:
        return self.private_key.private_numbers().private_value.to_bytes(32)

    def get_public_key(self, KeyId: str) -> dict[str, Any]:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"KeyId": KeyId, "PublicKey": der, "KeySpec": "ECC_SECG_P256K1"}

    def sign(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        assert request["MessageType"] == "DIGEST" and request["SigningAlgorithm"] == "ECDSA_SHA_256"
        der = self.private_key.sign(request["Message"], ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        low = min(s, SECP256K1_N - s)
        return {"Signature": utils.encode_dss_signature(r, SECP256K1_N - low if self.high_s else low)}


# The examples of the RLP specification (ethereum.org, "Recursive-length prefix").
RLP_VECTORS: list[tuple[Any, str]] = [
    (b"dog", "83646f67"),
    ([b"cat", b"dog"], "c88363617483646f67"),
    (b"", "80"),
    ([], "c0"),
    (0, "80"),
    (b"\x00", "00"),
    (b"\x0f", "0f"),
    (b"\x04\x00", "820400"),
    (15, "0f"),
    (1024, "820400"),
    ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
    (
        b"Lorem ipsum dolor sit amet, consectetur adipisicing elit",
        "b838" + b"Lorem ipsum dolor sit amet, consectetur adipisicing elit".hex(),
    ),
]


@pytest.mark.parametrize(("item", "expected"), RLP_VECTORS)
def test_rlp_encodes_the_specification_examples(item: Any, expected: str) -> None:
    assert rlp_encode(item).hex() == expected


def test_public_key_and_signature_come_out_of_der() -> None:
    # Given a key's DER SubjectPublicKeyInfo and a DER signature
    kms = LocalKms()
    point = public_key_from_spki(kms.get_public_key("k")["PublicKey"])
    numbers = kms.private_key.public_key().public_numbers()
    # Then the point is the key's, uncompressed, and (r, s) are the signature's integers
    assert point == b"\x04" + numbers.x.to_bytes(32) + numbers.y.to_bytes(32)
    assert signature_from_der(utils.encode_dss_signature(5, 2**255)) == (5, 2**255)


def test_a_key_on_another_curve_is_refused() -> None:
    # Given a KMS key on P-256, not secp256k1, When its address is asked, Then the signer refuses it
    signer = KmsSigner("k", client=LocalKms(curve=ec.SECP256R1()))
    with pytest.raises(SignerError, match="secp256k1"):
        _ = signer.address


@pytest.mark.parametrize("high_s", [False, True])
def test_digest_signatures_are_low_s_and_recover_to_the_key(high_s: bool) -> None:
    # Given a KMS that returns low-s or high-s signatures
    kms = LocalKms(high_s=high_s)
    signer = KmsSigner("relayer", client=kms)
    assert signer.address == Account.from_key(kms.local_account_key).address
    recovery_ids = set()
    for _ in range(16):
        digest = secrets.token_bytes(32)
        # When a digest is signed
        signature = signer.sign_digest(digest)
        # Then s is low and (v, r, s) recovers to the key's address, as eth-account sees it
        assert signature.s <= SECP256K1_N // 2
        vrs = (signature.recovery_id + 27, signature.r, signature.s)
        assert Account._recover_hash(digest, vrs=vrs) == signer.address
        recovery_ids.add(signature.recovery_id)
    assert recovery_ids <= {0, 1}
    assert all(r["KeyId"] == "relayer" and len(r["Message"]) == 32 for r in kms.requests)


def test_an_eip1559_transaction_reads_back_with_its_fields_and_sender() -> None:
    # Given a type-2 transaction with an access list, signed through the stand-in KMS
    signer = KmsSigner("relayer", client=LocalKms())
    tx = Eip1559Transaction(
        chain_id=31337,
        nonce=7,
        max_priority_fee_per_gas=10**9,
        max_fee_per_gas=3 * 10**10,
        gas=100_000,
        to="0x" + "ab" * 20,
        value=12345,
        data=b"\xa9\x05\x9c\xbb" + bytes(64),
        access_list=(("0x" + "cd" * 20, (bytes(31) + b"\x01",)),),
    )
    signed = signer.sign_transaction(tx)
    # When eth-account decodes it
    decoded = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
    # Then its fields are the transaction's, its sender is the KMS key's address, its hash its id
    assert decoded["chainId"] == 31337 and decoded["nonce"] == 7 and decoded["gas"] == 100_000
    assert decoded["maxFeePerGas"] == 3 * 10**10 and decoded["maxPriorityFeePerGas"] == 10**9
    assert decoded["to"] == bytes.fromhex("ab" * 20) and decoded["value"] == 12345
    assert decoded["data"] == tx.data
    assert Account.recover_transaction(signed.raw) == signer.address == signed.sender
    assert TypedTransaction.from_bytes(HexBytes(signed.raw)).hash() == tx.signing_hash()


def test_a_legacy_transaction_carries_eip155_v() -> None:
    # Given a legacy transaction for chain 56, signed through the stand-in KMS
    signer = KmsSigner("relayer", client=LocalKms())
    tx = LegacyTransaction(chain_id=56, nonce=0, gas_price=5 * 10**9, gas=21_000, to="0x" + "11" * 20, value=1)
    signed = signer.sign_transaction(tx)
    # Then eth-account recovers its sender, and v encodes the chain id
    assert Account.recover_transaction(signed.raw) == signer.address
    v = rlp_decode_v(signed.raw)
    assert v in (35 + 2 * 56, 36 + 2 * 56)


def rlp_decode_v(raw: bytes) -> int:
    return int.from_bytes(rlp.decode(raw)[6])


def test_a_digest_is_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KmsSigner("k", client=LocalKms()).sign_digest(b"\x00" * 31)
