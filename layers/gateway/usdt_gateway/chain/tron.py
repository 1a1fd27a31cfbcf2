"""Reading USDT transfers on Tron from a full node's HTTP API, through tronpy's provider.

Per block, `wallet/gettransactioninfobyblocknum` returns every transaction's execution info with
its logs: one call covers every watched address, so calls per scan grow with blocks, never with
orders. Only successful transactions count, and only logs emitted by the configured token
contract. The node's JSON follows protobuf rules: default values are omitted, log addresses are
20-byte hex without the 41 prefix, and hex carries no 0x.

The info list is taken only as a whole answer for a block read alongside it (`blocks`): one
info per transaction of the block, with its txid and block number. Anything else (`{}`, a list
missing a transaction, infos of another block) is the endpoint's failure, never an empty block."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from usdt_gateway.address_codec import tron_address_from_body, tron_body20
from usdt_gateway.chain.jsonrpc import RpcUnavailable
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, Transfer

# Full blocks per getblockbylimitnext request (its limit is 100): a mainnet block with its
# transactions is ~0.4 MB of JSON, so 10 keep an answer to a few MB.
BLOCKS_PER_REQUEST = 10


class Provider(Protocol):
    """tronpy's HTTPProvider (or anything with its make_request)."""

    def make_request(self, method: str, params: Any = None) -> Any: ...


def _num(entry: str) -> tuple[int, str]:
    number, _, block_id = entry.removeprefix("Num:").partition(",ID:")
    return int(number), block_id


def heads(provider: Provider) -> tuple[int, int]:
    """(head, solidified head): a solidified block is irreversible (19 of 27 SRs built on it)."""
    info = provider.make_request("wallet/getnodeinfo", {})
    return _num(info["block"])[0], _num(info["solidityBlock"])[0]


def block_id(provider: Provider, number: int) -> str | None:
    block = provider.make_request("wallet/getblockbynum", {"num": number})
    return str(block["blockID"]) if block else None


def located(provider: Provider, txid: str) -> int | None:
    """The block that holds transaction `txid` now, or None ({}: no block does)."""
    info = provider.make_request("wallet/gettransactioninfobyid", {"value": txid})
    return int(info["blockNumber"]) if isinstance(info, dict) and info.get("blockNumber") is not None else None


def succeeded(info: dict[str, Any]) -> bool:
    # A failed transaction has a top-level "result": "FAILED"; a successful contract call has
    # receipt.result "SUCCESS". Logs of anything else are not payments.
    return info.get("result") != "FAILED" and info.get("receipt", {}).get("result") == "SUCCESS"


def _label(provider: Provider) -> str:
    return str(getattr(provider, "label", "") or "node")


def block_number(block: dict[str, Any]) -> int:
    return int(block.get("block_header", {}).get("raw_data", {}).get("number") or 0)  # 0 is omitted


def blocks(provider: Provider, first: int, last: int) -> dict[int, dict[str, Any]]:
    """Blocks first..last (with their transactions), by number, from `getblockbylimitnext` (a
    [startNum, endNum) range). The node must have every one of them, in one chain: a node that is
    behind has nothing to say about blocks it does not have yet."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(first, last + 1, BLOCKS_PER_REQUEST):
        end = min(start + BLOCKS_PER_REQUEST, last + 1)
        reply = provider.make_request("wallet/getblockbylimitnext", {"startNum": start, "endNum": end})
        for block in (reply.get("block") or []) if isinstance(reply, dict) else []:
            if start <= (number := block_number(block)) < end and "blockID" in block:
                found[number] = block  # a provider that includes endNum gives one block more
    for number in range(first, last + 1):
        if number not in found:
            raise RpcUnavailable(f"{_label(provider)}: has no block {number} yet")
        parent = found[number]["block_header"]["raw_data"].get("parentHash")
        if number > first and parent != found[number - 1]["blockID"]:
            raise RpcUnavailable(f"{_label(provider)}: blocks {number - 1} and {number} came from different chains")
    return found


def _check_infos(provider: Provider, number: int, block: dict[str, Any], infos: list[dict[str, Any]]) -> None:
    """The info list must be the block's: one info per transaction, same txids, this block number."""
    txids = sorted(str(tx.get("txID")) for tx in block.get("transactions") or ())
    if len(infos) != len(txids):
        raise RpcUnavailable(
            f"{_label(provider)}: block {number} holds {len(txids)} transactions, "
            f"its transaction info list {len(infos)}"
        )
    if any(info.get("blockNumber") != number for info in infos) or sorted(str(i.get("id")) for i in infos) != txids:
        raise RpcUnavailable(f"{_label(provider)}: the transaction infos answered for block {number} are not its own")


def transfers(
    provider: Provider,
    *,
    network: str,
    token: str,
    recipients: Collection[str] | None,
    number: int,
    block_hash: str = "",
    block: dict[str, Any] | None = None,
) -> list[Transfer]:
    """Transfers of `token` in block `number` to any of `recipients` (all when None). With `block`
    (the block as the node serves it), the infos are checked against it, and transfers carry its id."""
    infos = provider.make_request("wallet/gettransactioninfobyblocknum", {"num": number})
    if not isinstance(infos, list):
        # java-tron answers {} only for num <= 0: from a node, for a block, it is no answer at all.
        raise RpcUnavailable(f"{_label(provider)}: answered {str(infos)[:100]} for the transactions of block {number}")
    if block is not None:
        _check_infos(provider, number, block, infos)
        block_hash = str(block["blockID"])
    token_hex = tron_body20(token).hex()
    found = []
    for info in infos:
        if not succeeded(info):
            continue
        for index, log in enumerate(info.get("log", [])):
            topics = log.get("topics", [])
            if log.get("address", "").lower() != token_hex or len(topics) != 3 or topics[0].lower() != TRANSFER_TOPIC:
                continue
            recipient = tron_address_from_body(bytes.fromhex(topics[2][-40:]))
            if recipients is not None and recipient not in recipients:
                continue
            found.append(
                Transfer(
                    network=network,
                    txid=info["id"],
                    log_index=index,
                    block_number=number,
                    block_hash=block_hash,
                    sender=tron_address_from_body(bytes.fromhex(topics[1][-40:])),
                    recipient=recipient,
                    units=int(log.get("data") or "0", 16),
                    block_time=int(info.get("blockTimeStamp") or 0),
                )
            )
    return found
