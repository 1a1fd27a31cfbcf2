"""The SDK's Tron primitives (usdt_gateway_client.tron), without a node: the protobuf of the
transactions it signs against the documented Nile captures (byte for byte, txID included), base58
addresses, the key derivation against the published vector, and the check that refuses a node's
transaction that is not exactly the call asked for."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_keys.datatypes import Signature
from usdt_gateway_client.tron import (
    NodeLied,
    TronCall,
    base58check,
    built_transaction,
    from_base58check,
    moved_units,
    raw_data_bytes,
    sign_transaction,
    transfer_data,
    tron_address,
)
from usdt_gateway_client.tron_sweep import stake_for, tron_signer

OWNER = "41dd791d6b49e190062d650e6a23c575510d35f2f9"
RECEIVER = "4192ad11c1bf16b3b14b0bd6b5c7e2db73a0b5e83a"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
ABANDON = "abandon " * 11 + "about"


def test_a_trx_transfer_encodes_as_the_documented_createtransaction_capture() -> None:
    # tronprotocol/documentation-en docs/api/http/tx-build-and-broadcast/createtransaction.md (Nile)
    call = TronCall("TransferContract", OWNER, RECEIVER, amount=1_000_000)
    raw = raw_data_bytes(
        call,
        ref_block_bytes=bytes.fromhex("2927"),
        ref_block_hash=bytes.fromhex("939ece39d08a7abe"),
        expiration=1777447527000,
        timestamp=1777447470038,
        fee_limit=0,
    )
    assert raw.hex() == (
        "0a0229272208939ece39d08a7abe40d8c483c1dd335a67080112630a2d747970652e676f6f676c65617069732e636f6d2f70"
        "726f746f636f6c2e5472616e73666572436f6e747261637412320a1541dd791d6b49e190062d650e6a23c575510d35f2f912"
        "154192ad11c1bf16b3b14b0bd6b5c7e2db73a0b5e83a18c0843d70d68780c1dd33"
    )
    assert hashlib.sha256(raw).hexdigest() == "6303c7639f591407ef9f34a7ac8c9c9a21151f5a6af21924502515734fc267ab"


def test_a_contract_call_encodes_as_the_documented_triggerconstantcontract_capture() -> None:
    # docs/api/http/smart-contract/triggerconstantcontract.md (Nile): balanceOf on Nile USDT
    data = "70a08231000000000000000000000000dd791d6b49e190062d650e6a23c575510d35f2f9"
    call = TronCall("TriggerSmartContract", OWNER, "41eca9bc828a3005b9a3b909f2cc5c2a54794de05f", data=data)
    raw = raw_data_bytes(
        call,
        ref_block_bytes=bytes.fromhex("28c0"),
        ref_block_hash=bytes.fromhex("9eabbe133123b34c"),
        expiration=1777447218000,
        timestamp=1777447160779,
        fee_limit=0,
    )
    assert hashlib.sha256(raw).hexdigest() == "cff6488e738ce77f7325572fe0aa2470f87dbf1c95eeeb2c25feec59d5afa35c"


def test_addresses_and_the_derivation_vector() -> None:
    assert base58check(bytes.fromhex("41a614f803b6fd780986a42c78ec9c7f77e6ded13c")) == USDT
    assert from_base58check(USDT).hex() == "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    for bad in (USDT[:-1] + "u", "0x" + "00" * 20, "T" + "1" * 33):
        with pytest.raises(ValueError):
            from_base58check(bad)
    # chains.md / toolchain.md: "abandon x11 about", m/44'/195'/0'/0/0
    assert tron_address(tron_signer(ABANDON, 0)(0).address) == "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"


def _node_tx(call: TronCall, fee_limit: int) -> dict[str, Any]:
    """What an honest node answers for `call`."""
    raw: dict[str, Any] = {
        "contract": [
            {
                "parameter": {"value": call.value_json(), "type_url": f"type.googleapis.com/protocol.{call.kind}"},
                "type": call.kind,
            }
        ],
        "ref_block_bytes": "2927",
        "ref_block_hash": "939ece39d08a7abe",
        "expiration": 1777447527000,
        "timestamp": 1777447467000,
    }
    if fee_limit:
        raw["fee_limit"] = fee_limit
    encoded = raw_data_bytes(
        call,
        ref_block_bytes=bytes.fromhex("2927"),
        ref_block_hash=bytes.fromhex("939ece39d08a7abe"),
        expiration=1777447527000,
        timestamp=1777447467000,
        fee_limit=fee_limit,
    )
    txid = hashlib.sha256(encoded).hexdigest()
    return {"visible": False, "txID": txid, "raw_data": raw, "raw_data_hex": encoded.hex()}


TRANSFER = TronCall("TriggerSmartContract", OWNER, from_base58check(USDT).hex(), data=transfer_data(USDT, 5))
DELEGATE = TronCall("DelegateResourceContract", OWNER, RECEIVER, 2_000_000, resource="ENERGY")


def test_an_honest_transaction_is_accepted_with_defaults_written_or_not() -> None:
    body = built_transaction(TRANSFER, 13_028_500, _node_tx(TRANSFER, 13_028_500))
    assert body["txID"] == _node_tx(TRANSFER, 13_028_500)["txID"]
    tx = _node_tx(DELEGATE, 0)
    tx["raw_data"]["contract"][0]["parameter"]["value"]["lock"] = False  # the documentation shows it
    built_transaction(DELEGATE, 0, tx)
    bandwidth = TronCall("UnDelegateResourceContract", OWNER, RECEIVER, 3, resource="BANDWIDTH")
    assert "resource" not in bandwidth.value_json()
    built_transaction(bandwidth, 0, _node_tx(bandwidth, 0))


def _rehash(tx: dict[str, Any], call: TronCall, fee_limit: int) -> dict[str, Any]:
    """`tx` made consistent with itself for `call` (a node that lies well)."""
    honest = _node_tx(call, fee_limit)
    return tx | {"raw_data_hex": honest["raw_data_hex"], "txID": honest["txID"]}


@pytest.mark.parametrize(
    "lie",
    [
        "another recipient, consistent",
        "another recipient in the hex only",
        "a higher fee limit",
        "a locked delegation",
        "another resource",
        "a second contract",
        "a memo",
        "a txID not of the bytes",
    ],
)
def test_a_transaction_that_is_not_the_call_asked_for_is_refused(lie: str) -> None:
    call, fee_limit = (DELEGATE, 0) if "delegation" in lie or "resource" in lie else (TRANSFER, 13_028_500)
    tx = json.loads(json.dumps(_node_tx(call, fee_limit)))
    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
    attacker = TronCall(
        "TriggerSmartContract", OWNER, TRANSFER.to, data=transfer_data(tron_address("0x" + "11" * 20), 5)
    )
    if lie == "another recipient, consistent":
        tx = _rehash(_node_tx(attacker, fee_limit), attacker, fee_limit)
    elif lie == "another recipient in the hex only":
        tx = tx | {k: _node_tx(attacker, fee_limit)[k] for k in ("raw_data_hex", "txID")}
    elif lie == "a higher fee limit":
        tx["raw_data"]["fee_limit"] = 10 * fee_limit
        tx = _rehash(tx, call, 10 * fee_limit)
    elif lie == "a locked delegation":
        value["lock"] = True
    elif lie == "another resource":
        value.pop("resource")
        tx = _rehash(tx, TronCall("DelegateResourceContract", OWNER, RECEIVER, 2_000_000, resource="BANDWIDTH"), 0)
    elif lie == "a second contract":
        tx["raw_data"]["contract"].append(tx["raw_data"]["contract"][0])
    elif lie == "a memo":
        tx["raw_data"]["data"] = "6869"
    else:
        tx["txID"] = "00" * 32
    with pytest.raises(NodeLied):
        built_transaction(call, fee_limit, tx)


def test_the_signature_is_over_sha256_of_raw_data_with_the_recovery_id() -> None:
    account = Account.create()
    body = built_transaction(TRANSFER, 13_028_500, _node_tx(TRANSFER, 13_028_500))
    signature = bytes.fromhex(sign_transaction(account, body))
    assert len(signature) == 65 and signature[64] in (0, 1)
    digest = hashlib.sha256(bytes.fromhex(body["raw_data_hex"])).digest()
    recovered = Signature(signature).recover_public_key_from_msg_hash(digest)
    assert recovered.to_checksum_address() == account.address


def test_moved_units_reads_only_the_token_s_transfer_from_the_address() -> None:
    token20, sender, to = (
        from_base58check(USDT).hex()[2:],
        tron_address("0x" + "22" * 20),
        tron_address("0x" + "33" * 20),
    )
    topic = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    word = "00" * 12

    def log(address: str, frm: str, dest: str, units: int) -> dict[str, Any]:
        topics = [topic, word + from_base58check(frm).hex()[2:], word + from_base58check(dest).hex()[2:]]
        return {"address": address, "topics": topics, "data": f"{units:064x}"}

    info = {"log": [log(token20, sender, to, 7), log("44" * 20, sender, to, 100), log(token20, to, sender, 1000)]}
    assert moved_units(info, USDT, sender, to) == 7


def test_the_stake_for_an_amount_of_energy_covers_it() -> None:
    # java-tron: a stake of n TRX gives int(n x limit / weight); the stake found is the least that covers it
    limit, weight = 180_000_000_000, 2_411_528_185
    sun = stake_for(130_285, limit, weight)
    assert int(sun // 1_000_000 * (limit / weight)) >= 130_285 > int((sun // 1_000_000 - 1) * (limit / weight))
    assert stake_for(1, limit, weight) == 1_000_000


def test_the_tron_sweep_needs_only_the_standard_library_until_it_signs() -> None:
    # Given an interpreter without site-packages (-S -I): the SDK and the standard library only
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from usdt_gateway_client.tron import TronCall, base58check, raw_data_bytes
from usdt_gateway_client.tron_sweep import TronSweeper
call = TronCall("TransferContract", {OWNER!r}, {RECEIVER!r}, amount=1)
print(base58check(bytes.fromhex("41" + "00" * 20)), len(raw_data_bytes(
    call, ref_block_bytes=b"ab", ref_block_hash=b"12345678", expiration=2, timestamp=1, fee_limit=0)))
"""
    done = subprocess.run(  # noqa: S603  # this interpreter, fixed arguments
        [sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, check=False
    )
    # Then the node client, the encoding and the planner import and run; only signing needs eth_account
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb", "121"]
