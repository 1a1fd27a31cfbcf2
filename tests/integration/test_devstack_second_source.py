"""The local stack with two RPC endpoints for `local` (DEVSTACK_ENDPOINTS=2): the scanner reads
through a pass-through proxy and anvil confirms each deposit; `python -m devstack fabricate` has
the proxy show a payment that never happened, and the merchant watches it held, never confirmed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.__main__ import banner
from devstack.chain import ChainInfo
from devstack.stack import Stack, start_stack
from devstack.template import REPO_ROOT
from tests.integration.test_devstack_chain import new_order, read_order


def devstack(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m devstack ...` against the stack of `state_dir`, as a developer runs it."""
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DEVSTACK_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack with two endpoints for the module (xpub mode: no settlement to deploy)."""
    running = start_stack(port=0, state_dir=tmp_path_factory.mktemp("two-endpoints"), endpoints=2, local_mode="xpub")
    try:
        yield running
    finally:
        running.stop()


def test_the_scanner_reads_through_the_proxy_and_the_banner_says_how_to_forge(stack: Stack) -> None:
    assert stack.forger is not None
    parameter = stack.rpc_endpoints_parameter
    value = boto3.client("ssm").get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    assert json.loads(value) == {"local": [stack.forger.url, stack.chain.info.rpc_url]}
    text = banner(stack)
    assert f"`local` through two endpoints: {stack.forger.url}" in text
    assert "python -m devstack fabricate <orderId>" in text


def test_fabricate_shows_a_payment_the_gateway_holds_and_never_confirms(stack: Stack) -> None:
    # Given an order on `local`
    order = new_order(stack)
    # When the proxy is made to show a payment of it that is on no chain
    result = devstack(stack.state_dir, "fabricate", order["orderId"])
    # Then the command says so, and follows the order until the deposit is held
    assert result.returncode == 0, result.stdout + result.stderr
    (txid,) = re.findall(r"^txid (0x[0-9a-f]{64})", result.stdout, flags=re.MULTILINE)
    assert "by the proxy only" in result.stdout
    assert "GET /v1/deposits lists it: disputed (second_source_disagrees)" in result.stdout
    # And the order never turned confirmed: nothing was paid
    done = read_order(stack, order["orderId"])
    assert done["status"] != "confirmed" and done["paidAmount"] == "0.00"
    assert stack.chain.anvil.rpc("eth_getTransactionReceipt", [txid]) is None


def test_a_real_payment_is_confirmed_by_the_second_endpoint_and_credited(stack: Stack) -> None:
    order = new_order(stack)
    result = devstack(stack.state_dir, "pay", order["orderId"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_order(stack, order["orderId"])["status"] == "confirmed"


def test_fabricate_is_refused_by_a_stack_with_one_endpoint(tmp_path: Path) -> None:
    # Given the state of a stack started without the proxy (its merchant and chain files, no forger.json)
    (tmp_path / "merchant.json").write_text(
        json.dumps({"baseUrl": "http://127.0.0.1:9", "apiKey": "ak_x", "secretKey": "sk_x"}), encoding="utf-8"
    )
    chain = ChainInfo("local", "http://127.0.0.1:9", 31337, "0x" + "11" * 20, 6, "0x" + "22" * 20)
    (tmp_path / "chain.json").write_text(json.dumps(chain.to_json()), encoding="utf-8")
    # When fabricate is asked
    result = devstack(tmp_path, "fabricate", "any-order")
    # Then it is refused, saying how to start the stack with two endpoints, before anything is sent
    assert result.returncode == 2
    assert "one RPC endpoint" in result.stderr and "DEVSTACK_ENDPOINTS=2 make dev" in result.stderr
