"""How the relayer pays for energy on each Tron network, read from the environment and checked at
cold start (config.networks()):

    TRON_ENERGY_MODE     burn (default) | staked, or per network: "tron=staked,nile=burn"
    TRON_FEE_LIMIT_SUN   the fee_limit of each sweep: the most it may burn, in sun (default 100 TRX)

`burn`: the relayer holds TRX only and every sweep burns its energy at the chain's energy price.
`staked`: the relayer's energy comes from TRX it staked with Stake 2.0 (FreezeBalanceV2 for
ENERGY); a sweep uses that first and burns only what it lacks. Either way the fee limit caps the
sweep. `admin settlement-status` shows the mode and, when staked, the relayer's energy and
bandwidth from `wallet/getaccountresource`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from usdt_gateway.networks import Network

# The chain's ceiling on a transaction's fee_limit (chain parameter maxFeeLimit): 15,000 TRX, in sun.
MAX_FEE_LIMIT_SUN = 15_000_000_000

Mode = Literal["burn", "staked"]
MODES: tuple[Mode, ...] = ("burn", "staked")
DEFAULT_FEE_LIMIT_SUN = 100_000_000  # 100 TRX: 1M energy at 100 sun, about 15 USDT transfers to new holders


class EnergyConfigError(ValueError):
    pass


@dataclass(frozen=True)
class EnergySetting:
    mode: Mode
    fee_limit_sun: int

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "feeLimitSun": self.fee_limit_sun}


def _mode(value: str, where: str) -> Mode:
    for mode in MODES:
        if value.strip() == mode:
            return mode
    raise EnergyConfigError(f"TRON_ENERGY_MODE: {where} is {value.strip()!r}, not one of {', '.join(MODES)}")


def load(enabled: Mapping[str, Network], environ: Mapping[str, str] | None = None) -> dict[str, EnergySetting]:
    """The setting of every enabled Tron network; EnergyConfigError for a malformed value or a
    network named that is not an enabled Tron network."""
    env = os.environ if environ is None else environ
    raw_limit = env.get("TRON_FEE_LIMIT_SUN", "").strip()
    try:
        fee_limit = int(raw_limit) if raw_limit else DEFAULT_FEE_LIMIT_SUN
    except ValueError:
        raise EnergyConfigError(f"TRON_FEE_LIMIT_SUN is {raw_limit!r}, not a whole number of sun") from None
    if not 0 < fee_limit <= MAX_FEE_LIMIT_SUN:
        raise EnergyConfigError(f"TRON_FEE_LIMIT_SUN must be 1 to {MAX_FEE_LIMIT_SUN} sun, not {fee_limit}")
    tron = [name for name, network in enabled.items() if network.family == "tron"]
    raw = env.get("TRON_ENERGY_MODE", "").strip()
    modes: dict[str, Mode] = dict.fromkeys(tron, "burn")
    if raw and "=" not in raw:
        modes = dict.fromkeys(tron, _mode(raw, "the mode"))
    elif raw:
        for part in filter(None, (p.strip() for p in raw.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in modes:
                raise EnergyConfigError(f"TRON_ENERGY_MODE names {name.strip()!r}, which is no enabled Tron network")
            modes[name.strip()] = _mode(value, name.strip())
    return {name: EnergySetting(mode, fee_limit) for name, mode in modes.items()}
