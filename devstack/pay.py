"""`python -m devstack pay <orderId> [--amount X] [--no-wait]`: the sandbox payer of the local stack.

Reads the demo merchant (merchant.json) and the local chain (chain.json) from the state dir,
reads the order with a signed GET (Signature-V2), sends test USDT with the token's transfer()
from the chain's payer account to the order's address, prints the txid, then follows the order
until the payment is final: pending -> confirming -> confirmed (or underpaid, ...).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.chain import NETWORK, ChainInfo, read_chain_info
from usdt_gateway import signing
from usdt_gateway.chain.jsonrpc import JsonRpc, RpcError, RpcUnavailable
from usdt_gateway.lifecycle import ACCEPTING
from usdt_gateway.money import format_units, parse_amount, to_base_units
from usdt_gateway.schemas import OrderStatus

WAIT_TIMEOUT_S = 30.0
RECEIPT_TIMEOUT_S = 15.0
POLL_S = 0.5  # the API allows 100 signed requests a minute per key
ORDER_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")  # what the API accepts as an orderId
TRANSFER = "0xa9059cbb"  # transfer(address,uint256)
BALANCE_OF = "0x70a08231"  # balanceOf(address)

# Loopback only: never through a proxy of the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Refused(Exception):
    """The request cannot be served as asked (exit code 2)."""


class Failed(Exception):
    """Something went wrong on the way (exit code 1)."""


@dataclass(frozen=True)
class MerchantApi:
    base_url: str
    api_key: str
    secret_key: str

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The order as the API shows it, or None if the merchant has no such order."""
        path = f"/v1/payment/order/{order_id}"
        while True:
            timestamp = str(int(time.time() * 1000))
            signature = signing.sign(self.secret_key, signing.v2_message(timestamp, "GET", path, [], b""))
            headers = {"API-Key": self.api_key, "Request-Time": timestamp, "Signature-V2": signature}
            request = urllib.request.Request(self.base_url + path, headers=headers)  # noqa: S310 (merchant.json's URL)
            try:
                with _NO_PROXY.open(request, timeout=10) as response:
                    return dict(json.loads(response.read()))
            except urllib.error.HTTPError as exc:
                body = _json_or_text(exc.read())
                if exc.code == 404:
                    return None
                if exc.code == 429:  # polling too fast for the key's limit: wait as told
                    time.sleep(float(exc.headers.get("Retry-After") or 1))
                    continue
                if exc.code == 401:
                    raise Failed(f"the API refused the demo merchant's key ({body}): is merchant.json from "
                                 "the stack that is running now?") from None
                raise Failed(f"GET {path} -> {exc.code}: {body}") from None
            except (urllib.error.URLError, OSError) as exc:
                reason = f"cannot reach the local stack at {self.base_url} ({exc})"
                raise Failed(f"{reason}; is `make dev` running?") from None


def _json_or_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
        return f"{body['code']}: {body['message']}"
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace")[:200]


def _word(value: str | int) -> str:
    """An ABI word: 32 bytes, big-endian, as hex."""
    return (value.removeprefix("0x").lower() if isinstance(value, str) else f"{value:x}").rjust(64, "0")


def _units(text: str, decimals: int, what: str) -> int:
    """A Decimal amount string in the token's base units, exactly, or Refused."""
    try:
        return to_base_units(parse_amount(text), decimals)
    except ValueError as exc:
        raise Refused(f"{what} {text!r} {exc}") from None


class Payer:
    """The chain's payer account (unlocked on anvil) and the token."""

    def __init__(self, chain: ChainInfo) -> None:
        self.chain = chain
        self.rpc = JsonRpc(chain.rpc_url, timeout=10)

    def _call(self, method: str, params: list[Any]) -> Any:
        try:
            return self.rpc.call(method, params)
        except RpcUnavailable as exc:
            reason = f"cannot reach the local chain at {self.chain.rpc_url} ({exc})"
            raise Failed(f"{reason}; is `make dev` running?") from None
        except RpcError as exc:
            raise Failed(f"{method} failed: {exc}") from None

    def balance(self) -> int:
        data = BALANCE_OF + _word(self.chain.payer)
        return int(self._call("eth_call", [{"to": self.chain.token_contract, "data": data}, "latest"]), 16)

    def transfer(self, to: str, units: int) -> str:
        """Send the token's transfer(to, units) from the payer; returns the txid."""
        data = TRANSFER + _word(to) + _word(units)
        return str(self._call("eth_sendTransaction", [{"from": self.chain.payer, "to": self.chain.token_contract,
                                                        "data": data}]))

    def wait_mined(self, txid: str) -> int:
        """The block number of the transaction once mined; Failed if it reverted."""
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        while (receipt := self._call("eth_getTransactionReceipt", [txid])) is None:
            if time.monotonic() > deadline:
                raise Failed(f"{txid} was not mined within {RECEIPT_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        if int(receipt["status"], 16) != 1:
            raise Failed(f"{txid} reverted")
        return int(receipt["blockNumber"], 16)


def _describe(order: dict[str, Any]) -> str:
    """The status, with the amounts that explain it."""
    status = str(order["status"])
    if status == "confirming":
        status += f" (seen {order['pendingAmount']})"
    elif status == "underpaid":
        status += f" (paid {order['paidAmount']} of {order['amount']})"
    elif status == "confirmed":
        status += f" (paid {order['paidAmount']}" + (f", {order['exception']})" if order.get("exception") else ")")
    return status


def _final_deposit(order: dict[str, Any], txid: str) -> bool:
    return any(d["txid"].lower() == txid.lower() and d["final"] for d in order.get("deposits") or [])


def _follow(api: MerchantApi, order_id: str, txid: str, sent_at: float) -> None:
    """Print each status change until the payment is final on the order (or the order takes no
    more payments); Failed after WAIT_TIMEOUT_S."""
    last = None
    while True:
        order = api.get_order(order_id)
        if order is None:
            raise Failed(f"order {order_id!r} is gone (has the stack restarted?)")
        described = _describe(order)
        elapsed = time.monotonic() - sent_at
        if described != last:
            print(f"{elapsed:6.1f} s  {described}", flush=True)
            last = described
        if _final_deposit(order, txid) or OrderStatus(order["status"]) not in ACCEPTING:
            return
        if elapsed > WAIT_TIMEOUT_S:
            raise Failed(f"no final deposit of {txid} on the order after {WAIT_TIMEOUT_S:.0f} s (status {described})")
        time.sleep(POLL_S)


def _load(state_dir: Path) -> tuple[MerchantApi, ChainInfo]:
    try:
        merchant = json.loads((state_dir / "merchant.json").read_text(encoding="utf-8"))
        chain = read_chain_info(state_dir)
    except FileNotFoundError as exc:
        raise Refused(f"{exc.filename} not found: start the local stack first (make dev)") from None
    return MerchantApi(merchant["baseUrl"], merchant["apiKey"], merchant["secretKey"]), chain


def pay(state_dir: Path, order_id: str, *, amount: str | None = None, wait: bool = True) -> None:
    """Pay the order from the local chain's payer; Refused or Failed with a one-line reason."""
    api, chain = _load(state_dir)
    if amount is not None:
        _units(amount, chain.decimals, "--amount")  # refuse a bad amount before anything else
    if not ORDER_ID.match(order_id):
        raise Refused(f"no order {order_id!r}: an orderId is 1 to 64 letters, digits and _-.:")
    order = api.get_order(order_id)
    if order is None:
        raise Refused(f"no order {order_id!r} for the demo merchant of {api.base_url}")
    if order["network"] != NETWORK:
        raise Refused(f"order {order_id!r} is on {order['network']}, not on the local chain: only `{NETWORK}` orders "
                      "can be paid here (the other networks are not scanned locally)")
    if order["tokenContract"].lower() != chain.token_contract.lower():
        raise Refused(f"order {order_id!r} asks for token {order['tokenContract']}, not the local chain's "
                      f"{chain.token_contract} (chain.json is from another start of the stack)")
    text = amount if amount is not None else str(order["amount"])
    units = _units(text, chain.decimals, "amount")
    payer = Payer(chain)
    if (balance := payer.balance()) < units:
        raise Failed(f"the payer {chain.payer} holds only {format_units(balance, chain.decimals)} test USDT")

    print(f"order {order_id}: {order['status']}, {order['amount']} USDT to {order['address']}", flush=True)
    sent_at = time.monotonic()
    txid = payer.transfer(order["address"], units)
    print(f"txid {txid}  ({format_units(units, chain.decimals)} USDT from {chain.payer})", flush=True)
    block = payer.wait_mined(txid)
    print(f"mined in block {block}", flush=True)
    if OrderStatus(order["status"]) not in ACCEPTING:
        print(f"the order is {order['status']} and takes no more payments: this transfer becomes an unmatched "
              "deposit (GET /v1/deposits?unmatched=true)", flush=True)
    elif wait:
        _follow(api, order_id, txid, sent_at)
