"""`python -m devstack sweep [--amount X] [--dry-run]`: xpub mode's one action, in the sandbox.

In xpub mode the gateway holds only an account xpub: it cannot move the money on the deposit
addresses, the merchant does, with the SDK's offline sweep tool on their own machine. The stack's
second demo merchant (merchant-xpub.json) keeps `local` in xpub mode, with addresses of the
development wallet's EVM account 1 (dev-wallet.json: a test mnemonic made at the stack's first
start, never to hold real money). This command:

1. creates an order of that merchant on `local` and pays it from the chain's payer, following it
   to confirmed (as `pay` does);
2. waits until GET /v1/xpub/addresses lists its address with final, unswept money;
3. runs `python -m usdt_gateway_client.sweep` as a merchant runs it, in this process: first
   without --execute (the plan and its cost; nothing is sent), then with --execute (fund each
   address's gas from the funding key, send its USDT to the treasury, wait until final, record
   the sweep through the API);
4. prints the treasury's balance, and that the gateway no longer lists the address.

The tool's secrets come from the environment as it asks: the merchant's API key, the mnemonic,
and a funding key. The treasury (its key is not kept: it only receives) and the funding key
(funded from the payer) are made at the first run and kept in xpub-sweep.json, the tool's journal
in xpub-sweep-journal.json; the stack removes both at start, as they describe a chain that is gone.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from devstack.pay import Failed, Payer, Refused, amount_units, load_state, pay
from usdt_gateway.money import format_units

MERCHANT_XPUB_FILE = "merchant-xpub.json"
SWEEP_FILE = "xpub-sweep.json"
JOURNAL_FILE = "xpub-sweep-journal.json"
SWEEP_STATE_FILES = (SWEEP_FILE, JOURNAL_FILE)
DEFAULT_AMOUNT = "10.00"
# The funding key pays each address's gas (about 50,000 gas a sweep): topped up from the payer
# below this, by FUND_WEI.
FUND_BELOW_WEI = 10**17
FUND_WEI = 10**18
LISTED_TIMEOUT_S = 30.0  # a confirmed order's deposit is final: it is listed at once, a guard beyond
POLL_S = 1.0


def _sweep_state(state_dir: Path) -> dict[str, str]:
    """The demo treasury and funding key, made at the first run after the stack started."""
    from eth_account import Account

    from devstack.wallet import write_private

    path = state_dir / SWEEP_FILE
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    funder = Account.create()
    state = {
        "warning": "Test only: the xpub demo's treasury and funding key on the local chain. Never send real funds.",
        "treasury": str(Account.create().address),  # receives only: its key is not kept
        "funder": str(funder.address),
        "funderPrivateKey": "0x" + bytes(funder.key).hex(),
    }
    write_private(path, state)
    return state


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def sweep(state_dir: Path, *, amount: str | None, dry_run: bool) -> int:
    """Pay an order of the xpub demo merchant, then sweep with the offline tool; the tool's exit
    code (Refused or Failed with a one-line reason before it runs)."""
    from usdt_gateway_client import Client
    from usdt_gateway_client.sweep import main as sweep_tool

    try:
        merchant = json.loads((state_dir / MERCHANT_XPUB_FILE).read_text(encoding="utf-8"))
        mnemonic = str(json.loads((state_dir / "dev-wallet.json").read_text(encoding="utf-8"))["mnemonic"])
    except FileNotFoundError as exc:
        raise Refused(f"{exc.filename} not found: start the local stack first (make dev)") from None
    _, chain = load_state(state_dir, MERCHANT_XPUB_FILE)
    text = amount or DEFAULT_AMOUNT
    units = amount_units(text, chain.decimals, "--amount")
    client = Client(merchant["baseUrl"], merchant["apiKey"], merchant["secretKey"])
    network = str(merchant["network"])

    order = client.create_order(order_id=f"xpub-demo-{secrets.token_hex(4)}", amount=Decimal(text), network=network)
    print(f"xpub demo merchant {merchant['merchantId']}: created order {order.order_id} of {text} USDT", flush=True)
    pay(state_dir, order.order_id, merchant_file=MERCHANT_XPUB_FILE)
    address = str(order.address)
    listed = _wait_listed(client, network, address, units)
    print(
        f"GET /v1/xpub/addresses: {address} (index {listed.index}) holds "
        f"{format_units(listed.unswept_units, chain.decimals)} USDT final and unswept; the gateway cannot move it",
        flush=True,
    )

    state = _sweep_state(state_dir)
    payer = Payer(chain)
    _top_up(payer, state["funder"])
    journal = state_dir / JOURNAL_FILE
    argv = [
        "--base-url",
        merchant["baseUrl"],
        "--network",
        network,
        "--rpc-url",
        chain.rpc_url,
        "--treasury",
        state["treasury"],
        "--journal",
        str(journal),
        "--account",
        str(merchant["account"]),
        "--confirmations",
        str(merchant["confirmations"]),
    ]
    # The tool reads its secrets from the environment (never from its command line).
    os.environ |= {
        "USDT_GATEWAY_API_KEY": merchant["apiKey"],
        "USDT_GATEWAY_SECRET_KEY": merchant["secretKey"],
        "USDT_SWEEP_MNEMONIC": mnemonic,
        "USDT_SWEEP_FUNDING_KEY": state["funderPrivateKey"],
    }
    shown = [_display(journal) if arg == str(journal) else arg for arg in argv]  # the path as typed
    print(
        "\nthe offline sweep tool, as a merchant runs it (USDT_GATEWAY_API_KEY and USDT_GATEWAY_SECRET_KEY "
        f"from {MERCHANT_XPUB_FILE}, USDT_SWEEP_MNEMONIC from dev-wallet.json, USDT_SWEEP_FUNDING_KEY from "
        f"{SWEEP_FILE}):",
        flush=True,
    )
    before = payer.balance(state["treasury"])
    for execute in (False, True):
        if execute and dry_run:
            break
        flag = ["--execute"] if execute else []
        print(f"\n$ python -m usdt_gateway_client.sweep {shlex.join(shown + flag)}", flush=True)
        code = sweep_tool(argv + flag)
        sys.stdout.flush()
        if code != 0:
            return code
    if dry_run:
        return 0
    held = payer.balance(state["treasury"])
    print(
        f"\ntreasury {state['treasury']} holds {format_units(held, chain.decimals)} test USDT "
        f"({format_units(held - before, chain.decimals)} more than before the sweep)",
        flush=True,
    )
    still = {a.address.lower() for a in client.list_xpub_addresses(network)}
    if address.lower() in still:
        raise Failed(f"the gateway still lists {address} as unswept")
    print(f"GET /v1/xpub/addresses no longer lists {address}: its sweep is recorded", flush=True)
    return 0


def _wait_listed(client: Any, network: str, address: str, units: int) -> Any:
    deadline = time.monotonic() + LISTED_TIMEOUT_S
    while True:
        for entry in client.list_xpub_addresses(network):
            if entry.address.lower() == address.lower() and entry.unswept_units >= units:
                return entry
        if time.monotonic() > deadline:
            raise Failed(f"GET /v1/xpub/addresses does not list {address} as final after {LISTED_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def _top_up(payer: Payer, funder: str) -> None:
    """Native coin for the funding key, from the payer (unlocked on anvil)."""
    if int(payer.call("eth_getBalance", [funder, "latest"]), 16) >= FUND_BELOW_WEI:
        return
    txid = str(payer.call("eth_sendTransaction", [{"from": payer.chain.payer, "to": funder, "value": hex(FUND_WEI)}]))
    payer.wait_mined(txid)
    print(f"funding key {funder}: sent {Decimal(FUND_WEI) / 10**18} ETH from the payer for the sweeps' gas", flush=True)
