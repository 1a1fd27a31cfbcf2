"""`python -m usdt_gateway.admin status` against real chains: anvil (EVM) and the fake Tron full
node, each with an endpoint that is down, and the cursor a real scanner wrote."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.evm import start_anvil
from devstack.tron_node import TronNode, start_tron_node
from tests.integration.apiclient import ApiClient
from tests.integration.chains import EvmChain, TronChain, drive, evm_scanner, new_chain, new_tron_chain, tron_scanner
from tests.integration.test_scanner_evm import FlakyProxy
from usdt_gateway import config, status
from usdt_gateway.chain.rpc_config import load_endpoints

pytestmark = pytest.mark.usefixtures("gateway_env")
DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port


def run_status(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from usdt_gateway.admin import main

    code = main(["status", *argv])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out = run_status(capsys, "--json", *argv)
    return code, json.loads(out)


@pytest.fixture
def chain(settings_env: pytest.MonkeyPatch) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        yield new_chain(anvil, settings_env)


def endpoints(mp: pytest.MonkeyPatch, network: str, specs: list[Any], *, local: bool = True) -> None:
    mp.setenv("RPC_ENDPOINTS", json.dumps({network: specs}))
    if local:
        mp.setenv("LOCAL_MODE", "1")
    else:
        mp.delenv("LOCAL_MODE", raising=False)
    config.reset()


def test_evm_status_shows_heads_cursor_lag_and_the_endpoint_that_is_down(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = FlakyProxy(chain.anvil.url)
    try:
        # Given two endpoints with provider keys in their URLs, the first one down
        endpoints(settings_env, chain.network, [f"{DOWN}/v2/DEADKEY", f"{proxy.url}/v2/LIVEKEY?k=QUERYKEY"])
        live = proxy.url.removeprefix("http://")
        # When the status is asked before any scan
        code, before = report(capsys, "--network", chain.network)
        # Then it is unhealthy: no cursor yet, and the endpoint that is down
        (net,) = before["networks"]
        assert code == 1 and before["healthy"] is False
        assert net["problems"][-1] == "no scan cursor: the scanner has not scanned this network yet"

        # Given a scan, then three more blocks
        state = drive(evm_scanner(chain.network, [chain.anvil.url]))
        chain.mine(3)
        # When the status is asked
        code, after = report(capsys, "--network", chain.network)
        (net,) = after["networks"]
        # Then it shows the live head and final block, the cursor, the lag, each endpoint by host
        head = chain.head()
        assert state.final_block is not None
        assert (net["head"], net["final"], net["cursor_block"]) == (head, head - 1, state.final_block)
        assert net["lag_blocks"] == head - state.final_block and 0 <= net["lag_seconds"] < 60
        assert net["cursor_updated_at"] <= time.time() * 1000
        down, ok = net["endpoints"]
        assert (down["endpoint"], down["ok"], down["head"]) == ("127.0.0.1:9", False, None)
        assert down["error"].startswith("127.0.0.1:9: ")
        assert (ok["endpoint"], ok["ok"], ok["head"], ok["final"]) == (live, True, head, head - 1)
        # And it is unhealthy because of that endpoint only, exit code 1
        assert code == 1 and net["problems"] == [f"endpoint 127.0.0.1:9 is down: {down['error']}"]
        # And no key from the URLs is shown
        _, text = run_status(capsys)
        assert not any(k in text + json.dumps(after) for k in ("DEADKEY", "LIVEKEY", "QUERYKEY"))

        # Given only the live endpoint
        endpoints(settings_env, chain.network, [f"{proxy.url}/v2/LIVEKEY"])
        # When the status of every enabled network is asked (local mode: the others have no endpoint)
        code, text = run_status(capsys)
        # Then it is healthy, exit code 0, and the report says so per network
        assert code == 0, text
        assert f"{chain.network}: ok" in text and "tron: not scanned (no RPC endpoint)" in text
        assert f"endpoint {live}: ok" in text and f"cursor {state.final_block}" in text

        # When that endpoint fails (429 to everything)
        proxy.mode = "fail"
        code, failing = report(capsys, "--network", chain.network)
        # Then the network is unhealthy: no endpoint answers
        assert code == 1 and failing["networks"][0]["problems"] == [
            f"endpoint {live} is down: {live}: HTTP 429",
            "no RPC endpoint answers",
        ]
    finally:
        proxy.close()


def test_a_stalled_scanner_is_unhealthy(api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch) -> None:
    # Given a network scanned once
    endpoints(settings_env, chain.network, [chain.anvil.url])
    state = drive(evm_scanner(chain.network, [chain.anvil.url]))
    (spec,) = load_endpoints({})[chain.network]
    network = config.networks()[chain.network]
    # When its status is taken two hours later
    later = status.network_status(network, [spec], now_ms=state.final_time + 7_200_000)
    # Then the cursor's age and the scanner's silence are both reported
    assert later.lag_seconds == 7200 and not later.healthy
    assert later.problems[0] == "scanner lag 7200 s is above 1800 s"
    assert later.problems[1].startswith("scanner idle: cursor last written ")
    # And now it is healthy
    assert status.network_status(network, [spec], now_ms=int(time.time() * 1000)).healthy


def test_outside_local_mode_a_network_without_endpoint_is_unhealthy(
    api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoints(settings_env, chain.network, [chain.anvil.url], local=False)
    code, out = report(capsys, "--network", "tron")
    assert code == 1 and out["networks"][0]["problems"] == ["no RPC endpoint configured"]
    # And a network that is not enabled is a usage error (exit code 2)
    from usdt_gateway.admin import main

    assert main(["status", "--network", "nonesuch"]) == 2
    assert "not enabled: nonesuch" in capsys.readouterr().err


@pytest.fixture
def node() -> Iterator[TronNode]:
    with start_tron_node(blocks=3) as running:
        yield running


def test_tron_status_reads_the_full_node_and_names_endpoints_without_their_keys(
    node: TronNode, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a Tron network on the fake full node (an API key in its spec), a named endpoint that is
    # down, and a scan
    chain: TronChain = new_tron_chain(node, settings_env)
    endpoints(
        settings_env, chain.network, [{"url": node.url, "apiKey": "TRONAPIKEYVALUE"}, {"url": DOWN, "name": "backup"}]
    )
    chain.mine(5)
    chain.solidify(node.head - 2)
    state = drive(tron_scanner(chain.network, [node.url]))
    # When the status is asked
    code, out = report(capsys, "--network", chain.network)
    # Then the node's head and solidified block, the cursor at that block, the lag
    (net,) = out["networks"]
    ok, down = net["endpoints"]
    assert (ok["endpoint"], ok["ok"], ok["head"], ok["final"]) == (
        node.url.removeprefix("http://"),
        True,
        node.head,
        node.head - 2,
    )
    assert state.final_block is not None
    assert (net["cursor_block"], net["lag_blocks"]) == (state.final_block, node.head - state.final_block)
    # And the endpoint that is down, by its configured name; never the key
    assert (down["endpoint"], down["ok"]) == ("backup", False) and down["error"].startswith("backup: ")
    assert code == 1 and net["problems"] == [f"endpoint backup is down: {down['error']}"]
    assert "TRONAPIKEYVALUE" not in json.dumps(out)
