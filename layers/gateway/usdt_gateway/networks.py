"""The registry of networks the gateway can watch.

Built-in entries carry the facts of each chain (chain id, USDT contract, decimals, finality
policy); sources in docs/networks.md. Operators enable a subset (ENABLED_NETWORKS) and
override or add EVM chains through NETWORKS_CONFIG (JSON), without code changes.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address
from usdt_gateway.money import decimal_places, to_base_units

Family = Literal["evm", "tron"]


class Finality(BaseModel):
    """`finalized`: the chain's finalized tag (or Tron's solidified block); else N confirmations."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["finalized", "confirmations", "solidified"]
    confirmations: int = Field(0, ge=0, le=10_000)


class Network(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,30}$")
    family: Family
    chain_id: int = Field(alias="chainId", gt=0)
    display_name: str = Field(alias="displayName")
    token_contract: str = Field(alias="tokenContract")
    decimals: int = Field(ge=0, le=36)
    finality: Finality
    block_time_ms: int = Field(alias="blockTimeMs", gt=0)
    # Caps the blocks of one scan step (with the scanner's own 1,000): lower it for a provider
    # that limits how much one request may cover (docs/networks.md).
    max_log_range: int = Field(alias="maxLogRange", default=1000, ge=1, le=100_000)
    min_amount: Decimal = Field(alias="minAmount", default=Decimal("0.01"), gt=0)
    # Transfers below this are dust (anyone can send them to any address): recorded and listed,
    # never counted towards an order nor announced. Zero-value transfers are not recorded at all.
    min_deposit: Decimal = Field(alias="minDeposit", default=Decimal("0.01"), ge=0)
    # The deepest replacement of final blocks the scanner repairs by itself (walking back to the
    # common ancestor and re-reading); past it, it stops the network's cursor and pages.
    max_reorg_depth: int = Field(alias="maxReorgDepth", default=128, ge=1, le=100_000)
    max_amount: Decimal = Field(alias="maxAmount", default=Decimal("1000000"), gt=0)
    # With one RPC endpoint, a deposit above this (USDT) is held until a second source or the
    # operator confirms it; none: every deposit is credited on the one endpoint's word. With two
    # endpoints or more every deposit is confirmed by a second one, whatever this says.
    second_source_above: Decimal | None = Field(alias="secondSourceAbove", default=None, ge=0)
    testnet: bool = False

    @property
    def min_deposit_units(self) -> int:
        return to_base_units(self.min_deposit, self.decimals)

    @property
    def second_source_above_units(self) -> int | None:
        return None if self.second_source_above is None else to_base_units(self.second_source_above, self.decimals)

    @model_validator(mode="after")
    def _min_deposit_fits(self) -> Network:
        for name, value in (("minDeposit", self.min_deposit), ("secondSourceAbove", self.second_source_above)):
            if value is not None and decimal_places(value) > self.decimals:
                raise ValueError(f"{name} {value} is finer than the token's {self.decimals} decimals")
        return self

    @field_validator("token_contract")
    @classmethod
    def _contract(cls, value: str, info: ValidationInfo) -> str:
        # A built-in contract is written in its normalized form (tests/unit/test_networks.py keeps
        # it so): no EIP-55 keccak at every cold start. Operators' overrides are validated.
        if (info.data.get("family"), value) in _BUILTIN_CONTRACTS:
            return value
        if info.data.get("family") == "tron":
            return normalize_tron_address(value)
        return normalize_evm_address(value)


def _fin(mode: str, confirmations: int = 0) -> dict[str, object]:
    return {"mode": mode, "confirmations": confirmations}


# Contracts, decimals and finality: see docs/networks.md for sources.
BUILTIN: dict[str, dict[str, object]] = {
    "tron": {
        "family": "tron",
        "chainId": 728126428,
        "displayName": "Tron (TRC-20)",
        "tokenContract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "decimals": 6,
        "finality": _fin("solidified"),
        "blockTimeMs": 3000,
    },
    "eth": {
        "family": "evm",
        "chainId": 1,
        "displayName": "Ethereum (ERC-20)",
        "tokenContract": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        "decimals": 6,
        "finality": _fin("finalized"),
        "blockTimeMs": 12000,
    },
    "bsc": {
        "family": "evm",
        "chainId": 56,
        "displayName": "BNB Smart Chain (BEP-20)",
        "tokenContract": "0x55d398326f99059fF775485246999027B3197955",
        "decimals": 18,
        "finality": _fin("finalized"),
        "blockTimeMs": 450,
    },
    "polygon": {
        "family": "evm",
        "chainId": 137,
        "displayName": "Polygon PoS",
        "tokenContract": "0xc2132D05D31c914a87C6611C10748AEb04B58e8F",
        "decimals": 6,
        "finality": _fin("finalized"),
        "blockTimeMs": 2000,
    },
    "arbitrum": {
        "family": "evm",
        "chainId": 42161,
        "displayName": "Arbitrum One",
        "tokenContract": "0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9",
        "decimals": 6,
        "finality": _fin("finalized"),
        "blockTimeMs": 250,
    },
    "nile": {
        "family": "tron",
        "chainId": 3448148188,
        "displayName": "Tron Nile testnet",
        "tokenContract": "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
        "decimals": 6,
        "finality": _fin("solidified"),
        "blockTimeMs": 3000,
        "testnet": True,
    },
    "sepolia": {
        "family": "evm",
        "chainId": 11155111,
        "displayName": "Ethereum Sepolia testnet",
        "tokenContract": "0xaA8E23Fb1079EA71e0a56F48a2aA51851D8433D0",
        "decimals": 6,
        "finality": _fin("finalized"),
        "blockTimeMs": 12000,
        "testnet": True,
    },
    "bsc-testnet": {
        "family": "evm",
        "chainId": 97,
        "displayName": "BNB Smart Chain testnet",
        "tokenContract": "0x337610d27c682E347C9cD60BD4b3b107C9d34dDd",
        "decimals": 18,
        "finality": _fin("finalized"),
        "blockTimeMs": 450,
        "testnet": True,
    },
    # The dev chain (anvil). Its token is deployed at start-up, so the contract comes from
    # NETWORKS_CONFIG; the placeholder is anvil's first deployment address from its first account.
    "local": {
        "family": "evm",
        "chainId": 31337,
        "displayName": "Local dev chain",
        "tokenContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "decimals": 6,
        "finality": _fin("confirmations", 2),
        "blockTimeMs": 1000,
        "testnet": True,
    },
}


# (family, contract) of every built-in entry, each already in normalized form.
_BUILTIN_CONTRACTS = frozenset((entry["family"], entry["tokenContract"]) for entry in BUILTIN.values())


class NetworkConfigError(ValueError):
    pass


# A DynamoDB number holds 38 significant digits; base-unit amounts are stored as numbers.
DYNAMODB_DIGITS = 38


def _check_fits_dynamodb(network: Network) -> None:
    """The largest order, in base units, must be storable exactly: its integer digits plus the
    token's decimals within DynamoDB's 38."""
    integer_digits = len(str(int(network.max_amount)))
    if integer_digits + network.decimals > DYNAMODB_DIGITS:
        raise NetworkConfigError(
            f"network '{network.name}': maxAmount {network.max_amount:f} has {integer_digits} integer "
            f"digits and the token {network.decimals} decimals, {integer_digits + network.decimals} digits in base "
            f"units; DynamoDB stores at most {DYNAMODB_DIGITS}: lower maxAmount"
        )


def load_networks(enabled: str, overrides_json: str = "") -> dict[str, Network]:
    """Build the enabled networks; raise NetworkConfigError with a readable reason at cold start."""
    try:
        # Decimal, never float: amounts (minAmount, maxAmount) keep every digit written.
        overrides = json.loads(overrides_json, parse_float=Decimal) if overrides_json.strip() else {}
    except json.JSONDecodeError as exc:
        raise NetworkConfigError(f"NETWORKS_CONFIG is not valid JSON: {exc}") from exc
    if not isinstance(overrides, dict):
        raise NetworkConfigError("NETWORKS_CONFIG must be a JSON object keyed by network name")
    names = [n.strip() for n in enabled.split(",") if n.strip()]
    if not names:
        raise NetworkConfigError("ENABLED_NETWORKS is empty: name at least one network, e.g. 'tron,eth,bsc'")
    networks: dict[str, Network] = {}
    for name in names:
        base = dict(BUILTIN.get(name, {}))
        extra = overrides.get(name, {})
        if not base and not extra:
            known = ", ".join(sorted(BUILTIN))
            raise NetworkConfigError(f"unknown network '{name}': built-ins are {known}; add others in NETWORKS_CONFIG")
        try:
            networks[name] = Network.model_validate({**base, **extra, "name": name})
        except ValidationError as exc:
            raise NetworkConfigError(f"network '{name}' is misconfigured: {exc}") from exc
        _check_fits_dynamodb(networks[name])
    chain_ids = [n.chain_id for n in networks.values()]
    if len(set(chain_ids)) != len(chain_ids):
        raise NetworkConfigError("two enabled networks share a chain id")
    return networks
