"""One reader per network family, with the same three questions for the scanner: where are the
head and the newest final block, what is block N (hash, time), and which USDT transfers to these
addresses are in blocks a..b. Each call goes through the network's endpoint failover."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from usdt_gateway.chain import evm, tron
from usdt_gateway.chain.endpoints import Endpoints
from usdt_gateway.chain.jsonrpc import JsonRpc, RpcUnavailable
from usdt_gateway.chain.transfers import Transfer
from usdt_gateway.networks import Network
from usdt_gateway.observability import redact_url


@dataclass(frozen=True)
class Heads:
    head: int
    final: int  # the newest block that is final under the network's policy


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str
    time: int  # ms since the epoch


class ChainReader(Protocol):
    network: Network
    endpoints: Endpoints[Any]
    scan_range: int  # the most blocks one transfers() call is asked to cover
    source: str | None  # the endpoint that answered the last transfers() call (by name)

    def heads(self) -> Heads: ...

    def block(self, number: int) -> BlockRef | None: ...

    def transfers(self, recipients: Collection[str], from_block: int, to_block: int) -> list[Transfer]: ...

    def located(self, txid: str) -> int | None: ...

    def check_endpoints(self) -> None: ...


def _confirmed(network: Network, head: int) -> int:
    # A block has head - n + 1 confirmations; it is final with at least `confirmations`.
    return head - max(1, network.finality.confirmations) + 1


# Every block of a range has its header read (evm.headers): ~15-30 KB each on busy chains (the
# tx hashes come with it), so a backfill step stays at 1,000 blocks whatever maxLogRange allows.
EVM_SCAN_BLOCKS = 1000


class EvmReader:
    def __init__(self, network: Network, endpoints: Endpoints[JsonRpc]) -> None:
        self.network = network
        self.endpoints = endpoints
        self.scan_range = min(network.max_log_range * 10, EVM_SCAN_BLOCKS)
        self.source: str | None = None
        # The watch list hands over the same address tuple until it changes: build the recipients'
        # bloom masks once, and keep those of addresses still watched across changes.
        self._bloom_of: Collection[str] | None = None
        self._masks: dict[str, int] = {}
        self._bloom = evm.RecipientBloom(network.token_contract, {})
        # (txid, block hash) -> the block-wide index of the transaction's first log: the seen
        # pass reads each deposit's receipt once, the final pass reuses it while the block stands.
        self._first_log: dict[tuple[str, str], int] = {}

    def _recipient_bloom(self, recipients: Collection[str]) -> evm.RecipientBloom:
        if recipients is not self._bloom_of:
            known = self._masks
            self._masks = {t: known.get(t) or evm.topic_mask(t) for t in evm.recipient_topics(recipients)}
            self._bloom_of, self._bloom = recipients, evm.RecipientBloom(self.network.token_contract, self._masks)
        return self._bloom

    def heads(self) -> Heads:
        head = self.endpoints.call(evm.head)
        if self.network.finality.mode == "confirmations":
            return Heads(head, _confirmed(self.network, head))
        return Heads(head, min(head, self.endpoints.call(evm.finalized)))

    def block(self, number: int) -> BlockRef | None:
        raw = self.endpoints.call(lambda rpc: rpc.call("eth_getBlockByNumber", [hex(number), False]))
        return BlockRef(number, raw["hash"], int(raw["timestamp"], 16) * 1000) if raw else None

    def transfers(self, recipients: Collection[str], from_block: int, to_block: int) -> list[Transfer]:
        bloom = self._recipient_bloom(recipients)

        def read(rpc: JsonRpc) -> list[Transfer]:
            # One endpoint reads the whole range: its headers, then the blocks they do not rule out.
            found = evm.block_transfers(
                rpc,
                network=self.network.name,
                token=self.network.token_contract,
                headers=evm.headers(rpc, from_block, to_block),
                bloom=bloom,
                first_logs=self._first_log,
            )
            return self._in_transaction(rpc, found)

        self.source, found = self.endpoints.answer(read)
        return found

    def _in_transaction(self, rpc: JsonRpc, found: list[Transfer]) -> list[Transfer]:
        """Each log's index made its position within its transaction (see evm.first_log_indexes)."""
        if len(self._first_log) > 10_000:
            self._first_log.clear()
        missing = [t for t in found if (t.txid, t.block_hash) not in self._first_log]
        if missing:
            block_of = {t.txid: t.block_hash for t in missing}
            for txid, index in evm.first_log_indexes(rpc, missing).items():
                self._first_log[(txid, block_of[txid])] = index
        return [dataclasses.replace(t, log_index=t.log_index - self._first_log[(t.txid, t.block_hash)]) for t in found]

    def located(self, txid: str) -> int | None:
        return self.endpoints.call(lambda rpc: evm.located(rpc, txid))

    def check_endpoints(self) -> None:
        self.endpoints.check_heads(evm.head, evm.block_hash, max_lag=max(3, 30_000 // self.network.block_time_ms))


class TronNode:
    """tronpy's HTTPProvider with its `requests` failures turned into RpcUnavailable."""

    def __init__(
        self, url: str, *, api_key: str | None = None, timeout: float = 10.0, label: str | None = None
    ) -> None:
        from tronpy.providers import HTTPProvider  # the scanner's layer only

        self.url = url
        self.label = label or redact_url(url) or ""  # for error messages, as JsonRpc's
        self._provider = HTTPProvider(url, timeout=timeout, api_key=api_key)

    def make_request(self, method: str, params: Any = None) -> Any:
        import requests

        try:
            reply = self._provider.make_request(method, params)
        except (requests.RequestException, ValueError) as exc:
            raise RpcUnavailable(f"{self.label}: {type(exc).__name__}") from None
        if isinstance(reply, dict) and "Error" in reply:
            raise RpcUnavailable(f"{self.label}: {str(reply['Error'])[:200]}")
        return reply


class TronReader:
    def __init__(self, network: Network, endpoints: Endpoints[TronNode]) -> None:
        self.network = network
        self.endpoints = endpoints
        self.scan_range = 100  # one call per block: bound the work of one step
        self.source: str | None = None
        self._set_of: Collection[str] | None = None
        self._watched: set[str] = set()
        # The blocks the last range read fetched (and checked the transaction infos against),
        # with the block before it: the scanner asks for their hash and time next, within the
        # same cycle. Dropped by the next range read and by heads(), at each cycle's start.
        self._refs: dict[int, BlockRef] = {}

    def _recipient_set(self, recipients: Collection[str]) -> set[str]:
        # The watch list hands over the same address tuple until it changes: build the set once.
        if recipients is not self._set_of:
            self._set_of, self._watched = recipients, set(recipients)
        return self._watched

    def heads(self) -> Heads:
        self._refs = {}
        head, solid = self.endpoints.call(tron.heads)
        if self.network.finality.mode == "confirmations":
            return Heads(head, _confirmed(self.network, head))
        return Heads(head, min(head, solid))

    def block(self, number: int) -> BlockRef | None:
        if (ref := self._refs.get(number)) is not None:
            return ref
        raw = self.endpoints.call(lambda node: node.make_request("wallet/getblockbynum", {"num": number}))
        if not raw or "blockID" not in raw:
            return None
        return _tron_ref(number, raw)

    def transfers(self, recipients: Collection[str], from_block: int, to_block: int) -> list[Transfer]:
        watched = self._recipient_set(recipients)
        self._refs = {}

        def read(node: TronNode) -> tuple[list[Transfer], dict[int, BlockRef]]:
            # One endpoint reads the whole range: its blocks first (which proves it has them all),
            # then each block's transaction infos, checked against the block.
            blocks = tron.blocks(node, max(0, from_block - 1), to_block)
            found: list[Transfer] = []
            for number in range(from_block, to_block + 1) if watched else ():
                found.extend(
                    tron.transfers(
                        node,
                        network=self.network.name,
                        token=self.network.token_contract,
                        recipients=watched,
                        number=number,
                        block=blocks[number],
                    )
                )
            return found, {n: _tron_ref(n, b) for n, b in blocks.items()}

        self.source, (found, self._refs) = self.endpoints.answer(read)
        return found

    def located(self, txid: str) -> int | None:
        return self.endpoints.call(lambda node: tron.located(node, txid))

    def check_endpoints(self) -> None:
        self.endpoints.check_heads(lambda node: tron.heads(node)[0], tron.block_id, max_lag=10)


def _tron_ref(number: int, block: dict[str, Any]) -> BlockRef:
    return BlockRef(number, str(block["blockID"]), int(block["block_header"]["raw_data"]["timestamp"]))


def reader_for(network: Network, specs: list[Any], *, timeout: float = 10.0) -> ChainReader:
    """specs: rpc_config.EndpointSpec list, in order of preference; `timeout`: per request, seconds."""
    if network.family == "evm":
        return EvmReader(network, Endpoints([(s.name, JsonRpc(s.url, timeout=timeout, label=s.name)) for s in specs]))
    return TronReader(
        network, Endpoints([(s.name, TronNode(s.url, api_key=s.api_key, timeout=timeout, label=s.name)) for s in specs])
    )
