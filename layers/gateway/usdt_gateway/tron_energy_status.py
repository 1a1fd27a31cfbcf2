"""What `admin settlement-status` shows of a Tron network's relayer: the energy mode and fee limit
(tron_energy.py, the setting), its TRX balance and, when its energy is staked, its energy and
bandwidth as the node reports them. Apart from tron_energy so that reading the setting at cold
start needs no chain client."""

from __future__ import annotations

from typing import Any

from usdt_gateway.chain import tron_tx
from usdt_gateway.chain.jsonrpc import RpcUnavailable
from usdt_gateway.chain.tron import Provider
from usdt_gateway.money import format_units
from usdt_gateway.networks import Network
from usdt_gateway.tron_energy import EnergySetting

TRX_DECIMALS = 6  # 1 TRX = 1,000,000 sun


def resources(node: Provider, address: str) -> dict[str, int]:
    """The account's energy and bandwidth (`wallet/getaccountresource`; absent fields are 0)."""
    answer = node.make_request("wallet/getaccountresource", {"address": address, "visible": True})
    got = answer if isinstance(answer, dict) else {}

    def field(name: str) -> int:
        return int(got.get(name, 0))

    return {
        "energyLimit": field("EnergyLimit"),
        "energyUsed": field("EnergyUsed"),
        "energyAvailable": max(field("EnergyLimit") - field("EnergyUsed"), 0),
        "bandwidthLimit": field("NetLimit") + field("freeNetLimit"),
        "bandwidthUsed": field("NetUsed") + field("freeNetUsed"),
        "bandwidthAvailable": max(field("NetLimit") - field("NetUsed"), 0)
        + max(field("freeNetLimit") - field("freeNetUsed"), 0),
    }


def status(
    network: Network, setting: EnergySetting, *, address: str | None, node: Provider | None, note: str | None = None
) -> dict[str, Any]:
    """What settlement-status shows for a Tron network: the energy mode, the fee limit, the
    relayer's TRX balance, and its staked energy and bandwidth when the mode is staked."""
    out: dict[str, Any] = {"network": network.name, "family": "tron", "energy": setting.to_json()}
    relayer: dict[str, Any] = {"address": address, "balanceSun": None, "balance": None}
    if address is None or node is None:
        relayer["note"] = note or "no relayer key or no endpoint: balance and resources not read"
    else:
        try:
            balance = tron_tx.trx_balance(node, address)
            relayer |= {"balanceSun": str(balance), "balance": format_units(balance, TRX_DECIMALS)}
            if setting.mode == "staked":
                relayer["resources"] = resources(node, address)
        except (RpcUnavailable, tron_tx.TronTxError) as exc:
            relayer["note"] = f"balance not read: {exc}"
    out["relayer"] = relayer
    return out
