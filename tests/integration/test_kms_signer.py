"""The relayer's KMS signer against the local stack's KMS (the moto server, over HTTP) and anvil:
signatures of digests recover to the address of the key's public key, transactions it signs are
mined and move the key's funds, and a KMS owner key can sign a refund. Also pins the moto bug
that devstack/moto_kms.py works around (getmoto/moto#10202)."""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from eth_account import Account
from moto.kms.models import KmsBackend
from moto.kms.utils import ECDSAPrivateKey
from web3 import Web3

from devstack import moto_kms
from devstack.evm import CHAIN_ID, Anvil, deploy_token, mint, start_anvil
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory
from usdt_gateway.create2 import deposit_address, order_salt
from usdt_gateway.kms_signer import SECP256K1_N, Eip1559Transaction, KmsSigner, LegacyTransaction


@pytest.fixture(scope="module")
def kms(moto_server: str) -> Any:
    return boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")


def _new_key(kms: Any) -> str:
    meta = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    return str(meta["KeyId"])


@pytest.fixture
def signer(kms: Any) -> KmsSigner:
    return KmsSigner(_new_key(kms), client=kms)


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with start_anvil() as node:
        yield node


def test_moto_still_hashes_a_digest_again() -> None:
    # Given moto's own ECDSA signing, unpatched, and its backend's Sign that takes no MessageType
    # (when moto fixes getmoto/moto#10202 this fails: drop devstack/moto_kms.py then)
    assert "message_type" not in inspect.signature(KmsBackend.sign).parameters
    key = ECDSAPrivateKey("ECC_SECG_P256K1")
    digest = secrets.token_bytes(32)
    # When it signs a 32-byte digest
    signature = moto_kms.MOTO_ECDSA_SIGN(key, digest, "ECDSA_SHA_256")
    # Then the signature is over sha256(digest), not over the digest as AWS signs a DIGEST
    public = key.private_key.public_key()
    public.verify(signature, digest, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_local_kms_signs_a_digest_as_given(kms: Any, signer: KmsSigner) -> None:
    # Given a secp256k1 key in the local stack's KMS
    for _ in range(8):
        digest = secrets.token_bytes(32)
        # When the signer signs a digest through it
        signature = signer.sign_digest(digest)
        # Then eth-account recovers the address derived from the key's public key, and s is low
        vrs = (27 + signature.recovery_id, signature.r, signature.s)
        assert Account._recover_hash(digest, vrs=vrs) == signer.address
        assert signature.s <= SECP256K1_N // 2
    # and KMS Verify with DIGEST accepts its own signature of the digest, and only of it
    raw = kms.sign(KeyId=signer.key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    check = {"KeyId": signer.key_id, "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"}
    assert kms.verify(Message=digest, Signature=raw["Signature"], **check)["SignatureValid"] is True
    other = bytes(32)
    assert kms.verify(Message=other, Signature=raw["Signature"], **check)["SignatureValid"] is False


def test_local_kms_refuses_a_digest_of_the_wrong_length(kms: Any, signer: KmsSigner) -> None:
    # When a 31-byte "digest" is sent for ECDSA_SHA_256, Then KMS refuses it, as AWS does
    with pytest.raises(ClientError, match="Digest is invalid length"):
        kms.sign(KeyId=signer.key_id, Message=b"\x01" * 31, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")


def test_raw_messages_keep_motos_behaviour(kms: Any, signer: KmsSigner) -> None:
    # Given a RAW message signed by the local KMS, Then KMS verifies it as a RAW message
    raw = kms.sign(KeyId=signer.key_id, Message=b"hello", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    verdict = kms.verify(
        KeyId=signer.key_id,
        Message=b"hello",
        MessageType="RAW",
        Signature=raw["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )
    assert verdict["SignatureValid"] is True


def test_transactions_signed_in_kms_are_mined_and_move_the_keys_funds(anvil: Anvil, signer: KmsSigner) -> None:
    # Given the KMS key's address funded with 1 ether on anvil
    w3 = anvil.web3()
    anvil.rpc("anvil_setBalance", [signer.address, hex(10**18)])
    alice, bob = Account.create().address, Account.create().address
    fee = int(w3.eth.get_block("latest")["baseFeePerGas"]) * 2 + 10**9
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(signer.address))

    # When an EIP-1559 and a legacy transaction, signed through KMS, are sent raw
    eip1559 = signer.sign_transaction(
        Eip1559Transaction(
            chain_id=CHAIN_ID,
            nonce=nonce,
            max_priority_fee_per_gas=10**9,
            max_fee_per_gas=fee,
            gas=21_000,
            to=alice,
            value=10**17,
        )
    )
    legacy = signer.sign_transaction(
        LegacyTransaction(chain_id=CHAIN_ID, nonce=nonce + 1, gas_price=fee, gas=21_000, to=bob, value=2 * 10**17)
    )
    receipts = [w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(s.raw)) for s in (eip1559, legacy)]

    # Then both are mined from the key's address, with the ids computed here, and moved its ether
    assert [r["status"] for r in receipts] == [1, 1]
    assert [r["from"] for r in receipts] == [signer.address, signer.address]
    assert [bytes(r["transactionHash"]) for r in receipts] == [eip1559.hash, legacy.hash]
    assert [r["type"] for r in receipts] == [2, 0]
    assert w3.eth.get_balance(alice) == 10**17
    assert w3.eth.get_balance(bob) == 2 * 10**17
    gas_paid = sum(int(r["gasUsed"]) * int(r["effectiveGasPrice"]) for r in receipts)
    assert w3.eth.get_balance(Web3.to_checksum_address(signer.address)) == 10**18 - 3 * 10**17 - gas_paid


def test_a_kms_owner_key_signs_a_refund(anvil: Anvil, kms: Any, signer: KmsSigner) -> None:
    # Given a factory whose owner is a KMS key, and a deposit address holding 3 USDT
    w3 = anvil.web3()
    snapshot = anvil.rpc("evm_snapshot")
    try:
        deployer, relayer = w3.eth.accounts[0], w3.eth.accounts[1]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
        implementation = deploy_deposit_implementation(w3, deployer)
        factory = deploy_factory(
            w3, deployer, treasury=Account.create().address, owner=signer.address, implementation=implementation.address
        )
        token = deploy_token(w3, deployer)
        salt = order_salt("merchant-kms", "ord_1")
        deposit = Web3.to_checksum_address(deposit_address(factory.address, implementation.address, salt))
        mint(token, deposit, 3_000_000, owner=deployer)
        payer = Account.create().address

        # When the KMS key signs the refund digest and the relayer submits the signature
        digest = factory.functions.refund_digest(token.address, salt, payer, 3_000_000, 1, 2**40).call()
        signature = signer.sign_digest(bytes(digest)).to_bytes()
        call = factory.functions.refund(token.address, salt, payer, 3_000_000, 1, 2**40, signature)
        receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": relayer}))

        # Then the refund runs: the payer has the money
        assert receipt["status"] == 1
        assert token.functions.balanceOf(payer).call() == 3_000_000
    finally:
        assert anvil.rpc("evm_revert", [snapshot]) is True
