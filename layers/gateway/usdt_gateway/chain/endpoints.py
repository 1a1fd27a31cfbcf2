"""RPC failover for one network: an ordered list of endpoints (the first is preferred).

A call goes to the first usable endpoint; when it is unavailable (timeout, HTTP error, 429, a
JSON-RPC error) the next one is tried after a short backoff, and the failing one rests for a while. `check_heads`
sets aside an endpoint whose head lags the best one or whose block hash disagrees with the
majority at a common height: a lagging node would hide recent payments, an inconsistent one may
be on a fork. Calls and errors per endpoint (by its name: never its URL) are counted for metrics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from usdt_gateway.chain.jsonrpc import RpcError, RpcUnavailable


class AllEndpointsFailed(Exception):
    pass


@dataclass
class _Endpoint[C]:
    name: str
    client: C
    resting_until: float = 0.0


@dataclass
class Endpoints[C]:
    """C: an endpoint client (JsonRpc, tronpy's HTTPProvider...)."""

    endpoints: Sequence[tuple[str, C]]
    backoff_s: float = 0.25
    rest_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    errors: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("a network needs at least one RPC endpoint")
        self._all = [_Endpoint(name, client) for name, client in self.endpoints]

    def usable(self) -> list[str]:
        now = self.clock()
        return [e.name for e in self._all if e.resting_until <= now]

    def call[T](self, fn: Callable[[C], T]) -> T:
        """Run `fn` on the first usable endpoint, failing over in order; if every endpoint is
        resting, the least recently failed one is tried anyway rather than giving up."""
        return self.answer(fn)[1]

    def answer[T](self, fn: Callable[[C], T], *, exclude: str | None = None) -> tuple[str, T]:
        """As `call`, and which endpoint answered. `exclude`: an endpoint not to ask (the one
        whose answer is being checked), so the answer comes from another one."""
        now = self.clock()
        others = [e for e in self._all if e.name != exclude]
        if not others:
            raise ValueError(f"no endpoint besides {exclude}")
        order = [e for e in others if e.resting_until <= now] or sorted(others, key=lambda e: e.resting_until)
        last: Exception | None = None
        for attempt, endpoint in enumerate(order):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            self.calls[endpoint.name] += 1
            try:
                return endpoint.name, fn(endpoint.client)
            except (RpcUnavailable, RpcError, TimeoutError, ConnectionError) as exc:
                # A JSON-RPC error that survived the reader's own handling (e.g. eth_getLogs
                # refused even for one block, as some public BSC nodes do) means this endpoint
                # cannot serve the call: another one may.
                self.errors[endpoint.name] += 1
                endpoint.resting_until = self.clock() + self.rest_s
                last = exc
        raise AllEndpointsFailed(f"every endpoint failed; last: {last}") from last

    def check_heads(
        self, head: Callable[[C], int], block_hash: Callable[[C, int], str | None], *, max_lag: int
    ) -> dict[str, int]:
        """Set aside endpoints that lag the best head by more than `max_lag` blocks, or disagree
        with the majority on the hash of a block they all have. Returns the heads seen."""
        heads: dict[str, int] = {}
        for e in self._all:
            self.calls[e.name] += 1
            try:
                heads[e.name] = head(e.client)
            except (RpcUnavailable, RpcError, TimeoutError, ConnectionError):
                self.errors[e.name] += 1
                e.resting_until = self.clock() + self.rest_s
        if not heads:
            return heads
        best = max(heads.values())
        in_step = [e for e in self._all if e.name in heads and best - heads[e.name] <= max_lag]
        for e in self._all:
            if e.name in heads and e not in in_step:
                e.resting_until = self.clock() + self.rest_s
        if len(in_step) >= 2:
            common = min(heads[e.name] for e in in_step)
            hashes: dict[str, str | None] = {}
            for e in in_step:
                self.calls[e.name] += 1
                # Failing here counts and rests the endpoint, as failing on its head does: let
                # through, one 429 from any endpoint would abort the scan cycle and the run.
                try:
                    hashes[e.name] = block_hash(e.client, common)
                except (RpcUnavailable, RpcError, TimeoutError, ConnectionError):
                    self.errors[e.name] += 1
                    e.resting_until = self.clock() + self.rest_s
            if hashes:
                majority, votes = Counter(hashes.values()).most_common(1)[0]
                if votes * 2 > len(in_step):
                    for e in in_step:
                        if e.name in hashes and hashes[e.name] != majority:
                            e.resting_until = self.clock() + self.rest_s
        return heads
