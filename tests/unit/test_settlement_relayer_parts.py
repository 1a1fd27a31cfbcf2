"""The relayer's pure parts: the sweep calldata encoded by hand equals eth-abi's and the committed
ABI's, a receipt's Swept logs are read only from the factory and token swept, fee bumps clear the
replacement minimum, and its records read back what they write."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace

import pytest
from eth_abi.abi import encode
from web3 import Web3

from devstack.settlement_contracts import artifact
from tests import dynamodb_limits
from usdt_gateway import store
from usdt_gateway.settlement.calldata import MAX_BATCH, SWEEP_SELECTOR, SWEPT_TOPIC, sweep_calldata, swept_amounts
from usdt_gateway.settlement.records import (
    Attempt,
    Mined,
    RefundCall,
    RelayerState,
    Settlement,
    SettlementStatus,
    Sweep,
)
from usdt_gateway.settlement.relayer import FeePolicy

TOKEN = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


@pytest.mark.parametrize("count", [1, 2, 17, MAX_BATCH])
def test_sweep_calldata_is_the_abi_encoding_of_the_factorys_sweep(count: int) -> None:
    salts = [secrets.token_bytes(32) for _ in range(count)]
    # Given the factory's committed ABI, as web3 encodes a call of it
    factory = Web3().eth.contract(
        address=Web3.to_checksum_address("0x" + "11" * 20), abi=artifact("DepositFactory")["abi"]
    )
    expected = bytes.fromhex(factory.encode_abi("sweep", [TOKEN, salts]).removeprefix("0x"))
    # Then the hand encoding is byte for byte the same, and eth-abi agrees on the arguments
    assert sweep_calldata(TOKEN, salts) == expected
    assert sweep_calldata(TOKEN.lower(), salts)[4:] == encode(["address", "bytes32[]"], [TOKEN, salts])
    assert Web3.keccak(text="sweep(address,bytes32[])")[:4] == SWEEP_SELECTOR


@pytest.mark.parametrize(
    ("token", "salts", "message"),
    [
        (TOKEN, [], "1 to 256"),
        (TOKEN, [b"\x00" * 32] * (MAX_BATCH + 1), "1 to 256"),
        (TOKEN, [b"\x00" * 31], "32 bytes"),
        ("0x1234", [b"\x00" * 32], "20-byte"),
    ],
)
def test_sweep_calldata_refuses_what_the_factory_would_not_take(token: str, salts: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sweep_calldata(token, salts)


FACTORY = "0x" + "Fa" * 20


def _word(address: str) -> str:
    return "0x" + address.removeprefix("0x").lower().rjust(64, "0")


def _swept_log(
    deposit: str, amount: int, *, emitter: str = FACTORY, token: str = TOKEN, **extra: object
) -> dict[str, object]:
    return {
        "address": emitter.lower(),
        "topics": [SWEPT_TOPIC, _word(token), _word(deposit)],
        "data": "0x" + amount.to_bytes(32).hex(),
        **extra,
    }


def test_a_receipts_swept_logs_are_read_only_from_the_factory_and_token_swept() -> None:
    a, b = Web3.to_checksum_address("0x" + "a1" * 20), Web3.to_checksum_address("0x" + "b2" * 20)
    # Given the committed ABI's Swept event, as the factory emits it
    (event,) = [e for e in artifact("DepositFactory")["abi"] if e.get("name") == "Swept"]
    assert [i["type"] for i in event["inputs"]] == ["address", "address", "uint256"]
    assert "0x" + Web3.keccak(text="Swept(address,address,uint256)").hex().removeprefix("0x") == SWEPT_TOPIC
    deployed = {"address": FACTORY, "topics": ["0x" + Web3.keccak(text="DepositDeployed(address,bytes32)").hex()]}
    receipt = {
        "logs": [
            deployed,
            _swept_log(a, 5_000_000),
            _swept_log(b, 7),
            # the same event from a contract that is not the factory: anyone can emit one
            _swept_log(a, 10**12, emitter="0x" + "66" * 20),
            # another token the factory swept: not the network's USDT
            _swept_log(b, 10**12, token="0x" + "77" * 20),
            # a log a node reports as removed (its block was reorganised away)
            _swept_log(a, 10**12, removed=True),
            # a log of the factory's with a topic that is not an address
            {**_swept_log(a, 10**12), "topics": [SWEPT_TOPIC, _word(TOKEN), "0x" + "ff" * 32]},
        ]
    }
    # Then only the factory's own Swept logs of the token count, per deposit address
    assert swept_amounts(receipt, factory=FACTORY.lower(), token=TOKEN.lower()) == {a: 5_000_000, b: 7}
    # And a reverted receipt (no logs) moved nothing
    assert swept_amounts({"logs": []}, factory=FACTORY, token=TOKEN) == {}


@pytest.mark.parametrize("fee", [1, 7, 8, 10**9, 123_456_789_012, 3 * 10**11 + 1])
def test_a_bumped_fee_is_at_least_12_5_percent_higher_and_clears_geths_10(fee: int) -> None:
    bumped = FeePolicy(max_fee_per_gas=10**12).bumped(fee)
    assert bumped * 1000 >= fee * 1125
    assert bumped * 100 >= fee * 110  # geth's txpool.pricebump
    assert bumped - fee <= fee // 8 + 1  # rounded up by less than one wei


def _sweep() -> Sweep:
    attempt = Attempt("0x" + "ab" * 32, "0x02f8", 4, 210_000, 3 * 10**9, 10**9, 1_700_000_000_000, 1_700_000_000_500)
    mined = Mined("0x" + "ab" * 32, 120, "0x" + "cd" * 32, 1, 180_000, 2 * 10**9, {"0x" + "A1" * 20: 5})
    return Sweep(
        "stl_1", "m1", "0x" + "11" * 20, "0x" + "22" * 20, ("0x" + "33" * 32,), 1_700_000_000_000, (attempt,), mined, 1
    )


def test_a_sweep_of_the_largest_batch_replaced_many_times_fits_its_item() -> None:
    # Given a sweep of 256 deposits whose fees were bumped from 1 gwei to 1,000 gwei (59 replacements)
    salts = tuple("0x" + secrets.token_hex(32) for _ in range(MAX_BATCH))
    raw = "0x" + secrets.token_hex(len(sweep_calldata(TOKEN, [bytes(32)] * MAX_BATCH)) + 200)
    sweep = Sweep("stl_1", "m1", "0x" + "11" * 20, "0x" + "22" * 20, salts, 1_700_000_000_000)
    fee = 10**9
    while fee < 10**12:
        sweep = sweep.with_attempt(
            Attempt("0x" + secrets.token_hex(32), raw, 4, 9_000_000, fee, fee, 1_700_000_000_000, 1_700_000_000_001)
        )
        fee = FeePolicy(max_fee_per_gas=10**12).bumped(fee)
    assert len(sweep.attempts) > 50
    # Then the RELAYER item holding it stays well inside DynamoDB's 400 KB
    pk, sk = store.relayer_key("eth")
    item = {"pk": pk, "sk": sk, "network": "eth", "leaseOwner": "run_1", "inflight": sweep.to_item()}
    assert dynamodb_limits.item_size(store._dump(item)) < 100 * 1024


def test_records_read_back_what_they_write() -> None:
    sweep = _sweep()
    assert Sweep.from_item(json.loads(json.dumps(sweep.to_item()))) == sweep
    state = RelayerState.from_item(
        {
            "network": "eth",
            "leaseOwner": "run_1",
            "leaseUntil": 5,
            "revision": 3,
            "nextNonce": 5,
            "inflight": sweep.to_item(),
        }
    )
    assert state.sweep == sweep and state.next_nonce == 5 and state.revision == 3
    settlement = Settlement(
        "stl_1",
        "eth",
        "m1",
        sweep.factory,
        sweep.token,
        sweep.salts,
        SettlementStatus.COMPLETED,
        1,
        2,
        sweep.hashes,
        sweep.mined,
        4,
        1,
    )
    item = settlement.to_item()
    assert (item["pk"], item["sk"]) == store.settlement_key("stl_1")
    assert item["gasPaid"] == 180_000 * 2 * 10**9 and item["txHash"] == "0x" + "ab" * 32
    assert Settlement.from_item(item) == settlement
    assert settlement.swept == {"0x" + "A1" * 20: 5}
    # A receipt recorded before its logs were read is no evidence of what the sweep moved
    legacy = {k: v for k, v in item["mined"].items() if k != "swept"}
    assert Settlement.from_item({**item, "mined": legacy}).swept is None


def test_a_refund_in_flight_reads_back_what_it_writes_its_128_bit_nonce_exactly() -> None:
    # Given a refund in flight (a nonce of 39 digits: more than a DynamoDB number keeps)
    call = RefundCall(
        "rfd_1",
        "ORDER#m1#o-1",
        "0x" + "44" * 20,
        "0x" + "55" * 20,
        5_000_000,
        2**128 - 1,
        1_764_720_000,
        "0x" + "66" * 65,
        1_700_000_000_000,
    )
    refund = replace(_sweep(), refund=call, external="0x" + "77" * 32)
    # Then its item (the nonce a string) reads back the same
    item = refund.to_item()
    assert item["refund"]["nonce"] == str(2**128 - 1)
    assert Sweep.from_item(json.loads(json.dumps(item))) == refund
    assert Sweep.from_item(json.loads(json.dumps(_sweep().to_item()))).refund is None


def test_a_receipt_is_read_as_where_and_what_it_cost() -> None:
    receipt = {
        "transactionHash": "0x" + "AB" * 32,
        "blockNumber": "0x78",
        "blockHash": "0x" + "CD" * 32,
        "status": "0x0",
        "gasUsed": "0x2bf20",
        "effectiveGasPrice": "0x77359400",
    }
    mined = Mined.from_receipt(receipt)
    assert mined == Mined("0x" + "ab" * 32, 120, "0x" + "cd" * 32, 0, 180_000, 2 * 10**9)
    assert mined.gas_paid == 180_000 * 2 * 10**9


def test_a_new_attempt_keeps_the_hashes_before_it_and_only_its_own_raw_bytes() -> None:
    sweep = _sweep()
    second = Attempt("0x" + "ef" * 32, "0x02f9", 4, 210_000, 4 * 10**9, 2 * 10**9, 1_700_000_100_000)
    both = sweep.with_attempt(second).broadcast(second.tx_hash, 7)
    assert both.hashes == (sweep.attempts[0].tx_hash, second.tx_hash)
    assert both.attempts[0] == replace(sweep.attempts[0], raw=None)
    assert both.attempts[1] == replace(second, broadcast_at=7)
    assert both.broadcast(second.tx_hash, None).attempts[1].broadcast_at is None
