"""Reading USDT transfers on EVM chains from logs, never calldata, so transfers made through other
contracts (batch payers, routers, smart wallets) count.

The scanner reads a block range through its headers (`headers`, batch requests) and
`block_transfers`: "no payment in this block" is taken only from what the block itself proves.
A header's logsBloom has no false negatives, so a block whose bloom lacks the token, the Transfer
topic or every watched recipient's topic holds no payment, and is not read further; a block
whose bloom may hold one is read by its hash. No range answer of `eth_getLogs` is ever taken for
"no payments": a log index that lags, is pruned or is broken answers `[]` for blocks it does
cover. `transfers` (ranges, topic-2 OR-lists) stays for tools that read logs by range."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from usdt_gateway.address_codec import keccak256, normalize_evm_address, to_checksum_address
from usdt_gateway.chain.jsonrpc import JsonRpc, Rpc, RpcError, RpcUnavailable, call_many
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, ChainMoved, Transfer

MAX_TOPIC_ALTERNATIVES = 1000  # geth's maxSubTopics (and Tron's JSON-RPC limit)
BLOOM_BITS = 2048
# A bloom at most a quarter full matches a given topic by chance under 1/4^3 = 1.6 %: a match there
# is most likely a payment, and the block few enough logs to read whole (its receipts).
SPARSE_BLOOM_BITS = BLOOM_BITS // 4
METHOD_NOT_FOUND = -32601


def _topic(address: str) -> str:
    # Watched addresses were validated when their orders were created; checking each one's EIP-55
    # checksum again on every scan cost over a second per 100,000 addresses. The shape is checked.
    if len(address) != 42 or address[:2] != "0x":
        raise ValueError(f"not an EVM address: {address!r}")
    return "0x" + "0" * 24 + address[2:].lower()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def head(rpc: JsonRpc) -> int:
    return int(rpc.call("eth_blockNumber", []), 16)


def finalized(rpc: JsonRpc) -> int:
    """The newest block the chain's finality gadget has finalized (the `finalized` tag)."""
    return int(rpc.call("eth_getBlockByNumber", ["finalized", False])["number"], 16)


def block_hash(rpc: JsonRpc, number: int) -> str | None:
    block = rpc.call("eth_getBlockByNumber", [hex(number), False])
    return str(block["hash"]) if block else None


def recipient_topics(recipients: Iterable[str]) -> list[str]:
    """The topic-2 values that select transfers to `recipients`, sorted (stable chunks)."""
    return sorted({_topic(r) for r in recipients})


# -- blocks checked against their headers' blooms ---------------------------------------------------


def bloom_mask(item: bytes) -> int:
    """The bits `item` (an address or a topic) sets in a 2048-bit logs bloom (yellow paper, M3:2048):
    three 11-bit indices, the low 11 bits of byte pairs (0,1), (2,3) and (4,5) of its keccak256.
    Bit i is bit i of the bloom read as a big-endian integer."""
    digest = keccak256(item)
    mask = 0
    for i in (0, 2, 4):
        mask |= 1 << (int.from_bytes(digest[i : i + 2], "big") % BLOOM_BITS)
    return mask


def topic_mask(topic: str) -> int:
    return bloom_mask(bytes.fromhex(topic[2:]))


class RecipientBloom:
    """Which watched recipients' topics a block's bloom may hold a Transfer of the token to.
    Topics are grouped by the lowest of their three bits, so a sparse bloom is tested through its
    few set bits, not against each of 100,000 recipients."""

    def __init__(self, token: str, masks: Mapping[str, int]) -> None:
        """`masks`: topic_mask of each watched recipient topic (the caller keeps them across
        watch-list changes: keccak of 100,000 topics takes over half a second)."""
        self.topics = frozenset(masks)
        self.required = bloom_mask(bytes.fromhex(normalize_evm_address(token)[2:])) | topic_mask("0x" + TRANSFER_TOPIC)
        self._by_bit: dict[int, list[tuple[str, int, int]]] = {}
        for topic, mask in masks.items():
            low, *others = _bits(mask)
            rest = others + [low] * (2 - len(others))  # two items' indices can coincide
            self._by_bit.setdefault(low, []).append((topic, rest[0], rest[1]))

    def matches(self, bloom: int, *, limit: int = MAX_TOPIC_ALTERNATIVES) -> list[str]:
        """The watched topics `bloom` may hold a Transfer of the token to; it stops once past `limit`."""
        if bloom & self.required != self.required:
            return []
        flags = f"{bloom:0{BLOOM_BITS}b}"[::-1]  # flags[i] == "1": bit i is set; a str index is cheap
        set_bits = _bits(bloom) if bloom.bit_count() < len(self._by_bit) else self._by_bit
        found: list[str] = []
        for bit in set_bits:
            if flags[bit] == "1" and (group := self._by_bit.get(bit)):
                found.extend(topic for topic, b2, b3 in group if flags[b2] == "1" and flags[b3] == "1")
                if len(found) > limit:
                    break
        return found


def _bits(value: int) -> list[int]:
    """The indices of the bits set in `value`, lowest first."""
    out = []
    while value:
        low = value & -value
        out.append(low.bit_length() - 1)
        value ^= low
    return out


@dataclass(frozen=True)
class Header:
    number: int
    hash: str
    parent_hash: str
    bloom: int
    time: int  # ms since the epoch
    txids: tuple[str, ...]


def headers(rpc: Rpc, first: int, last: int) -> list[Header]:
    """The headers of blocks first..last, 100 per batch request. The endpoint must have every one
    of them, in one chain: a node that is behind answers nothing for blocks it does not have yet,
    which must never pass for empty blocks."""
    numbers = range(first, last + 1)
    found: list[Header] = []
    for n, block in zip(
        numbers, call_many(rpc, [("eth_getBlockByNumber", [hex(n), False]) for n in numbers]), strict=True
    ):
        if not block:
            raise RpcUnavailable(f"{rpc.label}: has no block {n} yet")
        try:
            if len(block["logsBloom"]) != 2 + BLOOM_BITS // 4:
                raise ValueError("logsBloom")
            header = Header(
                int(block["number"], 16),
                str(block["hash"]),
                str(block["parentHash"]),
                int(block["logsBloom"], 16),
                int(block["timestamp"], 16) * 1000,
                tuple(block.get("transactions") or ()),
            )
        except (KeyError, TypeError, ValueError):
            raise RpcUnavailable(f"{rpc.label}: block {n} came without a valid header") from None
        if header.number != n:
            raise RpcUnavailable(f"{rpc.label}: asked for block {n}, answered block {header.number}")
        if found and header.parent_hash != found[-1].hash:
            # A reorg while the batch was answered, or a balancer mixing nodes: read it again.
            raise RpcUnavailable(f"{rpc.label}: blocks {n - 1} and {n} came from different chains")
        found.append(header)
    return found


def block_transfers(
    rpc: Rpc,
    *,
    network: str,
    token: str,
    headers: list[Header],
    bloom: RecipientBloom,
    first_logs: dict[tuple[str, str], int] | None = None,
) -> list[Transfer]:
    """Every Transfer of `token` to a watched recipient in these blocks, in chain order. A block
    whose bloom rules a payment out is not read. One whose bloom may hold one is read by its
    hash: whole (eth_getBlockReceipts) when its bloom is sparse, there a match is most likely a
    payment and its receipts are few; through eth_getLogs filtered by its hash (EIP-234) when its
    bloom is saturated (busy chains: nearly every block matches by chance, and whole receipts
    would cost megabytes per block). geth-family nodes answer a block-hash filter from that
    block's receipts, not from the range log index that lags or is pruned. `first_logs`, when
    given, gets the block-wide index of each transaction's first log that whole receipts show,
    keyed (txid, block hash): what first_log_indexes would otherwise ask for."""
    token = normalize_evm_address(token)
    asked: list[tuple[Header, list[str]]] = [(h, topics) for h in headers if (topics := bloom.matches(h.bloom))]
    receipts = [h.bloom.bit_count() <= SPARSE_BLOOM_BITS for h, _ in asked]
    try:
        answers = call_many(
            rpc, [_read_call(h, topics, token, whole) for (h, topics), whole in zip(asked, receipts, strict=True)]
        )
    except RpcError as exc:
        if exc.code != METHOD_NOT_FOUND or not any(receipts):
            raise
        receipts = [False] * len(asked)  # an endpoint without eth_getBlockReceipts
        answers = call_many(rpc, [_read_call(h, topics, token, False) for h, topics in asked])
    found: list[Transfer] = []
    for (header, _), whole, answer in zip(asked, receipts, answers, strict=True):
        logs = _receipt_logs(rpc, header, answer, token) if whole else _hash_logs(rpc, header, answer)
        if whole and first_logs is not None:
            first_logs.update(
                {
                    (r["transactionHash"], header.hash): min(int(log["logIndex"], 16) for log in r["logs"])
                    for r in answer
                    if r.get("logs")
                }
            )
        for log in logs:
            if log.get("removed") or len(log.get("topics") or ()) != 3 or log["topics"][2].lower() not in bloom.topics:
                continue
            t = _decode(network, token, log)
            found.append(t if t.block_time else dataclasses.replace(t, block_time=header.time))
    found.sort(key=lambda t: (t.block_number, t.log_index))
    return found


def _read_call(header: Header, topics: list[str], token: str, whole: bool) -> tuple[str, list[Any]]:
    if whole:
        return "eth_getBlockReceipts", [header.hash]
    # Past 1,000 alternatives a filter is refused: then every Transfer of the token in the block.
    to = topics if len(topics) <= MAX_TOPIC_ALTERNATIVES else None
    return "eth_getLogs", [{"blockHash": header.hash, "address": token, "topics": ["0x" + TRANSFER_TOPIC, None, to]}]


def _receipt_logs(rpc: Rpc, header: Header, receipts: Any, token: str) -> list[dict[str, Any]]:
    """The token's Transfer logs of a block's receipts, which must be one per transaction of the
    block (a pruned or partial answer is no answer)."""
    if not isinstance(receipts, list) or tuple(r.get("transactionHash") for r in receipts) != header.txids:
        raise RpcUnavailable(
            f"{rpc.label}: the receipts of block {header.number} are not its {len(header.txids)} transactions'"
        )
    if any(r.get("blockHash") != header.hash for r in receipts):
        raise RpcUnavailable(f"{rpc.label}: receipts asked for block {header.hash} came from another block")
    return [
        log
        for r in receipts
        for log in r.get("logs") or ()
        if str(log.get("address", "")).lower() == token.lower()
        and (log.get("topics") or [""])[0][2:].lower() == TRANSFER_TOPIC
    ]


def _hash_logs(rpc: Rpc, header: Header, logs: Any) -> list[dict[str, Any]]:
    # An endpoint that ignores blockHash answers logs of other blocks (its latest, by default).
    if not isinstance(logs, list) or any(log.get("blockHash") != header.hash for log in logs):
        raise RpcUnavailable(f"{rpc.label}: eth_getLogs by the hash of block {header.number} answered other blocks")
    return logs


def transfers(
    rpc: JsonRpc,
    *,
    network: str,
    token: str,
    recipients: Iterable[str],
    from_block: int,
    to_block: int,
    max_range: int,
    topics: list[str] | None = None,
) -> list[Transfer]:
    """Every Transfer of `token` to any of `recipients` in [from_block, to_block], in chain order.
    `topics`: recipient_topics(recipients) when the caller keeps them across calls."""
    topics = recipient_topics(recipients) if topics is None else topics
    if not topics or from_block > to_block:
        return []
    token = normalize_evm_address(token)
    found: list[Transfer] = []
    for start in range(from_block, to_block + 1, max_range):
        end = min(start + max_range - 1, to_block)
        for chunk in _chunks(topics, MAX_TOPIC_ALTERNATIVES):
            found.extend(_logs(rpc, network, token, chunk, start, end))
    found.sort(key=lambda t: (t.block_number, t.log_index))
    return found


def _logs(rpc: JsonRpc, network: str, token: str, topics: list[str], start: int, end: int) -> list[Transfer]:
    """One eth_getLogs call; a range the provider refuses (too many results, range or size limit,
    each provider words it differently) is split in halves until it passes. A single block that
    is still refused is this endpoint's failure: the error goes up and the next endpoint is tried."""
    try:
        logs = rpc.call(
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(start),
                    "toBlock": hex(end),
                    "address": token,
                    "topics": ["0x" + TRANSFER_TOPIC, None, topics],
                }
            ],
        )
    except RpcError:
        if start == end:
            raise
        middle = (start + end) // 2
        return _logs(rpc, network, token, topics, start, middle) + _logs(rpc, network, token, topics, middle + 1, end)
    return [_decode(network, token, log) for log in logs if not log.get("removed")]


def _decode(network: str, token: str, log: dict[str, str]) -> Transfer:
    topics = log["topics"]
    if log["address"].lower() != token.lower() or len(topics) != 3 or topics[0][2:].lower() != TRANSFER_TOPIC:
        # Outside the filter asked for: the endpoint is broken, and none of its answer is trusted.
        raise RpcUnavailable(f"eth_getLogs answered a log that is not a Transfer of {token}: {log}")
    return Transfer(
        network=network,
        txid=log["transactionHash"],
        log_index=int(log["logIndex"], 16),
        block_number=int(log["blockNumber"], 16),
        block_hash=log["blockHash"],
        sender=to_checksum_address(bytes.fromhex(topics[1][-40:])),
        recipient=to_checksum_address(bytes.fromhex(topics[2][-40:])),
        units=int(log["data"], 16),
        # Newer nodes add the block's timestamp (seconds) to each log.
        block_time=int(log["blockTimestamp"], 16) * 1000 if log.get("blockTimestamp") else 0,
    )


def located(rpc: JsonRpc, txid: str) -> int | None:
    """The block that holds transaction `txid` now, or None when no block does (a reorg removed it)."""
    receipt = rpc.call("eth_getTransactionReceipt", [txid])
    return int(receipt["blockNumber"], 16) if receipt else None


def first_log_indexes(rpc: Rpc, found: list[Transfer]) -> dict[str, int]:
    """For each transaction of `found`: the block-wide index of its first log, from its receipt
    (one batch request for them all), so a log's position within its transaction (its index
    minus this) identifies a deposit whatever block a reorg re-includes the transaction in. Each
    receipt must agree with its logs' block."""
    first: dict[str, Transfer] = {}
    for t in found:
        first.setdefault(t.txid, t)
    txids = list(first)
    receipts = call_many(rpc, [("eth_getTransactionReceipt", [txid]) for txid in txids])
    out: dict[str, int] = {}
    for txid, receipt in zip(txids, receipts, strict=True):
        t = first[txid]
        if not receipt or receipt.get("blockHash") != t.block_hash:
            raise ChainMoved(f"{txid} is no longer in block {t.block_number}")
        indexes = [int(log["logIndex"], 16) for log in receipt.get("logs") or []]
        if receipt.get("status") != "0x1" or not indexes:
            raise RpcUnavailable(f"{rpc.label}: the receipt of {txid} holds no log of a successful transaction")
        out[txid] = min(indexes)
    for t in found:
        if t.log_index < out[t.txid]:
            raise RpcUnavailable(f"{rpc.label}: log {t.log_index} of {t.txid} is not in its receipt")
    return out
