"""Reading USDT transfers on EVM chains: `eth_getLogs` on the token contract with the Transfer
topic and the watched addresses as an OR-list in topic 2. Logs, never calldata, so transfers made
through other contracts (batch payers, routers, smart wallets) count. RPC calls per scan grow with
ceil(addresses / 1000) x ceil(blocks / max range), never with the number of orders."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from usdt_gateway.address_codec import normalize_evm_address, to_checksum_address
from usdt_gateway.chain.jsonrpc import JsonRpc, RpcError, RpcUnavailable
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, Transfer

MAX_TOPIC_ALTERNATIVES = 1000  # geth's maxSubTopics (and Tron's JSON-RPC limit)


def _topic(address: str) -> str:
    # Watched addresses were validated when their orders were created; checking each one's EIP-55
    # checksum again on every scan cost over a second per 100,000 addresses. The shape is checked.
    if len(address) != 42 or address[:2] != "0x":
        raise ValueError(f"not an EVM address: {address!r}")
    return "0x" + "0" * 24 + address[2:].lower()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


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


def transfers(rpc: JsonRpc, *, network: str, token: str, recipients: Iterable[str], from_block: int, to_block: int,
              max_range: int, topics: list[str] | None = None) -> list[Transfer]:
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
        logs = rpc.call("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "address": token,
                                         "topics": ["0x" + TRANSFER_TOPIC, None, topics]}])
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
        network=network, txid=log["transactionHash"], log_index=int(log["logIndex"], 16),
        block_number=int(log["blockNumber"], 16), block_hash=log["blockHash"],
        sender=to_checksum_address(bytes.fromhex(topics[1][-40:])),
        recipient=to_checksum_address(bytes.fromhex(topics[2][-40:])),
        units=int(log["data"], 16),
        # Newer nodes add the block's timestamp (seconds) to each log.
        block_time=int(log["blockTimestamp"], 16) * 1000 if log.get("blockTimestamp") else 0,
    )
