"""`python -m devstack refund <orderId> [--to ADDRESS] [--amount X] [--no-wait]`: a refund in the
sandbox, the way a merchant makes one, with the merchant SDK.

Asks the gateway for a refund of money the order did not take (POST .../refunds), checks and
signs its EIP-712 typed data with the factory owner's key the stack wrote to owner-key.json
(usdt_gateway_client.refunds.sign_refund: it recomputes the digest and checks the recipient, the
amount and the factory before it signs), hands the signature over, then follows the refund until
the relayer's transaction is final: submitted -> completed (or failed), and prints the
recipient's balance. The recipient is the chain's payer unless --to says otherwise.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from usdt_gateway_client import Client
from usdt_gateway_client.errors import GatewayError
from usdt_gateway_client.models import Refund
from usdt_gateway_client.refunds import sign_refund

from devstack.pay import Failed, Payer, Refused, load_state, local_order
from devstack.settlement import OWNER_KEY_FILE, read_settlement_info
from usdt_gateway.money import format_units

# A signed refund is sent at the next settlement run (every few seconds) and is final a couple of
# blocks later: a guard well beyond.
REFUND_TIMEOUT_S = 60.0
POLL_S = 1.0
CLOSED = ("completed", "failed", "expired")


def refund(state_dir: Path, order_id: str, *, to: str | None, amount: str | None, wait: bool) -> Refund:
    api, chain = load_state(state_dir)
    info = read_settlement_info(state_dir)
    if info is None:
        raise Refused(
            "the stack runs `local` in xpub mode: refunds need contract mode (make dev without DEVSTACK_LOCAL_MODE)"
        )
    order = local_order(api, chain, order_id)
    owner_key = json.loads((state_dir / OWNER_KEY_FILE).read_text(encoding="utf-8"))["privateKey"]
    recipient = to or chain.payer
    client = Client(api.base_url, api.api_key, api.secret_key)
    payer = Payer(chain)
    before = payer.balance(recipient)
    try:
        made = client.create_refund(order["orderId"], recipient, Decimal(amount) if amount is not None else None)
    except GatewayError as exc:
        raise Refused(f"the gateway refused the refund: {exc}") from None
    print(f"refund {made.refund_id}: {made.amount} USDT from {made.deposit_address} to {made.to}, {made.status}")
    print(f"  the owner {made.owner} must sign its EIP-712 typed data (deadline {made.deadline})")
    signature = sign_refund(
        made,
        owner_key,
        expected_to=recipient,
        expected_amount=made.amount if amount is None else Decimal(amount),
        expected_factory=info.factory,
        expected_chain_id=chain.chain_id,
        decimals=chain.decimals,
    )
    print(f"  signed by the owner's key ({OWNER_KEY_FILE}): {signature[:18]}...")
    current = client.submit_refund_signature(order["orderId"], made.refund_id, signature)
    print(f"  {current.status}: the relayer sends it at the next settlement run")
    if not wait:
        return current
    deadline = time.monotonic() + REFUND_TIMEOUT_S
    while str(current.status) not in CLOSED:
        if time.monotonic() > deadline:
            raise Failed(f"refund {made.refund_id} still {current.status} after {REFUND_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)
        current = client.get_refund(order["orderId"], made.refund_id)
    if str(current.status) != "completed":
        raise Failed(f"refund {made.refund_id} {current.status}: {current.reason}")
    print(f"  completed in {current.tx_hash} (the relayer paid {current.gas_paid} wei of gas)")
    balance = payer.balance(recipient)
    gained = format_units(balance - before, chain.decimals)
    print(f"  {recipient} holds {format_units(balance, chain.decimals)} USDT ({gained} more than before the refund)")
    return current
