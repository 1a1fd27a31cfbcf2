"""A Tron sweep transaction end to end against the fake full node and the local KMS (moto with the
DIGEST fix): the node builds the TriggerSmartContract, the relayer checks it and signs sha256 of
raw_data through KMS, the node accepts the broadcast and reports the receipt's energy, including
an OUT_OF_ENERGY failure. No TVM runs: the node's receipts are what it is told to report."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from tronpy.keys import PrivateKey, Signature, to_base58check_address
from tronpy.providers import HTTPProvider

from devstack.tron_node import ENERGY_PRICE_SUN, TronNode, start_tron_node
from usdt_gateway.chain import tron_tx
from usdt_gateway.create2 import keccak256, order_salt
from usdt_gateway.kms_signer import SECP256K1_N, KmsSigner

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
FACTORY = "TAtb9skGf5JU62NKYPY1G8THDWV9T7mx53"
FEE_LIMIT = 50_000_000  # 50 TRX


@pytest.fixture(scope="module")
def kms(moto_server: str) -> Any:
    return boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def signer(kms: Any) -> KmsSigner:
    key = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return KmsSigner(str(key), client=kms)


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=5) as running:
        yield running


@pytest.fixture
def provider(node: TronNode) -> HTTPProvider:
    return HTTPProvider(node.url, timeout=5)


SALTS = [order_salt("m_1", "ord_1"), order_salt("m_1", "ord_2")]


def _build(provider: HTTPProvider, signer: KmsSigner, fee_limit: int = FEE_LIMIT) -> tron_tx.TronTransaction:
    return tron_tx.build_sweep(
        provider, owner=signer.tron_address, factory=FACTORY, token=USDT, salts=SALTS, fee_limit=fee_limit
    )


def test_a_kms_signature_recovers_to_the_relayers_tron_address(signer: KmsSigner) -> None:
    # Given raw_data bytes of a transaction
    for i in range(6):
        raw = bytes([i]) * 80
        # When the relayer signs them through KMS
        signature = signer.sign_tron_transaction(raw)
        # Then tronpy recovers the relayer's Tron address from sha256(raw), with v 0/1 and a low s
        recovered = Signature(signature).recover_public_key_from_msg_hash(hashlib.sha256(raw).digest())
        assert recovered.to_base58check_address() == signer.tron_address
        assert len(signature) == 65 and signature[64] in (0, 1)
        assert int.from_bytes(signature[32:64]) <= SECP256K1_N // 2
    # and that address has the same 20 bytes as the key's EVM address
    assert to_base58check_address(signer.address) == signer.tron_address


def test_the_node_builds_the_sweep_asked_for(node: TronNode, provider: HTTPProvider, signer: KmsSigner) -> None:
    # When the relayer has the node build a sweep
    tx = _build(provider, signer)
    # Then it is one TriggerSmartContract call of sweep(token, salts) from the relayer to the factory
    (contract,) = tx.raw_data["contract"]
    assert contract["type"] == "TriggerSmartContract"
    value = contract["parameter"]["value"]
    assert to_base58check_address(value["owner_address"]) == signer.tron_address
    assert to_base58check_address(value["contract_address"]) == FACTORY
    assert (
        value["data"] == keccak256(b"sweep(address,bytes32[])")[:4].hex() + tron_tx.sweep_parameter(USDT, SALTS).hex()
    )
    assert tx.raw_data["fee_limit"] == FEE_LIMIT
    assert tx.txid == hashlib.sha256(bytes.fromhex(tx.raw_data_hex)).hexdigest()
    assert node.requests["/wallet/triggersmartcontract"] == 1


def test_a_signed_sweep_is_accepted_mined_and_reports_its_energy(
    node: TronNode, provider: HTTPProvider, signer: KmsSigner
) -> None:
    # Given a sweep built by the node and signed through KMS
    signed = tron_tx.sign(signer, _build(provider, signer))
    # When it is broadcast, Then the node accepts it; no block holds it yet
    assert tron_tx.broadcast(provider, signed) == signed.txid
    assert tron_tx.outcome(provider, signed.txid) is None
    # When a block is mined
    block = node.mine()
    # Then its receipt is a success with the energy it burned
    result = tron_tx.outcome(provider, signed.txid)
    assert result is not None and result.succeeded
    assert result.block == block
    assert result.energy_used > 0 and result.energy_fee == result.energy_used * ENERGY_PRICE_SUN
    # and the mined transaction carries the relayer's signature
    mined = provider.make_request("wallet/gettransactionbyid", {"value": signed.txid})
    assert mined["signature"] == list(signed.signature) and mined["ret"] == [{"contractRet": "SUCCESS"}]
    # and sending it again is refused as a duplicate
    with pytest.raises(tron_tx.TronTxError, match="DUP_TRANSACTION_ERROR"):
        tron_tx.broadcast(provider, signed)


def test_out_of_energy_is_a_failed_sweep_that_burned_its_fee_limit(
    node: TronNode, provider: HTTPProvider, signer: KmsSigner
) -> None:
    # Given the next call runs out of energy
    node.next_call_outcome("OUT_OF_ENERGY")
    signed = tron_tx.sign(signer, _build(provider, signer))
    # When it is broadcast and mined
    tron_tx.broadcast(provider, signed)
    node.mine()
    # Then the sweep failed, reported with the energy the whole fee limit bought
    result = tron_tx.outcome(provider, signed.txid)
    assert result is not None and not result.succeeded
    assert result.result == "OUT_OF_ENERGY"
    assert result.energy_fee == FEE_LIMIT and result.energy_used == FEE_LIMIT // ENERGY_PRICE_SUN
    info = provider.make_request("wallet/gettransactioninfobyid", {"value": signed.txid})
    assert info["result"] == "FAILED" and info["receipt"]["result"] == "OUT_OF_ENERGY"


def test_a_transaction_other_than_the_sweep_is_never_signed(
    node: TronNode, provider: HTTPProvider, signer: KmsSigner
) -> None:
    # Given a node that raises the fee limit of what it builds
    def raise_fee_limit(answer: Any) -> Any:
        tx = answer["transaction"]
        tx["raw_data_hex"] = tx["raw_data_hex"].replace(
            tron_tx._field(18, FEE_LIMIT).hex(), tron_tx._field(18, FEE_LIMIT * 100).hex()
        )
        return answer

    node.tamper_next(1, "/wallet/triggersmartcontract", raise_fee_limit)
    # When the relayer asks for a sweep, Then it refuses the transaction
    with pytest.raises(tron_tx.TronTxError, match="another transaction"):
        _build(provider, signer)


def test_a_signature_by_another_key_is_refused(node: TronNode, provider: HTTPProvider, signer: KmsSigner) -> None:
    # Given a sweep from the relayer signed by some other key
    tx = _build(provider, signer)
    other = PrivateKey.random().sign_msg_hash(hashlib.sha256(bytes.fromhex(tx.raw_data_hex)).digest())
    forged = tron_tx.TronTransaction(tx.txid, tx.raw_data, tx.raw_data_hex, (other.hex(),))
    # When it is broadcast, Then the node refuses it as java-tron does
    with pytest.raises(tron_tx.TronTxError, match="SIGERROR"):
        tron_tx.broadcast(provider, forged)


def test_fee_limit_must_be_within_the_chains_ceiling(provider: HTTPProvider, signer: KmsSigner) -> None:
    for bad in (0, tron_tx.MAX_FEE_LIMIT_SUN + 1):
        with pytest.raises(ValueError, match="fee_limit"):
            _build(provider, signer, fee_limit=bad)


def test_a_relayer_with_staked_energy_pays_from_it_and_burns_the_rest(
    node: TronNode, provider: HTTPProvider, signer: KmsSigner
) -> None:
    # Given a relayer whose staked TRX gives it 60,000 energy and no staked bandwidth, and whose
    # free bandwidth is used up
    account = node.stake(signer.tron_address, energy=60_000)
    account.free_net_used = account.free_net_limit
    before = provider.make_request("wallet/getaccountresource", {"address": signer.tron_address, "visible": True})
    assert before["EnergyLimit"] == 60_000 and "EnergyUsed" not in before  # zero fields are left out
    # When a sweep using 100,000 energy is mined
    node.next_call_outcome("SUCCESS", energy=100_000)
    signed = tron_tx.sign(signer, _build(provider, signer))
    tron_tx.broadcast(provider, signed)
    node.mine()
    # Then the receipt says 60,000 came from the stake and 40,000 were burned, and the bandwidth was burned
    result = tron_tx.outcome(provider, signed.txid)
    assert result is not None and result.succeeded
    assert (result.energy_used, result.energy_staked) == (100_000, 60_000)
    assert result.energy_fee == 40_000 * ENERGY_PRICE_SUN
    assert result.net_fee == 345_000 and result.fee == result.energy_fee + result.net_fee
    receipt = provider.make_request("wallet/gettransactioninfobyid", {"value": signed.txid})["receipt"]
    assert receipt["energy_usage"] == 60_000 and "net_usage" not in receipt
    # and the account's staked energy is used up
    after = provider.make_request("wallet/getaccountresource", {"address": signer.tron_address, "visible": True})
    assert after["EnergyUsed"] == 60_000


def test_a_fully_staked_sweep_burns_nothing(node: TronNode, provider: HTTPProvider, signer: KmsSigner) -> None:
    # Given a relayer with enough staked energy and bandwidth
    node.stake(signer.tron_address, energy=200_000, bandwidth=5_000)
    signed = tron_tx.sign(signer, _build(provider, signer))
    tron_tx.broadcast(provider, signed)
    node.mine()
    # Then nothing was burned: protobuf-JSON leaves out the zero fee and energy_fee
    info = provider.make_request("wallet/gettransactioninfobyid", {"value": signed.txid})
    assert "fee" not in info and "energy_fee" not in info["receipt"]
    result = tron_tx.outcome(provider, signed.txid)
    assert result is not None and (result.fee, result.energy_fee, result.net_fee) == (0, 0, 0)
    assert result.energy_staked == result.energy_used > 0


def test_broadcast_refusals_carry_the_documented_code_and_a_hex_message(
    provider: HTTPProvider, signer: KmsSigner, kms: Any
) -> None:
    # Given a sweep signed by another key
    other = KmsSigner(
        kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"], client=kms
    )
    tx = _build(provider, signer)
    forged = tron_tx.TronTransaction(
        tx.txid, tx.raw_data, tx.raw_data_hex, (other.sign_tron_transaction(bytes.fromhex(tx.raw_data_hex)).hex(),)
    )
    # When it is broadcast, Then the answer is {code, txid, message}: no result, message hex-encoded (visible=false)
    answer = provider.make_request("wallet/broadcasttransaction", forged.to_json())
    assert set(answer) == {"code", "txid", "message"} and answer["code"] == "SIGERROR"
    assert bytes.fromhex(answer["message"]).decode().startswith("validate signature error")
