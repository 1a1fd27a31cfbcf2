"""RPC failover: rotate on failures with backoff, set aside lagging or inconsistent endpoints."""

from __future__ import annotations

import pytest

from usdt_gateway.chain.endpoints import AllEndpointsFailed, Endpoints
from usdt_gateway.chain.jsonrpc import RpcError, RpcUnavailable


class Node:
    def __init__(self, name: str, head: int = 100, fail: int = 0, fork: bool = False) -> None:
        self.name, self.head, self.fail, self.fork, self.calls = name, head, fail, fork, 0

    def answer(self) -> str:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise RpcUnavailable(f"{self.name}: HTTP 429")
        return self.name

    def hash_at(self, number: int) -> str:
        return f"{'fork' if self.fork else 'main'}-{number}"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def endpoints(*nodes: Node, clock: Clock) -> Endpoints[Node]:
    return Endpoints([(n.name, n) for n in nodes], clock=lambda: clock.now, sleep=clock.sleep)


def test_fails_over_in_order_with_backoff_and_rests_the_failing_endpoint() -> None:
    # Given a preferred endpoint that answers 429 and a second that works
    clock = Clock()
    a, b = Node("a", fail=1), Node("b")
    eps = endpoints(a, b, clock=clock)
    # When two calls are made
    first = eps.call(Node.answer)
    second = eps.call(Node.answer)
    # Then the first fails over to b after a backoff, and the second goes straight to b while a rests
    assert (first, second) == ("b", "b")
    assert clock.slept == [0.25]
    assert a.calls == 1 and eps.errors["a"] == 1
    assert eps.usable() == ["b"]
    # And after its rest, a is preferred again
    clock.now += 31
    assert eps.call(Node.answer) == "a"


def test_all_failing_raises() -> None:
    clock = Clock()
    eps = endpoints(Node("a", fail=5), Node("b", fail=5), clock=clock)
    with pytest.raises(AllEndpointsFailed):
        eps.call(Node.answer)
    assert eps.errors == {"a": 1, "b": 1}


def test_lagging_and_forked_endpoints_are_set_aside() -> None:
    # Given three in-step endpoints (one on another fork) and one lagging 50 blocks
    clock = Clock()
    good1, good2, forked, lagging = Node("g1", 100), Node("g2", 101), Node("f", 100, fork=True), Node("l", 51)
    eps = endpoints(lagging, forked, good1, good2, clock=clock)
    # When heads are checked with a tolerance of 5 blocks
    heads = eps.check_heads(lambda n: n.head, Node.hash_at, max_lag=5)
    # Then the lagging and the forked endpoints rest; calls go to the consistent ones
    assert heads == {"l": 51, "f": 100, "g1": 100, "g2": 101}
    assert eps.usable() == ["g1", "g2"]
    assert eps.call(Node.answer) == "g1"


def test_a_json_rpc_error_fails_over_too() -> None:
    # Given a preferred endpoint that refuses the method (e.g. eth_getLogs disabled) and a working one
    clock = Clock()

    def refuses(node: Node) -> str:
        if node.name == "a":
            raise RpcError(-32601, "the method eth_getLogs does not exist/is not available")
        return node.name

    eps = endpoints(Node("a"), Node("b"), clock=clock)
    # Then the call is served by the second, and the first is counted and rests
    assert eps.call(refuses) == "b"
    assert eps.errors["a"] == 1 and eps.usable() == ["b"]
