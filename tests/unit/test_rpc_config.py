"""RPC endpoints come from configuration, are validated at cold start, and keys in their URLs
never reach logs or metric names."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from usdt_gateway import config
from usdt_gateway.chain.rpc_config import load_endpoints
from usdt_gateway.config import ConfigError
from usdt_gateway.networks import load_networks

NETS = load_networks("tron,eth")


def test_urls_and_objects_in_order_of_preference() -> None:
    raw = (
        '{"eth": ["https://eth.example/v2/SECRET", "https://b.example"],'
        ' "tron": [{"url": "https://api.trongrid.io", "apiKey": "k"}]}'
    )
    specs = load_endpoints(NETS, raw)
    assert [s.url for s in specs["eth"]] == ["https://eth.example/v2/SECRET", "https://b.example"]
    assert specs["eth"][0].name == "eth.example"  # the host only: the key stays out of logs
    assert (specs["tron"][0].url, specs["tron"][0].api_key) == ("https://api.trongrid.io", "k")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "names no endpoint for enabled network(s) tron, eth"),
        ('{"eth": ["https://a.example"]}', "names no endpoint for enabled network(s) tron"),
        ('{"eth": ["ftp://a.example"], "tron": ["https://t.example"]}', "must be an http(s) URL"),
        ('{"eth": "https://a.example", "tron": []}', "is invalid"),
        ("not json", "is invalid"),
        ('{"eth": [{"url": "https://a.example", "token": "x"}], "tron": ["https://t.example"]}', "is invalid"),
    ],
)
def test_bad_configuration_fails_with_a_reason(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match="RPC_ENDPOINTS") as err:
        load_endpoints(NETS, raw)
    assert message in str(err.value)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Settings of a deployed function (not local mode)."""
    monkeypatch.setenv("TABLE_NAME", "usdt-gateway-unit")
    monkeypatch.setenv("KMS_KEY_ID", "alias/unit")
    monkeypatch.delenv("LOCAL_MODE", raising=False)
    config.reset()
    yield monkeypatch
    monkeypatch.undo()
    config.reset()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8545", "http://localhost:8545/v2/KEY", "http://[::1]:8545", "https://eth.example/v2/KEY"]
)
def test_https_or_loopback_is_taken_when_deployed(deployed: pytest.MonkeyPatch, url: str) -> None:
    specs = load_endpoints(NETS, json.dumps({"eth": [url], "tron": ["https://t.example"]}))
    assert specs["eth"][0].url == url


def test_plain_http_to_another_host_is_refused_when_deployed_and_taken_in_local_mode(
    deployed: pytest.MonkeyPatch,
) -> None:
    raw = json.dumps(
        {"eth": ["https://a.example", "http://node.example:8545/v2/SECRET"], "tron": ["https://t.example"]}
    )
    with pytest.raises(ConfigError) as err:
        load_endpoints(NETS, raw)
    # it names the endpoint by its host, never by its URL
    assert "endpoint node.example:8545 of eth is plain http" in str(err.value) and "SECRET" not in str(err.value)
    deployed.setenv("LOCAL_MODE", "true")
    config.reset()
    assert [s.name for s in load_endpoints(NETS, raw)["eth"]] == ["a.example", "node.example:8545"]
