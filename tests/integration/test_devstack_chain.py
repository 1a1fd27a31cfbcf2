"""The local stack's chain: anvil with the test USDT, the `local` network scanned by the real
ScannerFunction handler in a loop, and `python -m devstack pay` paying orders over HTTP and the
chain, as a developer does it after `make dev`."""

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
import pytest
import requests

from devstack.stack import Stack, start_stack
from devstack.template import REPO_ROOT
from tests.integration.test_devstack import create_order, get_order, swapped_handler

HANG_GUARD_S = 60  # waits for what takes a second or two, longer on a loaded machine
# The order's status lines of `pay` (not the lines on its money, `funds ...`, that follow them).
STATUS_LINE = re.compile(r"^\s*(\d+\.\d) s  (?!funds )(\w+)")


def run_pay(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack pay ...` against the running stack, as a developer runs it."""
    env = {**os.environ, "DEVSTACK_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "devstack", "pay", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def statuses(stdout: str) -> list[tuple[float, str]]:
    return [(float(m[1]), m[2]) for line in stdout.splitlines() if (m := STATUS_LINE.match(line))]


def printed_txid(stdout: str) -> str:
    found: list[str] = re.findall(r"^txid (0x[0-9a-f]{64})", stdout, flags=re.MULTILINE)
    (txid,) = found
    return txid


def new_order(stack: Stack, network: str = "local", amount: str = "25.00") -> dict[str, Any]:
    payload = {"network": network, "currency": "USDT", "amount": amount, "orderId": f"demo-{secrets.token_hex(6)}"}
    response = create_order(stack.base_url, stack.merchant["apiKey"], stack.merchant["secretKey"], payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def read_order(stack: Stack, order_id: str) -> dict[str, Any]:
    response = get_order(stack.base_url, stack.merchant["apiKey"], stack.merchant["secretKey"], order_id)
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- a stack of its own (before the module's stack starts: one stack per process) ------------


def test_stop_ends_the_scanner_loop_then_the_chain(tmp_path: Path) -> None:
    # Given a running stack whose scanner loop has invoked the scanner
    running = start_stack(state_dir=tmp_path)
    deadline = time.monotonic() + HANG_GUARD_S
    while running.scanner.invocations < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    anvil = running.chain.anvil.process
    assert anvil.poll() is None and running.scanner.invocations >= 2 and running.scanner.failures == 0

    # When it stops
    running.stop()

    # Then the loop has ended by the time stop returns (it waits for one scanner invocation at
    # most, within its join timeout) and anvil exited
    assert not running.scanner._thread.is_alive()
    assert anvil.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.post(running.chain.info.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=2)


# --- one stack for the rest of the module (the `stack` fixture of conftest.py) ---------------


def test_networks_list_local_with_the_deployed_token(stack: Stack) -> None:
    # Given the stack, which deployed TestUSDT on its chain
    # When the public networks endpoint is read
    response = requests.get(f"{stack.base_url}/v1/networks", timeout=10)
    # Then `local` is listed first with that contract, 6 decimals and its 2-confirmation policy
    assert response.status_code == 200, response.text
    networks = {n["network"]: n for n in response.json()["networks"]}
    assert list(networks) == ["local", "tron", "eth", "bsc"]
    local = networks["local"]
    assert (local["chainId"], local["decimals"], local["confirmations"]) == (31337, 6, 2)
    assert local["tokenContract"] == stack.chain.info.token_contract


def test_the_chain_runs_in_a_session_of_its_own(stack: Stack) -> None:
    # Given the stack's anvil
    anvil = stack.chain.anvil.process
    # Then a Ctrl-C in the stack's terminal does not reach it: the stack stops it after the scanner
    assert anvil.poll() is None
    assert os.getsid(anvil.pid) == anvil.pid != os.getsid(0)


def test_chain_file_has_the_facts_pay_needs_and_no_key(stack: Stack) -> None:
    # Given the chain file the stack wrote
    saved = json.loads((stack.state_dir / "chain.json").read_text(encoding="utf-8"))
    # Then it names the chain, token and payer, and holds no private key
    assert saved == {
        "network": "local",
        "rpcUrl": stack.chain.info.rpc_url,
        "chainId": 31337,
        "tokenContract": stack.chain.info.token_contract,
        "decimals": 6,
        "payer": stack.chain.info.payer,
    }
    assert stack.chain_file == stack.state_dir / "chain.json"


def test_scanner_reads_its_endpoints_from_the_ssm_parameter(stack: Stack) -> None:
    # Given the scanner's environment, resolved from the template
    parameter = os.environ["RPC_ENDPOINTS_PARAMETER"]
    # When the parameter it names is read from (moto's) SSM
    value = boto3.client("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]
    # Then it is the template's default name, a SecureString holding the local chain's endpoint
    assert parameter == "/usdt-gateway/rpc-endpoints" == stack.rpc_endpoints_parameter
    assert value["Type"] == "SecureString"
    assert json.loads(value["Value"]) == {"local": [stack.chain.info.rpc_url]}
    assert os.environ["SCAN_SECONDS"] == "2"
    assert stack.functions["ScannerFunction"].name == "usdt-gateway-local-scanner"


def test_pay_confirms_an_exact_payment_within_seconds(stack: Stack) -> None:
    # Given a new order on `local`
    order = new_order(stack, amount="25.00")

    # When `pay` pays it
    result = run_pay(stack, order["orderId"])

    # Then it prints the txid and the status moving from pending/confirming to confirmed (within
    # pay's own wait, or it would have failed)
    assert result.returncode == 0, result.stdout + result.stderr
    txid = printed_txid(result.stdout)
    seen = statuses(result.stdout)
    assert seen and seen[-1][1] == "confirmed", result.stdout
    assert {status for _, status in seen[:-1]} <= {"pending", "confirming"}, result.stdout
    # And the API shows the order confirmed by that transaction, with its deposit final
    done = read_order(stack, order["orderId"])
    assert (done["status"], done["paidAmount"], done["txid"]) == ("confirmed", "25.00", txid)
    assert [(d["txid"], d["amount"], d["final"]) for d in done["deposits"]] == [(txid, "25.00", True)]
    assert done["confirmedAt"] is not None


def test_partial_amount_leaves_the_order_underpaid(stack: Stack) -> None:
    # Given a new order of 30.00 on `local`
    order = new_order(stack, amount="30.00")
    # When `pay` sends only 10.5 of it
    result = run_pay(stack, order["orderId"], "--amount", "10.5")
    # Then the order ends underpaid, with 10.50 paid
    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses(result.stdout)[-1][1] == "underpaid", result.stdout
    after = read_order(stack, order["orderId"])
    assert (after["status"], after["paidAmount"], after["amount"]) == ("underpaid", "10.50", "30.00")


def test_no_wait_returns_once_the_transfer_is_mined(stack: Stack) -> None:
    # Given a new order on `local`
    order = new_order(stack, amount="5.00")
    # When `pay --no-wait` pays it
    result = run_pay(stack, order["orderId"], "--no-wait")
    # Then it prints the txid and that the transfer is mined, without following the order
    assert result.returncode == 0, result.stderr
    printed_txid(result.stdout)
    assert "mined in block" in result.stdout and statuses(result.stdout) == []


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda order: [order["orderId"]], "is on tron, not on the local chain"),
        (lambda order: ["no-such-order"], "no order 'no-such-order'"),
        (lambda order: [order["orderId"], "--amount", "1.0000001"], "has more than 6 decimal places"),
    ],
    ids=["tron-order", "unknown-order", "amount-too-precise"],
)
def test_pay_refuses_what_it_cannot_pay(stack: Stack, make_args: Any, message: str) -> None:
    # Given an order on tron (no chain for it locally)
    order = new_order(stack, network="tron")
    # When `pay` is asked to pay something it cannot
    result = run_pay(stack, *make_args(order))
    # Then it exits 2 with a one-line reason and sends nothing
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "txid" not in result.stdout
    assert read_order(stack, order["orderId"])["status"] == "pending"


def test_a_failing_scanner_invocation_is_retried(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a scanner handler that fails for a while
    function, loop = stack.functions["ScannerFunction"], stack.scanner
    monkeypatch.setattr(loop, "retry_pause_s", 0.05)
    failures = loop.failures

    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("RPC down")

    with swapped_handler(function, broken):
        deadline = time.monotonic() + HANG_GUARD_S
        while loop.failures < failures + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    # When the handler works again
    # Then the loop retried the failures and goes on scanning: a payment is still confirmed
    assert loop.failures >= failures + 2
    order = new_order(stack, amount="3.00")
    result = run_pay(stack, order["orderId"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses(result.stdout)[-1][1] == "confirmed"
