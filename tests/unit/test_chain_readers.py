"""The chain readers: how many RPC calls a scan makes, and how each chain's log format is read."""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from typing import Any

import pytest

from usdt_gateway.address_codec import to_checksum_address, tron_address_from_body, tron_body20
from usdt_gateway.chain import evm, tron
from usdt_gateway.chain.endpoints import AllEndpointsFailed, Endpoints
from usdt_gateway.chain.jsonrpc import RpcError, RpcUnavailable, call_many
from usdt_gateway.chain.readers import EvmReader
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, ChainMoved
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
    evm.transfers(
        rpc,  # type: ignore[arg-type]  # a fake with JsonRpc's call()
        network="eth",
        token=TOKEN,
        recipients=recipients,
        from_block=100,
        to_block=124,
        max_range=10,
    )
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
    assert (
        evm.transfers(
            rpc,  # type: ignore[arg-type]  # a fake with JsonRpc's call()
            network="eth",
            token=TOKEN,
            recipients=[],
            from_block=1,
            to_block=5,
            max_range=10,
        )
        == []
    )
    assert rpc.calls == []


class FakeTronProvider:
    def __init__(self, infos: Any) -> None:
        self.infos = infos

    def make_request(self, method: str, params: Any = None) -> Any:
        assert method == "wallet/gettransactioninfobyblocknum"
        return self.infos


def tron_log(token: str, sender: str, recipient: str, units: int) -> dict[str, Any]:
    # As the node serves it: address without the 41 prefix, hex without 0x.
    return {
        "address": tron_body20(token).hex(),
        "topics": [TRANSFER_TOPIC, "0" * 24 + tron_body20(sender).hex(), "0" * 24 + tron_body20(recipient).hex()],
        "data": f"{units:064x}",
    }


def random_tron() -> str:
    return tron_address_from_body(secrets.token_bytes(20))


def test_tron_reads_only_successful_logs_of_the_token() -> None:
    # Given a block with a good transfer, a failed one, one of another token, and a TRX transfer
    payer, shop, other = random_tron(), random_tron(), random_tron()
    ok = {
        "id": "aa" * 32,
        "blockNumber": 7,
        "receipt": {"result": "SUCCESS", "energy_usage_total": 64285},
        "log": [tron_log(TRON_TOKEN, payer, shop, 12_500_000)],
    }
    failed = {
        "id": "bb" * 32,
        "blockNumber": 7,
        "result": "FAILED",
        "resMessage": "5245564552540000",
        "receipt": {"result": "REVERT"},
    }
    scam = {
        "id": "cc" * 32,
        "blockNumber": 7,
        "receipt": {"result": "SUCCESS"},
        "log": [tron_log(random_tron(), payer, shop, 99_000_000)],
    }
    trx = {"id": "dd" * 32, "blockNumber": 7, "receipt": {"net_fee": 267000}}
    provider = FakeTronProvider([ok, failed, scam, trx])
    # When the block is read for the shop's address (and for another address)
    found = tron.transfers(provider, network="tron", token=TRON_TOKEN, recipients={shop}, number=7, block_hash="b7")
    none = tron.transfers(provider, network="tron", token=TRON_TOKEN, recipients={other}, number=7, block_hash="b7")
    # Then exactly the successful transfer of the token is found, decoded to base58 and base units
    assert [(t.txid, t.sender, t.recipient, t.units, t.log_index) for t in found] == [
        ("aa" * 32, payer, shop, 12_500_000, 0)
    ]
    assert none == []


def test_tron_empty_block_and_answers_that_are_not_the_blocks() -> None:
    # [] for a block without transactions is an empty block
    empty = {"blockID": "b9", "block_header": {"raw_data": {"number": 9}}}
    assert (
        tron.transfers(FakeTronProvider([]), network="tron", token=TRON_TOKEN, recipients=None, number=9, block=empty)
        == []
    )
    # {} (java-tron's answer for num <= 0), or a list that is not the block's transactions, is
    # the node's failure: never an empty block
    one_tx = empty | {"transactions": [{"txID": "aa" * 32}]}
    info = {"id": "aa" * 32, "blockNumber": 9, "receipt": {"result": "SUCCESS"}}
    for answer, block in (
        ({}, empty),
        ([], one_tx),
        ([info | {"blockNumber": 8}], one_tx),
        ([info | {"id": "bb" * 32}], one_tx),
        ([info, info], one_tx),
    ):
        with pytest.raises(RpcUnavailable):
            tron.transfers(
                FakeTronProvider(answer), network="tron", token=TRON_TOKEN, recipients=None, number=9, block=block
            )
    assert (
        tron.transfers(
            FakeTronProvider([info]), network="tron", token=TRON_TOKEN, recipients=None, number=9, block=one_tx
        )
        == []
    )


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
        return [
            {
                "address": TOKEN.lower(),
                "topics": ["0x" + TRANSFER_TOPIC, "0x" + "0" * 64, to_topic],
                "data": "0x" + f"{n:064x}",
                "blockNumber": hex(n),
                "transactionHash": "0x" + f"{n:064x}",
                "logIndex": "0x0",
                "blockHash": "0x" + "ab" * 32,
                "removed": False,
            }
            for n in range(start, end + 1)
        ]


def test_a_range_the_provider_refuses_is_split_until_it_passes() -> None:
    # Given a provider that takes at most 3 blocks per eth_getLogs, configured as if it took 10
    shop = random_evm()
    rpc = LimitedRpc(3, shop)
    # When 10 blocks are scanned
    found = evm.transfers(
        rpc,  # type: ignore[arg-type]  # a fake with JsonRpc's call()
        network="eth",
        token=TOKEN,
        recipients=[shop],
        from_block=1,
        to_block=10,
        max_range=10,
    )
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
        evm.transfers(
            rpc,  # type: ignore[arg-type]  # a fake with JsonRpc's call()
            network="eth",
            token=TOKEN,
            recipients=[rpc.recipient],
            from_block=1,
            to_block=1024,
            max_range=1024,
        )
    assert len(rpc.ranges) == 11


def _hash(number: int) -> str:
    return "0x" + f"{number:064x}"


def transfer_log(number: int, index: int, recipient: str, *, token: str = TOKEN) -> dict[str, Any]:
    """A Transfer log as a node serves it, in its own transaction."""
    return {
        "address": token.lower(),
        "topics": ["0x" + TRANSFER_TOPIC, "0x" + "0" * 64, "0x" + "0" * 24 + recipient[2:].lower()],
        "data": "0x" + f"{index + 1:064x}",
        "blockNumber": hex(number),
        "blockHash": _hash(number),
        "transactionHash": "0x" + f"{number:032x}{index:032x}",
        "logIndex": hex(index),
        "removed": False,
    }


def bloom_of(logs: list[dict[str, Any]]) -> int:
    bloom = 0
    for log in logs:
        for item in [log["address"], *log["topics"]]:
            bloom |= evm.bloom_mask(bytes.fromhex(item[2:]))
    return bloom


class Chain:
    """An EVM endpoint over an in-memory chain: headers with their logs' blooms (or `blooms`
    given per block), receipts, logs by block hash (EIP-234), single calls and batches. It has
    blocks up to `head`; `fail` answers 429 that many times; `calls` and `batches` count requests."""

    def __init__(
        self,
        label: str,
        head: int,
        logs: dict[int, list[dict[str, Any]]] | None = None,
        blooms: dict[int, int] | None = None,
        fail: int = 0,
    ) -> None:
        self.label, self.head, self.logs, self.fail = label, head, logs or {}, fail
        self.blooms = blooms or {}
        self.calls: list[str] = []
        self.batches = 0
        self.receipts_missing: set[int] = set()

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        self.batches += 1
        out: list[Any] = []
        for method, params in calls:
            try:
                out.append(self.call(method, params))
            except RpcError as exc:
                out.append(exc)
        return out

    def call(self, method: str, params: list[Any]) -> Any:
        self.calls.append(method)
        if self.fail:
            self.fail -= 1
            raise RpcUnavailable(f"{self.label}: HTTP 429")
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            if n > self.head:
                return None  # a node answers nothing for blocks it does not have yet
            logs = self.logs.get(n, [])
            return {
                "number": hex(n),
                "hash": _hash(n),
                "parentHash": _hash(n - 1),
                "timestamp": hex(1_700_000_000 + n),
                "logsBloom": "0x" + f"{self.blooms.get(n, bloom_of(logs)):0512x}",
                "transactions": list(dict.fromkeys(log["transactionHash"] for log in logs)),
            }
        n = int(params[0]["blockHash"] if method == "eth_getLogs" else params[0], 16)
        logs = self.logs.get(n, [])
        if method == "eth_getBlockReceipts":
            if n in self.receipts_missing:
                return []
            return [
                {
                    "transactionHash": tx,
                    "blockHash": _hash(n),
                    "status": "0x1",
                    "logs": [log for log in logs if log["transactionHash"] == tx],
                }
                for tx in dict.fromkeys(log["transactionHash"] for log in logs)
            ]
        if method == "eth_getTransactionReceipt":
            mine = [log for logs in self.logs.values() for log in logs if log["transactionHash"] == params[0]]
            return {"transactionHash": params[0], "blockHash": mine[0]["blockHash"], "status": "0x1", "logs": mine}
        assert method == "eth_getLogs", method
        to = params[0]["topics"][2]
        return [log for log in logs if to is None or log["topics"][2] in to]


def evm_reader(*nodes: Chain) -> EvmReader:
    network = load_networks("eth")["eth"]
    return EvmReader(network, Endpoints([(n.label, n) for n in nodes], backoff_s=0, rest_s=0))  # type: ignore[misc]


def test_a_range_is_never_read_from_a_node_that_lacks_its_blocks() -> None:
    # Given a preferred node that fails once, and a spare that is 10 blocks behind the range's end
    shop = random_evm()
    paid = {115: [transfer_log(115, 0, shop)]}
    good, behind = Chain("good", 120, paid, fail=1), Chain("behind", 110, paid)
    reader = evm_reader(good, behind)
    # When blocks 100..120 are read, the spare's silence about 111..120 is not taken for "no
    # payments": the read fails as a whole, and the scanner retries it later from its cursor
    with pytest.raises(AllEndpointsFailed):
        reader.transfers([shop], 100, 120)
    # Then, with the preferred node back, the payment in block 115 is found
    assert [t.block_number for t in reader.transfers([shop], 100, 120)] == [115]


def test_blocks_whose_bloom_rules_payments_out_are_not_read() -> None:
    # Given 21 blocks: a transfer to someone else in every one, one payment to the shop in block 115
    shop = random_evm()
    logs = {n: [transfer_log(n, 0, random_evm())] for n in range(100, 121)}
    logs[115].append(transfer_log(115, 1, shop))
    node = Chain("node", 130, logs)
    # When the range is read
    found = evm_reader(node).transfers([shop], 100, 120)
    # Then the headers came in one batch request, and only block 115 was read, whole
    assert [(t.block_number, t.recipient) for t in found] == [(115, shop)]
    assert node.batches == 1 and node.calls.count("eth_getBlockByNumber") == 21
    assert [c for c in node.calls if c != "eth_getBlockByNumber"] in (
        ["eth_getBlockReceipts"],
        ["eth_getBlockReceipts", "eth_getTransactionReceipt"],
    )


def test_a_steady_cycle_reads_a_new_block_in_at_most_two_requests() -> None:
    # Given a watched shop and one new block, empty or paying it
    shop = random_evm()
    empty, paying = Chain("empty", 101), Chain("paying", 101, {101: [transfer_log(101, 0, shop)]})
    # Then reading it costs one request for its header, and one more only when it may pay
    assert evm_reader(empty).transfers([shop], 101, 101) == [] and empty.calls == ["eth_getBlockByNumber"]
    assert len(evm_reader(paying).transfers([shop], 101, 101)) == 1
    assert paying.calls[:2] == ["eth_getBlockByNumber", "eth_getBlockReceipts"] and paying.batches == 0


def test_a_saturated_bloom_is_read_by_block_hash_and_a_false_match_does_not_stall() -> None:
    # Given a block whose bloom has every bit set (as on busy chains), which pays nobody watched
    shop = random_evm()
    node = Chain("node", 101, {101: [transfer_log(101, 0, random_evm())]}, blooms={101: (1 << 2048) - 1})
    # When it is read
    found = evm_reader(node).transfers([shop], 101, 101)
    # Then it was asked for by its hash, filtered on the shop, and its empty answer stands
    assert found == [] and node.calls == ["eth_getBlockByNumber", "eth_getLogs"]


def test_a_bloom_matching_more_than_1000_recipients_asks_for_every_transfer_of_the_block() -> None:
    # Given 1,500 watched addresses, one of them paid, in a block whose bloom matches them all
    watched = [random_evm() for _ in range(1500)]
    node = Chain(
        "node",
        101,
        {101: [transfer_log(101, 0, watched[700]), transfer_log(101, 1, random_evm())]},
        blooms={101: (1 << 2048) - 1},
    )
    asked: list[Any] = []
    real = node.call

    def recording(method: str, params: list[Any]) -> Any:
        if method == "eth_getLogs":
            asked.append(params[0]["topics"][2])
        return real(method, params)

    node.call = recording  # type: ignore[method-assign]
    # Then the block is asked for unfiltered (a filter past 1,000 is refused), and only watched ones are kept
    found = evm_reader(node).transfers(watched, 101, 101)
    assert asked == [None] and [t.recipient for t in found] == [watched[700]]


def test_a_block_answer_that_is_not_the_blocks_is_an_error() -> None:
    shop = random_evm()
    paid = {101: [transfer_log(101, 0, shop)]}
    # Receipts missing its transactions (a pruned node): an error, never an empty block
    pruned = Chain("pruned", 101, paid)
    pruned.receipts_missing.add(101)
    with pytest.raises(AllEndpointsFailed, match="receipts of block 101"):
        evm_reader(pruned).transfers([shop], 101, 101)
    # Logs of another block for a block-hash filter (an endpoint that ignores blockHash)
    wrong = Chain(
        "wrong", 101, {101: [transfer_log(101, 0, shop) | {"blockHash": _hash(7)}]}, blooms={101: (1 << 2048) - 1}
    )
    with pytest.raises(AllEndpointsFailed, match="answered other blocks"):
        evm_reader(wrong).transfers([shop], 101, 101)


def test_an_endpoint_without_block_receipts_is_read_by_block_hash() -> None:
    shop = random_evm()
    node = Chain("old", 101, {101: [transfer_log(101, 0, shop)]})
    real = node.call

    def no_receipts(method: str, params: list[Any]) -> Any:
        if method == "eth_getBlockReceipts":
            raise RpcError(-32601, "the method eth_getBlockReceipts does not exist/is not available")
        return real(method, params)

    node.call = no_receipts  # type: ignore[method-assign]
    assert [t.recipient for t in evm_reader(node).transfers([shop], 101, 101)] == [shop]
    assert "eth_getLogs" in node.calls


def test_the_bloom_test_is_the_three_11_bit_indices_of_keccak() -> None:
    # keccak256(b"") = c5d2460186f7..., so its indices are 0x5d2 & 2047, 0x4601 & 2047, 0x86f7 & 2047
    assert evm.bloom_mask(b"") == 1 << (0xC5D2 & 2047) | 1 << (0x4601 & 2047) | 1 << (0x86F7 & 2047)
    shop, other = "0x" + "11" * 20, "0x" + "22" * 20
    masks = {t: evm.topic_mask(t) for t in evm.recipient_topics([shop, other])}
    bloom = evm.RecipientBloom(TOKEN, masks)
    token_and_topic = evm.bloom_mask(bytes.fromhex(TOKEN[2:])) | evm.topic_mask("0x" + TRANSFER_TOPIC)
    shop_topic = evm.recipient_topics([shop])[0]
    # A bloom needs the token, the Transfer topic and the recipient all in it
    assert bloom.matches(token_and_topic | masks[shop_topic]) == [shop_topic]
    assert bloom.matches(token_and_topic) == []
    assert bloom.matches(masks[shop_topic] | evm.topic_mask("0x" + TRANSFER_TOPIC)) == []


def test_the_bloom_index_finds_what_testing_every_recipient_finds() -> None:
    # Given 3,000 watched recipients and blooms from sparse to saturated
    topics = evm.recipient_topics(random_evm() for _ in range(3000))
    masks = {t: evm.topic_mask(t) for t in topics}
    bloom = evm.RecipientBloom(TOKEN, masks)
    rng = random.Random(7)
    for fill in (10, 200, 700, 1500, 2048):
        block = bloom.required | sum(1 << b for b in rng.sample(range(2048), fill)) | masks[topics[fill]]
        # When the index is asked, it finds every recipient whose three bits are set (up to the limit)
        everyone = {t for t, m in masks.items() if block & m == m}
        found = bloom.matches(block)
        assert set(found) <= everyone and len(found) == len(set(found))
        assert set(found) == everyone or len(found) > evm.MAX_TOPIC_ALTERNATIVES


class Batches:
    """A JsonRpc stand-in that refuses batches over `limit` calls and fails the calls in `failing` once."""

    label = "batches"

    def __init__(self, limit: int, failing: set[int] | None = None) -> None:
        self.limit, self.failing = limit, failing or set()
        self.sizes: list[int] = []

    def call(self, method: str, params: list[Any]) -> Any:
        self.sizes.append(1)
        return params[0]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        if len(calls) > self.limit:
            raise RpcError(-32600, "batch too large")
        self.sizes.append(len(calls))
        out: list[Any] = []
        for _, params in calls:
            if params[0] in self.failing:
                self.failing.discard(params[0])
                out.append(RpcError(-32003, "response too large"))
            else:
                out.append(params[0])
        return out


def test_a_batch_the_endpoint_refuses_is_halved_and_failed_items_are_asked_again() -> None:
    rpc = Batches(limit=30, failing={5})
    assert call_many(rpc, [("echo", [n]) for n in range(100)], size=100) == list(range(100))
    assert max(rpc.sizes) <= 30 and 1 in rpc.sizes


def test_a_log_is_numbered_within_its_transaction_on_both_read_paths() -> None:
    # Given a block whose transaction emits three logs, block-wide 5, 6 and 7, the last paying the
    # shop: read whole (sparse bloom) and by hash (saturated bloom, where the receipt is asked for)
    shop = random_evm()
    logs = [transfer_log(101, i, random_evm() if i < 7 else shop) for i in (5, 6, 7)]
    for log in logs:
        log["transactionHash"] = "0x" + "ee" * 32
    sparse = Chain("sparse", 101, {101: logs})
    saturated = Chain("saturated", 101, {101: logs}, blooms={101: (1 << 2048) - 1})
    # When each is read
    whole, by_hash = evm_reader(sparse).transfers([shop], 101, 101), evm_reader(saturated).transfers([shop], 101, 101)
    # Then both give the payment position 2 in its transaction, the whole read without a receipt
    assert [(t.txid, t.log_index) for t in whole] == [(t.txid, t.log_index) for t in by_hash] == [("0x" + "ee" * 32, 2)]
    assert "eth_getTransactionReceipt" not in sparse.calls and "eth_getTransactionReceipt" in saturated.calls


def test_a_receipt_of_another_block_means_the_chain_moved() -> None:
    # Given a saturated block paying the shop whose transaction's receipt names another block
    shop = random_evm()
    log = transfer_log(101, 3, shop)
    node = Chain("node", 101, {101: [log]}, blooms={101: (1 << 2048) - 1})
    real = node.call

    def moved(method: str, params: list[Any]) -> Any:
        answer = real(method, params)
        return {**answer, "blockHash": _hash(102)} if method == "eth_getTransactionReceipt" else answer

    node.call = moved  # type: ignore[method-assign]
    # Then the read fails as a reorg mid-read does: the cycle is retried from the cursor
    with pytest.raises(ChainMoved):
        evm_reader(node).transfers([shop], 101, 101)
