"""The refund signing helper against the deployed DepositFactory on anvil (deployed as
tests/integration/test_settlement_contracts.py does): its digest is the factory's
refund_digest, the factory's refund takes its signatures and moves the money, whether the key is
local (sign_refund) or in KMS (check_refund, then KMS Sign of the digest, then
signature_from_der), and the tampering it refuses is what the chain would otherwise accept."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

import boto3
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from refund_data import FAR_FUTURE, eth_account_digest, refund_json, typed_data
from usdt_gateway_client import Refund
from usdt_gateway_client.refunds import (
    RefundVerificationError,
    check_refund,
    keccak256,
    refund_digest,
    sign_refund,
    signature_from_der,
)
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from devstack.evm import CHAIN_ID, Anvil, deploy_token, mint, start_anvil
from devstack.settlement_contracts import deploy_deposit_implementation, deploy_factory
from usdt_gateway.create2 import deposit_address, order_salt
from usdt_gateway.kms_signer import KmsSigner

GAS = 5_000_000  # explicit: a reverting call is mined (status 0) instead of failing estimation
PAID = 10_000_000  # 10 USDT on the deposit address


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with start_anvil() as node:
        yield node


@pytest.fixture
def w3(anvil: Anvil) -> Iterator[Web3]:
    """A client of the module's node; the chain goes back to its previous state after the test."""
    snapshot = anvil.rpc("evm_snapshot")
    yield anvil.web3()
    assert anvil.rpc("evm_revert", [snapshot]) is True


@dataclass
class Chain:
    w3: Web3
    token: Contract
    implementation: Contract
    deployer: str
    relayer: str  # submits the signed refund, as the gateway does

    def factory(self, owner: str) -> Contract:
        return deploy_factory(
            self.w3,
            self.deployer,
            treasury=Account.create().address,
            owner=owner,
            implementation=self.implementation.address,
        )

    def paid_salt(self, factory: Contract) -> bytes:
        """The salt of a deposit address of `factory` holding 10 USDT, not deployed yet."""
        salt = order_salt("merchant-1", f"ord_{secrets.token_hex(6)}")
        mint(self.token, self.deposit(factory, salt), PAID, owner=self.deployer)
        return salt

    def deposit(self, factory: Contract, salt: bytes) -> str:
        return Web3.to_checksum_address(deposit_address(factory.address, self.implementation.address, salt))

    def balance(self, holder: str) -> int:
        return int(self.token.functions.balanceOf(Web3.to_checksum_address(holder)).call())

    def gateway_refund(self, factory: Contract, owner: str, salt: bytes, to: str, units: int, **typed: Any) -> Refund:
        """The refund as the gateway answers it: the typed data of REFUND_API.md, and as its
        digest the factory's own refund_digest of the values."""
        nonce = secrets.randbits(256)
        signed = typed_data(
            chain_id=CHAIN_ID,
            factory=factory.address,
            token=self.token.address,
            salt="0x" + salt.hex(),
            to=to.lower(),
            amount=str(units),
            nonce=str(nonce),
            deadline=FAR_FUTURE,
        )
        signed["message"].update(typed)
        m = signed["message"]
        digest = factory.functions.refund_digest(
            Web3.to_checksum_address(m["token"]),
            salt,
            Web3.to_checksum_address(m["to"]),
            int(m["amount"]),
            nonce,
            m["deadline"],
        ).call()
        data = refund_json(
            signed,
            network="local",
            to=to.lower(),
            amount=str(Decimal(units).scaleb(-6, Context(prec=100))),
            owner=owner.lower(),
            depositAddress=self.deposit(factory, salt).lower(),
            digest="0x" + bytes(digest).hex(),
        )
        return Refund.from_dict(data)

    def submit(self, factory: Contract, refund: Refund, signature: str) -> TxReceipt:
        """The gateway's relayer sends factory.refund(...) with the signature; the receipt."""
        assert refund.typed_data is not None
        m = refund.typed_data["message"]
        call = factory.functions.refund(
            Web3.to_checksum_address(m["token"]),
            bytes.fromhex(m["salt"][2:]),
            Web3.to_checksum_address(m["to"]),
            int(m["amount"]),
            int(m["nonce"]),
            int(m["deadline"]),
            bytes.fromhex(signature[2:]),
        )
        tx_hash = call.transact({"from": self.relayer, "gas": GAS})
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


@pytest.fixture
def chain(w3: Web3) -> Chain:
    deployer, relayer = w3.eth.accounts[0], w3.eth.accounts[1]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
    token = deploy_token(w3, deployer)
    return Chain(w3, token, deploy_deposit_implementation(w3, deployer), deployer, relayer)


@pytest.fixture
def owner() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def test_the_digest_is_the_factorys(chain: Chain, owner: LocalAccount) -> None:
    # Given refunds of a deployed factory, with the factory's own digest of each as the gateway's
    factory = chain.factory(owner.address)
    for units in (1, 4_000_000, 2**256 - 1):
        refund = chain.gateway_refund(factory, owner.address, chain.paid_salt(factory), Account.create().address, units)
        assert refund.typed_data is not None
        # Then the helper's digest, eth_account's and the factory's agree
        on_chain = bytes.fromhex(refund.digest[2:])
        assert refund_digest(refund.typed_data) == on_chain == eth_account_digest(dict(refund.typed_data))
        assert check_refund(refund, decimals=6) == on_chain


def test_the_factory_takes_the_helpers_signature_and_moves_the_money(chain: Chain, owner: LocalAccount) -> None:
    # Given a deposit address holding 10 USDT and a refund of 4 of them to the payer
    factory = chain.factory(owner.address)
    salt = chain.paid_salt(factory)
    payer = Account.create().address
    refund = chain.gateway_refund(factory, owner.address, salt, payer, 4_000_000)
    # When the owner's key signs it with the merchant's expectations, and the relayer submits it
    signature = sign_refund(
        refund,
        owner.key,
        expected_to=payer,
        expected_amount="4",
        expected_factory=factory.address,
        expected_chain_id=CHAIN_ID,
        decimals=6,
    )
    receipt = chain.submit(factory, refund, signature)
    # Then the refund ran: 4 USDT moved from the deposit address to the payer, once
    assert receipt["status"] == 1
    assert chain.balance(payer) == 4_000_000
    assert chain.balance(chain.deposit(factory, salt)) == PAID - 4_000_000
    assert chain.submit(factory, refund, signature)["status"] == 0  # its nonce is spent


def test_a_kms_owner_key_signs_through_the_checked_digest(chain: Chain, moto_server: str) -> None:
    # Given a factory whose owner is a secp256k1 key in KMS, its address derived as the README says
    kms = boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]  # DER SubjectPublicKeyInfo
    owner = "0x" + keccak256(public[-64:])[-20:].hex()
    assert owner == KmsSigner(key_id, client=kms).address.lower()
    factory = chain.factory(Web3.to_checksum_address(owner))
    salt = chain.paid_salt(factory)
    payer = Account.create().address
    refund = chain.gateway_refund(factory, owner, salt, payer, PAID)
    # When the checked digest is signed in KMS (as given: MessageType DIGEST) and turned into r||s||v
    digest = check_refund(refund, expected_to=payer, expected_amount="10", expected_factory=factory.address, decimals=6)
    der = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    signature = signature_from_der(der, digest, owner)
    # Then the factory takes it: the payer has the 10 USDT
    assert chain.submit(factory, refund, signature)["status"] == 1
    assert chain.balance(payer) == PAID and chain.balance(chain.deposit(factory, salt)) == 0


def test_what_the_helper_refuses_the_chain_would_have_paid(chain: Chain, owner: LocalAccount) -> None:
    # Given a gateway that shows a refund to the payer but puts another recipient in the typed
    # data, with the factory's own (so consistent) digest of it
    factory = chain.factory(owner.address)
    salt = chain.paid_salt(factory)
    payer, thief = Account.create().address, Account.create().address
    shown = chain.gateway_refund(factory, owner.address, salt, payer, PAID)
    forged = chain.gateway_refund(factory, owner.address, salt, thief, PAID)
    assert forged.typed_data is not None
    tampered = Refund.from_dict({**forged.raw, "to": payer.lower()})
    # When the merchant signs it, Then the helper refuses
    with pytest.raises(RefundVerificationError, match="recipient"):
        sign_refund(tampered, owner.key, decimals=6)
    with pytest.raises(RefundVerificationError, match="expected_to"):
        sign_refund(forged, owner.key, expected_to=payer, decimals=6)
    # And a signer that trusts the typed data would have paid the thief: the chain takes it
    blind = owner.sign_message(encode_typed_data(full_message=dict(forged.typed_data)))
    assert chain.submit(factory, forged, "0x" + bytes(blind.signature).hex())["status"] == 1
    assert chain.balance(thief) == PAID and chain.balance(payer) == 0
    assert shown.to == payer.lower()
