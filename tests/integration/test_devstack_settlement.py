"""Contract-mode settlement on the local stack, as a developer sees it after `make dev`: the demo
merchant's `local` network switched to a factory deployed on anvil, the relayer's key in the
stack's KMS (moto) funded on the chain, and the template's SettlementFunction run on its
compressed schedule, so that `python -m devstack pay` ends with the order's money in the treasury
and settlement.completed delivered to the stack's receiver. `DEVSTACK_LOCAL_MODE=xpub` keeps
`local` on the dev wallet's addresses."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from eth_account import Account
from standardwebhooks.webhooks import Webhook
from usdt_gateway_client import Client

from devstack.receiver import Delivery
from devstack.stack import Stack, start_stack
from devstack.template import REPO_ROOT
from tests.integration.test_devstack_chain import new_order, read_order, run_pay, statuses
from tests.integration.test_devstack_webhooks import call
from usdt_gateway import contract_mode, create2, store
from usdt_gateway.address_codec import to_checksum_address
from usdt_gateway.chain.jsonrpc import JsonRpc
from usdt_gateway.hdwallet import derive_address
from usdt_gateway.kms_signer import KmsSigner
from usdt_gateway.merchant_records import ContractConfig
from usdt_gateway.money import format_units

# A guard against a hung test: a sweep follows a payment within seconds, longer on a loaded machine.
HANG_GUARD_S = 120
FUNDS_LINE = re.compile(r"^\s*\d+\.\d s  funds (\w+)", flags=re.MULTILINE)
BALANCE_OF = "0x70a08231"


def token_balance(stack: Stack, holder: str) -> int:
    data = BALANCE_OF + holder.lower().removeprefix("0x").rjust(64, "0")
    return int(stack.chain.anvil.rpc("eth_call", [{"to": stack.chain.info.token_contract, "data": data}, "latest"]), 16)


def sweep_of(deliveries: list[Delivery], order_id: str) -> Delivery | None:
    swept = [d for d in deliveries if (d.event or {}).get("type") == "settlement.completed"]
    return next((d for d in swept if order_id in d.data["orders"]), None)


# --- a stack of its own (before the module's stack starts: one stack per process) ------------


def test_xpub_mode_keeps_local_on_the_dev_wallet_and_sweeps_nothing(tmp_path: Path) -> None:
    # Given a state dir left by a stack in contract mode, and a stack started in xpub mode on it
    (tmp_path / "settlement.json").write_text("{}", encoding="utf-8")
    (tmp_path / "owner-key.json").write_text("{}", encoding="utf-8")
    with start_stack(state_dir=tmp_path, local_mode="xpub") as running:
        # When an order on `local` is created and paid
        order = new_order(running, amount="8.00")
        result = run_pay(running, order["orderId"])
        invocations = running.settlement.invocations
        deadline = time.monotonic() + HANG_GUARD_S
        while running.settlement.invocations < invocations + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Then its address is the dev wallet's, no factory is configured, and it is confirmed
        # with nothing swept: no funds to follow, the settlement runs finding nothing to do
        wallet = json.loads((tmp_path / "dev-wallet.json").read_text(encoding="utf-8"))
        assert order["address"] in {derive_address(wallet["evmXpub"], "evm", i) for i in range(5)}
        assert store.get(*store.contract_config_key(running.merchant["merchantId"], "local")) is None
        assert result.returncode == 0, result.stdout + result.stderr
        assert statuses(result.stdout)[-1][1] == "confirmed" and "funds" not in result.stdout
        assert read_order(running, order["orderId"])["funds"] is None
        assert running.settlement_info is None
        assert running.settlement.invocations >= invocations + 2 and running.settlement.failures == 0
        # And the previous start's contract-mode files are gone: they described a chain that is gone
        assert not (tmp_path / "settlement.json").exists() and not (tmp_path / "owner-key.json").exists()


# --- one stack for the rest of the module (the `stack` fixture of conftest.py) ---------------


def test_local_is_switched_to_a_factory_the_chain_holds_by_set_contracts_code(stack: Stack) -> None:
    # Given the stack in contract mode (the default), and what it wrote for the sandbox
    info = stack.settlement_info
    assert info is not None and stack.local_mode == "contract"
    saved = json.loads((stack.state_dir / "settlement.json").read_text(encoding="utf-8"))
    owner_key = json.loads((stack.state_dir / "owner-key.json").read_text(encoding="utf-8"))
    # When the merchant's stored configuration and the chain are read
    item = store.get(*store.contract_config_key(stack.merchant["merchantId"], "local"))
    assert item is not None
    cfg = ContractConfig.from_item(item)
    # Then `local` is in contract mode under the factory the file names, which set-contract's own
    # checks accept against the chain: released code, the treasury, owner and implementation given
    assert (cfg.factory, cfg.implementation, cfg.treasury, cfg.owner) == (
        saved["factory"],
        saved["implementation"],
        saved["treasury"],
        saved["owner"],
    )
    contract_mode.verify(JsonRpc(stack.chain.info.rpc_url, timeout=10), cfg)
    # And the owner's key, kept for the sandbox, is the factory's owner
    assert Account.from_key(owner_key["privateKey"]).address == info.owner == owner_key["address"]
    # And an order on `local` gets the factory's CREATE2 address for its salt
    order = new_order(stack, amount="1.00")
    salt = create2.order_salt(stack.merchant["merchantId"], order["orderId"])
    assert order["address"] == to_checksum_address(create2.deposit_address(cfg.factory, cfg.implementation, salt))


def test_the_relayer_key_is_in_the_local_kms_signs_digests_and_is_funded(stack: Stack) -> None:
    # Given the relayer's key the stack created in its KMS
    info = stack.settlement_info
    assert info is not None
    key = boto3.client("kms").describe_key(KeyId=stack.relayer_key_id)["KeyMetadata"]
    signer = KmsSigner(stack.relayer_key_id)
    # When it signs a digest through the stack's KMS (MessageType=DIGEST, devstack/moto_kms.py)
    digest = secrets.token_bytes(32)
    signature = signer.sign_digest(digest)
    # Then the signature recovers, with eth-account, to the address of the key's public key: the
    # relayer's, which the chain funded with native coin for the sweeps' gas
    recovered = Account._recover_hash(digest, vrs=(signature.recovery_id + 27, signature.r, signature.s))
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_SECG_P256K1", "SIGN_VERIFY")
    assert recovered == signer.address == info.relayer == stack.relayer
    assert int(stack.chain.anvil.rpc("eth_getBalance", [info.relayer, "latest"]), 16) > 10**18


def test_the_contracts_and_the_relayers_funds_precede_the_mint_that_reorg_never_replaces(stack: Stack) -> None:
    # Given the block in which the stack minted its test USDT (the sandbox's reorg stops above it)
    info = stack.settlement_info
    assert info is not None

    def supply(block: int) -> int:
        data = {"to": stack.chain.info.token_contract, "data": "0x18160ddd"}
        return int(stack.chain.anvil.rpc("eth_call", [data, hex(block)]) or "0x0", 16)

    minted = next(n for n in range(1, 64) if supply(n) > 0)
    # When the chain is read as of the block before it
    before = hex(minted - 1)
    # Then the implementation and the factory are deployed and the relayer funded there already
    assert stack.chain.anvil.rpc("eth_getCode", [info.implementation, before]) != "0x"
    assert stack.chain.anvil.rpc("eth_getCode", [info.factory, before]) != "0x"
    assert int(stack.chain.anvil.rpc("eth_getBalance", [info.relayer, before]), 16) > 0


def test_pay_follows_the_money_to_the_treasury_and_settlement_completed_is_delivered(stack: Stack) -> None:
    # Given the demo merchant's order on `local`, and what the treasury holds
    info = stack.settlement_info
    assert info is not None and stack.receiver is not None
    order = new_order(stack, amount="20.00")
    held = token_balance(stack, info.treasury)

    # When `python -m devstack pay` pays it
    result = run_pay(stack, order["orderId"])

    # Then it follows the order to confirmed, then its money from its deposit address to swept
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert statuses(out)[-1][1] == "confirmed", out
    # (as pay reads it: the first read can come after the sweep was claimed, or even closed)
    funds = FUNDS_LINE.findall(out)
    assert funds and funds[-1] == "swept", out
    assert funds == [f for f in ("on_deposit_address", "sweeping", "swept") if f in funds], out
    # And prints the sweep that moved it, its transaction, and the treasury's balance after it
    ((settlement_id, amount),) = re.findall(r"^settlement (stl_\w+) completed: ([\d.]+) USDT to the", out, re.M)
    ((tx_hash, block),) = re.findall(r"^  tx (0x[0-9a-f]{64}) in block (\d+), final after 2 confirmations", out, re.M)
    assert amount == "20.00"
    assert f"treasury {info.treasury} holds {format_units(held + 20_000_000, 6)} test USDT" in out
    # And the chain agrees: the relayer's transaction to the factory, mined in that block, moved
    # the payment from the deposit address to the treasury
    receipt = stack.chain.anvil.rpc("eth_getTransactionReceipt", [tx_hash])
    assert (receipt["status"], int(receipt["blockNumber"], 16)) == ("0x1", int(block))
    assert (receipt["from"].lower(), receipt["to"].lower()) == (info.relayer.lower(), info.factory.lower())
    assert token_balance(stack, order["address"]) == 0
    assert token_balance(stack, info.treasury) == held + 20_000_000
    # And the API shows the order swept and the settlement completed
    assert read_order(stack, order["orderId"])["funds"] == "swept"
    listed = call(stack, "GET", f"/v1/settlements/{settlement_id}")
    assert (listed["status"], listed["orders"], listed["txHash"]) == ("completed", [order["orderId"]], tx_hash)

    # And the stack's receiver got settlement.completed for it, signed with the merchant's secret
    got = stack.receiver.wait_for(lambda ds: sweep_of(ds, order["orderId"]) is not None, HANG_GUARD_S)
    delivery = sweep_of(got, order["orderId"])
    assert delivery is not None
    event = Webhook(stack.merchant["webhookSecret"]).verify(delivery.body, delivery.headers)
    assert event["type"] == "settlement.completed"
    data: dict[str, Any] = event["data"]
    assert (data["settlementId"], data["status"], data["amount"]) == (settlement_id, "completed", "20.00")
    assert (data["orders"], data["txHash"], data["factory"]) == ([order["orderId"]], tx_hash, info.factory)
    # and printed a line naming the settlement, its order and its transaction
    line = delivery.line()
    assert line.startswith(f"webhook settlement.completed  settlement {settlement_id}  20.00 USDT"), line
    assert f"orders {order['orderId']}  tx {tx_hash}  signature ok" in line, line
    # And the SettlementFunction did it on its schedule, without a failed invocation
    assert stack.settlement.function.logical_id == "SettlementFunction" and stack.settlement.failures == 0


def run_refund(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack refund ...` against the running stack, as a developer runs it."""
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "devstack", "refund", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


def test_an_overpayment_waits_on_its_address_and_devstack_refund_sends_it_back(stack: Stack) -> None:
    # Given an order of 20.00 paid 25.00: pay stops at the money on the deposit address, saying
    # the address waits the refund window and how to refund the excess
    info = stack.settlement_info
    assert info is not None and stack.receiver is not None
    order = new_order(stack, amount="20.00")
    paid = run_pay(stack, order["orderId"], "--amount", "25.00")
    assert paid.returncode == 0, paid.stdout + paid.stderr
    assert "it holds 5.00 USDT the order did not take" in paid.stdout, paid.stdout
    assert f"python -m devstack refund {order['orderId']}" in paid.stdout
    payer_before = token_balance(stack, stack.chain.info.payer)

    # When the developer runs it
    result = run_refund(stack, order["orderId"])

    # Then the SDK checked and signed the owner's typed data, the gateway accepted it, and the
    # relayer's refund transaction is final: the payer got the 5.00 back from the deposit address
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    ((refund_id,),) = [re.findall(r"^refund (rfd_[0-9a-f]+): 5\.00 USDT from ", out, re.M)]
    ((tx_hash,),) = [re.findall(r"^  completed in (0x[0-9a-f]{64})", out, re.M)]
    assert token_balance(stack, stack.chain.info.payer) == payer_before + 5_000_000
    assert token_balance(stack, order["address"]) == 20_000_000
    receipt = stack.chain.anvil.rpc("eth_getTransactionReceipt", [tx_hash])
    assert receipt["status"] == "0x1" and receipt["to"].lower() == info.factory.lower()
    # And the receiver got refund.completed for it
    got = stack.receiver.wait_for(
        lambda ds: any(
            (d.event or {}).get("type") == "refund.completed" and d.data.get("refundId") == refund_id for d in ds
        ),
        HANG_GUARD_S,
    )
    (delivery,) = [d for d in got if d.data.get("refundId") == refund_id]
    assert delivery.line().startswith(
        f"webhook refund.completed  refund {refund_id}  order {order['orderId']}  5.00 USDT"
    )
    # And a second refund finds nothing left to refund
    again = run_refund(stack, order["orderId"])
    assert again.returncode == 2 and "REFUND_NOT_AVAILABLE" in again.stderr, again.stdout + again.stderr


def run_sweep(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack sweep ...` against the running stack, as a developer runs it."""
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "devstack", "sweep", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


def test_devstack_sweep_pays_an_xpub_order_and_the_offline_tool_moves_it_to_the_treasury(stack: Stack) -> None:
    # Given the stack's second demo merchant, whose `local` orders get addresses of the dev
    # wallet's account 1 (xpub mode) while the first merchant's `local` is in contract mode
    wallet = json.loads((stack.state_dir / "dev-wallet.json").read_text(encoding="utf-8"))
    xpub_merchant = json.loads((stack.state_dir / "merchant-xpub.json").read_text(encoding="utf-8"))
    assert xpub_merchant["merchantId"] != stack.merchant["merchantId"] and xpub_merchant["account"] == "1"
    assert store.get(*store.contract_config_key(xpub_merchant["merchantId"], "local")) is None

    # When the developer runs `python -m devstack sweep --amount 4.00`
    result = run_sweep(stack, "--amount", "4.00")

    # Then it paid a new order of that merchant to confirmed, on an address of account 1
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    ((order_id,),) = [re.findall(r"created order (xpub-demo-[0-9a-f]+) of 4\.00 USDT", out)]
    assert statuses(out)[-1][1] == "confirmed", out
    listed = re.compile(r"^GET /v1/xpub/addresses: (0x[0-9a-fA-F]{40}) \(index (\d+)\) holds 4\.00", re.M)
    ((address, index),) = listed.findall(out)
    assert address == derive_address(wallet["sweepDemoEvmXpub"], "evm", int(index))
    # And ran the offline tool: a dry run that sent nothing, then --execute, which swept it
    dry, executed = out.index("dry run: nothing sent"), out.index("done: 1 sweeps recorded")
    assert out.index("$ python -m usdt_gateway_client.sweep") < dry < out.index(" --execute\n") < executed, out
    assert "--account 1 --confirmations 2" in out
    # And the chain agrees: the address's USDT is in the treasury the tool was given
    sweep_state = json.loads((stack.state_dir / "xpub-sweep.json").read_text(encoding="utf-8"))
    treasury = sweep_state["treasury"]
    assert token_balance(stack, address) == 0
    assert token_balance(stack, treasury) == 4_000_000
    assert f"treasury {treasury} holds 4.00 test USDT (4.00 more than before the sweep)" in out
    # and the transfer recorded is the address's own, to the treasury, in the tool's journal
    journal = json.loads((stack.state_dir / "xpub-sweep-journal.json").read_text(encoding="utf-8"))
    entry = journal["addresses"][f"local:{address}"]
    assert (entry["step"], entry["moved"]) == ("recorded", 4_000_000)
    receipt = stack.chain.anvil.rpc("eth_getTransactionReceipt", [entry["transferTx"]["hash"]])
    assert receipt["status"] == "0x1" and receipt["from"].lower() == address.lower()
    # And the gateway shows the sweep recorded: the address is no longer listed as unswept
    client = Client(xpub_merchant["baseUrl"], xpub_merchant["apiKey"], xpub_merchant["secretKey"])
    order = client.get_order(order_id)
    assert (order.status, order.address) == ("confirmed", address)
    assert address.lower() not in {a.address.lower() for a in client.list_xpub_addresses("local")}
    assert f"GET /v1/xpub/addresses no longer lists {address}" in out
    # And no secret was printed: the mnemonic, the funding key, the API secret
    for secret in (wallet["mnemonic"], sweep_state["funderPrivateKey"], xpub_merchant["secretKey"]):
        assert secret not in out + result.stderr
