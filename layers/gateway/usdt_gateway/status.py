"""The operator's view of the deposit scanners (`python -m usdt_gateway.admin status`): per enabled
network, the chain head as each RPC endpoint answers it now, the scanner's committed cursor, the
lag between them, and what is wrong, if anything.

Healthy means: every endpoint answers; the cursor exists, its final block is at most
`max_lag_seconds` old and the scanner wrote it at most `max_idle_seconds` ago; no deposit is held
(disputed, or awaiting a second source: the operator's to look at). Endpoints are shown by name
(host or configured name), never by URL: URLs carry provider keys. It also says whom the network
trusts: with one endpoint, that endpoint's word credits money on its own."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from usdt_gateway import clock, cursor, deposits
from usdt_gateway.chain.readers import reader_for
from usdt_gateway.chain.rpc_config import EndpointSpec, load_endpoints
from usdt_gateway.config import networks, settings
from usdt_gateway.money import format_units, plain
from usdt_gateway.networks import Network

# The schedule starts a scanner every minute, and a scanning one writes its cursor every cycle.
DEFAULT_MAX_IDLE_S = 300
# Above the slowest built-in finality (Ethereum's finalized block trails the head by ~13 min).
DEFAULT_MAX_LAG_S = 1800


@dataclass
class EndpointHealth:
    endpoint: str
    ok: bool
    latency_ms: int
    head: int | None = None
    final: int | None = None  # the newest final block under the network's finality policy
    error: str | None = None


@dataclass
class HeldDeposit:
    """A deposit held in a final block, not credited (deposits.hold)."""

    deposit_id: str
    status: str  # disputed | unverified
    amount: str
    block: int
    order_id: str | None
    merchant_id: str | None
    detail: str | None  # what the second endpoint answered, or why it waits


@dataclass
class NetworkStatus:
    network: str
    scanned: bool
    trust: str | None = None  # whose word credits money on this network
    head: int | None = None
    final: int | None = None
    cursor_block: int | None = None  # last final block scanned (deposits committed)
    cursor_block_time: int | None = None  # its block time, ms since the epoch
    cursor_updated_at: int | None = None  # when the scanner last wrote the cursor, ms
    lag_blocks: int | None = None  # head - cursor block
    lag_seconds: int | None = None  # now - the cursor block's time
    endpoints: list[EndpointHealth] = field(default_factory=list)
    held: list[HeldDeposit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


def _probe(network: Network, spec: EndpointSpec, timeout_s: float) -> EndpointHealth:
    """Heads from this one endpoint, through the scanner's own reader (same calls, same policy)."""
    reader = reader_for(network, [spec], timeout=timeout_s)
    started = time.monotonic()
    try:
        heads = reader.heads()
    except Exception as exc:  # any failure is this endpoint's health, reported
        error = str(exc.__cause__ or exc)
        return EndpointHealth(spec.name, False, round((time.monotonic() - started) * 1000), error=error[:300])
    return EndpointHealth(spec.name, True, round((time.monotonic() - started) * 1000), heads.head, heads.final)


def network_status(
    network: Network,
    specs: list[EndpointSpec] | None,
    *,
    now_ms: int,
    timeout_s: float = 5.0,
    max_lag_seconds: int = DEFAULT_MAX_LAG_S,
    max_idle_seconds: int = DEFAULT_MAX_IDLE_S,
) -> NetworkStatus:
    if not specs:
        st = NetworkStatus(network.name, scanned=False)
        if not settings().local_mode:  # local mode leaves such networks unscanned on purpose
            st.problems.append("no RPC endpoint configured")
        return st
    st = NetworkStatus(
        network.name,
        scanned=True,
        trust=trust(network, len({s.name for s in specs})),
        endpoints=[_probe(network, s, timeout_s) for s in specs],
    )
    answering = [e for e in st.endpoints if e.ok]
    st.head = max((e.head for e in answering if e.head is not None), default=None)
    st.final = max((e.final for e in answering if e.final is not None), default=None)
    for e in st.endpoints:
        if not e.ok:
            st.problems.append(f"endpoint {e.endpoint} is down: {e.error}")
    if not answering:
        st.problems.append("no RPC endpoint answers")
    _held(st, network)
    item = cursor.read(network.name)
    if item is None or item.get("finalBlock") is None:
        st.problems.append("no scan cursor: the scanner has not scanned this network yet")
        return st
    st.cursor_block, st.cursor_block_time = int(item["finalBlock"]), int(item.get("finalTime") or 0)
    st.cursor_updated_at = int(item["updatedAt"]) if item.get("updatedAt") is not None else None
    st.lag_seconds = max(0, (now_ms - st.cursor_block_time) // 1000)
    if st.head is not None:
        st.lag_blocks = st.head - st.cursor_block
    if st.lag_seconds > max_lag_seconds:
        st.problems.append(f"scanner lag {st.lag_seconds} s is above {max_lag_seconds} s")
    idle = None if st.cursor_updated_at is None else (now_ms - st.cursor_updated_at) // 1000
    if idle is None or idle > max_idle_seconds:
        st.problems.append(
            f"scanner idle: cursor last written {idle if idle is not None else '?'} s ago "
            f"(more than {max_idle_seconds} s)"
        )
    return st


def trust(network: Network, endpoints: int) -> str:
    """Whose word credits a deposit on `network`, in one sentence for the operator."""
    if endpoints >= 2:
        return f"{endpoints} RPC endpoints: a second endpoint confirms every deposit before it is credited"
    above = network.second_source_above
    if above is None:
        return (
            "one RPC endpoint: its provider is trusted; every deposit is credited on its word alone "
            "(add a second endpoint, or set secondSourceAbove)"
        )
    return (
        f"one RPC endpoint: its provider is trusted up to {plain(above)} USDT; deposits above wait "
        "for a second source (or admin confirm-deposit)"
    )


def _held(st: NetworkStatus, network: Network) -> None:
    for dep in deposits.held(network.name):
        st.held.append(
            HeldDeposit(
                deposit_id=dep.deposit_id,
                status=dep.status.value,
                amount=format_units(dep.units, dep.decimals),
                block=dep.block_number,
                order_id=dep.order_pk.split("#", 2)[2] if dep.order_pk else None,
                merchant_id=dep.merchant_id,
                detail=dep.held_detail,
            )
        )
    counts = {s: sum(1 for h in st.held if h.status == s) for s in ("disputed", "unverified")}
    if counts["disputed"]:
        st.problems.append(
            f"{counts['disputed']} deposit(s) held, disputed: a second RPC endpoint contradicts them; check each "
            "on an explorer, then fix the endpoint that lies (admin confirm-deposit credits one that is real)"
        )
    if counts["unverified"]:
        st.problems.append(
            f"{counts['unverified']} deposit(s) held awaiting a second source: add a second RPC endpoint, or "
            "check each on an explorer and admin confirm-deposit (or reject-deposit) it"
        )


def gather(
    *,
    only: list[str] | None = None,
    timeout_s: float = 5.0,
    max_lag_seconds: int = DEFAULT_MAX_LAG_S,
    max_idle_seconds: int = DEFAULT_MAX_IDLE_S,
) -> list[NetworkStatus]:
    """Every enabled network (or those in `only`), with the RPC endpoints the scanner uses."""
    enabled = networks()
    unknown = sorted(set(only or ()) - set(enabled))
    if unknown:
        raise ValueError(f"not enabled: {', '.join(unknown)}; enabled: {', '.join(enabled)}")
    specs = load_endpoints({})
    now = clock.now_ms()
    return [
        network_status(
            n,
            specs.get(name),
            now_ms=now,
            timeout_s=timeout_s,
            max_lag_seconds=max_lag_seconds,
            max_idle_seconds=max_idle_seconds,
        )
        for name, n in enabled.items()
        if not only or name in only
    ]


def render(statuses: list[NetworkStatus], *, now_ms: int) -> str:
    """The human-readable report: one block per network."""
    lines = []
    for st in statuses:
        state = "ok" if st.healthy else "UNHEALTHY"
        if not st.scanned and st.healthy:
            state = "not scanned (no RPC endpoint)"
        lines.append(f"{st.network}: {state}")
        if st.scanned:
            age = "" if st.cursor_updated_at is None else f", written {(now_ms - st.cursor_updated_at) // 1000} s ago"
            lines.append(f"  head {_n(st.head)}  final {_n(st.final)}  cursor {_n(st.cursor_block)}{age}")
            lines.append(f"  lag {_n(st.lag_blocks)} blocks, {_n(st.lag_seconds)} s")
        if st.trust:
            lines.append(f"  trust: {st.trust}")
        for e in st.endpoints:
            if e.ok:
                lines.append(f"  endpoint {e.endpoint}: ok, {e.latency_ms} ms, head {e.head}, final {e.final}")
            else:
                lines.append(f"  endpoint {e.endpoint}: DOWN after {e.latency_ms} ms: {e.error}")
        for h in st.held:
            order = f", order {h.order_id}" if h.order_id else ""
            lines.append(f"  held: {h.deposit_id} {h.status}, {h.amount} USDT in block {h.block}{order}: {h.detail}")
        lines.extend(f"  problem: {p}" for p in st.problems)
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)
