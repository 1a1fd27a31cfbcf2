"""xpub mode: what the merchant's own sweep tool reads and records (sdk/python,
`python -m usdt_gateway_client.sweep`, docs/settlement.md "xpub mode: the offline sweep tool").

The gateway holds no key of an xpub deposit address, so it never moves that money. It tells the
merchant's tool which of their xpub addresses hold final money not recorded as swept, and takes
the tool's record of each sweep:

- an address's money is its final deposits (credited to an order, or unmatched: money no order
  took, on the merchant's own address all the same); dust (ignored) and reversed deposits count
  for nothing;
- what sweeps took is kept on its ADDR# item (`xpubSweptUnits`), raised by each recorded sweep
  together with the sweep's own XSWEEP# item, in one transaction; the address's unswept units are
  the difference;
- a sweep is recorded once per (network, txid): the same record again is answered as recorded,
  a different one under the same txid is a conflict.

The listing reads all the merchant's final deposits (one gsi1 partition) and the ADDR# item of
each address they went to: its cost grows with the merchant's deposit history, which is fine for
a tool run by hand, not for a busy endpoint.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from usdt_gateway import clock, store
from usdt_gateway.address_codec import normalize_evm_address, normalize_tron_address
from usdt_gateway.config import networks
from usdt_gateway.errors import Conflict, InvalidRequest, NotFound
from usdt_gateway.networks import Network
from usdt_gateway.records import Deposit, DepositStatus
from usdt_gateway.schemas import (
    XpubAddressListView,
    XpubAddressView,
    XpubDepositView,
    XpubSweepRequest,
    XpubSweepView,
)

SWEPT = "xpubSweptUnits"
# Money on the address: credited to an order, or final with no order to take it.
HELD = frozenset({DepositStatus.CREDITED, DepositStatus.UNMATCHED})
_EVM_TXID = re.compile(r"^0x[0-9a-f]{64}$")
_TRON_TXID = re.compile(r"^[0-9a-f]{64}$")
_BATCH = 100  # BatchGetItem's most keys per call


def _network(name: str | None) -> Network:
    found = networks().get(name or "")
    if found is None:
        raise InvalidRequest(
            f"network must be one of the enabled networks: {', '.join(sorted(networks()))}", code="UNSUPPORTED_NETWORK"
        )
    return found


def _owned_xpub_address(item: dict[str, Any] | None, merchant_id: str) -> bool:
    """An ADDR# item of one of the merchant's xpub addresses: it has a derivation index (contract
    mode's have a salt instead) and names one of the merchant's orders."""
    order_pk = str((item or {}).get("orderPk") or "")
    prefix = store.order_key(merchant_id, "")[0]
    return item is not None and item.get("index") is not None and order_pk.startswith(prefix)


def _address_items(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    wanted = list(dict.fromkeys(keys))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(wanted), _BATCH):
        found |= store.get_many(wanted[start : start + _BATCH])
    return found


def list_unswept(merchant_id: str, network_name: str | None) -> XpubAddressListView:
    """The merchant's xpub deposit addresses that hold final money not recorded as swept, with
    the deposits that brought it (on `network_name` only, when given)."""
    only = _network(network_name).name if network_name is not None else None
    by_address: dict[tuple[str, str], list[Deposit]] = defaultdict(list)
    for dep in _held_deposits(merchant_id):
        if dep.network in networks() and only in (None, dep.network):
            by_address[store.address_key(dep.network, dep.recipient)].append(dep)
    claims = _address_items(by_address)
    views = []
    for key, deps in by_address.items():
        claim = claims.get(key)
        if claim is None or not _owned_xpub_address(claim, merchant_id):
            continue  # a fixed address, or a contract-mode one: not the sweep tool's
        network = networks()[deps[0].network]
        held = sum(d.units for d in deps)
        swept = int(claim.get(SWEPT) or 0)
        if held <= swept:
            continue
        views.append(
            XpubAddressView(
                network=network.name,
                chain_id=network.chain_id,
                token_contract=network.token_contract,
                decimals=network.decimals,
                address=deps[0].recipient,
                index=int(claim["index"]),
                held_units=str(held),
                swept_units=str(swept),
                unswept_units=str(held - swept),
                deposits=[_deposit_view(d) for d in sorted(deps, key=lambda d: (d.block_number, d.log_index))],
            )
        )
    views.sort(key=lambda v: (v.network, v.index))
    return XpubAddressListView(addresses=views)


def _deposit_view(dep: Deposit) -> XpubDepositView:
    return XpubDepositView(
        deposit_id=dep.deposit_id,
        txid=dep.txid,
        log_index=dep.log_index,
        block_number=dep.block_number,
        units=str(dep.units),
        status=dep.status.value,
        order_id=dep.order_pk.split("#", 2)[2] if dep.order_pk else None,
    )


def _normalized(network: Network, request: XpubSweepRequest) -> tuple[str, str]:
    txid = request.txid.lower()
    try:
        if network.family == "evm":
            address = normalize_evm_address(request.address)
            valid_txid = bool(_EVM_TXID.match(txid))
        else:
            address = normalize_tron_address(request.address)
            valid_txid = bool(_TRON_TXID.match(txid))
    except ValueError as exc:
        raise InvalidRequest(f"address: {exc}", code="INVALID_ADDRESS") from None
    if not valid_txid:
        shape = '"0x" and 64 hex digits' if network.family == "evm" else "64 hex digits"
        raise InvalidRequest(f"txid must be a {network.name} transaction id: {shape}", code="INVALID_TXID")
    return address, txid


def _sweep_view(item: dict[str, Any]) -> XpubSweepView:
    return XpubSweepView(
        network=item["network"],
        address=item["address"],
        txid=item["txid"],
        units=str(item["units"]),
        recorded_at=int(item["recordedAt"]),
    )


def record_sweep(merchant_id: str, request: XpubSweepRequest) -> tuple[XpubSweepView, bool]:
    """Record the merchant's sweep of one of their xpub addresses: its units no longer count as
    unswept. Returns the record and whether this call made it (False: recorded before)."""
    network = _network(request.network)
    address, txid = _normalized(network, request)
    units = int(request.units)
    sweep_key = store.xpub_sweep_key(network.name, txid)
    record = {
        "pk": sweep_key[0],
        "sk": sweep_key[1],
        "merchantId": merchant_id,
        "network": network.name,
        "address": address,
        "txid": txid,
        "units": units,
        "recordedAt": clock.now_ms(),
    }
    for _ in range(3):  # another sweep of the address recorded between the read and the write
        known = store.get(*sweep_key)
        if known is not None:
            return _repeated(known, merchant_id, address, units), False
        addr_key = store.address_key(network.name, address)
        claim = store.get(*addr_key)
        if not _owned_xpub_address(claim, merchant_id):
            raise NotFound(f"{address} is not one of your xpub deposit addresses on {network.name}")
        assert claim is not None
        swept = int(claim.get(SWEPT) or 0)
        unswept = _held_units(merchant_id, network.name, address) - swept
        if units > unswept:
            raise Conflict(
                f"the sweep moves {units} units but only {max(unswept, 0)} of {address} are final and not "
                "recorded as swept",
                code="SWEEP_EXCEEDS_UNSWEPT",
            )
        read = (
            # swept n (none yet) -> n + units: no other sweep of the address was recorded since the read.
            ("attribute_not_exists(#swept)", {}) if SWEPT not in claim else ("#swept = :read", {":read": swept})
        )
        try:
            store.transact(
                [
                    # none -> recorded: a transaction is recorded as a sweep once.
                    store.put_part(record),
                    store.update_part(
                        *addr_key,
                        expression="SET #swept = :new",
                        condition=read[0],
                        values={":new": swept + units, **read[1]},
                        names={"#swept": SWEPT},
                    ),
                ]
            )
        except store.TransactionConflict:
            continue
        return _sweep_view(record), True
    raise Conflict("other sweeps of this address are being recorded at the same time; retry", code="BUSY")


def _repeated(known: dict[str, Any], merchant_id: str, address: str, units: int) -> XpubSweepView:
    if known.get("merchantId") != merchant_id or known["address"] != address or int(known["units"]) != units:
        raise Conflict("this transaction is already recorded as a different sweep", code="SWEEP_ALREADY_RECORDED")
    return _sweep_view(known)


def _held_units(merchant_id: str, network: str, address: str) -> int:
    """The final money (credited or unmatched) the merchant's deposits brought to the address."""
    return sum(d.units for d in _held_deposits(merchant_id) if d.network == network and d.recipient == address)


def _held_deposits(merchant_id: str) -> list[Deposit]:
    """The merchant's final deposits that are money on their address (credited or unmatched)."""
    deposits = map(Deposit.from_item, store.query_index_all(store.deposits_index_pk(merchant_id), sk_to="~"))
    return [d for d in deposits if d.status in HELD]
