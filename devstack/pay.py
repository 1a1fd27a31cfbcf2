"""`python -m devstack pay <orderId> [--amount X] [--parts N [--same-block]] [--late [--late-by S] [--warp]]
[--no-wait]`: the sandbox payer of the local stack.

Reads the demo merchant (merchant.json) and the local chain (chain.json) from the state dir,
reads the order with a signed GET (Signature-V2), sends test USDT with the token's transfer()
from the chain's payer account to the order's address, prints the txid, then follows the order
until the payment is final: pending -> confirming -> confirmed (or underpaid, ...). In contract
mode (settlement.json) it then follows the order's money, on_deposit_address -> sweeping -> swept,
and prints the sweep that moved it and the treasury's balance.

`--parts N` sends the amount as N transfers (one block each, or all in one with `--same-block`);
`--late` makes the payment's block time fall after the order's expiry: it waits for the chain to
get there, or with `--warp` moves the chain's clock forward (evm_increaseTime) for good.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.chain import LATE_BY_S, NETWORK, ChainInfo, read_chain_info
from devstack.settlement import SettlementInfo, read_settlement_info
from usdt_gateway import request_signing
from usdt_gateway.chain.jsonrpc import JsonRpc, RpcError, RpcUnavailable
from usdt_gateway.lifecycle import ACCEPTING
from usdt_gateway.money import format_units, parse_amount, to_base_units
from usdt_gateway.schemas import OrderStatus

MERCHANT_FILE = "merchant.json"  # the demo merchant's, written by the stack
WAIT_TIMEOUT_S = 30.0
# A sweep follows within seconds of its qualifying (minimum amount or maximum age): a guard beyond.
SWEEP_TIMEOUT_S = 60.0
FUNDS_POLL_S = 1.0  # a sweep takes a settlement run or two (every few seconds): fewer reads of the key's limit
RECEIPT_TIMEOUT_S = 15.0
POLL_S = 0.5  # the API allows 100 signed requests a minute per key
DEPOSITS_EVERY = 4  # a follow reads GET /v1/deposits once every this many reads of the order
ORDER_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")  # what the API accepts as an orderId
TRANSFER = "0xa9059cbb"  # transfer(address,uint256)
TRANSFER_FROM = "0x23b872dd"  # transferFrom(address,address,uint256)
BALANCE_OF = "0x70a08231"  # balanceOf(address)
# Gas for a token call, rather than the node's estimate: a transfer to an empty balance costs more
# than one to a balance already there, and the settlement can empty a deposit address between the
# estimate and the block (a payment's second part, after the first was swept). Over twice the
# dearest (about 51,000 gas: a transfer to an empty balance).
TOKEN_CALL_GAS = 120_000
TOTAL_SUPPLY = "0x18160ddd"  # totalSupply()
# Transfer(address,address,uint256)
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

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
        return self._get(f"/v1/payment/order/{order_id}")

    def deposits(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest final deposits to the merchant's addresses (GET /v1/deposits)."""
        page = self._get("/v1/deposits", [("limit", str(limit))])
        return list(page["deposits"]) if page is not None else []

    def settlements(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest closed sweeps of the merchant's deposit addresses (GET /v1/settlements)."""
        page = self._get("/v1/settlements", [("limit", str(limit))])
        return list(page["settlements"]) if page is not None else []

    def _get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> dict[str, Any] | None:
        """A signed GET: the JSON body, or None on 404."""
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        while True:
            timestamp, nonce = str(int(time.time() * 1000)), secrets.token_hex(16)
            message = request_signing.v2_message(timestamp, "GET", path, query, b"", request_nonce=nonce)
            headers = {
                "API-Key": self.api_key,
                "Request-Time": timestamp,
                "Request-Nonce": nonce,
                "Signature-V2": request_signing.sign(self.secret_key, message),
            }
            request = urllib.request.Request(url, headers=headers)  # noqa: S310 (merchant.json's URL)
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
                    raise Failed(
                        f"the API refused the demo merchant's key ({body}): is merchant.json from "
                        "the stack that is running now?"
                    ) from None
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


def amount_units(text: str, decimals: int, what: str) -> int:
    """A Decimal amount string in the token's base units, exactly, or Refused."""
    try:
        return to_base_units(parse_amount(text), decimals)
    except ValueError as exc:
        raise Refused(f"{what} {text!r} {exc}") from None


@dataclass(frozen=True)
class TokenTransfer:
    """A Transfer log of the token in a receipt."""

    sender: str
    recipient: str
    units: int
    log_index: int


def token_transfers(receipt: dict[str, Any], token: str) -> list[TokenTransfer]:
    return [
        TokenTransfer(
            sender="0x" + log["topics"][1][-40:],
            recipient="0x" + log["topics"][2][-40:],
            units=int(log["data"], 16),
            log_index=int(log["logIndex"], 16),
        )
        for log in receipt["logs"]
        if log["address"].lower() == token.lower() and log["topics"] and log["topics"][0] == TRANSFER_TOPIC
    ]


class Payer:
    """The chain's payer account (unlocked on anvil), the token, and anvil's controls."""

    def __init__(self, chain: ChainInfo) -> None:
        self.chain = chain
        self.rpc = JsonRpc(chain.rpc_url, timeout=10)

    def call(self, method: str, params: list[Any]) -> Any:
        try:
            return self.rpc.call(method, params)
        except RpcUnavailable as exc:
            reason = f"cannot reach the local chain at {self.chain.rpc_url} ({exc})"
            raise Failed(f"{reason}; is `make dev` running?") from None
        except RpcError as exc:
            raise Failed(f"{method} failed: {exc}") from None

    def balance(self, holder: str | None = None) -> int:
        """The token balance of `holder` (the payer's by default)."""
        data = BALANCE_OF + _word(holder or self.chain.payer)
        return int(self.call("eth_call", [{"to": self.chain.token_contract, "data": data}, "latest"]), 16)

    def total_supply(self, block: int) -> int:
        """The token's total supply as of `block` (0 before the stack minted any)."""
        reply = self.call("eth_call", [{"to": self.chain.token_contract, "data": TOTAL_SUPPLY}, hex(block)])
        return int(reply, 16) if reply not in ("0x", None) else 0

    def send(self, sender: str, data: str) -> str:
        """A call of the token from an unlocked account; returns the txid."""
        call = {"from": sender, "to": self.chain.token_contract, "data": data, "gas": hex(TOKEN_CALL_GAS)}
        return str(self.call("eth_sendTransaction", [call]))

    def transfer(self, to: str, units: int) -> str:
        """Send the token's transfer(to, units) from the payer; returns the txid."""
        return self.send(self.chain.payer, TRANSFER + _word(to) + _word(units))

    def transfer_from(self, caller: str, owner: str, to: str, units: int) -> str:
        """`caller` sends transferFrom(owner, to, units): with 0, no allowance is needed, so anyone
        can make a Transfer log appear to come from `owner`."""
        return self.send(caller, TRANSFER_FROM + _word(owner) + _word(to) + _word(units))

    def head(self) -> int:
        return int(self.call("eth_blockNumber", []), 16)

    def block(self, number: int | str = "latest", *, full: bool = False) -> dict[str, Any]:
        tag = hex(number) if isinstance(number, int) else number
        block = self.call("eth_getBlockByNumber", [tag, full])
        if block is None:
            raise Failed(f"block {number} not found")
        return dict(block)

    def receipt(self, txid: str) -> dict[str, Any] | None:
        receipt = self.call("eth_getTransactionReceipt", [txid])
        return dict(receipt) if receipt is not None else None

    def wait_mined(self, txid: str) -> int:
        """The block number of the transaction once mined; Failed if it reverted."""
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        while (receipt := self.receipt(txid)) is None:
            if time.monotonic() > deadline:
                raise Failed(f"{txid} was not mined within {RECEIPT_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        if int(receipt["status"], 16) != 1:
            raise Failed(f"{txid} reverted")
        return int(receipt["blockNumber"], 16)

    @contextlib.contextmanager
    def mining_paused(self) -> Iterator[None]:
        """No block is mined inside: what is read of the head stays true until the block is
        mined (evm_mine) or the chain is reorganised on purpose. Interval mining resumes after."""
        interval = self.call("anvil_getIntervalMining", [])  # seconds, or None when off
        self.call("evm_setIntervalMining", [0])
        try:
            yield
        finally:
            if interval:
                self.call("evm_setIntervalMining", [interval])


def describe(order: dict[str, Any]) -> str:
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
    return any(
        d["txid"].lower() == txid.lower() and d["final"] and not d.get("reversed") for d in order.get("deposits") or []
    )


def _follow(api: MerchantApi, order_id: str, txids: Sequence[str], sent_at: float) -> None:
    """Print each status change until every payment is final on the order, or recorded apart
    from it (GET /v1/deposits: unmatched, ignored), or the order takes no more payments; Failed
    after WAIT_TIMEOUT_S."""
    last = None
    apart: dict[str, dict[str, Any]] = {}  # txid -> its record in GET /v1/deposits, not on the order
    reads = 0
    while True:
        order = api.get_order(order_id)
        if order is None:
            raise Failed(f"order {order_id!r} is gone (has the stack restarted?)")
        described = describe(order)
        elapsed = time.monotonic() - sent_at
        if described != last:
            print(f"{elapsed:6.1f} s  {described}", flush=True)
            last = described
        waiting = [t for t in txids if not _final_deposit(order, t) and t not in apart]
        if not waiting or OrderStatus(order["status"]) not in ACCEPTING:
            return
        reads += 1
        if reads % DEPOSITS_EVERY == 0:  # less often than the order: the key's rate limit
            for txid in waiting:
                if (record := listed_deposit(api, txid)) is not None and not _on_order(order, txid):
                    apart[txid] = record
                    print(
                        f"{elapsed:6.1f} s  GET /v1/deposits lists {txid}: {deposit_status(record)}, not on the order",
                        flush=True,
                    )
        if elapsed > WAIT_TIMEOUT_S:
            raise Failed(
                f"no final deposit of {', '.join(waiting)} on the order after {WAIT_TIMEOUT_S:.0f} s "
                f"(status {described})"
            )
        time.sleep(POLL_S)


def _on_order(order: dict[str, Any], txid: str) -> bool:
    return any(d["txid"].lower() == txid.lower() for d in order.get("deposits") or [])


def listed_deposit(api: MerchantApi, txid: str) -> dict[str, Any] | None:
    """The final deposit of `txid` as GET /v1/deposits lists it (newest page), if it does."""
    return next((d for d in api.deposits() if d["txid"].lower() == txid.lower()), None)


def deposit_status(record: dict[str, Any]) -> str:
    """What became of a listed deposit: credited, unmatched, ignored (below_minimum), ..."""
    status = str(record.get("status") or ("unmatched" if record["unmatched"] else "credited"))
    return status + (f" ({record['reason']})" if record.get("reason") else "")


def load_state(state_dir: Path, merchant_file: str = MERCHANT_FILE) -> tuple[MerchantApi, ChainInfo]:
    """The demo merchant's API (merchant.json, or the xpub demo merchant's file) and the chain."""
    try:
        merchant = json.loads((state_dir / merchant_file).read_text(encoding="utf-8"))
        chain = read_chain_info(state_dir)
    except FileNotFoundError as exc:
        raise Refused(f"{exc.filename} not found: start the local stack first (make dev)") from None
    return MerchantApi(merchant["baseUrl"], merchant["apiKey"], merchant["secretKey"]), chain


def local_order(api: MerchantApi, chain: ChainInfo, order_id: str) -> dict[str, Any]:
    """The demo merchant's order on the local chain; Refused if there is none."""
    if not ORDER_ID.match(order_id):
        raise Refused(f"no order {order_id!r}: an orderId is 1 to 64 letters, digits and _-.:")
    order = api.get_order(order_id)
    if order is None:
        raise Refused(f"no order {order_id!r} for the demo merchant of {api.base_url}")
    if order["network"] != NETWORK:
        raise Refused(
            f"order {order_id!r} is on {order['network']}, not on the local chain: only `{NETWORK}` orders "
            "are (the other networks are not scanned locally)"
        )
    if order["tokenContract"].lower() != chain.token_contract.lower():
        raise Refused(
            f"order {order_id!r} asks for token {order['tokenContract']}, not the local chain's "
            f"{chain.token_contract} (chain.json is from another start of the stack)"
        )
    return order


def split(units: int, parts: int) -> list[int]:
    """`units` in `parts` transfers as equal as can be, the larger ones first; they add up exactly."""
    base, extra = divmod(units, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S UTC")


def _be_late(payer: Payer, expires_s: int, late_by: int, *, warp: bool) -> None:
    """Get the chain's clock to expiresAt + late_by, so that the next block's time is after the
    order's expiry: by waiting for the chain, or by moving its clock (for good) with `warp`."""
    target = expires_s + late_by
    latest = int(payer.block()["timestamp"], 16)
    if latest >= target:
        print(
            f"the chain's head is already {latest - expires_s} s past the order's expiry ({_utc(expires_s)})",
            flush=True,
        )
        return
    if warp:
        # Every later block is stamped that much later too: anvil's clock cannot go back.
        payer.call("evm_increaseTime", [target - latest])
        print(
            f"moved the local chain's clock {target - latest} s forward (evm_increaseTime), past the order's "
            f"expiry ({_utc(expires_s)}) by {late_by} s; it stays ahead of real time until the stack restarts",
            flush=True,
        )
        return
    print(
        f"waiting {target - latest} s for the chain's block time to pass the order's expiry ({_utc(expires_s)}) "
        f"by {late_by} s (--warp moves the chain's clock instead)",
        flush=True,
    )
    while int(payer.block()["timestamp"], 16) < target:
        time.sleep(POLL_S)


def pay(
    state_dir: Path,
    order_id: str,
    *,
    amount: str | None = None,
    wait: bool = True,
    parts: int = 1,
    same_block: bool = False,
    late: bool = False,
    late_by: int = LATE_BY_S,
    warp: bool = False,
    merchant_file: str = MERCHANT_FILE,
) -> None:
    """Pay the order (of the merchant in `merchant_file`) from the local chain's payer; Refused or
    Failed with a one-line reason."""
    api, chain = load_state(state_dir, merchant_file)
    if amount is not None:
        amount_units(amount, chain.decimals, "--amount")  # refuse a bad amount before anything else
    order = local_order(api, chain, order_id)
    text = amount if amount is not None else str(order["amount"])
    units = amount_units(text, chain.decimals, "amount")
    if units < parts:
        raise Refused(
            f"{text} USDT cannot be split into {parts} transfers: each needs at least {format_units(1, chain.decimals)}"
        )
    payer = Payer(chain)
    if (balance := payer.balance()) < units:
        raise Failed(f"the payer {chain.payer} holds only {format_units(balance, chain.decimals)} test USDT")

    print(f"order {order_id}: {order['status']}, {order['amount']} USDT to {order['address']}", flush=True)
    if late:
        _be_late(payer, int(order["expiresAt"]) // 1000, late_by, warp=warp)
    sent_at = time.monotonic()
    amounts = split(units, parts)
    txids: list[str] = []
    if same_block:
        with payer.mining_paused():  # so that every part lands in the one block evm_mine makes
            for i, part in enumerate(amounts):
                txids.append(payer.transfer(order["address"], part))
                _print_sent(txids[-1], part, i, parts, chain)
            payer.call("evm_mine", [])
        for txid in txids:
            _print_mined(payer, txid, order if late else None)
    else:
        for i, part in enumerate(amounts):
            txids.append(payer.transfer(order["address"], part))
            _print_sent(txids[-1], part, i, parts, chain)
            _print_mined(payer, txids[-1], order if late else None)
    if OrderStatus(order["status"]) not in ACCEPTING:
        print(
            f"the order is {order['status']} and takes no more payments: this payment becomes an unmatched "
            "deposit (GET /v1/deposits?unmatched=true)",
            flush=True,
        )
    elif wait:
        _follow(api, order_id, txids, sent_at)
        if (settlement := read_settlement_info(state_dir)) is not None:
            _follow_funds(api, payer, settlement, order_id, sent_at)


def _print_sent(txid: str, units: int, index: int, parts: int, chain: ChainInfo) -> None:
    part = f", part {index + 1} of {parts}" if parts > 1 else ""
    print(f"txid {txid}  ({format_units(units, chain.decimals)} USDT from {chain.payer}{part})", flush=True)


def _print_mined(payer: Payer, txid: str, late_for: dict[str, Any] | None) -> None:
    block = payer.wait_mined(txid)
    if late_for is None:
        print(f"mined in block {block}", flush=True)
        return
    stamp = int(payer.block(block)["timestamp"], 16)
    after = stamp - int(late_for["expiresAt"]) // 1000
    print(f"mined in block {block}, block time {_utc(stamp)}: {after} s after the order's expiry", flush=True)


def _follow_funds(api: MerchantApi, payer: Payer, settlement: SettlementInfo, order_id: str, sent_at: float) -> None:
    """Contract mode: print where the order's credited money is until the settlement swept it,
    then the sweeps that did and the treasury's balance; Failed after SWEEP_TIMEOUT_S beyond the
    time the money can wait (the maximum age). An overpaid order's address waits the refund
    window: that is said, with how to refund the excess, and not waited for."""
    last = None
    deadline = time.monotonic() + settlement.max_age_seconds + SWEEP_TIMEOUT_S
    while True:
        order = api.get_order(order_id)
        if order is None:
            raise Failed(f"order {order_id!r} is gone (has the stack restarted?)")
        funds = order.get("funds")
        if funds is None:  # nothing credited (or not a contract-mode order): nothing to sweep
            return
        if funds != last:
            note = ""
            below = parse_amount(order["paidAmount"]) < parse_amount(settlement.min_amount)
            if funds == "on_deposit_address" and below:
                note = (
                    f" (below the {settlement.min_amount} USDT a sweep waits for: swept once "
                    f"{settlement.max_age_seconds} s old)"
                )
            excess = parse_amount(order["paidAmount"]) - parse_amount(order["amount"])
            if funds == "on_deposit_address" and excess > 0 and settlement.refund_window_seconds:
                print(
                    f"{time.monotonic() - sent_at:6.1f} s  funds {funds} (it holds {excess} USDT the order did "
                    f"not take: its address is swept once that is {settlement.refund_window_seconds} s old; "
                    f"refund it meanwhile with `python -m devstack refund {order_id}`)",
                    flush=True,
                )
                return
            print(f"{time.monotonic() - sent_at:6.1f} s  funds {funds}{note}", flush=True)
            last = funds
        if funds in ("swept", "refunded"):
            break
        if time.monotonic() > deadline:
            raise Failed(f"the order's money was not swept in time (funds {funds})")
        time.sleep(FUNDS_POLL_S)
    chain = payer.chain
    for swept in reversed([s for s in api.settlements() if order_id in s["orders"] and s["status"] == "completed"]):
        receipt = payer.receipt(swept["txHash"]) if swept.get("txHash") else None
        block = f" in block {int(receipt['blockNumber'], 16)}" if receipt else ""
        gas = format_units(int(swept["gasPaid"]) // 10**12, 6)
        print(
            f"settlement {swept['settlementId']} completed: {swept['amount']} USDT to the treasury\n"
            f"  tx {swept['txHash']}{block}, final after {settlement.confirmations} confirmations; "
            f"the relayer paid {gas} ETH of gas",
            flush=True,
        )
    held = format_units(payer.balance(settlement.treasury), chain.decimals)
    print(f"treasury {settlement.treasury} holds {held} test USDT", flush=True)
