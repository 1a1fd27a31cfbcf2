"""Reading USDT transfers on Tron from a full node's HTTP API, through tronpy's provider.

Per block, `wallet/gettransactioninfobyblocknum` returns every transaction's execution info with
its logs: one call covers every watched address, so calls per scan grow with blocks, never with
orders. Only successful transactions count, and only logs emitted by the configured token
contract. The node's JSON follows protobuf rules: default values are omitted, log addresses are
20-byte hex without the 41 prefix, and hex carries no 0x."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from usdt_gateway.address_codec import tron_address_from_body, tron_body20
from usdt_gateway.chain.transfers import TRANSFER_TOPIC, Transfer


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


def succeeded(info: dict[str, Any]) -> bool:
    # A failed transaction has a top-level "result": "FAILED"; a successful contract call has
    # receipt.result "SUCCESS". Logs of anything else are not payments.
    return info.get("result") != "FAILED" and info.get("receipt", {}).get("result") == "SUCCESS"


def transfers(provider: Provider, *, network: str, token: str, recipients: Collection[str] | None, number: int,
              block_hash: str) -> list[Transfer]:
    """Transfers of `token` in block `number` to any of `recipients` (all when None)."""
    infos = provider.make_request("wallet/gettransactioninfobyblocknum", {"num": number})
    if not isinstance(infos, list):  # {} for a block that does not exist (yet)
        return []
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
            found.append(Transfer(
                network=network, txid=info["id"], log_index=index, block_number=number, block_hash=block_hash,
                sender=tron_address_from_body(bytes.fromhex(topics[1][-40:])), recipient=recipient,
                units=int(log.get("data") or "0", 16), block_time=int(info.get("blockTimeStamp") or 0),
            ))
    return found
