"""The package's imports point one way: api -> domain -> store/aws -> foundation, with no import
circle anywhere and the write path (state changes and their events) never importing the order
read model. Read from the source with `ast` (every import, also those inside functions), so a
deferred import cannot hide a circle."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "gateway" / "usdt_gateway"

# Each module's layer, lowest first; a module may import its own layer and those below it. A
# name ending in ".*" is a whole subpackage. A new module must be given a layer here.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "foundation",  # pure helpers and settings: import nothing above them
        frozenset(
            {
                "address_codec",
                "clock",
                "create2",
                "config",
                "errors",
                "hdwallet",
                "http",
                "jsonbody",
                "money",
                "networks",
                "observability",
                "path_ids",
                "payment_uri",
                "qr",
                "request_signing",
                "schemas",
                "tracing",
                "tron_energy",
            }
        ),
    ),
    (
        "store/aws",  # every DynamoDB and AWS call, and the chains' RPC
        frozenset({"aws", "kms_signer", "store", "secretbox", "chain.*", "tron_energy_status"}),
    ),
    (
        "domain",
        frozenset(
            {
                "auth",
                "contract_mode",
                "cursor",
                "deposit_addresses",
                "deposit_pool",
                "deposits",
                "events",
                "expiry",
                "lifecycle",
                "merchant_records",
                "merchants",
                "order_views",
                "orders",
                "outbox",
                "ratelimit",
                "records",
                "scanner",
                "settlement.*",
                "status",
                "transitions",
                "tron_contract_mode",
                "watchlist",
                "webhooks.*",
                "xpub_sweeps",
            }
        ),
    ),
    (
        "api",  # entry points: the HTTP API, the payment page, the CLIs, the scan jobs
        frozenset({"admin", "api.*", "paypage.*", "scan_jobs", "settlement_jobs"}),
    ),
)

# The write path: what changes orders and makes their events. It builds order views from the
# pure order_views module, never from the read model (orders), which itself writes through it.
WRITE_PATH = frozenset({"deposits", "events", "expiry", "lifecycle", "outbox", "scanner", "transitions"})
READ_MODEL = frozenset({"orders"})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports() -> dict[str, set[str]]:
    """Each module of the package (dotted, without `usdt_gateway.`) and the package modules it imports."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {
                    a.name.removeprefix("usdt_gateway.") for a in node.names if a.name.startswith("usdt_gateway.")
                }
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "usdt_gateway":
                # `from usdt_gateway import orders` imports a module; `from usdt_gateway.orders import x`, orders.
                base = node.module.removeprefix("usdt_gateway").removeprefix(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    found.add(sub if sub in modules else base)
        graph[name] = {dep for dep in found if dep in modules and dep and dep != name}
    return {name: deps for name, deps in graph.items() if name}  # the package's own __init__ aside


def layer_of(module: str) -> int | None:
    for rank, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or (member.endswith(".*") and module.startswith(member[:-1])):
                return rank
            if member.endswith(".*") and module == member[:-2]:
                return rank
    return None


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Every import that points up a layer, or from the write path into the read model."""
    found = []
    for module, deps in sorted(graph.items()):
        rank = layer_of(module)
        for dep in sorted(deps):
            dep_rank = layer_of(dep)
            if rank is not None and dep_rank is not None and dep_rank > rank:
                found.append(f"{module} ({LAYERS[rank][0]}) imports {dep} ({LAYERS[dep_rank][0]})")
            if module in WRITE_PATH and dep in READ_MODEL:
                found.append(f"{module} (write path) imports {dep} (read model)")
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return package_imports()


def test_every_module_has_a_layer(graph: dict[str, set[str]]) -> None:
    assert sorted(m for m in graph if layer_of(m) is None) == []


def test_imports_point_down_the_layers(graph: dict[str, set[str]]) -> None:
    assert layer_violations(graph) == []


def test_there_is_no_import_circle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_the_graph_is_read_from_the_source(graph: dict[str, set[str]]) -> None:
    # Imports of every form are seen: `from usdt_gateway import x`, `from usdt_gateway.x import y`.
    assert {"events", "lifecycle", "order_views", "store"} <= graph["transitions"]
    assert "order_views" in graph["events"] and "records" in graph["order_views"]
    assert "webhooks.endpoints" in graph["orders"] and "api.app" in graph["api.routes"]


def test_the_checks_catch_an_upward_import_and_a_circle(graph: dict[str, set[str]]) -> None:
    # Given the real graph with the store importing orders, and the old events -> orders circle
    broken = {name: set(deps) for name, deps in graph.items()}
    broken["store"].add("orders")
    broken["events"].add("orders")
    # Then both checks fail, naming what is wrong
    assert "store (store/aws) imports orders (domain)" in layer_violations(broken)
    assert "events (write path) imports orders (read model)" in layer_violations(broken)
    assert any({"events", "orders", "transitions"} <= set(group) for group in cycles(broken))
