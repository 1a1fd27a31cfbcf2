"""The xpub sweep tool on Tron, end to end: the local stack in xpub mode (the API handler, moto)
takes orders on `tron` at addresses of the development wallet, whose mnemonic the stack makes at
run time; payments are made on the in-process fake full node (devstack/tron_node.py, its
TronAccounts: TRX, USDT balances, Stake 2.0 delegation, java-tron's fees) and credited by the
gateway's own Tron scanner; the tool sweeps them to a fresh treasury with keys it derives from that
mnemonic, and records each sweep through the API.

The tool's `wait` mines one block (a block is solidified one block later here), so nothing waits on
time. A crash is an exception raised from the tool's step hook: the resumed run is a new sweeper
with nothing but the journal file and the chain, as a new process would have."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from usdt_gateway_client import Client
from usdt_gateway_client.sweep import Journal, SweepError, main
from usdt_gateway_client.tron import TronNodeClient, hex41, tron_address
from usdt_gateway_client.tron_sweep import TronSweeper, tron_signer

from devstack.stack import Stack, start_stack
from devstack.tron_node import (
    ENERGY_PRICE_SUN,
    USDT_ENERGY_TO_HOLDER,
    USDT_ENERGY_TO_NEW_HOLDER,
    AccountTx,
    TronAccounts,
    TronNode,
    _trigger_raw_hex,
    start_tron_node,
)
from tests.integration.chains import drive, tron_scanner
from tests.integration.chains import tron_address as random_tron_address
from usdt_gateway.scanner import Scanner

NETWORK = "tron"
TRX = 1_000_000
PAYER = random_tron_address()  # a wallet paying the orders
ACTIVATION_FEES = 1_100_000  # 1 TRX for the new account, 0.1 TRX for its bandwidth (no staked bandwidth)
STEPS_DELEGATE = [
    "fund-signed",
    "fund-sent",
    "funded",
    "delegate-signed",
    "delegate-sent",
    "delegated",
    "transfer-signed",
    "transfer-sent",
    "transferred",
    "undelegate-signed",
    "undelegate-sent",
    "undelegated",
]
STEPS_BURN = ["fund-signed", "fund-sent", "funded", "transfer-signed", "transfer-sent", "transferred"]


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the tool catches it)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(port=0, state_dir=tmp_path_factory.mktemp("tron-xpub-stack"), local_mode="xpub")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def node(stack: Stack) -> Iterator[TronNode]:
    """The `tron` network's full node (mainnet's chain id), with USDT and a payer holding some."""
    from usdt_gateway.config import networks

    with start_tron_node(blocks=3, solid_lag=1) as running:
        accounts = TronAccounts.of(running)
        accounts.add_token(networks()[NETWORK].token_contract)
        accounts.mint(usdt(), PAYER, 10**12)
        yield running


@pytest.fixture(scope="module")
def scanner(node: TronNode) -> Scanner:
    """The gateway's Tron scanner on the node, started at its head (one owner: it keeps the lease)."""
    running = tron_scanner(NETWORK, [node.url])
    drive(running)
    return running


Pay = Callable[[list[str]], dict[str, int]]


@pytest.fixture
def pay(client: Client, node: TronNode, scanner: Scanner) -> Pay:
    return lambda amounts: pay_orders(client, node, scanner, amounts)


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return Client(stack.merchant["baseUrl"], stack.merchant["apiKey"], stack.merchant["secretKey"])


@pytest.fixture(scope="module")
def mnemonic(stack: Stack) -> str:
    return str(json.loads(stack.wallet_file.read_text())["mnemonic"])


@pytest.fixture
def treasury() -> str:
    return tron_address(Account.create().address)


def usdt() -> str:
    from usdt_gateway.config import networks

    return networks()[NETWORK].token_contract


def resource_account(node: TronNode, *, trx: int, energy_stake: int = 0) -> Any:
    """A fresh resource account (the funding key) with `trx` sun and `energy_stake` sun staked for energy."""
    account = Account.create()
    accounts = TronAccounts.of(node)
    accounts.create(tron_address(account.address), trx)
    if energy_stake:
        accounts.stake(tron_address(account.address), energy_sun=energy_stake)
    return account


def pay_orders(client: Client, node: TronNode, scanner: Scanner, amounts: list[str]) -> dict[str, int]:
    """New orders on `tron`, each paid in full on the node and credited by the scanner once
    solidified; their addresses and the units each received."""
    accounts = TronAccounts.of(node)
    paid: dict[str, int] = {}
    for amount in amounts:
        order = client.create_order(order_id=f"tron-sweep-{secrets.token_hex(6)}", amount=amount, network=NETWORK)
        units = int(Decimal(amount) * 10**6)
        accounts.pay_token(usdt(), PAYER, order.address, units)
        paid[order.address] = units
    node.mine(2)
    drive(scanner)
    listed = {a.address: a.unswept_units for a in client.list_xpub_addresses(NETWORK)}
    assert all(listed.get(address) == units for address, units in paid.items()), (paid, listed)
    return paid


def sweeper(
    client: Client, node: TronNode, mnemonic: str, journal: Path, treasury: str, funder: Any, **kwargs: Any
) -> TronSweeper:
    def wait() -> None:
        node.mine()

    return TronSweeper(
        client,
        TronNodeClient(node.url),
        Journal(journal),
        network=NETWORK,
        treasury=treasury,
        signer=tron_signer(mnemonic, 0),
        funder=funder,
        out=kwargs.pop("out", lambda line: None),
        wait=wait,
        **kwargs,
    )


def sent(node: TronNode, kind: str, *, owner: str | None = None, to: str | None = None) -> list[AccountTx]:
    """The transactions of `kind` the node accepted, from `owner` and to `to` (base58)."""
    found = []
    for tx in TronAccounts.of(node).sent.values():
        target = tx.value.get("to_address", tx.value.get("receiver_address"))
        if tx.kind == kind and (owner is None or tx.owner == hex41(owner)) and (to is None or target == hex41(to)):
            found.append(tx)
    return found


def listed(client: Client) -> set[str]:
    return {a.address for a in client.list_xpub_addresses(NETWORK)}


def journal_entry(path: Path, address: str) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(path.read_text())["addresses"][f"{NETWORK}:{address}"]
    return entry


def test_burn_mode_dry_run_sends_nothing_then_each_address_gets_just_its_fees(
    client: Client,
    pay: Pay,
    node: TronNode,
    stack: Stack,
    mnemonic: str,
    treasury: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two paid orders, and a resource account with TRX and no stake
    paid = pay(["25.00", "10.50"])
    accounts = TronAccounts.of(node)
    funder = resource_account(node, trx=100 * TRX)
    funder_t = tron_address(funder.address)
    head = node.head

    # When the command runs without --execute
    monkeypatch.setenv("USDT_GATEWAY_API_KEY", stack.merchant["apiKey"])
    monkeypatch.setenv("USDT_GATEWAY_SECRET_KEY", stack.merchant["secretKey"])
    monkeypatch.setenv("USDT_SWEEP_MNEMONIC", mnemonic)
    monkeypatch.setenv("USDT_SWEEP_FUNDING_KEY", bytes(funder.key).hex())
    base = ["--base-url", stack.merchant["baseUrl"], "--network", NETWORK, "--rpc-url", node.url]
    code = main([*base, "--treasury", treasury, "--journal", str(tmp_path / "dry.json")])

    # Then it prints each address's plan in burn mode with its cost, sends nothing, and no key appears
    out = capsys.readouterr()
    assert code == 0, out.err
    for address in paid:
        assert address in out.out
    assert "burn for 2" in out.out and "no TRX burned" not in out.out
    assert "dry run: nothing sent" in out.out
    for secret in (mnemonic, bytes(funder.key).hex(), stack.merchant["secretKey"]):
        assert secret not in out.out + out.err
    assert node.head == head and not sent(node, "TransferContract", owner=funder_t)
    assert not (tmp_path / "dry.json").exists()

    # When the plan is made and executed
    tool = sweeper(client, node, mnemonic, tmp_path / "run.json", treasury, funder)
    plan = tool.plan()
    lines = {line.address.address: line for line in plan.lines if line.address.address in paid}
    recorded = tool.execute(plan)

    # Then the first transfer (the treasury held nothing) paid the new-holder energy, the others
    # the holder's, each measured before its funding; every address was sent exactly what its
    # transfer burned, so no TRX is left on it
    assert recorded == len(plan.to_sweep) == len(paid)
    first, second = sorted(paid, key=lambda a: lines[a].batch)
    energies = {first: USDT_ENERGY_TO_NEW_HOLDER, second: USDT_ENERGY_TO_HOLDER}
    for address, units in paid.items():
        entry = journal_entry(tmp_path / "run.json", address)
        assert lines[address].mode == "burn" and entry["mode"] == "burn"
        assert entry["energy"] == energies[address] and entry["fund"] == energies[address] * ENERGY_PRICE_SUN
        (fund,) = sent(node, "TransferContract", owner=funder_t, to=address)
        assert int(fund.value["amount"]) == entry["fund"]
        (transfer,) = sent(node, "TriggerSmartContract", owner=address)
        assert transfer.info is not None and transfer.info["receipt"] == {
            "energy_fee": energies[address] * ENERGY_PRICE_SUN,
            "energy_usage_total": energies[address],
            "net_usage": transfer.info["receipt"]["net_usage"],  # the free bandwidth paid
            "result": "SUCCESS",
        }
        assert entry["step"] == "recorded" and entry["outcome"]["moved"] == units
        assert accounts.trx(address) == 0
        assert accounts.token_balance(usdt(), address) == 0
    # The treasury got the money, the gateway shows it swept, and the resource account paid the
    # funding and two activations, as planned
    assert accounts.token_balance(usdt(), treasury) == sum(paid.values())
    assert not set(paid) & listed(client)
    assert (
        accounts.trx(funder_t)
        == 100 * TRX - sum(journal_entry(tmp_path / "run.json", a)["fund"] for a in paid) - 2 * ACTIVATION_FEES
    )
    assert plan.funder_burn == 2 * ACTIVATION_FEES
    # And neither the journal nor the output holds a key
    text = (tmp_path / "run.json").read_text()
    derived = tron_signer(mnemonic, 0)
    keys = [
        mnemonic,
        bytes(funder.key).hex(),
        *(bytes(derived(line.address.index).key).hex() for line in plan.to_sweep),
    ]
    assert not any(secret in text for secret in keys)


def test_delegate_mode_lends_the_energy_and_takes_it_back(
    client: Client, pay: Pay, node: TronNode, mnemonic: str, treasury: str, tmp_path: Path
) -> None:
    # Given two paid orders, and a resource account with enough staked energy for both
    paid = pay(["7.00", "3.25"])
    accounts = TronAccounts.of(node)
    funder = resource_account(node, trx=10 * TRX, energy_stake=10_000 * TRX)
    funder_t = tron_address(funder.address)

    # When the plan is made and executed
    tool = sweeper(client, node, mnemonic, tmp_path / "run.json", treasury, funder)
    plan = tool.plan()
    recorded = tool.execute(plan)

    # Then each address was activated with 1 sun, lent the energy of its transfer, and the
    # delegation was taken back; nothing was burned for energy
    assert recorded == 2 and {line.mode for line in plan.to_sweep} == {"delegate"}
    for address in paid:
        entry = journal_entry(tmp_path / "run.json", address)
        (delegation,) = sent(node, "DelegateResourceContract", owner=funder_t, to=address)
        (undelegation,) = sent(node, "UnDelegateResourceContract", owner=funder_t, to=address)
        assert delegation.value["resource"] == undelegation.value["resource"] == "ENERGY"
        assert delegation.value["balance"] == undelegation.value["balance"] == entry["delegateEnergy"]
        (transfer,) = sent(node, "TriggerSmartContract", owner=address)
        assert transfer.info is not None
        receipt = transfer.info["receipt"]
        assert receipt["energy_usage"] == receipt["energy_usage_total"] == entry["energy"]
        assert "energy_fee" not in receipt and receipt["result"] == "SUCCESS"
        assert accounts.trx(address) == 1  # the activation's sun: the plan's leftover
        assert accounts.token_balance(usdt(), address) == 0
    assert accounts.delegated(owner=funder_t) == {}
    assert accounts.token_balance(usdt(), treasury) == sum(paid.values())
    assert not set(paid) & listed(client)
    # The energy used comes back to the resource account as used; its TRX paid what the plan said
    holder = accounts.holder(funder_t)
    assert holder is not None and holder.energy_used == USDT_ENERGY_TO_NEW_HOLDER + USDT_ENERGY_TO_HOLDER
    assert accounts.trx(funder_t) == 10 * TRX - plan.sent - plan.funder_burn


def test_auto_mode_delegates_what_the_stake_covers_and_burns_for_the_rest(
    client: Client, pay: Pay, node: TronNode, mnemonic: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a treasury that holds USDT, two paid orders, and a stake that covers one transfer
    treasury = tron_address(Account.create().address)
    TronAccounts.of(node).mint(usdt(), treasury, 1)
    node.mine(2)
    paid = pay(["4.00", "5.00"])
    funder = resource_account(node, trx=50 * TRX, energy_stake=1_000 * TRX)

    # When it plans
    tool = sweeper(client, node, mnemonic, tmp_path / "run.json", treasury, funder, out=print)
    plan = tool.plan()
    tool.print_plan(plan)

    # Then the first address is lent energy and the second burns TRX, and the plan says why
    modes = {line.address.address: (line.mode, line.why) for line in plan.to_sweep}
    assert sorted(m for m, _ in modes.values()) == ["burn", "delegate"]
    assert {why for _, why in modes.values()} == {
        "the resource account's staked energy covers it: no TRX burned for energy",
        "not enough delegatable staked energy left",
    }
    assert "delegate for 1, burn for 1" in capsys.readouterr().out

    # And executed, both are swept, and what it printed holds no key
    assert tool.execute(plan) == 2
    assert TronAccounts.of(node).token_balance(usdt(), treasury) == 1 + sum(paid.values())
    printed = capsys.readouterr().out
    assert all(f"swept {units} units" in printed for units in paid.values())
    derived = tron_signer(mnemonic, 0)
    keys = [mnemonic, bytes(funder.key).hex(), *(bytes(derived(line.address.index).key).hex() for line in plan.lines)]
    assert not any(secret in printed for secret in keys)


@pytest.mark.parametrize(
    ("mode", "step"), [*(("delegate", s) for s in STEPS_DELEGATE), *(("burn", s) for s in STEPS_BURN)]
)
def test_a_run_interrupted_at_a_step_resumes_without_sending_anything_twice(
    mode: str, step: str, client: Client, pay: Pay, node: TronNode, mnemonic: str, treasury: str, tmp_path: Path
) -> None:
    # Given a paid order, and a run that dies at `step` of its address
    paid = pay(["6.50"])
    (address,) = paid
    stake = 10_000 * TRX if mode == "delegate" else 0
    funder = resource_account(node, trx=50 * TRX, energy_stake=stake)
    funder_t = tron_address(funder.address)

    def crash(key: str, at: str) -> None:
        if key == f"{NETWORK}:{address}" and at == step:
            raise Crash(at)

    first = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder, on_step=crash)
    with pytest.raises(Crash):
        first.execute(first.plan())
    node.mine()

    # When the same command runs again, with only the journal and the chain
    resumed = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder)
    resumed.execute(resumed.plan())

    # Then each transaction was sent once, the delegation was taken back, and the gateway shows it swept
    assert len(sent(node, "TransferContract", owner=funder_t, to=address)) == 1
    assert len(sent(node, "TriggerSmartContract", owner=address)) == 1
    delegations = 1 if mode == "delegate" else 0
    assert len(sent(node, "DelegateResourceContract", owner=funder_t, to=address)) == delegations
    assert len(sent(node, "UnDelegateResourceContract", owner=funder_t, to=address)) == delegations
    assert TronAccounts.of(node).delegated(receiver=address) == {}
    assert TronAccounts.of(node).token_balance(usdt(), address) == 0
    assert address not in listed(client)
    entry = journal_entry(tmp_path / "j.json", address)
    assert entry["step"] == "recorded" and entry["outcome"]["moved"] == paid[address]


def test_a_signed_transaction_that_expired_unsent_is_built_again_once(
    client: Client, pay: Pay, node: TronNode, mnemonic: str, treasury: str, tmp_path: Path
) -> None:
    # Given a run that died after signing the funding, and a minute and more of blocks since
    (address,) = pay(["2.00"])
    funder = resource_account(node, trx=50 * TRX)

    def crash(key: str, at: str) -> None:
        if at == "fund-signed":
            raise Crash(at)

    first = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder, on_step=crash)
    with pytest.raises(Crash):
        first.execute(first.plan())
    stale = journal_entry(tmp_path / "j.json", address)["txs"]["fund"]["txid"]
    node.mine(25)  # 75 s of 3 s blocks: past its expiration (a minute after its reference block)

    # When the command runs again
    resumed = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder)
    resumed.execute(resumed.plan())

    # Then the expired transaction was refused, a new one funded the address, once
    (fund,) = sent(node, "TransferContract", owner=tron_address(funder.address), to=address)
    assert fund.txid != stale and stale not in TronAccounts.of(node).sent
    assert journal_entry(tmp_path / "j.json", address)["step"] == "recorded"


def _lying_transfer(attacker: str) -> Any:
    """A triggersmartcontract answer for the same call to `attacker`: raw_data, raw_data_hex and
    txID all consistent with each other, only not what was asked."""

    def change(answer: Any) -> Any:
        tx = answer["transaction"]
        raw = tx["raw_data"]
        value = raw["contract"][0]["parameter"]["value"]
        value["data"] = value["data"][:8] + "00" * 12 + hex41(attacker)[2:] + value["data"][72:]
        raw_hex = _trigger_raw_hex(value["owner_address"], value["contract_address"], value["data"], 0, raw)
        tx["raw_data_hex"], tx["txID"] = raw_hex, hashlib.sha256(bytes.fromhex(raw_hex)).hexdigest()
        return answer

    return change


def _lying_funding(answer: Any) -> Any:
    """A createtransaction answer sending 1,000 TRX instead, consistent with itself."""
    from devstack.tron_node import _system_raw_hex

    raw = answer["raw_data"]
    raw["contract"][0]["parameter"]["value"]["amount"] = 1_000 * TRX
    raw_hex = _system_raw_hex("TransferContract", raw["contract"][0]["parameter"]["value"], raw)
    answer["raw_data_hex"], answer["txID"] = raw_hex, hashlib.sha256(bytes.fromhex(raw_hex)).hexdigest()
    return answer


@pytest.mark.parametrize("lie", ["transfer", "funding"])
def test_a_node_lying_about_the_transaction_gets_no_signature(
    lie: str, client: Client, pay: Pay, node: TronNode, mnemonic: str, treasury: str, tmp_path: Path
) -> None:
    # Given a paid order, a resource account (staked for the transfer lie), and a node that
    # builds a transfer to someone else, or a funding of 1,000 TRX
    (address,) = pay(["9.00"])
    accounts = TronAccounts.of(node)
    funder = resource_account(node, trx=2_000 * TRX, energy_stake=10_000 * TRX if lie == "transfer" else 0)
    funder_t = tron_address(funder.address)
    if lie == "transfer":
        node.tamper_next(1, "/wallet/triggersmartcontract", _lying_transfer(random_tron_address()))
    else:
        node.tamper_next(1, "/wallet/createtransaction", _lying_funding)
    balance = accounts.trx(funder_t)

    # When the tool runs
    tool = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder)
    with pytest.raises(SweepError, match="nothing signed"):
        tool.execute(tool.plan())

    # Then nothing it did not ask for was signed or sent: the money is on the address, and a
    # delegation made before the lie was taken back
    assert not sent(node, "TriggerSmartContract", owner=address)
    assert accounts.token_balance(usdt(), address) == 9 * TRX
    assert accounts.delegated(receiver=address) == {}
    if lie == "funding":
        assert not sent(node, "TransferContract", owner=funder_t) and accounts.trx(funder_t) == balance
    else:
        assert len(sent(node, "UnDelegateResourceContract", owner=funder_t, to=address)) == 1
        assert journal_entry(tmp_path / "j.json", address)["step"] == "abandoned"

    # And an honest run afterwards sweeps it
    again = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder)
    again.execute(again.plan())
    assert accounts.token_balance(usdt(), address) == 0 and address not in listed(client)


def test_a_failed_transfer_is_reported_its_delegation_taken_back_and_retried_later(
    client: Client, pay: Pay, node: TronNode, mnemonic: str, treasury: str, tmp_path: Path
) -> None:
    # Given a paid order and a run that lends less energy than the transfer needs
    (address,) = pay(["8.00"])
    accounts = TronAccounts.of(node)
    funder = resource_account(node, trx=10 * TRX, energy_stake=10_000 * TRX)
    funder_t = tron_address(funder.address)
    short = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder, delegation_margin_percent=-10)

    # When it runs
    assert short.execute(short.plan()) == 0

    # Then the transfer ran out of energy, moved nothing, and the delegation was taken back
    (transfer,) = sent(node, "TriggerSmartContract", owner=address)
    assert transfer.info is not None and transfer.info["receipt"]["result"] == "OUT_OF_ENERGY"
    assert journal_entry(tmp_path / "j.json", address)["step"] == "failed"
    assert accounts.delegated(receiver=address) == {}
    assert accounts.token_balance(usdt(), address) == 8 * TRX and address in listed(client)

    # And the next run plans the address again and sweeps it
    again = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder)
    assert again.execute(again.plan()) == 1
    assert accounts.token_balance(usdt(), address) == 0 and address not in listed(client)
    assert accounts.delegated(owner=funder_t) == {}


def test_an_address_holding_less_than_the_gateway_counts_is_refused(
    client: Client, pay: Pay, node: TronNode, mnemonic: str, treasury: str, tmp_path: Path
) -> None:
    # Given a paid order whose address then lost a unit (moved with its own key)
    (address,) = pay(["5.00"])
    accounts = TronAccounts.of(node)
    accounts.pay_token(usdt(), address, PAYER, 1)
    node.mine(2)
    funder = resource_account(node, trx=50 * TRX)

    # When the tool plans and executes
    tool = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder)
    plan = tool.plan()
    tool.execute(plan)

    # Then the address is flagged, nothing is sent to or from it, and the gateway still counts it
    (line,) = [line for line in plan.lines if line.address.address == address]
    assert line.refused is not None and line.refused.startswith("SHORT")
    assert not sent(node, "TransferContract", to=address) and not sent(node, "TriggerSmartContract", owner=address)
    assert accounts.token_balance(usdt(), address) == 5 * TRX - 1
    assert address in listed(client)


@pytest.mark.parametrize("bandwidth_stake", [True, False])
def test_an_address_without_free_bandwidth_is_lent_bandwidth_or_burns_it(
    bandwidth_stake: bool,
    client: Client,
    pay: Pay,
    node: TronNode,
    mnemonic: str,
    treasury: str,
    tmp_path: Path,
) -> None:
    # Given a paid address, activated, that used its free bandwidth today, and a resource account
    # staked for energy, and for bandwidth or not
    (address,) = pay(["3.00"])
    accounts = TronAccounts.of(node)
    accounts.use_free_bandwidth(address, 600)
    funder = resource_account(node, trx=10 * TRX, energy_stake=10_000 * TRX)
    funder_t = tron_address(funder.address)
    if bandwidth_stake:
        accounts.stake(funder_t, bandwidth_sun=1_000 * TRX)

    # When it is swept
    tool = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder)
    plan = tool.plan()
    assert tool.execute(plan) == 1

    # Then its energy was lent, and its bandwidth lent and taken back, or sent as TRX it burned
    (line,) = plan.to_sweep
    (transfer,) = sent(node, "TriggerSmartContract", owner=address)
    assert transfer.info is not None
    receipt = transfer.info["receipt"]
    resources = [tx.value.get("resource", "BANDWIDTH") for tx in sent(node, "DelegateResourceContract", to=address)]
    if bandwidth_stake:
        assert sorted(resources) == ["BANDWIDTH", "ENERGY"] and line.fund == 0
        assert receipt["net_usage"] == line.bandwidth and "net_fee" not in receipt
    else:
        assert resources == ["ENERGY"] and line.fund == line.bandwidth * 1_000
        assert receipt["net_fee"] == line.fund and accounts.trx(address) == 0
    assert len(sent(node, "UnDelegateResourceContract", to=address)) == len(resources)
    assert accounts.delegated(receiver=address) == {}
    assert accounts.token_balance(usdt(), address) == 0 and address not in listed(client)


def test_an_address_whose_loan_no_longer_fits_when_its_turn_comes_burns_instead(
    client: Client, pay: Pay, node: TronNode, mnemonic: str, treasury: str, tmp_path: Path
) -> None:
    # Given two paid orders (a fresh treasury: the second waits for the first), a stake that
    # covers both, and the resource account's energy used up elsewhere meanwhile
    first_address, second_address = pay(["1.00", "2.00"])
    accounts = TronAccounts.of(node)
    funder = resource_account(node, trx=50 * TRX, energy_stake=5_000 * TRX)
    funder_t = tron_address(funder.address)

    def use_energy_elsewhere(key: str, step: str) -> None:
        if step == "undelegated":
            holder = accounts.holder(funder_t)
            assert holder is not None
            holder.energy_used = holder.energy_limit

    # When it runs
    tool = sweeper(client, node, mnemonic, tmp_path / "j.json", treasury, funder, on_step=use_energy_elsewhere)
    plan = tool.plan()
    assert [line.mode for line in plan.to_sweep] == ["delegate", "delegate"]
    assert tool.execute(plan) == 2

    # Then the second was measured again when its turn came, and sent the TRX it burns
    batches = {line.batch: line.address.address for line in plan.to_sweep}
    second = journal_entry(tmp_path / "j.json", batches[2])
    assert second["mode"] == "burn" and second["fund"] == USDT_ENERGY_TO_HOLDER * ENERGY_PRICE_SUN
    assert not sent(node, "DelegateResourceContract", to=batches[2])
    assert accounts.trx(batches[2]) == 0
    assert {first_address, second_address} == set(batches.values())
    assert accounts.token_balance(usdt(), treasury) == 3 * TRX
