"""Which RPC endpoint a settlement run uses: one per network per run, never switched mid-run.

A run asks the network's endpoints, in the configured order (RPC_ENDPOINTS), for their chain id
and keeps the first that answers with the network's own; every later call of the run goes to
that endpoint alone, and the next run chooses again from the top of the list.

Why not fail over call by call, as the scanner does: the relayer draws conclusions from several
answers taken together. It reads the relayer's nonce and then the receipts of the sweep's stored
transactions; "the nonce moved past ours and no receipt of ours" means another transaction took
the nonce, and the sweep is sent again at a new one. Were the nonce read from one node and the
receipts from a second that lags it, the sweep already mined would look lost, and the relayer
would pay for a second transaction. A lagging node alone, asked for everything, is consistent
with itself: at worst the run rebroadcasts a stored transaction or waits for a block, which costs
nothing. The chain id check keeps an endpoint configured for another chain from receiving
transactions signed for this one (they would be refused, EIP-155) and from answering for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from usdt_gateway.chain.jsonrpc import JsonRpc, Rpc, RpcError, RpcUnavailable
from usdt_gateway.chain.rpc_config import EndpointSpec
from usdt_gateway.networks import Network
from usdt_gateway.observability import logger


class NoEndpoint(Exception):
    """No endpoint of the network answered with its chain id: the run cannot start."""


def clients(specs: Sequence[EndpointSpec], *, timeout: float = 10.0) -> list[Rpc]:
    """A JSON-RPC client per configured endpoint, in the configured order, named as in the metrics."""
    return [JsonRpc(spec.url, timeout=timeout, label=spec.name) for spec in specs]


def choose(network: Network, endpoints: Sequence[Rpc]) -> Rpc:
    """The first endpoint, in order, whose eth_chainId is the network's. Each one passed over is
    logged by its name (never its URL); NoEndpoint when none qualifies."""
    problems: list[str] = []
    for rpc in endpoints:
        try:
            chain_id = int(rpc.call("eth_chainId", []), 16)
        except (RpcUnavailable, RpcError, TypeError, ValueError) as exc:
            problems.append(str(exc) if isinstance(exc, RpcUnavailable) else f"{rpc.label}: {exc}")
            logger.warning(
                "settlement endpoint passed over: it does not answer",
                extra={"network": network.name, "endpoint": rpc.label, "reason": str(exc)},
            )
            continue
        if chain_id != network.chain_id:
            problems.append(f"{rpc.label}: chain id {chain_id}, not {network.chain_id}")
            logger.error(
                "settlement endpoint passed over: it serves another chain",
                extra={"network": network.name, "endpoint": rpc.label, "chainId": chain_id},
            )
            continue
        return rpc
    raise NoEndpoint(
        f"no RPC endpoint of {network.name} answers with chain id {network.chain_id}: "
        + ("; ".join(problems) or "none configured")
    )
