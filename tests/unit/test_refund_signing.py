"""The refund's typed data, digest and signature check (settlement/refund_signing.py) against
eth_account's EIP-712 implementation, and its calldata against web3's encoding of the factory's
committed ABI. (tests/integration/test_refunds.py compares the digest with the deployed
factory's refund_digest.)"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from devstack.settlement_contracts import artifact
from usdt_gateway.settlement.calldata import (
    NONCE_USED_SELECTOR,
    REFUND_SELECTOR,
    REFUNDED_TOPIC,
    nonce_used_calldata,
    refund_calldata,
)
from usdt_gateway.settlement.refund_signing import (
    SECP256K1_N,
    InvalidSignature,
    RefundMessage,
    check_signature,
    normalize_signature,
)

OWNER = Account.from_key("0x" + "42" * 32)


def message(**changes: Any) -> RefundMessage:
    base = RefundMessage(
        chain_id=1,
        factory="0x" + "Fa" * 20,
        token="0xdAC17F958D2ee523a2206206994597C13D831ec7",
        salt="0x" + secrets.token_hex(32),
        to="0x" + secrets.token_hex(20),
        amount=12_500_000,
        nonce=secrets.randbits(128),
        deadline=1_764_720_000,
    )
    return replace(base, **changes)


def eth_account_digest(typed: dict[str, Any]) -> bytes:
    """The hash eth_account signs for the typed data (any key: only the hash is kept)."""
    return bytes(OWNER.sign_message(encode_typed_data(full_message=typed)).message_hash)


def sign(msg: RefundMessage, key: Any = OWNER) -> bytes:
    return bytes(key.sign_message(encode_typed_data(full_message=msg.typed_data())).signature)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"chain_id": 56, "amount": 10**30},  # BSC's 18 decimals
        {"nonce": 2**128 - 1, "deadline": 2**40},
        {"amount": 1, "nonce": 0},
    ],
)
def test_the_digest_is_eth_accounts_eip712_hash_of_the_typed_data(changes: dict[str, Any]) -> None:
    # Given a refund's message
    msg = message(**changes)
    typed = msg.typed_data()
    # Then eth_account hashes its typed data (as a wallet reads it) to the digest computed by hand
    assert eth_account_digest(typed) == msg.digest()
    # and the typed data says exactly the fields, amount and nonce as decimal strings
    assert typed["primaryType"] == "Refund"
    assert typed["domain"] == {
        "name": "USDT Gateway Deposits",
        "version": "1",
        "chainId": msg.chain_id,
        "verifyingContract": msg.factory.lower(),
    }
    assert typed["message"]["amount"] == str(msg.amount) and typed["message"]["nonce"] == str(msg.nonce)
    assert typed["message"]["deadline"] == msg.deadline


@pytest.mark.parametrize("field", ["chain_id", "factory", "token", "salt", "to", "amount", "nonce", "deadline"])
def test_every_field_changes_the_digest(field: str) -> None:
    msg = message()
    other: Any = {
        "chain_id": 2,
        "factory": "0x" + "fb" * 20,
        "token": "0x" + "01" * 20,
        "salt": "0x" + "00" * 32,
        "to": "0x" + "02" * 20,
        "amount": msg.amount + 1,
        "nonce": msg.nonce + 1,
        "deadline": msg.deadline + 1,
    }[field]
    assert replace(msg, **{field: other}).digest() != msg.digest()


def test_the_owners_signature_is_accepted_with_v_27_28_or_0_1() -> None:
    msg = message()
    signature = sign(msg)
    assert signature[64] in (27, 28)
    # The signature as a wallet makes it, and with v as 0 or 1
    assert check_signature(msg, OWNER.address, "0x" + signature.hex()) == signature
    lowered = signature[:64] + bytes([signature[64] - 27])
    assert check_signature(msg, OWNER.address.lower(), "0x" + lowered.hex()) == signature
    # A signature of the raw digest (a KMS key signs digests) is the same signature
    raw = Account.unsafe_sign_hash(msg.digest(), OWNER.key)
    assert check_signature(msg, OWNER.address, "0x" + bytes(raw.signature).hex()) == signature


def test_the_high_s_twin_of_a_valid_signature_is_refused() -> None:
    msg = message()
    signature = sign(msg)
    r, s, v = signature[:32], int.from_bytes(signature[32:64]), signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32) + bytes([55 - v])  # the other s, the other parity
    with pytest.raises(InvalidSignature, match="high"):
        check_signature(msg, OWNER.address, "0x" + twin.hex())


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("0x" + "11" * 64 + "1d", "v is 29"),
        ("0x" + "11" * 64, "64 bytes"),
        ("0x" + "00" * 64 + "1b", "range"),
        ("0x" + "ff" * 64 + "1b", "range"),
        ("0xzz" + "11" * 64, "not hex"),
    ],
)
def test_a_malformed_signature_is_refused(signature: str, reason: str) -> None:
    with pytest.raises(InvalidSignature, match=reason.split()[-1]):
        normalize_signature(signature)


def test_a_signature_by_another_key_or_over_other_fields_is_refused() -> None:
    msg = message()
    # Another key's signature of this refund
    with pytest.raises(InvalidSignature, match="not the factory owner's"):
        check_signature(msg, OWNER.address, "0x" + sign(msg, Account.create()).hex())
    # The owner's signature of the same refund for more money, to another recipient, on another
    # chain, or of another refund (another nonce): none is a signature of this one
    for other in (
        replace(msg, amount=msg.amount + 1),
        replace(msg, to="0x" + "03" * 20),
        replace(msg, chain_id=56),
        replace(msg, nonce=msg.nonce + 1),
    ):
        with pytest.raises(InvalidSignature, match="not the factory owner's"):
            check_signature(msg, OWNER.address, "0x" + sign(other).hex())


def test_refund_calldata_is_the_abi_encoding_of_the_factorys_refund() -> None:
    msg = message()
    signature = sign(msg)
    factory = Web3().eth.contract(address=Web3.to_checksum_address(msg.factory), abi=artifact("DepositFactory")["abi"])
    args = [
        Web3.to_checksum_address(msg.token),
        bytes.fromhex(msg.salt[2:]),
        Web3.to_checksum_address(msg.to),
        msg.amount,
        msg.nonce,
        msg.deadline,
        signature,
    ]
    expected = bytes.fromhex(factory.encode_abi("refund", args).removeprefix("0x"))
    salt = bytes.fromhex(msg.salt[2:])
    assert refund_calldata(msg.token, salt, msg.to, msg.amount, msg.nonce, msg.deadline, signature) == expected
    assert Web3.keccak(text="refund(address,bytes32,address,uint256,uint256,uint256,bytes)")[:4] == REFUND_SELECTOR
    assert nonce_used_calldata(7) == bytes.fromhex(factory.encode_abi("nonce_used", [7]).removeprefix("0x"))
    assert nonce_used_calldata(7)[:4] == NONCE_USED_SELECTOR
    refunded = next(e for e in artifact("DepositFactory")["abi"] if e.get("name") == "Refunded")
    signature_text = "Refunded(" + ",".join(i["type"] for i in refunded["inputs"]) + ")"
    assert bytes(Web3.keccak(text=signature_text)) == REFUNDED_TOPIC


@pytest.mark.parametrize(
    ("kwargs", "message_"),
    [
        ({"salt": b"\x00" * 31}, "32 bytes"),
        ({"signature": b"\x00" * 64}, "65 bytes"),
        ({"amount": 2**256}, "uint256"),
        ({"to": "0x1234"}, "20-byte"),
    ],
)
def test_refund_calldata_refuses_what_the_factory_would_not_take(kwargs: dict[str, Any], message_: str) -> None:
    args: dict[str, Any] = {
        "token": "0x" + "01" * 20,
        "salt": b"\x00" * 32,
        "to": "0x" + "02" * 20,
        "amount": 1,
        "nonce": 1,
        "deadline": 1,
        "signature": b"\x00" * 65,
    } | kwargs
    with pytest.raises(ValueError, match=message_):
        refund_calldata(**args)
