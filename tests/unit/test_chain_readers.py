"""The chain readers: how many RPC calls a scan makes, and how each chain's log format is read."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from usdt_gateway.address_codec import to_checksum_address, tron_address_from_body, tron_body20
from usdt_gateway.chain import evm, tron
from usdt_gateway.chain.endpoints import AllEndpointsFailed, Endpoints
from usdt_gateway.chain.jsonrpc import RpcError, RpcUnavailable
from usdt_gateway.chain.readers import EvmReader
from usdt_gateway.chain.transfers import TRANSFER_TOPIC
from usdt_gateway.networks import load_networks

TOKEN = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
TRON_TOKEN = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


class RecordingRpc:
    """Answers eth_getLogs with nothing and records each call's block range and topic-2 list."""

    url = "recording"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def call(self, method: str, params: list[Any]) -> Any:
        assert method == "eth_getLogs"
        self.calls.append(params[0])
        return []


def random_evm() -> str:
    return to_checksum_address(secrets.token_bytes(20))


def test_calls_grow_with_address_chunks_and_block_ranges_not_orders() -> None:
    # Given 2,500 watched addresses and 25 blocks with a provider limit of 10 blocks per call
    rpc = RecordingRpc()
    recipients = [random_evm() for _ in range(2500)]
    # When one scan runs
    evm.transfers(rpc, network="eth", token=TOKEN, recipients=recipients, from_block=100, to_block=124,  # type: ignore[arg-type]
                  max_range=10)
    # Then it made ceil(2500/1000) x ceil(25/10) = 9 calls, each within the limits
    assert len(rpc.calls) == 9
    assert all(len(c["topics"][2]) <= 1000 for c in rpc.calls)
    assert {(c["fromBlock"], c["toBlock"]) for c in rpc.calls} == {("0x64", "0x6d"), ("0x6e", "0x77"), ("0x78", "0x7c")}
    # And together the calls cover every address exactly once per range
    covered = [t for c in rpc.calls if c["fromBlock"] == "0x64" for t in c["topics"][2]]
    assert len(covered) == len(set(covered)) == 2500
    assert all(c["topics"][0] == "0x" + TRANSFER_TOPIC and c["address"] == TOKEN for c in rpc.calls)


def test_no_addresses_no_calls() -> None:
    rpc = RecordingRpc()
    assert evm.transfers(rpc, network="eth", token=TOKEN, recipients=[], from_block=1, to_block=5,  # type: ignore[arg-type]
                         max_range=10) == []
    assert rpc.calls == []


class FakeTronProvider:
    def __init__(self, infos: Any) -> None:
        self.infos = infos

    def make_request(self, method: str, params: Any = None) -> Any:
        assert method == "wallet/gettransactioninfobyblocknum"
        return self.infos


def tron_log(token: str, sender: str, recipient: str, units: int) -> dict[str, Any]:
    # As the node serves it: address without the 41 prefix, hex without 0x.
    return {"address": tron_body20(token).hex(),
            "topics": [TRANSFER_TOPIC, "0" * 24 + tron_body20(sender).hex(), "0" * 24 + tron_body20(recipient).hex()],
            "data": f"{units:064x}"}


def random_tron() -> str:
    return tron_address_from_body(secrets.token_bytes(20))


def test_tron_reads_only_successful_logs_of_the_token() -> None:
    # Given a block with a good transfer, a failed one, one of another token, and a TRX transfer
    payer, shop, other = random_tron(), random_tron(), random_tron()
    ok = {"id": "aa" * 32, "blockNumber": 7, "receipt": {"result": "SUCCESS", "energy_usage_total": 64285},
          "log": [tron_log(TRON_TOKEN, payer, shop, 12_500_000)]}
    failed = {"id": "bb" * 32, "blockNumber": 7, "result": "FAILED", "resMessage": "5245564552540000",
              "receipt": {"result": "REVERT"}}
    scam = {"id": "cc" * 32, "blockNumber": 7, "receipt": {"result": "SUCCESS"},
            "log": [tron_log(random_tron(), payer, shop, 99_000_000)]}
    trx = {"id": "dd" * 32, "blockNumber": 7, "receipt": {"net_fee": 267000}}
    provider = FakeTronProvider([ok, failed, scam, trx])
    # When the block is read for the shop's address (and for another address)
    found = tron.transfers(provider, network="tron", token=TRON_TOKEN, recipients={shop}, number=7, block_hash="b7")
    none = tron.transfers(provider, network="tron", token=TRON_TOKEN, recipients={other}, number=7, block_hash="b7")
    # Then exactly the successful transfer of the token is found, decoded to base58 and base units
    assert [(t.txid, t.sender, t.recipient, t.units, t.log_index) for t in found] == [
        ("aa" * 32, payer, shop, 12_500_000, 0)]
    assert none == []


def test_tron_missing_block_and_empty_block() -> None:
    # The node answers {} for a block it does not have and [] for an empty one
    for answer in ({}, []):
        assert tron.transfers(FakeTronProvider(answer), network="tron", token=TRON_TOKEN, recipients=None, number=9,
                              block_hash="b9") == []


class LimitedRpc:
    """A provider that refuses eth_getLogs over more than `limit` blocks (Infura-style -32005) and
    otherwise returns one Transfer log per block in the range."""

    url = "limited"

    def __init__(self, limit: int, recipient: str, refuse_all: bool = False) -> None:
        self.limit, self.recipient, self.refuse_all = limit, recipient, refuse_all
        self.ranges: list[tuple[int, int]] = []

    def call(self, method: str, params: list[Any]) -> Any:
        start, end = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        self.ranges.append((start, end))
        if self.refuse_all or end - start + 1 > self.limit:
            raise RpcError(-32005, "query returned more than 10000 results")
        to_topic = "0x" + "0" * 24 + self.recipient[2:].lower()
        return [{"address": TOKEN.lower(), "topics": ["0x" + TRANSFER_TOPIC, "0x" + "0" * 64, to_topic],
                 "data": "0x" + f"{n:064x}", "blockNumber": hex(n), "transactionHash": "0x" + f"{n:064x}",
                 "logIndex": "0x0", "blockHash": "0x" + "ab" * 32, "removed": False} for n in range(start, end + 1)]


def test_a_range_the_provider_refuses_is_split_until_it_passes() -> None:
    # Given a provider that takes at most 3 blocks per eth_getLogs, configured as if it took 10
    shop = random_evm()
    rpc = LimitedRpc(3, shop)
    # When 10 blocks are scanned
    found = evm.transfers(rpc, network="eth", token=TOKEN, recipients=[shop], from_block=1, to_block=10,  # type: ignore[arg-type]
                          max_range=10)
    # Then every block's transfer is found once, in order, through halved ranges
    assert [t.block_number for t in found] == list(range(1, 11))
    assert [t.units for t in found] == list(range(1, 11))
    accepted = [r for r in rpc.ranges if r[1] - r[0] + 1 <= 3]
    assert sorted(b for s, e in accepted for b in range(s, e + 1)) == list(range(1, 11))
    assert rpc.ranges[0] == (1, 10)


def test_a_single_block_still_refused_is_the_endpoints_failure() -> None:
    # Given an endpoint that refuses eth_getLogs whatever the range
    rpc = LimitedRpc(0, random_evm(), refuse_all=True)
    # Then the scan gives up after halving down to one block (about log2(range) calls), not 2x range
    with pytest.raises(RpcError):
        evm.transfers(rpc, network="eth", token=TOKEN, recipients=[rpc.recipient], from_block=1,  # type: ignore[arg-type]
                      to_block=1024, max_range=1024)
    assert len(rpc.ranges) == 11


class Node:
    """An EVM endpoint at `head` holding one payment to `shop` in `paid_block`; `fail` answers
    eth_getLogs with 429 that many times."""

    def __init__(self, url: str, head: int, shop: str, paid_block: int, fail: int = 0) -> None:
        self.url, self.head, self.shop, self.paid_block, self.fail = url, head, shop, paid_block, fail
        self.label = url  # what error messages name it by (JsonRpc: the URL without path or key)

    def call(self, method: str, params: list[Any]) -> Any:
        if method == "eth_blockNumber":
            return hex(self.head)
        assert method == "eth_getLogs"
        if self.fail:
            self.fail -= 1
            raise RpcUnavailable(f"{self.url}: HTTP 429")
        start, end = int(params[0]["fromBlock"], 16), min(int(params[0]["toBlock"], 16), self.head)
        if not start <= self.paid_block <= end:
            return []  # a node answers nothing for blocks it does not have yet
        return LimitedRpc(10, self.shop).call(method, [{"fromBlock": hex(self.paid_block),
                                                         "toBlock": hex(self.paid_block)}])


def test_a_range_is_never_read_from_a_node_that_lacks_its_blocks() -> None:
    # Given a preferred node that fails once, and a spare that is 10 blocks behind the range's end
    shop = random_evm()
    good, behind = Node("good", 120, shop, 115, fail=1), Node("behind", 110, shop, 115)
    network = load_networks("eth")["eth"]
    reader = EvmReader(network, Endpoints([("good", good), ("behind", behind)], backoff_s=0, rest_s=0))  # type: ignore[list-item]
    # When blocks 100..120 are read, the spare's silence about 111..120 is not taken for "no
    # payments": the read fails as a whole, and the scanner retries it later from its cursor
    with pytest.raises(AllEndpointsFailed):
        reader.transfers([shop], 100, 120)
    # Then, with the preferred node back, the payment in block 115 is found
    assert [t.block_number for t in reader.transfers([shop], 100, 120)] == [115]
