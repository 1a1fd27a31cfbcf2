"""Configuration checked at cold start: the variables it reads, and the underpayment tolerance
against the enabled networks."""

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


# The variables operators, template.yaml and the local stack set: renaming a setting renames its
# variable (config.env_var), which would silently drop a deployed value.
VARIABLES = {
    "TABLE_NAME",
    "KMS_KEY_ID",
    "ENABLED_NETWORKS",
    "NETWORKS_CONFIG",
    "PUBLIC_BASE_URL",
    "LOCAL_MODE",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_BLOCK_AFTER",
    "RATE_LIMIT_BLOCK_SECONDS",
    "PUBLIC_RATE_LIMIT_PER_MINUTE",
    "PUBLIC_PAGE_RATE_LIMIT_PER_MINUTE",
    "PUBLIC_ORDER_RATE_LIMIT_PER_MINUTE",
    "PUBLIC_ORDER_IP_RATE_LIMIT_PER_MINUTE",
    "DEFAULT_EXPIRES_IN",
    "MIN_EXPIRES_IN",
    "MAX_EXPIRES_IN",
    "LATE_PAYMENT_GRACE_SECONDS",
    "MAX_BODY_BYTES",
    "UNDERPAYMENT_TOLERANCE",
    "UNDERPAYMENT_TOLERANCE_PERCENT",
    "WEBHOOK_QUEUE_URL",
    "WEBHOOK_DLQ_URL",
    "WEBHOOK_RETRY_SCHEDULE",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_MERCHANT_CONCURRENCY",
    "WEBHOOK_ALLOWED_PORTS",
    "WEBHOOK_TEST_RATE_LIMIT_PER_MINUTE",
}


def test_the_settings_are_read_from_the_documented_variables() -> None:
    assert {config.env_var(field) for field in config.Settings.model_fields} == VARIABLES


def test_each_setting_is_read_from_its_variable(env: pytest.MonkeyPatch) -> None:
    # Given a value for a setting of each type, under the field's name in capitals
    env.setenv("PUBLIC_BASE_URL", "https://pay.example")
    env.setenv("LOCAL_MODE", "true")
    env.setenv("PUBLIC_ORDER_IP_RATE_LIMIT_PER_MINUTE", "7")
    env.setenv("WEBHOOK_TIMEOUT_SECONDS", "2.5")
    # When the settings are loaded
    settings = config.settings()
    # Then each field holds its variable's value
    assert settings.public_base_url == "https://pay.example"
    assert settings.local_mode is True
    assert settings.public_order_ip_rate_limit_per_minute == 7
    assert settings.webhook_timeout_seconds == 2.5


def test_an_empty_variable_keeps_the_default_and_a_missing_one_is_named(env: pytest.MonkeyPatch) -> None:
    # Given an empty limit (as a template parameter left blank sets it)
    env.setenv("RATE_LIMIT_PER_MINUTE", "")
    # When the settings are loaded, Then the default holds
    assert config.settings().rate_limit_per_minute == 100
    # Given no table name
    env.delenv("TABLE_NAME")
    config.reset()
    # When the settings are loaded, Then the error names the variable, not the field
    with pytest.raises(config.ConfigError, match=r"^invalid configuration: TABLE_NAME: Field required$"):
        config.settings()


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
