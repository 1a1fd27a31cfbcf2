"""The xpub sweep tool end to end on the local stack in xpub mode (`make dev` in-process: the API
handler, moto, anvil with a block a second, the scanner): orders paid on anvil to addresses of the
development wallet, whose mnemonic the stack makes at run time, are swept to a fresh treasury by
the tool with keys it derives from that mnemonic, and recorded through the API.

A crash is an exception raised from the tool's step hook: the run stops there, and the resumed run
is a new Sweeper with nothing but the journal file and the chain, as a new process would have."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_typing import HexStr
from usdt_gateway_client import Client, ConflictError, NotFoundError, XpubAddress, sweep
from usdt_gateway_client.sweep import Journal, Rpc, Sweeper, evm_signer, main, token_balance, transfer_data
from web3 import Web3
from web3.types import Wei

from devstack.stack import Stack, start_stack

NETWORK = "local"
CONFIRMATIONS = 2  # the local network's finality
CREDITED_WITHIN_S = 60  # a guard against a hung test; crediting takes a few blocks


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the tool catches it)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(port=0, state_dir=tmp_path_factory.mktemp("xpub-stack"), local_mode="xpub")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tool looks at the chain every POLL_S while it waits for a block (a second, for a real
    chain's blocks); against anvil on loopback a tenth of that finds each block as it comes."""
    monkeypatch.setattr(sweep, "POLL_S", 0.1)


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return Client(stack.merchant["baseUrl"], stack.merchant["apiKey"], stack.merchant["secretKey"])


@pytest.fixture(scope="module")
def mnemonic(stack: Stack) -> str:
    return str(json.loads(stack.wallet_file.read_text())["mnemonic"])


@pytest.fixture(scope="module")
def w3(stack: Stack) -> Web3:
    return stack.chain.anvil.web3()


@pytest.fixture
def funder(w3: Web3, stack: Stack) -> Any:
    """A fresh funding account holding 10 ETH."""
    account = Account.create()
    tx = w3.eth.send_transaction({"from": stack.chain.info.payer, "to": account.address, "value": Wei(10 * 10**18)})
    mine(stack, 1)
    w3.eth.wait_for_transaction_receipt(tx)
    return account


@pytest.fixture
def treasury() -> str:
    return str(Account.create().address)


def pay_orders(client: Client, w3: Web3, stack: Stack, amounts: list[str]) -> dict[str, int]:
    """New orders paid in full on anvil; their addresses and the units each received, once the
    gateway lists them as final and unswept."""
    paid: dict[str, int] = {}
    for amount in amounts:
        order = client.create_order(order_id=f"sweep-{secrets.token_hex(6)}", amount=amount, network=NETWORK)
        units = int(Decimal(amount) * 10**stack.chain.info.decimals)
        w3.eth.send_transaction(
            {
                "from": stack.chain.info.payer,
                "to": stack.chain.info.token_contract,
                "data": HexStr(transfer_data(order.address, units)),
            }
        )
        paid[order.address] = units
    mine(stack, CONFIRMATIONS)
    deadline = time.monotonic() + CREDITED_WITHIN_S
    while time.monotonic() < deadline:
        listed = {a.address: a.unswept_units for a in client.list_xpub_addresses(NETWORK)}
        if all(listed.get(address) == units for address, units in paid.items()):
            return paid
        time.sleep(0.5)
    raise AssertionError(f"the gateway did not list {paid} as unswept in {CREDITED_WITHIN_S} s")


def mine(stack: Stack, blocks: int) -> None:
    """Mine `blocks` blocks now rather than wait for the chain's block a second: what the test
    sent (still pending) goes in the first. Only the test's own set-up waits on these; the tool
    always waits for the blocks as they come."""
    stack.chain.anvil.rpc("anvil_mine", [hex(blocks)])


def sweeper(
    client: Client, stack: Stack, mnemonic: str, journal: Path, treasury: str, funder: Any, **kwargs: Any
) -> Sweeper:
    return Sweeper(
        client,
        Rpc(stack.chain.info.rpc_url),
        Journal(journal),
        network=NETWORK,
        treasury=treasury,
        signer=evm_signer(mnemonic, 0),
        funder=funder,
        confirmations=CONFIRMATIONS,
        out=lambda line: None,
        **kwargs,
    )


def listed(client: Client) -> dict[str, XpubAddress]:
    return {a.address: a for a in client.list_xpub_addresses(NETWORK)}


def balance(stack: Stack, holder: str) -> int:
    return token_balance(Rpc(stack.chain.info.rpc_url), stack.chain.info.token_contract, holder, "latest")


def test_the_dry_run_sends_nothing_and_the_execution_sends_the_plan(
    client: Client,
    w3: Web3,
    stack: Stack,
    mnemonic: str,
    funder: Any,
    treasury: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two paid orders, listed as unswept
    paid = pay_orders(client, w3, stack, ["25.00", "10.50"])
    funder_nonce = w3.eth.get_transaction_count(funder.address)

    # When the command runs without --execute
    monkeypatch.setenv("USDT_GATEWAY_API_KEY", stack.merchant["apiKey"])
    monkeypatch.setenv("USDT_GATEWAY_SECRET_KEY", stack.merchant["secretKey"])
    monkeypatch.setenv("USDT_SWEEP_MNEMONIC", mnemonic)
    monkeypatch.setenv("USDT_SWEEP_FUNDING_KEY", funder.key.hex())
    args = [
        "--base-url",
        stack.merchant["baseUrl"],
        "--network",
        NETWORK,
        "--rpc-url",
        stack.chain.info.rpc_url,
        "--treasury",
        treasury,
        "--journal",
        str(tmp_path / "dry.json"),
        "--confirmations",
        str(CONFIRMATIONS),
    ]
    code = main(args)

    # Then it prints the plan of each address, sends nothing, and no key appears
    out = capsys.readouterr()
    assert code == 0, out.err
    for address in paid:
        assert address in out.out
    assert "dry run: nothing sent" in out.out
    for secret in (mnemonic, funder.key.hex(), stack.merchant["secretKey"]):
        assert secret not in out.out + out.err
    assert w3.eth.get_transaction_count(funder.address) == funder_nonce
    assert balance(stack, treasury) == 0
    assert not (tmp_path / "dry.json").exists()

    # When the plan is made and executed
    tool = sweeper(client, stack, mnemonic, tmp_path / "run.json", treasury, funder)
    plan = tool.plan()
    lines = {line.address.address: line for line in plan.lines if line.address.address in paid}
    recorded = tool.execute(plan)

    # Then each address was funded with what the plan said and moved exactly its planned units
    assert recorded == len(plan.to_sweep) >= len(paid)
    journal = json.loads((tmp_path / "run.json").read_text())["addresses"]
    for address, units in paid.items():
        line, entry = lines[address], journal[f"{NETWORK}:{address}"]
        assert line.refused is None and line.address.unswept_units == units
        fund_tx = w3.eth.get_transaction(entry["fundTx"]["hash"])
        assert fund_tx["value"] == line.fund == line.gas_limit * plan.gas_price - line.native_balance
        transfer = w3.eth.get_transaction_receipt(entry["transferTx"]["hash"])
        assert transfer["status"] == 1 and entry["moved"] == units
        # What stays on the address is the gas limit's unused part, nothing more
        assert (
            w3.eth.get_balance(Web3.to_checksum_address(address))
            == (line.gas_limit - transfer["gasUsed"]) * plan.gas_price
        )
        assert balance(stack, address) == 0
    # The treasury got the money, and the gateway shows it swept
    assert balance(stack, treasury) == plan.units >= sum(paid.values())
    assert not set(paid) & set(listed(client))
    assert w3.eth.get_transaction_count(funder.address) - funder_nonce == len(plan.to_sweep)

    # And recording a sweep again is idempotent on its txid; another record under it is refused
    address, entry = next((a, journal[f"{NETWORK}:{a}"]) for a in paid)
    again = client.record_xpub_sweep(NETWORK, address, entry["transferTx"]["hash"], paid[address])
    assert again.units == paid[address]
    with pytest.raises(ConflictError) as other:
        client.record_xpub_sweep(NETWORK, address, entry["transferTx"]["hash"], paid[address] - 1)
    assert other.value.code == "SWEEP_ALREADY_RECORDED"
    # And a sweep of more than is unswept, or of an address not the merchant's, is refused
    with pytest.raises(ConflictError) as exceeding:
        client.record_xpub_sweep(NETWORK, address, "0x" + secrets.token_hex(32), 1)
    assert exceeding.value.code == "SWEEP_EXCEEDS_UNSWEPT"
    with pytest.raises(NotFoundError):
        client.record_xpub_sweep(NETWORK, treasury, "0x" + secrets.token_hex(32), 1)


STEPS = ["fund-signed", "fund-sent", "funded", "transfer-signed", "sent", "final"]


@pytest.mark.parametrize("step", STEPS)
def test_a_run_interrupted_at_a_step_resumes_without_sending_anything_twice(
    step: str, client: Client, w3: Web3, stack: Stack, mnemonic: str, funder: Any, treasury: str, tmp_path: Path
) -> None:
    # Given a paid order, and a run that dies at `step` of its address
    paid = pay_orders(client, w3, stack, ["7.25"])
    (address,) = paid
    funder_nonce = w3.eth.get_transaction_count(funder.address)

    def crash(key: str, at: str) -> None:
        if key == f"{NETWORK}:{address}" and at == step:
            raise Crash(at)

    first = sweeper(client, stack, mnemonic, tmp_path / "j.json", treasury, funder, on_step=crash)
    with pytest.raises(Crash):
        first.execute(first.plan())

    # When the same command runs again, with only the journal and the chain
    resumed = sweeper(client, stack, mnemonic, tmp_path / "j.json", treasury, funder)
    resumed.execute(resumed.plan())

    # Then the address was funded once and swept once, and the gateway shows it swept
    assert w3.eth.get_transaction_count(Web3.to_checksum_address(address)) == 1
    assert w3.eth.get_transaction_count(funder.address) - funder_nonce == 1
    assert balance(stack, address) == 0
    assert balance(stack, treasury) >= paid[address]
    assert address not in listed(client)
    entry = json.loads((tmp_path / "j.json").read_text())["addresses"][f"{NETWORK}:{address}"]
    assert entry["step"] == "recorded" and entry["moved"] == paid[address]


def test_an_address_holding_less_than_the_gateway_counts_is_refused(
    client: Client, w3: Web3, stack: Stack, mnemonic: str, funder: Any, treasury: str, tmp_path: Path
) -> None:
    # Given a paid order whose address then lost part of its money (moved with its own key)
    paid = pay_orders(client, w3, stack, ["5.00"])
    (address,) = paid
    key = evm_signer(mnemonic, 0)
    index = listed(client)[address].index
    gas_money = w3.eth.send_transaction({"from": stack.chain.info.payer, "to": address, "value": Wei(10**16)})
    mine(stack, 1)
    w3.eth.wait_for_transaction_receipt(gas_money)
    account = key(index)
    signed = account.sign_transaction(
        {
            "chainId": w3.eth.chain_id,
            "nonce": 0,
            "gasPrice": w3.eth.gas_price,
            "gas": 100_000,
            "to": stack.chain.info.token_contract,
            "value": 0,
            "data": transfer_data(stack.chain.info.payer, 1),
        }
    )
    sent = w3.eth.send_raw_transaction(signed.raw_transaction)
    mine(stack, CONFIRMATIONS)
    w3.eth.wait_for_transaction_receipt(sent)

    funder_nonce = w3.eth.get_transaction_count(funder.address)

    # When the tool plans and executes
    tool = sweeper(client, stack, mnemonic, tmp_path / "j.json", treasury, funder)
    plan = tool.plan()
    tool.execute(plan)

    # Then the address is flagged, nothing is sent to or from it, and the gateway still counts it
    (line,) = [line for line in plan.lines if line.address.address == address]
    assert line.refused is not None and line.refused.startswith("SHORT")
    assert w3.eth.get_transaction_count(Web3.to_checksum_address(address)) == 1
    assert w3.eth.get_transaction_count(funder.address) == funder_nonce
    assert balance(stack, address) == paid[address] - 1
    assert listed(client)[address].unswept_units == paid[address]
