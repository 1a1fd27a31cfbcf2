"""Where a deposit address is chosen for a new order. Non-custodial: the gateway only ever
holds public keys.

- xpub mode: the next index of the merchant's account-level xpub. The index counter is bumped
  inside the order's own create transaction (condition: it still has the value read), so a
  failed or duplicate create never burns an index and wallets never hit a gap.
- fixed mode: the merchant's one address; the amount gets a tag (k * step added) so deposits
  can be told apart. The (network, address, amount) reservation is part of the transaction and
  is held until the order's watch window (expiry + late-payment grace) ends, so no two live
  orders can ever share it.
- contract mode (per network, EVM or Tron): first the merchant's oldest deposit contract in the reuse
  pool (deposit_pool.py: swept, its previous order's window and grace over, nothing pending on
  it, quarantined), taken in the create's own transaction only while it is still available and
  still names the order it served, which saves the sweep its deployment (about 41,600 gas);
  else, and when that race is lost, the CREATE2 address of a fresh salt derived from the
  merchant's and the order's ids (create2.py; on Tron with TVM's 0x41 prefix, in base58check as
  Tron addresses are shown everywhere). Computed without any RPC call; the address is
  claimed (ADDR#) like an xpub address, by one live order at a time. See docs/settlement.md
  (reuse policy) for what reuse risks and what the quarantine buys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from usdt_gateway import deposit_pool, hdwallet, store
from usdt_gateway.errors import Conflict
from usdt_gateway.merchant_records import (
    AddressConfig,
    ContractConfig,
    FixedConfig,
    XpubConfig,
    address_config_from_item,
)
from usdt_gateway.money import to_base_units
from usdt_gateway.networks import Network


@dataclass(frozen=True)
class Candidate:
    address: str
    units: int  # the exact amount the customer must send
    parts: list[dict[str, Any]]  # transaction parts that claim this address/amount
    index: int | None = None
    salt: str | None = None  # contract mode: the CREATE2 salt (0x hex) ...
    factory: str | None = None  # ... under this factory


def address_config(merchant_id: str, network: Network) -> AddressConfig | ContractConfig:
    """The network's contract mode if the merchant switched it on, else the family's config. Both
    are read in one BatchGetItem: one round trip whichever the merchant has."""
    family_key = store.address_config_key(merchant_id, network.family)
    contract_key = store.contract_config_key(merchant_id, network.name)
    found = store.get_many([contract_key, family_key])
    if contract_key in found:
        return ContractConfig.from_item(found[contract_key])
    item = found.get(family_key)
    if item is None:
        raise Conflict(
            f"no receiving address is configured for {network.family} networks; "
            "the operator sets one with `python -m usdt_gateway.admin set-xpub` or `set-address`",
            code="ADDRESS_NOT_CONFIGURED",
        )
    return address_config_from_item(item)


def candidates(
    cfg: AddressConfig | ContractConfig,
    network: Network,
    units: int,
    *,
    order_pk: str,
    order_id: str,
    watch_until: int,
    now: int,
) -> Iterator[Candidate]:
    """Address/amount choices in order of preference; each carries the writes that claim it."""
    if isinstance(cfg, ContractConfig):
        pooled = deposit_pool.take(cfg, network.name, now=now)
        if pooled is not None:
            take = deposit_pool.take_part(network.name, pooled, order_pk=order_pk, watch_until=watch_until)
            yield Candidate(pooled.address, units, [take], salt=pooled.salt, factory=pooled.factory)
        yield _contract_candidate(cfg, network, units, order_pk, order_id, watch_until)
        return
    if isinstance(cfg, XpubConfig):
        yield _xpub_candidate(cfg, network, units, order_pk, watch_until)
        return
    step = _tag_step_units(cfg, network)
    for k in range(cfg.max_tags):
        tagged = units + k * step
        pk, sk = store.reservation_key(network.name, cfg.address, tagged)
        claim = store.put_part(
            {"pk": pk, "sk": sk, "orderPk": order_pk, "heldUntil": watch_until, "ttl": watch_until // 1000 + 86_400},
            # free -> held, or lapsed (watch window over) -> held by this order.
            condition="attribute_not_exists(pk) OR heldUntil < :now",
            values={":now": now},
        )
        yield Candidate(cfg.address, tagged, [claim])


def _tag_step_units(cfg: FixedConfig, network: Network) -> int:
    """The tag step in the network's base units. A step set while only finer tokens were enabled
    (or stored as "1E-7" before steps were written in plain notation) is the operator's to fix."""
    try:
        step = Decimal(cfg.tag_step)
        units = to_base_units(step, network.decimals)
    except (ArithmeticError, ValueError):
        units = 0
    if units <= 0:
        raise Conflict(
            f"the fixed address's amount-tag step {cfg.tag_step} is finer than the smallest unit of "
            f"{network.name} ({network.decimals} decimals); the operator sets a coarser one with "
            "`python -m usdt_gateway.admin set-address --tag-step`",
            code="INVALID_ADDRESS_CONFIG",
        )
    return units


def _xpub_candidate(cfg: XpubConfig, network: Network, units: int, order_pk: str, watch_until: int) -> Candidate:
    index = cfg.next_index
    address = hdwallet.derive_address(cfg.xpub, network.family, index)
    pk, sk = store.address_key(network.name, address)
    claim = store.put_part({"pk": pk, "sk": sk, "orderPk": order_pk, "index": index, "watchUntil": watch_until})
    cfg_pk, cfg_sk = store.address_config_key(cfg.merchant_id, cfg.family)
    bump = store.update_part(
        cfg_pk,
        cfg_sk,
        expression="SET nextIndex = :next",
        # index n handed out -> n + 1, only if nobody took n meanwhile and the xpub is unchanged.
        condition="nextIndex = :n AND xpub = :xpub",
        values={":n": index, ":next": index + 1, ":xpub": cfg.xpub},
    )
    return Candidate(address, units, [claim, bump], index)


def _contract_candidate(
    cfg: ContractConfig, network: Network, units: int, order_pk: str, order_id: str, watch_until: int
) -> Candidate:
    # Here, not at the top: keccak is loaded by contract-mode creates only (the API's init stays light).
    from usdt_gateway import create2
    from usdt_gateway.address_codec import to_checksum_address

    salt = create2.order_salt(cfg.merchant_id, order_id)
    if network.family == "tron":
        address = create2.tron_deposit_address(cfg.factory, cfg.implementation, salt)
    else:
        address = to_checksum_address(create2.deposit_address(cfg.factory, cfg.implementation, salt))
    pk, sk = store.address_key(network.name, address)
    # none -> this order's: one order per salt, so only a repeat of this very create can collide.
    # Salt and factory too: money this address receives that no order takes is still swept.
    claim = store.put_part(
        {
            "pk": pk,
            "sk": sk,
            "orderPk": order_pk,
            "watchUntil": watch_until,
            "salt": "0x" + salt.hex(),
            "factory": cfg.factory,
            "token": network.token_contract,
        }
    )
    return Candidate(address, units, [claim], salt="0x" + salt.hex(), factory=cfg.factory)


def exhausted(network: Network) -> Conflict:
    return Conflict(
        f"every tagged amount near this one is held by a live order on {network.name}; "
        "retry later, or use xpub mode for unlimited concurrent orders",
        code="AMOUNT_TAGS_EXHAUSTED",
    )
