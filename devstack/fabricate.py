"""`python -m devstack fabricate <orderId> [--amount X] [--no-wait]`: a payment that never happened.

With the stack started with two RPC endpoints for `local` (DEVSTACK_ENDPOINTS=2 make dev), the
scanner reads the chain through a pass-through proxy (devstack/forging_proxy.py) and has anvil
itself confirm each deposit. This asks the proxy to show a Transfer of the order's amount to its
address in the next block, with nothing on the chain: what a lying provider or a hijacked DNS
name could answer. Then it follows the order: the proxy's answer makes it `confirming`, and once
the block is final the second endpoint contradicts the payment, so the deposit is held
(`disputed`, in GET /v1/deposits and `admin status`) and the order never turns `confirmed`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from devstack.forging_proxy import FORGER_FILE, forge_through
from devstack.pay import (
    DEPOSITS_EVERY,
    POLL_S,
    Failed,
    Payer,
    Refused,
    amount_units,
    deposit_status,
    describe,
    listed_deposit,
    load_state,
    local_order,
)
from devstack.sandbox import SETTLE_BLOCKS
from usdt_gateway.chain.jsonrpc import RpcError, RpcUnavailable
from usdt_gateway.money import format_units

# The held deposit shows once its block is final and scanned: SETTLE_BLOCKS blocks at most (a
# block a second); a guard beyond it.
WAIT_TIMEOUT_S = 45.0


def forger_url(state_dir: Path) -> str:
    """The forging proxy of the running stack; Refused when it runs with one endpoint."""
    try:
        return str(json.loads((state_dir / FORGER_FILE).read_text(encoding="utf-8"))["url"])
    except FileNotFoundError:
        raise Refused(
            "the stack runs with one RPC endpoint for `local`, which is trusted: nothing to forge through. "
            "Start it with two, a forging proxy and anvil (DEVSTACK_ENDPOINTS=2 make dev)"
        ) from None


def fabricate(state_dir: Path, order_id: str, *, amount: str | None = None, wait: bool = True) -> None:
    """Have the proxy show a payment of the order; Refused or Failed with a one-line reason."""
    api, chain = load_state(state_dir)
    url = forger_url(state_dir)
    order = local_order(api, chain, order_id)
    units = amount_units(amount if amount is not None else str(order["amount"]), chain.decimals, "amount")
    try:
        forged = forge_through(url, token=chain.token_contract, recipient=str(order["address"]), units=units)
    except (RpcError, RpcUnavailable) as exc:
        raise Failed(f"the forging proxy at {url} did not answer ({exc}): is the stack running?") from None
    txid = str(forged["txid"])
    print(f"order {order_id}: {describe(order)}, {order['amount']} USDT to {order['address']}", flush=True)
    print(
        f"txid {txid}  ({format_units(units, chain.decimals)} USDT, shown in block {forged['block']} by the "
        f"proxy only: no such transaction is on the chain)",
        flush=True,
    )
    if not wait:
        return
    payer = Payer(chain)
    until = int(forged["block"]) + SETTLE_BLOCKS
    started = time.monotonic()
    last, listed, reads = None, None, 0
    while True:
        current = api.get_order(order_id)
        if current is None:
            raise Failed(f"order {order_id!r} is gone (has the stack restarted?)")
        described = describe(current)
        if described != last:
            print(f"{time.monotonic() - started:6.1f} s  {described}", flush=True)
            last = described
        reads += 1
        if reads % DEPOSITS_EVERY == 0:  # less often than the order: the key's rate limit
            listed = listed_deposit(api, txid)
        if listed is not None or payer.head() >= until or time.monotonic() - started > WAIT_TIMEOUT_S:
            break
        time.sleep(POLL_S)
    _report(listed if listed is not None else listed_deposit(api, txid), current)


def _report(listed: dict[str, Any] | None, order: dict[str, Any]) -> None:
    if listed is None:
        print("GET /v1/deposits does not list it (yet): is its block final?", flush=True)
    else:
        print(f"GET /v1/deposits lists it: {deposit_status(listed)}", flush=True)
    print(f"the order is {describe(order)}, paid {order['paidAmount']}", flush=True)
