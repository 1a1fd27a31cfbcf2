"""A JSON-RPC endpoint in front of anvil that passes every call through, and can forge a payment
on request: a Transfer of the token to an address, in a block of the real chain, that no
transaction made. What a hostile or compromised provider (or a hijacked DNS name) could answer.

Everything the gateway's scanner reads from this endpoint agrees with the forgery: the block's
header (its transaction list and logsBloom), its receipts (eth_getBlockReceipts), eth_getLogs by
its hash or over a range, and the forged transaction's receipt and body. The block's hash and
every other answer stay the chain's, so only another endpoint can tell: with two endpoints the
gateway holds the deposit (disputed) and never credits it (docs/networks.md, trust model).

`make dev` runs it in front of the local chain with DEVSTACK_ENDPOINTS=2; `python -m devstack
fabricate <orderId>` asks it for a forgery through its own JSON-RPC method, `devstack_forge`
(params: one object with `to`, `units`, and optionally `from`, `block`), which is answered here
and never passed on.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from usdt_gateway.address_codec import to_checksum_address
from usdt_gateway.chain import evm
from usdt_gateway.chain.jsonrpc import JsonRpc, RpcError
from usdt_gateway.chain.transfers import TRANSFER_TOPIC

HOST = "127.0.0.1"
FORGE_METHOD = "devstack_forge"
FORGER_FILE = "forger.json"  # in the state dir while `make dev` runs with it: {"url": ...}
# Whose money the forged Transfer claims to move: nobody's in particular.
FORGED_SENDER = "0x000000000000000000000000000000000000f04e"


@dataclass(frozen=True)
class Forged:
    """A payment that only this endpoint shows."""

    txid: str
    block: int  # the block it shows it in (mined already, or later)
    token: str
    sender: str
    recipient: str
    units: int


def _word(address: str) -> str:
    return "0x" + "0" * 24 + address[2:].lower()


def _match(wanted: Any, value: str) -> bool:
    """Whether a filter position (None, one value or a list of them) takes `value`."""
    if wanted is None:
        return True
    options = wanted if isinstance(wanted, list) else [wanted]
    return value.lower() in {str(o).lower() for o in options}


class ForgingProxy:
    """Start with the upstream's URL (anvil); `url` is this endpoint's, `forge` makes a payment
    appear on it, `close` stops it."""

    def __init__(self, upstream: str, *, port: int = 0) -> None:
        self.upstream = JsonRpc(upstream, label="upstream")
        self.forged: list[Forged] = []
        self._lock = threading.Lock()
        self._own: dict[str, tuple[int, int]] = {}  # block hash -> its own (transactions, logs)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                replies = [proxy.answer(call) for call in (request if isinstance(request, list) else [request])]
                data = json.dumps(replies if isinstance(request, list) else replies[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="forging-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- forging ----------------------------------------------------------------------------------

    def forge(
        self, *, token: str, recipient: str, units: int, sender: str = FORGED_SENDER, block: int | None = None
    ) -> Forged:
        """A Transfer of `units` of `token` to `recipient` in `block` (default: the next one)."""
        number = block if block is not None else int(self.upstream.call("eth_blockNumber", []), 16) + 1
        forged = Forged(
            txid="0x" + secrets.token_hex(32),
            block=number,
            token=to_checksum_address(bytes.fromhex(token[2:])),
            sender=to_checksum_address(bytes.fromhex(sender[2:])),
            recipient=to_checksum_address(bytes.fromhex(recipient[2:])),
            units=units,
        )
        with self._lock:
            self.forged.append(forged)
        return forged

    def _in_block(self, number: int) -> list[Forged]:
        with self._lock:
            return [f for f in self.forged if f.block == number]

    def _by_txid(self, txid: str) -> Forged | None:
        with self._lock:
            return next((f for f in self.forged if f.txid == str(txid).lower()), None)

    # -- answering --------------------------------------------------------------------------------

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        try:
            if call.get("method") == FORGE_METHOD:
                (spec,) = call.get("params") or [{}]
                result: Any = asdict(
                    self.forge(
                        token=str(spec["token"]),
                        recipient=str(spec["to"]),
                        units=int(spec["units"]),
                        sender=str(spec.get("from") or FORGED_SENDER),
                        block=spec.get("block"),
                    )
                )
            else:
                result = self.result(call["method"], call.get("params") or [])
        except RpcError as exc:
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": exc.code, "message": exc.message}}
        except (KeyError, TypeError, ValueError) as exc:
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": -32602, "message": str(exc)}}
        return {"jsonrpc": "2.0", "id": call.get("id"), "result": result}

    def result(self, method: str, params: list[Any]) -> Any:
        if method in ("eth_getTransactionReceipt", "eth_getTransactionByHash") and (f := self._by_txid(params[0])):
            block = self.upstream.call("eth_getBlockByNumber", [hex(f.block), False])
            if block is None:
                return None  # not mined yet, as a pending transaction's receipt
            return self._receipt(f, block) if method == "eth_getTransactionReceipt" else self._transaction(f, block)
        result = self.upstream.call(method, params)
        if method in ("eth_getBlockByNumber", "eth_getBlockByHash") and isinstance(result, dict):
            return self._block(result, full=bool(params[1]) if len(params) > 1 else False)
        if method == "eth_getBlockReceipts" and isinstance(result, list):
            block_id = str(params[0])
            by = "eth_getBlockByHash" if len(block_id) == 66 else "eth_getBlockByNumber"
            block = self.upstream.call(by, [block_id, False])
            if block is not None:
                result += [self._receipt(f, block) for f in self._in_block(int(block["number"], 16))]
            return result
        if method == "eth_getLogs" and isinstance(result, list):
            return result + self._logs(params[0] if params else {})
        return result

    def _block(self, block: dict[str, Any], *, full: bool) -> dict[str, Any]:
        forged = self._in_block(int(block["number"], 16))
        if not forged:
            return block
        bloom = int(block["logsBloom"], 16)
        txs = list(block.get("transactions") or [])
        for f in forged:
            for item in (f.token, "0x" + TRANSFER_TOPIC, _word(f.sender), _word(f.recipient)):
                bloom |= evm.bloom_mask(bytes.fromhex(item[2:]))
            txs.append(self._transaction(f, block) if full else f.txid)
        return {**block, "logsBloom": f"0x{bloom:0{evm.BLOOM_BITS // 4}x}", "transactions": txs}

    def _position(self, f: Forged, block: dict[str, Any]) -> tuple[int, int]:
        """(transaction index, block-wide log index) of a forged transaction: after the block's own
        transactions and logs, one log per forgery."""
        block_hash = str(block["hash"])
        if block_hash not in self._own:
            receipts = self.upstream.call("eth_getBlockReceipts", [block_hash]) or []
            self._own[block_hash] = (len(receipts), sum(len(r.get("logs") or []) for r in receipts))
        transactions, logs = self._own[block_hash]
        k = self._in_block(f.block).index(f)
        return transactions + k, logs + k

    def _transaction(self, f: Forged, block: dict[str, Any]) -> dict[str, Any]:
        index, _ = self._position(f, block)
        data = "0xa9059cbb" + _word(f.recipient)[2:] + f"{f.units:064x}"
        return {
            "hash": f.txid,
            "blockHash": block["hash"],
            "blockNumber": hex(f.block),
            "transactionIndex": hex(index),
            "from": f.sender,
            "to": f.token,
            "input": data,
            "value": "0x0",
            "nonce": "0x0",
            "gas": "0xea60",
        }

    def _log(self, f: Forged, block: dict[str, Any]) -> dict[str, Any]:
        index, log_index = self._position(f, block)
        return {
            "address": f.token.lower(),
            "topics": ["0x" + TRANSFER_TOPIC, _word(f.sender), _word(f.recipient)],
            "data": f"0x{f.units:064x}",
            "blockNumber": hex(f.block),
            "blockHash": block["hash"],
            "transactionHash": f.txid,
            "transactionIndex": hex(index),
            "logIndex": hex(log_index),
            "removed": False,
        }

    def _receipt(self, f: Forged, block: dict[str, Any]) -> dict[str, Any]:
        index, _ = self._position(f, block)
        log = self._log(f, block)
        bloom = 0
        for item in (f.token, "0x" + TRANSFER_TOPIC, _word(f.sender), _word(f.recipient)):
            bloom |= evm.bloom_mask(bytes.fromhex(item[2:]))
        return {
            "transactionHash": f.txid,
            "transactionIndex": hex(index),
            "blockHash": block["hash"],
            "blockNumber": hex(f.block),
            "from": f.sender,
            "to": f.token,
            "status": "0x1",
            "logs": [log],
            "logsBloom": f"0x{bloom:0{evm.BLOOM_BITS // 4}x}",
            "gasUsed": "0xc350",
            "cumulativeGasUsed": "0xc350",
            "effectiveGasPrice": "0x1",
            "type": "0x2",
            "contractAddress": None,
        }

    def _logs(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """The forged logs an eth_getLogs filter takes: by block hash, or over a range."""
        found = []
        with self._lock:
            forged = list(self.forged)
        for f in forged:
            block = self.upstream.call("eth_getBlockByNumber", [hex(f.block), False])
            if block is None:
                continue
            if "blockHash" in query:
                if str(query["blockHash"]).lower() != str(block["hash"]).lower():
                    continue
            else:
                first, last = (self._number(query.get(k, "latest")) for k in ("fromBlock", "toBlock"))
                if not first <= f.block <= last:
                    continue
            topics = list(query.get("topics") or []) + [None] * 3
            if not (
                _match(query.get("address"), f.token)
                and _match(topics[0], "0x" + TRANSFER_TOPIC)
                and _match(topics[1], _word(f.sender))
                and _match(topics[2], _word(f.recipient))
            ):
                continue
            found.append(self._log(f, block))
        return found

    def _number(self, tag: Any) -> int:
        if isinstance(tag, str) and tag.startswith("0x"):
            return int(tag, 16)
        if tag == "earliest":
            return 0
        return int(self.upstream.call("eth_blockNumber", []), 16)


def forge_through(url: str, *, token: str, recipient: str, units: int) -> dict[str, Any]:
    """Ask the forging proxy at `url` for a payment (what `python -m devstack fabricate` does)."""
    reply = JsonRpc(url, label="forging proxy").call(FORGE_METHOD, [{"token": token, "to": recipient, "units": units}])
    return dict(reply)
