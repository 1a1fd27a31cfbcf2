"""RPC endpoints come from configuration, are validated at cold start, and keys in their URLs
never reach logs or metric names."""

from __future__ import annotations

import pytest

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
