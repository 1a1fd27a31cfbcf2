"""Hard cases on the local chain of the running stack, for testing a webhook handler against them:

    python -m devstack reorg <orderId|txid> [--depth N] [--remine [--offset K] [--new-txid]] [--no-wait]
    python -m devstack dust <orderId|address> [--amount X | --zero] [--spoof [--victim ADDRESS]] [--no-wait]

`reorg` replaces the last N blocks with anvil_reorg (the blocks holding the order's transfers, or
the txid, must be among them). The replacement blocks hold nothing, unless `--remine` puts the
transfers back: the same signed transactions (same txids, new blocks), or with `--new-txid` new
transactions from the same sender, to the same recipient, for the same amount. Any other
transaction of the replaced blocks is dropped too and listed.

`dust` sends a tiny transfer (one base unit by default), a zero-value one (`--zero`), or a
zero-value transferFrom(victim, address, 0) from another account (`--spoof`): needing no
allowance, it makes a Transfer log that seems to come from the victim, who signed nothing.

Like `pay`, both then follow the order and say what the gateway made of it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.pay import (
    DEPOSITS_EVERY,
    POLL_S,
    WAIT_TIMEOUT_S,
    Failed,
    MerchantApi,
    Payer,
    Refused,
    TokenTransfer,
    amount_units,
    deposit_status,
    describe,
    listed_deposit,
    load_state,
    local_order,
    token_transfers,
)
from usdt_gateway.money import format_units

TXID = re.compile(r"^0x[0-9a-fA-F]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
# A follow ends when the gateway shows the expected outcome, or once this many blocks have come
# after the chain event: the transfer final (2 confirmations locally) and scanned by then.
SETTLE_BLOCKS = 10
DUST_UNITS = 1  # the token's smallest unit: 0.000001 test USDT


@dataclass(frozen=True)
class Mined:
    """A mined transaction that a reorg takes away, with what is needed to put it back."""

    txid: str
    block: int
    index: int  # in its block
    sender: str
    nonce: int
    to: str
    input: str
    value: str
    gas: int
    transfers: list[TokenTransfer]


def _mined(payer: Payer, txid: str) -> Mined | None:
    """The transaction as mined in the current chain; None when it is not in it."""
    receipt = payer.receipt(txid)
    tx = payer.call("eth_getTransactionByHash", [txid])
    if receipt is None or tx is None:
        return None
    return Mined(
        txid=str(tx["hash"]).lower(),
        block=int(receipt["blockNumber"], 16),
        index=int(receipt["transactionIndex"], 16),
        sender=str(tx["from"]).lower(),
        nonce=int(tx["nonce"], 16),
        to=str(tx["to"]),
        input=str(tx["input"]),
        value=str(tx["value"]),
        gas=int(tx["gas"], 16),
        transfers=token_transfers(receipt, payer.chain.token_contract),
    )


def _what(mined: Mined, decimals: int) -> str:
    if not mined.transfers:
        return "no test USDT transfer"
    return "; ".join(
        f"{format_units(t.units, decimals)} USDT from {t.sender} to {t.recipient}" for t in mined.transfers
    )


def _counted(order: dict[str, Any], txid: str) -> dict[str, Any] | None:
    """The order's deposit of `txid` that still counts (not reversed by a deep reorg), if any."""
    for deposit in order.get("deposits") or []:
        if deposit["txid"].lower() == txid.lower() and not deposit.get("reversed"):
            return dict(deposit)
    return None


def _check_nonces(payer: Payer, mined: list[Mined], common: int) -> None:
    """The same signed transactions can come back only if each sender's nonces follow on from
    its nonce at the common block: anvil silently leaves out one whose nonce does not fit."""
    expected: dict[str, int] = {}
    for tx in sorted(mined, key=lambda t: (t.sender, t.nonce)):
        if tx.sender not in expected:
            expected[tx.sender] = int(payer.call("eth_getTransactionCount", [tx.sender, hex(common)]), 16)
        if tx.nonce != expected[tx.sender]:
            raise Refused(
                f"{tx.txid} cannot come back as the same signed transaction: its sender {tx.sender} sent "
                f"another one before it within the replaced blocks (nonce {expected[tx.sender]}, it has "
                f"{tx.nonce}); --new-txid sends it again as a new transaction"
            )
        expected[tx.sender] += 1


def _minted_in(payer: Payer, head: int) -> int:
    """The block in which the stack minted its test USDT: the first with a total supply."""
    low, high = 0, head  # no supply at `low` (the genesis block), some at `high`
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if payer.total_supply(middle) else (middle, high)
    return high


def _watch(
    api: MerchantApi, payer: Payer, order_id: str, done: Callable[[dict[str, Any]], bool], since_block: int
) -> dict[str, Any]:
    """Print each status change of the order until done(order), or SETTLE_BLOCKS blocks after
    `since_block` (WAIT_TIMEOUT_S of wall time if blocks stop coming); the last order read."""
    started = time.monotonic()
    last = None
    while True:
        order = api.get_order(order_id)
        if order is None:
            raise Failed(f"order {order_id!r} is gone (has the stack restarted?)")
        described = describe(order)
        if described != last:
            print(f"{time.monotonic() - started:6.1f} s  {described}", flush=True)
            last = described
        settled = payer.head() >= since_block + SETTLE_BLOCKS
        if done(order) or settled or time.monotonic() - started > WAIT_TIMEOUT_S:
            return order
        time.sleep(POLL_S)


def reorg(
    state_dir: Path,
    target: str,
    *,
    depth: int | None = None,
    remine: bool = False,
    offset: int | None = None,
    new_txid: bool = False,
    wait: bool = True,
) -> None:
    """Reorganise the local chain so that `target`'s transfers (an orderId's deposits, or a txid)
    are no longer where they were; Refused or Failed with a one-line reason."""
    api, chain = load_state(state_dir)
    payer = Payer(chain)
    order_id: str | None = None
    if TXID.match(target):
        txids = [target.lower()]
    else:
        order = local_order(api, chain, target)
        order_id = target
        txids = list(dict.fromkeys(d["txid"].lower() for d in order.get("deposits") or [] if not d.get("reversed")))
        if not txids:
            raise Refused(
                f"order {target!r} has no deposit yet: pay it and wait until it is seen (`confirming`), "
                "or give the txid"
            )
        print(f"order {target}: {describe(order)}, {order['amount']} USDT to {order['address']}", flush=True)
    mined: list[Mined] = []
    for txid in txids:
        found = _mined(payer, txid)
        if found is not None:
            mined.append(found)
        elif order_id is None:
            raise Refused(f"transaction {txid} is not in the local chain")
        else:
            print(f"{txid} is no longer in the chain (an earlier reorg removed it)", flush=True)
    if not mined:
        raise Refused(f"none of order {target!r}'s transfers is in the chain any more")
    mined.sort(key=lambda t: (t.block, t.index))  # chain order: each sender's nonces in sequence

    with payer.mining_paused():  # the head read here is the head anvil_reorg counts the depth from
        head = payer.head()
        needed = head - mined[0].block + 1
        depth = needed if depth is None else depth
        if depth < needed:
            raise Refused(
                f"{mined[0].txid} is in block {mined[0].block}, {needed} blocks from the head ({head}): "
                f"--depth {needed} at least (or no --depth: just deep enough)"
            )
        common = head - depth
        # Replacing the blocks that deployed and minted the test USDT would end the stack's token.
        if depth > head or payer.total_supply(common) == 0:
            minted = _minted_in(payer, head)
            raise Refused(
                f"--depth {depth} would replace block {minted}, where the stack minted its test USDT: "
                f"--depth {head - minted} at most"
            )
        offset = depth - 1 if offset is None else offset
        if not 0 <= offset < depth:
            raise Refused(
                f"--offset {offset}: the replacement blocks are offsets 0 to {depth - 1} "
                f"(blocks {common + 1} to {head})"
            )
        gone = {t.txid for t in mined}
        others = [
            (n, str(h).lower())
            for n in range(common + 1, head + 1)
            for h in payer.block(n)["transactions"]
            if str(h).lower() not in gone
        ]
        pairs: list[list[Any]] = []
        if remine and new_txid:
            # One more gas than before: a new transaction (new txid) even if the fees come out the same.
            pairs = [
                [{"from": t.sender, "to": t.to, "input": t.input, "value": t.value, "gas": hex(t.gas + 1)}, offset]
                for t in mined
            ]
        elif remine:
            _check_nonces(payer, mined, common)
            pairs = [[payer.call("eth_getRawTransactionByHash", [t.txid]), offset] for t in mined]
        old_hash = payer.block(head)["hash"]
        payer.call("anvil_reorg", [depth, pairs])
        new_hash = payer.block(head)["hash"]
        remined_block = payer.block(common + 1 + offset, full=True) if remine else None

    print(
        f"reorg of depth {depth}: blocks {common + 1} to {head} replaced (block {head} was {old_hash}, now {new_hash})",
        flush=True,
    )
    expected: dict[str, int] = {}  # txid -> block, of the transfers put back
    removed: list[str] = []
    for tx in mined:
        print(f"removed {tx.txid} ({_what(tx, chain.decimals)}), was in block {tx.block}", flush=True)
    if remined_block is not None:
        block_number = int(remined_block["number"], 16)
        candidates = [dict(t) for t in remined_block["transactions"]]
        for tx in mined:
            txid = _put_back(payer, tx, candidates, new_txid=new_txid)
            expected[txid] = block_number
            if new_txid:
                removed.append(tx.txid)
                print(
                    f"re-mined {txid} in block {block_number}: a new transaction from {tx.sender}, the same "
                    f"transfer, new txid ({tx.txid} is gone)",
                    flush=True,
                )
            else:
                print(
                    f"re-mined {txid} in block {block_number}: the same signed transaction, same txid, new block",
                    flush=True,
                )
    else:
        removed = [t.txid for t in mined]
    for txid in removed:
        if payer.receipt(txid) is not None:
            raise Failed(f"{txid} is still in the chain after the reorg")
    for number, txid in others:
        print(f"also removed {txid} (block {number}): another transaction in the replaced blocks", flush=True)

    if order_id is None:
        if wait:
            print("pass the orderId instead of the txid to follow the order", flush=True)
        return
    if not wait:
        return

    def outcome_shown(order: dict[str, Any]) -> bool:
        back = all(
            (d := _counted(order, t)) is not None and d["final"] and d["blockNumber"] == b for t, b in expected.items()
        )
        return back and all(_counted(order, t) is None for t in removed)

    order = _watch(api, payer, order_id, outcome_shown, since_block=head)
    for txid in removed:
        deposit = _counted(order, txid)
        if deposit is None:
            print(f"the order no longer counts {txid}", flush=True)
        else:
            print(
                f"the order still counts {txid} (block {deposit['blockNumber']}, "
                f"{'final' if deposit['final'] else 'not final'}) {SETTLE_BLOCKS} blocks after the reorg",
                flush=True,
            )
    for txid, block in expected.items():
        deposit = _counted(order, txid)
        if deposit is None:
            print(f"the order does not list {txid} (re-mined in block {block})", flush=True)
        else:
            print(
                f"the order lists {txid} from block {deposit['blockNumber']}, "
                f"{'final' if deposit['final'] else 'not final yet'}",
                flush=True,
            )


def _put_back(payer: Payer, tx: Mined, candidates: list[dict[str, Any]], *, new_txid: bool) -> str:
    """The txid `tx` came back as in the replacement block (its transactions, consumed in order);
    Refused if it is not there or reverted."""
    for i, candidate in enumerate(candidates):
        same = (
            candidate["hash"].lower() == tx.txid
            if not new_txid
            else (candidate["from"].lower(), candidate["input"]) == (tx.sender, tx.input)
        )
        if same:
            del candidates[i]
            txid = str(candidate["hash"]).lower()
            receipt = payer.receipt(txid)
            if receipt is None or int(receipt["status"], 16) != 1:
                raise Failed(f"{tx.txid} was put back as {txid}, which reverted")
            return txid
    raise Failed(f"anvil did not put {tx.txid} back in the replacement block")


def dust(
    state_dir: Path,
    target: str,
    *,
    amount: str | None = None,
    zero: bool = False,
    spoof: bool = False,
    victim: str | None = None,
    wait: bool = True,
) -> None:
    """Send a dust or zero-value transfer to an order's address (or any address); Refused or
    Failed with a one-line reason."""
    api, chain = load_state(state_dir)
    if spoof and amount is not None:
        raise Refused("--spoof sends transferFrom without any allowance: only zero succeeds (leave out --amount)")
    if victim is not None and not ADDRESS.match(victim):
        raise Refused(f"--victim {victim!r} is not an address (0x and 40 hex digits)")
    units = 0 if zero or spoof else DUST_UNITS if amount is None else amount_units(amount, chain.decimals, "--amount")
    payer = Payer(chain)
    order: dict[str, Any] | None = None
    if ADDRESS.match(target):
        address = target
    else:
        order = local_order(api, chain, target)
        address = str(order["address"])
        print(f"order {target}: {describe(order)}, {order['amount']} USDT to {address}", flush=True)
    amount_text = format_units(units, chain.decimals)
    if spoof:
        owner = (victim or chain.payer).lower()
        attacker = next(a for a in payer.call("eth_accounts", []) if a.lower() not in (owner, chain.payer.lower()))
        txid = payer.transfer_from(attacker, owner, address, units)
        print(
            f"txid {txid}  (transferFrom({owner}, {address}, 0) sent by {attacker}: {owner} signed nothing)", flush=True
        )
    else:
        if payer.balance() < units:
            raise Refused(f"the payer {chain.payer} holds less than {amount_text} test USDT")
        txid = payer.transfer(address, units)
        print(f"txid {txid}  ({amount_text} USDT from {chain.payer})", flush=True)
    block = payer.wait_mined(txid)
    receipt = payer.receipt(txid) or {}
    logs = ", ".join(
        f"Transfer(from {t.sender}, to {t.recipient}, value {t.units} = {format_units(t.units, chain.decimals)} USDT)"
        for t in token_transfers(receipt, chain.token_contract)
    )
    print(f"mined in block {block}: {logs}", flush=True)
    if order is None or not wait:
        return
    listed: dict[str, Any] | None = None
    reads = 0

    def recorded(order: dict[str, Any]) -> bool:
        nonlocal reads, listed
        if (deposit := _counted(order, txid)) is not None and deposit["final"]:
            return True
        reads += 1
        if reads % DEPOSITS_EVERY == 0:  # less often than the order: the key's rate limit
            listed = listed_deposit(api, txid)
        return listed is not None

    order = _watch(api, payer, target, recorded, since_block=block)
    later = payer.head() - block
    deposit = _counted(order, txid)
    if deposit is not None:
        print(
            f"the order counts it: {deposit['amount']} USDT, {'final' if deposit['final'] else 'not final yet'}",
            flush=True,
        )
    else:
        print(f"the order does not count it ({_blocks(later)} later)", flush=True)
    if listed is None:
        listed = listed_deposit(api, txid)
    if listed is not None:
        print(f"GET /v1/deposits lists it: {deposit_status(listed)}", flush=True)
    else:
        print(f"GET /v1/deposits does not list it: nothing was recorded ({_blocks(later)} later)", flush=True)


def _blocks(count: int) -> str:
    return f"{count} block" if count == 1 else f"{count} blocks"
