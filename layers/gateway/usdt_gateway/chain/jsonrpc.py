"""A small JSON-RPC client over urllib3 (already present with botocore): web3 would add ~1 s of
import to every scanner cold start for a handful of calls."""

from __future__ import annotations

import itertools
import json
from typing import Any

import urllib3

from usdt_gateway.observability import redact_url


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


class JsonRpc:
    def __init__(self, url: str, *, timeout: float = 10.0, label: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        # In error messages (they reach logs): the URL may carry a provider key.
        self.label = label or redact_url(url) or ""

    def call(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params})
        try:
            resp = _pool.request("POST", self.url, body=body.encode(), headers={"Content-Type": "application/json"},
                                 timeout=urllib3.Timeout(connect=3.0, read=self.timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise RpcUnavailable(f"{self.label}: {type(exc).__name__}") from None
        if resp.status != 200:
            raise RpcUnavailable(f"{self.label}: HTTP {resp.status}")
        try:
            reply = json.loads(resp.data)
        except ValueError as exc:
            raise RpcUnavailable(f"{self.label}: answer is not JSON") from exc
        if "error" in reply:
            err = reply["error"] or {}
            raise RpcError(int(err.get("code", 0)), str(err.get("message", "")))
        return reply.get("result")
