"""The sandbox's hard cases against a running local stack, run as a developer runs them after
`make dev`: `python -m devstack reorg`, `dust`, and `pay --parts` / `--late`. Each test checks
what the command did to the chain (receipts, blocks, Transfer logs); how the gateway reacts is
tested with its scanner."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from typing import Any

import pytest

from devstack.stack import Stack
from devstack.template import REPO_ROOT
from tests.integration.test_devstack import create_order
from tests.integration.test_devstack_chain import new_order, read_order

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
DEADLINE_S = 30  # a failsafe for waits on the chain, never reached when things work
MIN_HEAD = 12


def devstack(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack ...` against the running stack, as a developer runs it."""
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def txids(stdout: str) -> list[str]:
    return re.findall(r"^txid (0x[0-9a-f]{64})", stdout, flags=re.MULTILINE)


def rpc(stack: Stack, method: str, *params: Any) -> Any:
    return stack.chain.anvil.rpc(method, list(params))


def receipt(stack: Stack, txid: str) -> dict[str, Any] | None:
    found = rpc(stack, "eth_getTransactionReceipt", txid)
    return dict(found) if found is not None else None


def transfers(stack: Stack, txid: str) -> list[tuple[str, str, int]]:
    """(from, to, value) of the test USDT's Transfer logs of a mined transaction."""
    mined = receipt(stack, txid)
    assert mined is not None, f"{txid} is not in the chain"
    return [
        ("0x" + log["topics"][1][-40:], "0x" + log["topics"][2][-40:], int(log["data"], 16))
        for log in mined["logs"]
        if log["address"].lower() == stack.chain.info.token_contract.lower() and log["topics"][0] == TRANSFER_TOPIC
    ]


def block_of(stack: Stack, txid: str) -> int:
    mined = receipt(stack, txid)
    assert mined is not None and mined["status"] == "0x1", mined
    return int(mined["blockNumber"], 16)


def block_hash(stack: Stack, number: int) -> str:
    return str(rpc(stack, "eth_getBlockByNumber", hex(number), False)["hash"])


def head(stack: Stack) -> int:
    return int(rpc(stack, "eth_blockNumber"), 16)


def wait_for_block(stack: Stack, number: int) -> None:
    """Until the chain (a block a second) has `number` blocks."""
    deadline = time.monotonic() + DEADLINE_S + number
    while head(stack) < number and time.monotonic() < deadline:
        time.sleep(0.2)
    assert head(stack) >= number


def paid(stack: Stack, amount: str = "4.00") -> tuple[dict[str, Any], str]:
    """A new order and the txid of `pay --no-wait` paying it (mined, not followed). The chain
    first grows to MIN_HEAD blocks as it does by itself: a reorg then replaces blocks the scanner
    counted final, with older ones it recorded still below them, as on a chain that has run a while."""
    wait_for_block(stack, MIN_HEAD)
    order = new_order(stack, amount=amount)
    (txid,) = txids(ok(devstack(stack, "pay", order["orderId"], "--no-wait")))
    return order, txid


def short_order(stack: Stack) -> dict[str, Any]:
    """An order that expires a minute from now by the chain's clock (ahead of the wall clock once
    a test has moved it)."""
    ahead = max(0, head_time(stack) - int(time.time()))
    payload = {
        "network": "local",
        "currency": "USDT",
        "amount": "2.00",
        "orderId": f"late-{secrets.token_hex(6)}",
        "expiresIn": 60 + ahead,
    }
    response = create_order(stack.base_url, stack.merchant["apiKey"], stack.merchant["secretKey"], payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def head_time(stack: Stack) -> int:
    return int(rpc(stack, "eth_getBlockByNumber", "latest", False)["timestamp"], 16)


def lower(address: str) -> str:
    return address.lower()


# --- reorg ----------------------------------------------------------------------------------


def test_reorg_removes_the_transfer_and_replaces_the_blocks(stack: Stack) -> None:
    # Given a paid order, its transfer mined in a block of the local chain
    order, txid = paid(stack)
    block = block_of(stack, txid)
    old_hash = block_hash(stack, block)

    # When `reorg <txid> --depth 5` replaces the last 5 blocks (the transfer's among them: a block
    # or two came after it at most)
    out = ok(devstack(stack, "reorg", txid, "--depth", "5", "--no-wait"))

    # Then the transaction is gone, the block at its height is another one, the order's address
    # holds nothing, and the command said so
    assert receipt(stack, txid) is None
    assert block_hash(stack, block) != old_hash
    balance = rpc(
        stack,
        "eth_call",
        {"to": stack.chain.info.token_contract, "data": "0x70a08231" + lower(order["address"])[2:].rjust(64, "0")},
        "latest",
    )
    assert int(balance, 16) == 0
    assert re.search(r"^reorg of depth 5: blocks \d+ to \d+ replaced", out, flags=re.MULTILINE), out
    assert (
        f"removed {txid} (4.00 USDT from {lower(stack.chain.info.payer)} to {lower(order['address'])}), "
        f"was in block {block}" in out
    )


def test_remine_puts_the_same_signed_transaction_in_another_block(stack: Stack) -> None:
    # Given a paid order's transfer
    order, txid = paid(stack, amount="3.50")
    block = block_of(stack, txid)
    old_hash = block_hash(stack, block)

    # When `reorg --remine --offset 0` puts it back in the first of 5 replacement blocks
    out = ok(devstack(stack, "reorg", txid, "--depth", "5", "--remine", "--offset", "0", "--no-wait"))

    # Then the same txid is mined in a new block, the first replaced one, with the same transfer
    (remined,) = re.findall(rf"^re-mined {txid} in block (\d+): the same signed transaction", out, flags=re.MULTILINE)
    first_replaced = int(re.findall(r"^reorg of depth 5: blocks (\d+) to", out, flags=re.MULTILINE)[0])
    assert block_of(stack, txid) == int(remined) == first_replaced
    assert block_hash(stack, block) != old_hash
    assert transfers(stack, txid) == [(lower(stack.chain.info.payer), lower(order["address"]), 3_500_000)]


def test_remine_with_a_new_txid_sends_the_same_transfer_again(stack: Stack) -> None:
    # Given a paid order's transfer
    order, txid = paid(stack, amount="2.25")

    # When `reorg --remine --new-txid` (just deep enough) puts the transfer back as a new transaction
    out = ok(devstack(stack, "reorg", txid, "--remine", "--new-txid", "--no-wait"))

    # Then the original transaction is gone, and a new one from the same sender makes the same
    # transfer to the same address in the new head block
    (new_txid, new_block) = re.findall(
        r"^re-mined (0x[0-9a-f]{64}) in block (\d+): a new transaction", out, flags=re.MULTILINE
    )[0]
    assert new_txid != txid and receipt(stack, txid) is None
    assert block_of(stack, new_txid) == int(new_block)
    sender = rpc(stack, "eth_getTransactionByHash", new_txid)["from"]
    assert lower(sender) == lower(stack.chain.info.payer)
    assert transfers(stack, new_txid) == [(lower(stack.chain.info.payer), lower(order["address"]), 2_250_000)]


def test_reorg_of_an_order_removes_all_its_transfers_and_follows_it(stack: Stack) -> None:
    # Given an order paid in two parts, both seen by the gateway (pay follows until final)
    order = new_order(stack, amount="6.00")
    paid_out = ok(devstack(stack, "pay", order["orderId"], "--parts", "2"))
    parts = txids(paid_out)
    assert len(parts) == 2 and {d["txid"] for d in read_order(stack, order["orderId"])["deposits"]} == set(parts)

    # When `reorg <orderId>` reorganises the chain under both, and follows the order
    out = ok(devstack(stack, "reorg", order["orderId"]))

    # Then neither transfer is in the chain any more, and the command reported on each one
    assert [receipt(stack, txid) for txid in parts] == [None, None]
    for txid in parts:
        assert f"removed {txid} " in out
        assert re.search(rf"^the order (no longer counts|still counts) {txid}", out, flags=re.MULTILINE), out


def test_reorg_refuses_a_depth_that_does_not_reach_the_transfer_or_that_ends_the_token(stack: Stack) -> None:
    # Given a transfer with at least two blocks on top of it
    _, txid = paid(stack)
    block = block_of(stack, txid)
    wait_for_block(stack, block + 2)

    # When reorg is asked for one block only, or for every block since the stack set up its token
    short = devstack(stack, "reorg", txid, "--depth", "1")
    deep = devstack(stack, "reorg", txid, "--depth", str(head(stack)))

    # Then both are refused (exit 2) with the reason, and the transfer stays where it was
    assert short.returncode == 2 and "--depth" in short.stderr and "at least" in short.stderr, short.stderr
    assert deep.returncode == 2 and "where the stack minted its test USDT: --depth" in deep.stderr, deep.stderr
    assert block_of(stack, txid) == block


def test_remine_refuses_a_transaction_whose_sender_sent_another_before_it_in_the_blocks(stack: Stack) -> None:
    # Given two transfers from the payer, one block after the other
    wait_for_block(stack, MIN_HEAD)
    order = new_order(stack, amount="2.00")
    first, second = txids(ok(devstack(stack, "pay", order["orderId"], "--parts", "2", "--no-wait")))

    # When the second alone is to come back as the same signed transaction, the first replaced too
    depth = head(stack) - block_of(stack, first) + 1
    result = devstack(stack, "reorg", second, "--depth", str(depth + 2), "--remine")

    # Then it is refused (its nonce would not follow on), with the way out, and nothing moved
    assert result.returncode == 2 and "--new-txid" in result.stderr, result.stderr
    assert receipt(stack, first) is not None and receipt(stack, second) is not None


# --- pay --parts ----------------------------------------------------------------------------


def test_parts_pay_the_amount_in_transfers_that_add_up_to_it(stack: Stack) -> None:
    # Given an order of 10.00
    order = new_order(stack, amount="10.00")

    # When `pay --parts 3` pays it
    out = ok(devstack(stack, "pay", order["orderId"], "--parts", "3"))

    # Then three transfers to its address, one per block, add up to exactly 10.00, and the order
    # is confirmed with all three
    sent = txids(out)
    values = [transfers(stack, txid) for txid in sent]
    address, payer = lower(order["address"]), lower(stack.chain.info.payer)
    assert values == [[(payer, address, 3_333_334)], [(payer, address, 3_333_333)], [(payer, address, 3_333_333)]]
    assert len({block_of(stack, txid) for txid in sent}) == 3
    done = read_order(stack, order["orderId"])
    assert (done["status"], done["paidAmount"]) == ("confirmed", "10.00")
    assert sorted(d["txid"] for d in done["deposits"]) == sorted(sent)


def test_parts_in_the_same_block(stack: Stack) -> None:
    # Given an order of 5.00
    order = new_order(stack, amount="5.00")
    # When `pay --parts 2 --same-block` pays it
    out = ok(devstack(stack, "pay", order["orderId"], "--parts", "2", "--same-block", "--no-wait"))
    # Then both transfers are mined in one block and add up to 5.00
    sent = txids(out)
    assert len(sent) == 2 and len({block_of(stack, txid) for txid in sent}) == 1
    assert sum(value for txid in sent for _, _, value in transfers(stack, txid)) == 5_000_000


# --- dust -----------------------------------------------------------------------------------


def test_zero_value_transfer_to_an_order(stack: Stack) -> None:
    # Given an order
    order = new_order(stack)
    # When `dust --zero` sends it nothing
    (txid,) = txids(ok(devstack(stack, "dust", order["orderId"], "--zero", "--no-wait")))
    # Then a Transfer log of value 0 from the payer to the order's address is in the chain
    assert transfers(stack, txid) == [(lower(stack.chain.info.payer), lower(order["address"]), 0)]


def test_spoofed_zero_transfer_seems_to_come_from_the_victim(stack: Stack) -> None:
    # Given an order, and a victim address that never signs anything
    order = new_order(stack)
    victim = "0x" + secrets.token_hex(20)

    # When `dust --spoof --victim` sends transferFrom(victim, order address, 0) from another account
    (txid,) = txids(ok(devstack(stack, "dust", order["orderId"], "--spoof", "--victim", victim, "--no-wait")))

    # Then the Transfer log names the victim as the sender, while the transaction came from
    # neither the victim nor the payer
    assert transfers(stack, txid) == [(victim, lower(order["address"]), 0)]
    sender = lower(rpc(stack, "eth_getTransactionByHash", txid)["from"])
    assert sender not in (victim, lower(stack.chain.info.payer))


def test_dust_to_an_address_sends_the_smallest_unit(stack: Stack) -> None:
    # Given any address
    address = "0x" + secrets.token_hex(20)
    # When `dust <address>` runs
    (txid,) = txids(ok(devstack(stack, "dust", address)))
    # Then one base unit (0.000001 test USDT) went there
    assert transfers(stack, txid) == [(lower(stack.chain.info.payer), address, 1)]


def test_dust_follows_the_order_and_reports_what_the_gateway_recorded(stack: Stack) -> None:
    # Given an order
    order = new_order(stack)
    # When `dust` sends it 0.000001 and follows it
    out = ok(devstack(stack, "dust", order["orderId"]))
    # Then it says whether the order counts it and whether GET /v1/deposits lists it
    assert re.search(r"^the order (counts it|does not count it)", out, flags=re.MULTILINE), out
    assert re.search(r"^GET /v1/deposits (lists it|does not list it)", out, flags=re.MULTILINE), out


# --- pay --late -----------------------------------------------------------------------------
# Both move the chain's clock ahead by about a minute (evm_increaseTime): every other test's order
# expires in 30 minutes, so none of them notices.


def test_late_with_warp_pays_after_the_expiry_by_block_time(stack: Stack) -> None:
    # Given an order that expires in a minute
    order = short_order(stack)

    # When `pay --late --warp` moves the chain's clock past its expiry and pays it
    out = ok(devstack(stack, "pay", order["orderId"], "--late", "--warp"))

    # Then the payment's block time is after expiresAt, and the order is confirmed as paid late
    (txid,) = txids(out)
    stamp = int(rpc(stack, "eth_getBlockByNumber", hex(block_of(stack, txid)), False)["timestamp"], 16)
    assert stamp * 1000 > order["expiresAt"]
    assert "evm_increaseTime" in out
    done = read_order(stack, order["orderId"])
    assert (done["status"], done["exception"]) == ("confirmed", "paid_late")


def test_late_without_warp_waits_for_the_chain_to_pass_the_expiry(stack: Stack) -> None:
    # Given an order whose expiry the chain reaches in about 3 s (its clock moved forward)
    order = short_order(stack)
    rpc(stack, "evm_increaseTime", order["expiresAt"] // 1000 - head_time(stack) - 3)

    # When `pay --late --late-by 1` pays it
    out = ok(devstack(stack, "pay", order["orderId"], "--late", "--late-by", "1", "--no-wait"))

    # Then it waited for the chain, and the payment's block time is after expiresAt
    assert re.search(r"^waiting \d+ s for the chain's block time to pass the order's expiry", out, flags=re.MULTILINE)
    (txid,) = txids(out)
    stamp = int(rpc(stack, "eth_getBlockByNumber", hex(block_of(stack, txid)), False)["timestamp"], 16)
    assert stamp * 1000 > order["expiresAt"]


# --- what the command line refuses ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pay", "o-1", "--same-block"], "--same-block needs --parts 2 or more"),
        (["pay", "o-1", "--warp"], "--late-by and --warp go with --late"),
        (["pay", "o-1", "--parts", "0"], "must be a whole number of at least 1"),
        (["reorg", "o-1", "--offset", "1"], "--offset and --new-txid go with --remine"),
        (["dust", "o-1", "--zero", "--amount", "1"], "not allowed with argument"),
        (["dust", "o-1", "--victim", "0x" + "11" * 20], "--victim goes with --spoof"),
    ],
    ids=["same-block-alone", "warp-alone", "zero-parts", "offset-alone", "zero-and-amount", "victim-alone"],
)
def test_option_mistakes_are_refused_before_anything_is_sent(stack: Stack, args: list[str], message: str) -> None:
    result = devstack(stack, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "txid" not in result.stdout
