"""The operator's view of a network's settlement (admin settlement-status) and the release of
held deposits (admin release-deposits): those held after failed sweeps, or by the balance
cross-check (settlement/balance_check.py), as JSON-ready dicts.

Read from the table (strongly consistent) and, for the relayer's native balance, from the
network's RPC endpoint chosen as a settlement run chooses it (settlement/endpoint.py). Amounts
are decimal strings of the token (USDT) or of the native coin (18 decimals, `balance`), with the
base units beside them where a sum is shown; times are ms since the epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from usdt_gateway import store
from usdt_gateway.chain.jsonrpc import Rpc, RpcError, RpcUnavailable
from usdt_gateway.kms_signer import KmsSigner, SignerError
from usdt_gateway.money import format_units
from usdt_gateway.networks import Network
from usdt_gateway.settlement import candidates, endpoint
from usdt_gateway.settlement.candidates import BalanceShort, Candidate
from usdt_gateway.settlement.records import RelayerState, Settlement, Sweep
from usdt_gateway.settlement.relayer import read_state

NATIVE_DECIMALS = 18  # every EVM chain's native coin (ETH, BNB, POL)
RECENT = 5  # settlements shown by default


def relayer_view(network: Network, signer: KmsSigner | None, endpoints: Sequence[Rpc] | None) -> dict[str, Any]:
    """The relayer's address (from its KMS public key) and its native balance, or why not."""
    view: dict[str, Any] = {"keyId": None, "address": None, "endpoint": None, "balanceWei": None, "balance": None}
    if signer is None:
        view["note"] = "no relayer key: set RELAYER_KEY_ID or give --relayer-key-id (the stack's RelayerKeyId output)"
        return view
    view["keyId"] = signer.key_id
    try:
        view["address"] = signer.address
    except (ClientError, BotoCoreError, SignerError) as exc:
        view["note"] = f"the relayer key's public key cannot be read: {exc}"
        return view
    if not endpoints:
        view["note"] = f"no RPC endpoint configured for {network.name} (RPC_ENDPOINTS): balance not read"
        return view
    try:
        rpc = endpoint.choose(network, endpoints)
        balance = int(rpc.call("eth_getBalance", [view["address"], "latest"]), 16)
    except (endpoint.NoEndpoint, RpcError, RpcUnavailable) as exc:
        view["note"] = f"balance not read: {exc}"
        return view
    view |= {
        "endpoint": rpc.label,
        "balanceWei": str(balance),
        "balance": format_units(balance, NATIVE_DECIMALS),
    }
    return view


def _step(sweep: Sweep) -> str:
    """How far the sweep in flight got (settlement/relayer.py's steps)."""
    if sweep.mined is not None:
        return "mined"  # in a block, not final (or not canonical) yet
    if not sweep.attempts:
        return "queued"  # claimed and handed to the relayer, nothing signed yet (or waiting for gas)
    if sweep.attempts[-1].broadcast_at is None:
        return "signed"  # stored, not known to have reached a node
    return "broadcast"  # sent, not mined


def in_flight_view(state: RelayerState | None, *, now: int) -> dict[str, Any] | None:
    sweep = state.sweep if state else None
    if sweep is None:
        return None
    latest = sweep.attempts[-1] if sweep.attempts else None
    return {
        "settlementId": sweep.settlement_id,
        "merchantId": sweep.merchant_id,
        "step": _step(sweep),
        "nonce": latest.nonce if latest else None,
        "txHash": sweep.mined.tx_hash if sweep.mined else (latest.tx_hash if latest else None),
        "block": sweep.mined.block_number if sweep.mined else None,
        "transactions": len(sweep.attempts),  # the first and each replacement
        "reorgs": sweep.reorgs,
        "deposits": len(sweep.salts),
        "createdAt": sweep.created_at,
        "ageSeconds": max(0, now - sweep.created_at) // 1000,
    }


SWEEPS_FAILED = "sweeps_failed"  # held after MAX_FAILURES failed sweeps
BALANCE_SHORT = "balance_short"  # held: its address's final balance does not cover its credits


def candidate_view(c: Candidate, decimals: int, short: BalanceShort | None = None) -> dict[str, Any]:
    """A deposit as listed; `short` (the hold on its address) for one held by the balance check."""
    view: dict[str, Any] = {
        "depositId": c.deposit_id,
        "merchantId": c.merchant_id,
        "orderId": c.order_pk.split("#", 2)[2] if c.order_pk else None,
        "address": c.address,
        "amount": format_units(c.units, decimals),
        "failures": c.failures,
        "creditedAt": c.credited_at,
    }
    if short is not None:
        view |= {
            "reason": BALANCE_SHORT,
            "balance": format_units(short.balance, decimals),  # at the address, at `block`
            "expected": format_units(short.expected, decimals),  # credited on it, to be swept
            "block": short.block,
            "endpoint": short.endpoint,
            "heldSince": short.since,
        }
    elif c.failures >= candidates.MAX_FAILURES:
        view["reason"] = SWEEPS_FAILED
    return view


def _sums(groups: dict[str, list[Candidate]], key: str, decimals: int) -> list[dict[str, Any]]:
    return [
        {
            key: name,
            "deposits": len(members),
            "units": sum(c.units for c in members),
            "amount": format_units(sum(c.units for c in members), decimals),
            "oldestCreditedAt": min(c.credited_at for c in members),
        }
        for name, members in sorted(groups.items())
    ]


def settlement_view(settlement_id: str, decimals: int) -> dict[str, Any]:
    item = store.get(*store.settlement_key(settlement_id))
    if item is None:
        return {"settlementId": settlement_id, "status": None}
    record = Settlement.from_item(item)
    units = item.get("units")  # what it covered: written once its outcome is marked (batches.mark)
    return {
        "settlementId": settlement_id,
        "merchantId": record.merchant_id,
        "status": record.status.value,
        "amount": None if units is None else format_units(int(units), decimals),
        "deposits": len(item["depositIds"]) if item.get("depositIds") is not None else None,
        "txHash": record.tx_hash,
        "nonce": record.nonce,
        "gasPaid": str(record.gas_paid),
        "reason": record.reason,
        "reorgs": record.reorgs,
        "createdAt": record.created_at,
        "closedAt": record.closed_at,
    }


def gather(
    network: Network,
    *,
    signer: KmsSigner | None,
    endpoints: Sequence[Rpc] | None,
    now: int,
    recent: int = RECENT,
    relayer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A network's settlement as the operator sees it (the admin's settlement-status); `relayer`
    replaces the EVM relayer's view (a Tron network's, read through its full node)."""
    state = read_state(network.name)
    waiting: dict[str, list[Candidate]] = {}
    claimed: dict[str, list[Candidate]] = {}
    held: list[dict[str, Any]] = []
    unsettled = sorted(candidates.unsettled(network.name), key=lambda c: (c.credited_at, c.key))
    # The balance check holds an address: each unclaimed deposit on it waits with it.
    short_at = {c.address: c.short for c in unsettled if c.sweep_id is None and c.short is not None}
    for c in unsettled:
        if c.sweep_id is not None:
            claimed.setdefault(c.sweep_id, []).append(c)
        elif c.address in short_at:
            held.append(candidate_view(c, network.decimals, c.short or short_at[c.address]))
        elif c.failures >= candidates.MAX_FAILURES:
            held.append(candidate_view(c, network.decimals))
        else:
            waiting.setdefault(c.merchant_id, []).append(c)
    lease = None
    if state is not None and state.lease_owner is not None:
        lease = {"owner": state.lease_owner, "until": state.lease_until, "held": state.lease_until > now}
    return {
        "network": network.name,
        "relayer": relayer if relayer is not None else relayer_view(network, signer, endpoints),
        "lease": lease,
        "nextNonce": state.next_nonce if state else None,
        "inFlight": in_flight_view(state, now=now),
        "waiting": _sums(waiting, "merchantId", network.decimals),
        "claimed": _sums(claimed, "settlementId", network.decimals),
        "held": held,
        "heldAfterFailures": candidates.MAX_FAILURES,
        "settlements": [settlement_view(i, network.decimals) for i in (state.recent if state else ())[:recent]],
    }


def release(network: Network, merchant_id: str | None, *, balance_short: bool = False, now: int = 0) -> dict[str, Any]:
    """Every candidate of the network (of one merchant) held after failed sweeps released for the
    next sweep; with `balance_short`, instead, every one the balance cross-check holds, its check
    waived (the next sweep takes it whatever its address holds: what it moves is counted swept,
    the rest missing). Those that changed meanwhile are listed apart, untouched."""
    released: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    if balance_short:
        for c in candidates.short_held(network.name, merchant_id):
            (released if candidates.waive(c, now) else changed).append(candidate_view(c, network.decimals, c.short))
    else:
        for c in candidates.held(network.name, merchant_id):
            (released if candidates.release(c) else changed).append(candidate_view(c, network.decimals))
    return {"network": network.name, "merchantId": merchant_id, "released": released, "changed": changed}
