"""A small JSON-RPC client over urllib3 (already present with botocore): web3 would add ~1 s of
import to every scanner cold start for a handful of calls."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any, Protocol

import urllib3

from usdt_gateway.observability import redact_url

BATCH_SIZE = 100  # calls per batch request: far below geth's 1,000 and its 25 MB answer limit


class RpcUnavailable(Exception):
    """The endpoint failed to answer usefully (timeout, HTTP error, 429): try another."""


class RpcError(Exception):
    """The endpoint answered with a JSON-RPC error (e.g. a range or result-size limit)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


_pool = urllib3.PoolManager(maxsize=4, retries=False)
_ids = itertools.count(1)

Call = tuple[str, list[Any]]  # (method, params)


class Rpc(Protocol):
    """JsonRpc, or a test double with its two methods."""

    label: str

    def call(self, method: str, params: list[Any]) -> Any: ...

    def batch(self, calls: Sequence[Call]) -> list[Any]: ...


def _error(err: Any) -> RpcError:
    err = err if isinstance(err, dict) else {}
    return RpcError(int(err.get("code", 0)), str(err.get("message", "")))


class JsonRpc:
    def __init__(self, url: str, *, timeout: float = 10.0, label: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        # In error messages (they reach logs): the URL may carry a provider key.
        self.label = label or redact_url(url) or ""

    def _post(self, body: str, *, batch: bool = False) -> Any:
        try:
            resp = _pool.request(
                "POST",
                self.url,
                body=body.encode(),
                headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=3.0, read=self.timeout),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise RpcUnavailable(f"{self.label}: {type(exc).__name__}") from None
        if batch and resp.status in (400, 413):
            # Some providers refuse a batch over their size limit with an HTTP status: smaller may pass.
            raise RpcError(resp.status, f"batch of this size refused (HTTP {resp.status})")
        if resp.status != 200:
            raise RpcUnavailable(f"{self.label}: HTTP {resp.status}")
        try:
            return json.loads(resp.data)
        except ValueError as exc:
            raise RpcUnavailable(f"{self.label}: answer is not JSON") from exc

    def call(self, method: str, params: list[Any]) -> Any:
        reply = self._post(json.dumps({"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}))
        if not isinstance(reply, dict):
            raise RpcUnavailable(f"{self.label}: answer is not a JSON-RPC response")
        if "error" in reply:
            raise _error(reply["error"])
        return reply.get("result")

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """The calls in one HTTP request (a JSON-RPC batch): each one's result, or the RpcError it
        answered, in the order asked. RpcError when the endpoint refuses the batch as a whole
        (too large, not supported: it answers one error, or fewer answers than calls)."""
        ids = [next(_ids) for _ in calls]
        reply = self._post(
            json.dumps(
                [
                    {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
                    for i, (method, params) in zip(ids, calls, strict=True)
                ]
            ),
            batch=True,
        )
        if isinstance(reply, dict):
            raise _error(reply.get("error"))
        if not isinstance(reply, list):
            raise RpcUnavailable(f"{self.label}: answer is not a JSON-RPC batch response")
        by_id = {item.get("id"): item for item in reply if isinstance(item, dict)}
        if any(i not in by_id for i in ids):
            # geth answers a batch over its limit with a single "batch too large" error
            first = next((item["error"] for item in by_id.values() if "error" in item), None)
            raise _error(first) if first else RpcError(-32600, "batch answered in part")
        return [_error(by_id[i]["error"]) if "error" in by_id[i] else by_id[i].get("result") for i in ids]


def call_many(rpc: Rpc, calls: Sequence[Call], *, size: int = BATCH_SIZE) -> list[Any]:
    """The results of `calls`, in order, asked `size` at a time in batch requests (one request per
    batch: reading 100 block headers costs one round trip, not 100). A batch the endpoint refuses
    is halved down to single calls; a call that answered an error is asked again on its own, and
    raises RpcError if it fails again."""
    results: list[Any] = []
    for start in range(0, len(calls), size):
        results.extend(_batch(rpc, calls[start : start + size]))
    return results


def _batch(rpc: Rpc, calls: Sequence[Call]) -> list[Any]:
    if len(calls) == 1:
        return [rpc.call(*calls[0])]
    try:
        answers = rpc.batch(calls)
    except RpcError:
        middle = len(calls) // 2
        return _batch(rpc, calls[:middle]) + _batch(rpc, calls[middle:])
    # An item can fail alone (geth: "response too large" for the items past its size limit).
    return [
        rpc.call(*call) if isinstance(answer, RpcError) else answer for call, answer in zip(calls, answers, strict=True)
    ]
