"""The local stack behind `make dev`: `python -m devstack` over real HTTP, driven by the simple
reference client, and `devstack.stack.start_stack` in-process for what only the inside shows
(the API Gateway events the handler receives, failures, the development wallet)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.stack import Stack, start_stack
from devstack.template import REPO_ROOT
from usdt_gateway.address_codec import b58check_decode
from usdt_gateway.hdwallet import derive_address

READY_TIMEOUT_S = 60
HANG_GUARD_S = 60  # waits for what takes a second or two, longer on a loaded machine
STOP_TIMEOUT_S = 10
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# BIP44 account xpubs of the "abandon x11 about" mnemonic (bip_utils' test vectors).
ABANDON_MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
ABANDON_EVM_XPUB = (
    "xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsBngh5GFZaM6si3yZdUsT8ddYM3PwnATt"
)
ABANDON_TRON_XPUB = (
    "xpub6D1AabNHCupeiLM65ZR9UStMhJ1vCpyV4XbZdyhMZBiJXALQtmn9p42VTQckoHVn8WNqS7dqnJokZHAHcHGoaQgmv8D45oNUKx6DZMNZBCd"
)


# --- the simple reference client (as given in the issue; only the URL and keys are ours) ---


def generate_signature(secret_key: str, payload: Any, timestamp: str) -> str:
    message = f"{timestamp}{json.dumps(payload, sort_keys=True)}"
    signature = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return signature


def create_order(base_url: str, api_key: str, secret_key: str, payload: dict[str, Any]) -> requests.Response:
    url = f"{base_url}/v1/payment/order"
    timestamp = str(int(time.time() * 1000))
    signature = generate_signature(secret_key, payload, timestamp)
    headers = {
        "Content-Type": "application/json",
        "API-Key": api_key,
        "Request-Time": timestamp,
        "Signature-V1": signature,
    }
    return requests.post(url, headers=headers, json=payload)  # noqa: S113 - the reference client, unmodified


def get_order(base_url: str, api_key: str, secret_key: str, order_id: str) -> requests.Response:
    url = f"{base_url}/v1/payment/order/{order_id}"
    timestamp = str(int(time.time() * 1000))
    signature = generate_signature(secret_key, "", timestamp)
    headers = {"API-Key": api_key, "Request-Time": timestamp, "Signature-V1": signature}
    return requests.get(url, headers=headers)  # noqa: S113 - the reference client, unmodified


# --- python -m devstack as a subprocess ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    port: int
    base_url: str
    state_dir: Path
    output: Path
    merchant: dict[str, str]

    def stdout(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def wait_for_ready(process: subprocess.Popen[bytes], output: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in output.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("ready on "):
                return line.removeprefix("ready on ").strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no 'ready on' line (exit code {process.poll()}):\n{output.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def devstack_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    state_dir = tmp_path_factory.mktemp("devstack-state")
    output = state_dir.parent / f"{state_dir.name}.out"
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DEVSTACK_STATE_DIR": str(state_dir)}
    with output.open("wb") as out:
        # A process group of its own, as `make dev` in a terminal: a Ctrl-C goes to the whole group.
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    try:
        base_url = wait_for_ready(process, output, READY_TIMEOUT_S)
        merchant = json.loads((state_dir / "merchant.json").read_text(encoding="utf-8"))
        yield RunningStack(process, port, base_url, state_dir, output, merchant)
    finally:
        if process.poll() is None:  # a test failed before the stack was stopped
            # SIGTERM first: the stack stops its chain, which runs in a session of its own
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tron_deposit_addresses(state_dir: Path, count: int = 50) -> set[str]:
    wallet = json.loads((state_dir / "dev-wallet.json").read_text(encoding="utf-8"))
    return {derive_address(wallet["tronXpub"], "tron", i) for i in range(count)}


@contextlib.contextmanager
def swapped_handler(function: Any, handler: Callable[[dict[str, Any], Any], Any]) -> Iterator[None]:
    """Serve requests with `handler` for the duration, then put the real one back."""
    original = function.handler
    function.handler = handler
    try:
        yield
    finally:
        function.handler = original


def test_ready_line_names_the_port_and_the_banner_the_merchant_file(devstack_process: RunningStack) -> None:
    # Given the stack started with PORT and DEVSTACK_STATE_DIR
    # When its output is read
    out = devstack_process.stdout()
    # Then it serves on that port, and the banner shows the merchant file, curl and Python examples
    assert devstack_process.base_url == f"http://127.0.0.1:{devstack_process.port}"
    assert str(devstack_process.state_dir / "merchant.json") in out
    assert "ts=$(date +%s%3N)" in out and "openssl dgst -sha256 -hmac" in out
    assert devstack_process.merchant["apiKey"] in out
    assert "python examples/create_order.py" in out
    # And the local chain, its token and the command that pays a `local` order
    chain = json.loads((devstack_process.state_dir / "chain.json").read_text(encoding="utf-8"))
    assert chain["rpcUrl"] in out and chain["tokenContract"] in out and chain["payer"] in out
    assert "-m devstack pay <orderId>" in out and f"DEVSTACK_STATE_DIR={devstack_process.state_dir}" in out
    assert "tron, eth, bsc orders can be created but are not scanned" in out
    # And the settlement of `local`: its mode, the demo merchant's factory, treasury, owner and
    # relayer as settlement.json holds them, the owner's key only in its own file
    settlement = json.loads((devstack_process.state_dir / "settlement.json").read_text(encoding="utf-8"))
    assert "`local` in contract mode" in out and "every 2 s" in out
    for line, value in [
        ("factory", settlement["factory"]),
        ("treasury", settlement["treasury"]),
        ("owner", settlement["owner"]),
        ("relayer", settlement["relayer"]),
    ]:
        assert f"  {line.ljust(13)}{value}   (" in out, line
    assert settlement["relayerKeyId"] in out and str(devstack_process.state_dir / "owner-key.json") in out
    owner_key = devstack_process.state_dir / "owner-key.json"
    assert oct(owner_key.stat().st_mode & 0o777) == "0o600"
    assert json.loads(owner_key.read_text(encoding="utf-8"))["privateKey"] not in out
    assert set(devstack_process.merchant) == {
        "merchantId",
        "apiKey",
        "secretKey",
        "webhookSecret",
        "webhookUrl",
        "baseUrl",
    }
    assert devstack_process.merchant["baseUrl"] == devstack_process.base_url
    # And the webhook receiver the demo merchant's URL points at, its log, the compressed retries
    assert devstack_process.merchant["webhookUrl"].startswith("http://127.0.0.1:")
    assert devstack_process.merchant["webhookUrl"] in out and str(devstack_process.state_dir / "webhooks.jsonl") in out
    assert "retried after 1, 2, 5, 10, 30, 60 s" in out and "DEVSTACK_WEBHOOK_URL=" in out


def _banner_section(out: str, title: str) -> str:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return "\n".join(line.strip() for line in lines[start:end])


needs_curl = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl") and shutil.which("bash")), reason="needs curl and openssl"
)


def run_in_bash(script: str) -> subprocess.CompletedProcess[str]:
    """A banner example, run as a developer pastes it (its timestamps need GNU date's %N)."""
    date_ms = subprocess.run(["date", "+%s%3N"], capture_output=True, text=True, check=True).stdout.strip()
    if not date_ms.isdigit():
        pytest.skip("this date(1) has no %N (GNU date needed by the example)")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=False)


@needs_curl
def test_banner_curl_example_runs_as_printed(devstack_process: RunningStack) -> None:
    # Given the signed curl example exactly as the banner prints it
    script = _banner_section(devstack_process.stdout(), "Signed GET")
    # When it is run in bash
    result = run_in_bash(script)
    # Then the signed list request succeeds
    assert result.returncode == 0, result.stderr
    assert "orders" in json.loads(result.stdout), result.stdout


@needs_curl
def test_banner_test_webhook_example_reaches_the_receiver(devstack_process: RunningStack) -> None:
    # Given the signed POST /v1/webhooks/test example exactly as the banner prints it
    script = _banner_section(devstack_process.stdout(), "Send a test webhook")
    # When it is run in bash
    result = run_in_bash(script)
    # Then the stack's receiver took the signed webhook.test (204) and printed its line
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["ok"], answer["statusCode"], answer["url"]) == (True, 204, devstack_process.merchant["webhookUrl"])
    deadline = time.monotonic() + HANG_GUARD_S
    line = f"webhook webhook.test  order -  status -  sequence 0  signature ok  ({answer['deliveryId']})"
    while line not in devstack_process.stdout() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in devstack_process.stdout()
    (logged,) = [
        json.loads(entry)
        for entry in (devstack_process.state_dir / "webhooks.jsonl").read_text().splitlines()
        if json.loads(entry)["webhookId"] == answer["deliveryId"]
    ]
    assert (logged["type"], logged["signature"]) == ("webhook.test", "ok")


def test_banner_python_example_runs_as_printed(devstack_process: RunningStack) -> None:
    # Given the Python example exactly as the banner prints it
    out = devstack_process.stdout()
    start = out.index("\n", out.index("Or in Python")) + 1
    snippet = out[start : out.index("Ctrl-C stops the stack.")]
    # When it is run
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, check=False)
    # Then it prints the created order
    assert result.returncode == 0, result.stderr
    assert "'status': 'pending'" in result.stdout and "'orderId': 'demo-" in result.stdout


def test_reference_client_creates_and_reads_an_order(devstack_process: RunningStack) -> None:
    # Given the demo merchant's keys and a new order id
    stack, m = devstack_process, devstack_process.merchant
    payload = {"network": "tron", "currency": "USDT", "amount": "50.00", "orderId": f"demo-{secrets.token_hex(6)}"}

    # When the reference client creates the order, then reads it back
    before_ms = time.time() * 1000
    created = create_order(stack.base_url, m["apiKey"], m["secretKey"], payload)
    after_ms = time.time() * 1000
    fetched = get_order(stack.base_url, m["apiKey"], m["secretKey"], payload["orderId"])

    # Then the order is created with a Tron deposit address of the development wallet
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["orderId"] == payload["orderId"]
    assert (order["network"], order["currency"], order["amount"]) == ("tron", "USDT", "50.00")
    assert order["address"].startswith("T") and b58check_decode(order["address"])[0] == 0x41
    assert order["address"] in tron_deposit_addresses(stack.state_dir)
    assert order["paymentUrl"] == f"{stack.base_url}/pay/{order['publicId']}"
    assert order["qrCodeData"].startswith("data:image/png;base64,")
    assert base64.b64decode(order["qrCodeData"].split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert order["address"] in order["paymentUri"]
    assert order["status"] == "pending"
    assert before_ms - 1 <= order["createdAt"] <= after_ms and order["expiresAt"] > order["createdAt"]
    # And reading it back gives the same pending order, nothing paid yet
    assert fetched.status_code == 200, fetched.text
    again = fetched.json()
    assert again["address"] == order["address"] and again["status"] == "pending"
    assert again["paidAmount"] == "0.00"
    assert again["txid"] is None and again["confirmedAt"] is None


def test_repeating_a_create_returns_the_same_order(devstack_process: RunningStack) -> None:
    # Given an order created by the reference client
    stack, m = devstack_process, devstack_process.merchant
    payload = {"network": "tron", "currency": "USDT", "amount": "50.00", "orderId": f"demo-{secrets.token_hex(6)}"}
    first = create_order(stack.base_url, m["apiKey"], m["secretKey"], payload)
    assert first.status_code == 201, first.text

    # When the identical request is sent again (freshly signed)
    second = create_order(stack.base_url, m["apiKey"], m["secretKey"], payload)

    # Then the existing order comes back: 200, same address and public id
    assert second.status_code == 200, second.text
    assert second.json()["address"] == first.json()["address"]
    assert second.json()["publicId"] == first.json()["publicId"]


def test_public_endpoints_need_no_key_and_allow_cross_origin(devstack_process: RunningStack) -> None:
    # Given a payer's page on another origin
    stack, m = devstack_process, devstack_process.merchant
    payload = {"network": "tron", "currency": "USDT", "amount": "12.34", "orderId": f"demo-{secrets.token_hex(6)}"}
    order = create_order(stack.base_url, m["apiKey"], m["secretKey"], payload).json()
    origin = {"Origin": "http://localhost:8080"}

    # When it reads the networks and the order's public view, without any key
    networks = requests.get(f"{stack.base_url}/v1/networks", headers=origin, timeout=10)
    public = requests.get(f"{stack.base_url}/v1/public/orders/{order['publicId']}", headers=origin, timeout=10)

    # Then both answer, with the CORS header
    assert networks.status_code == 200, networks.text
    assert "tron" in {n["network"] for n in networks.json()["networks"]}
    assert networks.headers.get("Access-Control-Allow-Origin") in ("*", origin["Origin"])
    assert public.status_code == 200, public.text
    assert public.json()["address"] == order["address"] and public.json()["amount"] == "12.34"
    assert public.headers.get("Access-Control-Allow-Origin") in ("*", origin["Origin"])


def test_unknown_path_is_a_json_404(devstack_process: RunningStack) -> None:
    # Given a path no template route declares
    # When it is requested
    response = requests.get(f"{devstack_process.base_url}/v1/nothing/here", timeout=10)
    # Then the answer is a JSON 404
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "ROUTE_NOT_FOUND"


def test_undeclared_method_is_a_json_405_with_allow(devstack_process: RunningStack) -> None:
    # Given a route the template declares for GET (and its preflight, OPTIONS) only
    # When it is called with DELETE
    response = requests.delete(f"{devstack_process.base_url}/v1/networks", timeout=10)
    # Then the answer is a JSON 405 naming the allowed methods
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["Allow"] == "GET, OPTIONS"


def test_preflight_reaches_the_function_on_public_routes_only(devstack_process: RunningStack) -> None:
    # Given a browser's preflight of a GET with a header of its own, from another origin
    preflight = {
        "Origin": "http://localhost:8080",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-requested-with",
    }
    # When it is sent to a public route and to a signed one
    public = requests.options(f"{devstack_process.base_url}/v1/networks", headers=preflight, timeout=10)
    private = requests.options(f"{devstack_process.base_url}/v1/payment/orders", headers=preflight, timeout=10)
    # Then the public route's function allows it; the other path has no OPTIONS, so the stack refuses it
    assert public.status_code == 204
    assert public.headers["Access-Control-Allow-Origin"] == "*"
    assert private.status_code == 405
    assert private.json()["code"] == "METHOD_NOT_ALLOWED"
    assert not [h for h in private.headers if h.lower().startswith("access-control-")]


def test_unsigned_private_request_is_refused(devstack_process: RunningStack) -> None:
    # Given no API key
    # When an order is read
    response = requests.get(f"{devstack_process.base_url}/v1/payment/order/whatever", timeout=10)
    # Then the handler refuses it
    assert response.status_code == 401
    assert response.json()["code"] == "MISSING_CREDENTIALS"


def test_example_script_creates_an_order(devstack_process: RunningStack) -> None:
    # Given the running stack and its state dir
    # When examples/create_order.py is run against it
    result = subprocess.run(
        [sys.executable, "examples/create_order.py", str(devstack_process.state_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then it creates an order and reads it back
    assert result.returncode == 0, result.stdout + result.stderr
    assert "-> 201" in result.stdout and "-> 200" in result.stdout
    order_id = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("orderId"))
    assert order_id.startswith("demo-")
    m = devstack_process.merchant
    fetched = get_order(devstack_process.base_url, m["apiKey"], m["secretKey"], order_id)
    assert fetched.status_code == 200 and fetched.json()["status"] == "pending"
    # And the pay command it prints runs the venv's Python (a bare `python` lacks the packages)
    pay_line = next(line for line in result.stdout.splitlines() if line.startswith("pay it"))
    state, python, *command = shlex.split(pay_line.removeprefix("pay it"))
    assert state == f"DEVSTACK_STATE_DIR={devstack_process.state_dir}"
    assert python == ".venv/bin/python" and (REPO_ROOT / python).is_file()
    assert command == ["-m", "devstack", "pay", order_id]


def test_log_lines_name_the_function_that_logged_them(devstack_process: RunningStack) -> None:
    # Given an order created through the API, and the scanner's first run on the local chain
    m = devstack_process.merchant
    order_id = f"svc-{secrets.token_hex(4)}"
    payload = {"network": "local", "currency": "USDT", "amount": "5.00", "orderId": order_id}
    assert create_order(devstack_process.base_url, m["apiKey"], m["secretKey"], payload).status_code == 201

    def logged(message: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in devstack_process.stdout().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("message") == message]

    deadline = time.monotonic() + READY_TIMEOUT_S
    while not logged("scan cursor started") and time.monotonic() < deadline:
        time.sleep(0.1)
    # When the stack's log lines are read
    created = [line for line in logged("order created") if line.get("order_id") == order_id]
    scanner = logged("scan cursor started")
    # Then each names the service of the function that logged it, as the template sets it per
    # function (POWERTOOLS_SERVICE_NAME), not the first function's for all, and that function
    assert [(line["service"], line["function_name"]) for line in created] == [("api", "usdt-gateway-local-ApiFunction")]
    assert scanner
    assert {(line["service"], line["function_name"]) for line in scanner} == {("scanner", "usdt-gateway-local-scanner")}


def test_banner_admin_cli_line_reports_the_scanned_network_healthy(devstack_process: RunningStack) -> None:
    # Given the admin CLI line exactly as the banner prints it (the stack's aws.env, then status)
    line = next(line for line in devstack_process.stdout().splitlines() if line.lstrip().startswith("admin CLI"))
    command = line.split("admin CLI", 1)[1].strip()
    assert command.startswith(". ") and "usdt_gateway.admin status" in command
    env_file = devstack_process.state_dir / "aws.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    # When it is run in bash from the repository, once the scanner has written its cursor
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        result = subprocess.run(
            ["bash", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Then it reached this stack's moto and chain: `local` is healthy, the others not scanned
    assert result.returncode == 0, result.stdout + result.stderr
    assert "local: ok" in result.stdout and "endpoint 127.0.0.1:" in result.stdout
    assert "tron: not scanned (no RPC endpoint)" in result.stdout
    # And the file points at moto, never at AWS
    exports = env_file.read_text(encoding="utf-8")
    assert "export TABLE_NAME=usdt-gateway-local" in exports and "export AWS_ENDPOINT_URL=http://127.0.0.1:" in exports


def test_sigint_stops_the_stack_cleanly(devstack_process: RunningStack) -> None:
    # Given the running stack (the last test of this module to use it)
    process = devstack_process.process
    assert process.poll() is None
    # When a Ctrl-C in its terminal sends SIGINT to its process group
    os.killpg(process.pid, signal.SIGINT)
    # Then it exits 0 within the time limit and its port is closed
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0, devstack_process.stdout()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{devstack_process.base_url}/v1/networks", timeout=2)
    # And it stopped quietly: the scanner before the chain (no failed cycle), no traceback
    shutdown = devstack_process.stdout().partition("\nstopping\n")[2]
    assert "scan cycle failed" not in shutdown and "Traceback" not in shutdown, shutdown


# --- start_stack in-process ---------------------------------------------------------------


def test_wallet_is_created_once_and_reused(tmp_path: Path) -> None:
    # Given an empty state dir
    # When the stack starts twice on it
    with start_stack(state_dir=tmp_path) as first:
        wallet = (tmp_path / "dev-wallet.json").read_text(encoding="utf-8")
        first_merchant = first.merchant
    with start_stack(state_dir=tmp_path) as second:
        second_merchant = second.merchant
    # Then the wallet file is written once (owner-only) and kept; the merchant is new each time
    saved = json.loads(wallet)
    assert len(saved["mnemonic"].split()) == 24
    assert saved["evmXpub"].startswith("xpub") and saved["tronXpub"].startswith("xpub")
    assert (tmp_path / "dev-wallet.json").read_text(encoding="utf-8") == wallet
    assert (tmp_path / "dev-wallet.json").stat().st_mode & 0o077 == 0
    assert (tmp_path / "merchant.json").stat().st_mode & 0o077 == 0
    assert first_merchant["apiKey"] != second_merchant["apiKey"]


def test_existing_mnemonic_gives_its_standard_account_xpubs(tmp_path: Path) -> None:
    # Given a wallet file holding only a known mnemonic
    (tmp_path / "dev-wallet.json").write_text(json.dumps({"mnemonic": ABANDON_MNEMONIC}), encoding="utf-8")
    # When the stack starts and an order is created on tron
    with start_stack(state_dir=tmp_path) as running:
        payload = {"network": "tron", "currency": "USDT", "amount": "1.00", "orderId": "vector-0"}
        response = create_order(running.base_url, running.merchant["apiKey"], running.merchant["secretKey"], payload)
    # Then the xpubs are the BIP44 account keys of that mnemonic and the first address is index 0
    saved = json.loads((tmp_path / "dev-wallet.json").read_text(encoding="utf-8"))
    assert (saved["evmXpub"], saved["tronXpub"]) == (ABANDON_EVM_XPUB, ABANDON_TRON_XPUB)
    assert response.status_code == 201, response.text
    assert response.json()["address"] == "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"


def test_stop_puts_the_environment_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no endpoint override and no table name in the environment
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("TABLE_NAME", raising=False)
    # When a stack starts and stops
    running = start_stack(state_dir=tmp_path)
    during = (os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("TABLE_NAME"))
    running.stop()
    # Then what it set is gone again
    assert during == (running.aws_endpoint, running.table_name)
    assert "AWS_ENDPOINT_URL" not in os.environ and "TABLE_NAME" not in os.environ


@pytest.fixture
def captured_events(stack: Stack) -> Iterator[list[dict[str, Any]]]:
    """Events the API function receives while the test runs."""
    function = stack.functions["ApiFunction"]
    original, events = function.handler, []

    def recording(event: dict[str, Any], context: Any) -> Any:
        events.append(event)
        return original(event, context)

    function.handler = recording
    try:
        yield events
    finally:
        function.handler = original


def signed(stack: Stack, body: Any = "") -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    return {
        "API-Key": stack.merchant["apiKey"],
        "Request-Time": timestamp,
        "Signature-V1": generate_signature(stack.merchant["secretKey"], body, timestamp),
    }


def test_event_is_an_api_gateway_rest_proxy_event(stack: Stack, captured_events: list[dict[str, Any]]) -> None:
    # Given a signed GET of an order, with a repeated query parameter and a repeated header
    url = f"{stack.base_url}/v1/payment/order/ord-1?a=1&a=2&empty="
    headers = [*signed(stack).items(), ("X-Twice", "one"), ("X-Twice", "two")]

    # When it is sent
    sent_ms = time.time() * 1000
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        lines = [
            f"GET {url.removeprefix(stack.base_url)} HTTP/1.1",
            f"Host: 127.0.0.1:{stack.port}",
            *(f"{k}: {v}" for k, v in headers),
            "Connection: close",
            "",
            "",
        ]
        sock.sendall("\r\n".join(lines).encode())
        while sock.recv(65536):
            pass

    # Then the function receives what API Gateway would send for the template's resource
    (event,) = captured_events
    assert event["resource"] == "/v1/payment/order/{orderId}"
    assert event["path"] == "/v1/payment/order/ord-1" and event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"orderId": "ord-1"}
    assert event["queryStringParameters"] == {"a": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "empty": [""]}
    assert event["headers"]["X-Twice"] == "two" and event["multiValueHeaders"]["X-Twice"] == ["one", "two"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["stageVariables"] is None and event["body"] is None and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/v1/payment/order/{orderId}" and ctx["httpMethod"] == "GET"
    assert ctx["path"] == "/live/v1/payment/order/ord-1" and ctx["stage"] == "live"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert sent_ms - 1 <= ctx["requestTimeEpoch"] <= time.time() * 1000
    assert len(ctx["requestId"]) == 36


def test_event_without_query_has_none_and_binary_body_is_base64(
    stack: Stack, captured_events: list[dict[str, Any]]
) -> None:
    # Given a body that is not UTF-8
    body = b"\xff\xfe\x00binary"
    # When it is posted to a declared route
    requests.post(f"{stack.base_url}/v1/payment/order", data=body, headers=signed(stack), timeout=10)
    # Then the event carries it base64-encoded, and no query parameters as None
    (event,) = captured_events
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == body
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None


def test_handler_exception_is_a_500_and_the_server_keeps_serving(stack: Stack) -> None:
    # Given a function whose handler raises
    function = stack.functions["ApiFunction"]

    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    with swapped_handler(function, broken):
        # When a request reaches it
        failed = requests.get(f"{stack.base_url}/v1/networks", timeout=10)
    # Then the client gets a JSON 500, and the next request is served normally
    assert failed.status_code == 500 and failed.json()["code"] == "INTERNAL_ERROR"
    assert requests.get(f"{stack.base_url}/v1/networks", timeout=10).status_code == 200


def test_malformed_proxy_response_is_a_502(stack: Stack) -> None:
    # Given a function that returns its body as an object instead of a string
    function = stack.functions["ApiFunction"]

    def malformed(event: dict[str, Any], context: Any) -> Any:
        return {"statusCode": 200, "body": {"not": "a string"}}

    with swapped_handler(function, malformed):
        # When a request reaches it
        response = requests.get(f"{stack.base_url}/v1/networks", timeout=10)
    # Then the client gets what API Gateway gives for a malformed Lambda proxy response: a 502
    assert response.status_code == 502 and response.json()["code"] == "MALFORMED_LAMBDA_RESPONSE"


def test_concurrent_requests_reach_the_function_one_at_a_time(stack: Stack) -> None:
    # Given a function that notes how many invocations run at once (and takes a little while)
    function = stack.functions["ApiFunction"]
    original, active, peak, guard = function.handler, [0], [0], threading.Lock()

    def counting(event: dict[str, Any], context: Any) -> Any:
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.02)
            return original(event, context)
        finally:
            with guard:
                active[0] -= 1

    ids = [f"missing-{i}" for i in range(12)]
    answers: dict[str, dict[str, Any]] = {}

    def read(order_id: str) -> None:
        response = requests.get(f"{stack.base_url}/v1/payment/order/{order_id}", headers=signed(stack), timeout=30)
        answers[order_id] = {"status": response.status_code, **response.json()}

    threads = [threading.Thread(target=read, args=(order_id,)) for order_id in ids]
    function.handler = counting
    try:
        # When signed reads of different orders are sent in parallel
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        function.handler = original
    # Then the function ran them one at a time, like one Lambda container, and each answer is its own
    assert peak[0] == 1
    assert set(answers) == set(ids)
    for order_id, answer in answers.items():
        assert answer["status"] == 404 and answer["code"] == "ORDER_NOT_FOUND"
        assert f"'{order_id}'" in answer["message"]


def test_function_environment_comes_from_the_template(stack: Stack) -> None:
    # Given the running in-process stack
    # When the function's configuration is read
    from usdt_gateway.config import settings

    s = settings()
    # Then it carries the template's values, resolved for local use
    assert s.table_name == stack.table_name and s.kms_key_id == stack.kms_key_id
    assert s.enabled_networks == "local,tron,eth,bsc" and stack.networks == ["local", "tron", "eth", "bsc"]
    assert json.loads(s.networks_config) == {"local": {"tokenContract": stack.chain.info.token_contract}}
    assert s.rate_limit_per_minute == 100 and s.public_rate_limit_per_minute == 60
    assert s.public_base_url == stack.base_url and s.local_mode is True
    assert os.environ["POWERTOOLS_SERVICE_NAME"] == "api" and os.environ["AWS_ENDPOINT_URL"] == stack.aws_endpoint
    # And the scanner's own variables sit beside the API's: its endpoints parameter, short scans
    assert os.environ["RPC_ENDPOINTS_PARAMETER"] == "/usdt-gateway/rpc-endpoints"
    assert os.environ["SCAN_SECONDS"] == "2" and os.environ["RATE_LIMIT_PER_MINUTE"] == "100"
    # And the webhook functions': the template's queues, local mode's compressed retry schedule
    queues = stack.queue_urls
    assert (s.webhook_queue_url, s.webhook_dlq_url) == (queues["WebhookQueue"], queues["WebhookDLQ"])
    assert s.webhook_retry_schedule == "1,2,5,10,30,60" and s.webhook_timeout_seconds == 15
    assert list(stack.functions) == [
        "ApiFunction",
        "PaymentPageFunction",
        "ScannerFunction",
        "WebhookFunction",
        "OutboxFunction",
        "SettlementFunction",
    ]
    # And the settlement's: the relayer's key, the local stack's quick-sweep settings
    assert os.environ["RELAYER_KEY_ID"] == stack.relayer_key_id
    assert (os.environ["SETTLEMENT_MIN_AMOUNT"], os.environ["SETTLEMENT_MAX_AGE_SECONDS"]) == ("1", "60")
