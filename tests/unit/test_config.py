"""Configuration checked at cold start: the underpayment tolerance against the enabled networks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from usdt_gateway import config


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A minimal valid environment; each test sets what it checks, and the cache is forgotten after."""
    for name in ("NETWORKS_CONFIG", "UNDERPAYMENT_TOLERANCE", "UNDERPAYMENT_TOLERANCE_PERCENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TABLE_NAME", "usdt-gateway-unit")
    monkeypatch.setenv("KMS_KEY_ID", "alias/unit")
    monkeypatch.setenv("ENABLED_NETWORKS", "tron,eth,bsc")
    config.reset()
    yield monkeypatch
    monkeypatch.undo()
    config.reset()


@pytest.mark.parametrize("tolerance", ["1", "0.01"])
def test_an_absolute_tolerance_not_below_a_minimum_amount_is_refused(env: pytest.MonkeyPatch, tolerance: str) -> None:
    # Given a tolerance as large as (or larger than) the 0.01 USDT minimum order of the networks
    env.setenv("UNDERPAYMENT_TOLERANCE", tolerance)
    # When the configuration is loaded at cold start
    with pytest.raises(config.ConfigError) as err:
        config.networks()
    # Then it is refused, naming the setting, a network and its minimum
    message = str(err.value)
    assert "UNDERPAYMENT_TOLERANCE" in message and "tron" in message and "0.01" in message


def test_a_network_with_a_lower_minimum_bounds_the_tolerance_too(env: pytest.MonkeyPatch) -> None:
    # Given a tolerance of 0.005 and BSC orders allowed from 0.001
    env.setenv("UNDERPAYMENT_TOLERANCE", "0.005")
    env.setenv("NETWORKS_CONFIG", '{"bsc": {"minAmount": "0.001"}}')
    # When the configuration is loaded, Then BSC's minimum refuses it
    with pytest.raises(config.ConfigError, match=r"bsc.*0\.001"):
        config.networks()


def test_a_tolerance_below_every_minimum_is_accepted(env: pytest.MonkeyPatch) -> None:
    # Given a tolerance just below the 0.01 minimum, and a relative bound of 0.5 %
    env.setenv("UNDERPAYMENT_TOLERANCE", "0.009999")
    env.setenv("UNDERPAYMENT_TOLERANCE_PERCENT", "0.5")
    # When the configuration is loaded, Then the networks are enabled with both bounds kept
    assert set(config.networks()) == {"tron", "eth", "bsc"}
    assert str(config.settings().underpayment_tolerance_percent) == "0.5"


@pytest.mark.parametrize("percent", ["10.01", "0.001", "-1"])
def test_a_relative_tolerance_outside_its_range_is_refused(env: pytest.MonkeyPatch, percent: str) -> None:
    # Given a relative tolerance above 10 %, finer than a basis point, or negative
    env.setenv("UNDERPAYMENT_TOLERANCE_PERCENT", percent)
    # When the settings are loaded, Then they are refused by the variable's name
    with pytest.raises(config.ConfigError, match="UNDERPAYMENT_TOLERANCE_PERCENT"):
        config.settings()


@pytest.mark.parametrize(("value", "ports"), [("443", {443}), ("443,8443", {443, 8443}), (" 8443 , 443 ", {443, 8443})])
def test_webhook_ports_are_read_from_the_setting(env: pytest.MonkeyPatch, value: str, ports: set[int]) -> None:
    # Given WEBHOOK_ALLOWED_PORTS (comma-separated ports)
    env.setenv("WEBHOOK_ALLOWED_PORTS", value)
    # When the settings are loaded, Then they are the ports a webhook URL may use
    assert config.settings().webhook_ports == frozenset(ports)


def test_webhook_ports_default_to_443(env: pytest.MonkeyPatch) -> None:
    env.delenv("WEBHOOK_ALLOWED_PORTS", raising=False)
    assert config.settings().webhook_ports == frozenset({443})


@pytest.mark.parametrize("value", ["0", "65536", "https", ",", "443;80", "443,,80", "-443", "1" * 30])
def test_invalid_webhook_ports_fail_at_cold_start(env: pytest.MonkeyPatch, value: str) -> None:
    # Given a port list that is not ports 1-65535, comma-separated
    env.setenv("WEBHOOK_ALLOWED_PORTS", value)
    # When the settings are loaded at cold start, Then they are refused by the variable's name
    with pytest.raises(config.ConfigError, match="WEBHOOK_ALLOWED_PORTS"):
        config.settings()


@pytest.mark.parametrize("value", ["0", "1001", "ten"])
def test_an_invalid_webhook_test_limit_fails_at_cold_start(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("WEBHOOK_TEST_RATE_LIMIT_PER_MINUTE", value)
    with pytest.raises(config.ConfigError, match="WEBHOOK_TEST_RATE_LIMIT_PER_MINUTE"):
        config.settings()
