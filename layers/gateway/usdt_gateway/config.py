"""Configuration from the environment, validated once at cold start so a misconfigured
function fails at init with a clear message instead of on a customer's request."""

from __future__ import annotations

import os
from decimal import Decimal
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from usdt_gateway.money import decimal_places, plain
from usdt_gateway.networks import Network, NetworkConfigError, load_networks


class ConfigError(RuntimeError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        retry_delays(value)
        return value

    @field_validator("webhook_allowed_ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        ports(value)
        return value

    table_name: str = Field(min_length=3)
    kms_key_id: str = Field(min_length=1)
    enabled_networks: str = "tron,eth,bsc"
    networks_config: str = ""
    public_base_url: str = ""
    local_mode: bool = False
    rate_limit_per_minute: int = Field(100, ge=1, le=100_000)
    # Requests beyond the limit, within one window, after which the key is blocked (418).
    rate_limit_block_after: int = Field(20, ge=1, le=100_000)
    rate_limit_block_seconds: int = Field(300, ge=1, le=86_400)
    public_rate_limit_per_minute: int = Field(60, ge=1, le=100_000)
    # Payment page loads per IP (a meter of their own; over it: 429, never a block).
    public_page_rate_limit_per_minute: int = Field(600, ge=1, le=100_000)
    # The public order status (polled by every open payment page): per IP and order, and per IP.
    public_order_rate_limit_per_minute: int = Field(30, ge=1, le=100_000)
    public_order_ip_rate_limit_per_minute: int = Field(600, ge=1, le=100_000)
    default_expires_in: int = Field(1800, ge=60, le=86_400)
    min_expires_in: int = Field(60, ge=30)
    max_expires_in: int = Field(86_400, le=7 * 86_400)
    late_payment_grace_seconds: int = Field(3600, ge=0, le=7 * 86_400)
    max_body_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    # An order counts as paid when at most this much (USDT) is missing, e.g. "0.005"; below every
    # enabled network's minAmount (checked in networks()), and at most the percent below of the order.
    underpayment_tolerance: Decimal = Field(Decimal(0), ge=0, le=1000, decimal_places=6)
    # The relative bound, so a small order is never confirmed by a fraction of it: 1 = 1 %.
    underpayment_tolerance_percent: Decimal = Field(Decimal(1), ge=0, le=10, decimal_places=2)
    # Webhooks: committed events go to this queue (empty: nothing is sent; the outbox keeps them).
    webhook_queue_url: str = ""
    webhook_dlq_url: str = ""
    # Seconds to wait before each retry after a failed attempt; one attempt more than entries.
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000,36000,36000,36000,36000"
    webhook_timeout_seconds: float = Field(15.0, gt=0, le=30)
    # Deliveries in flight at once per merchant, so one slow receiver cannot starve the others.
    webhook_merchant_concurrency: int = Field(4, ge=1, le=100)
    # The ports a webhook URL may name (http, local mode only, may use 80 too): the gateway's
    # report of a failed connection would otherwise scan any port of any public host.
    webhook_allowed_ports: str = "443"
    # POST /v1/webhooks/test per merchant per minute, on a meter of its own (429, never a block).
    webhook_test_rate_limit_per_minute: int = Field(10, ge=1, le=1000)

    @property
    def webhook_ports(self) -> frozenset[int]:
        return ports(self.webhook_allowed_ports)


def env_var(field: str) -> str:
    """The environment variable of a setting: its field name in capitals (`table_name` is read
    from TABLE_NAME). template.yaml, the local stack and operators set these names, so renaming a
    field renames its variable (tests/unit/test_config.py lists them)."""
    return field.upper()


def retry_delays(schedule: str) -> tuple[float, ...]:
    """WEBHOOK_RETRY_SCHEDULE as seconds: comma-separated, each between 0 and 12 h (the longest an
    SQS message can stay hidden)."""
    try:
        delays = tuple(float(part) for part in schedule.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError("must be comma-separated seconds, e.g. 5,300,1800") from exc
    if not delays or not all(0 <= d <= 43_200 for d in delays):
        raise ValueError("needs at least one delay, each between 0 and 43200 seconds (12 h)")
    return delays


def ports(value: str) -> frozenset[int]:
    """WEBHOOK_ALLOWED_PORTS as ports: comma-separated, each 1-65535."""
    parts = [part.strip() for part in value.split(",")]
    if not all(p.isascii() and p.isdigit() and len(p) <= 5 and 1 <= int(p) <= 65535 for p in parts):
        raise ValueError("must be comma-separated ports 1-65535, e.g. 443,8443")
    return frozenset(int(p) for p in parts)


@cache
def settings() -> Settings:
    given = {field: os.environ.get(env_var(field), "") for field in Settings.model_fields}
    raw = {field: value for field, value in given.items() if value != ""}  # empty: the default
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{env_var(str(e['loc'][0]))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc


@cache
def networks() -> dict[str, Network]:
    s = settings()
    try:
        enabled = load_networks(s.enabled_networks, s.networks_config)
    except NetworkConfigError as exc:
        raise ConfigError(str(exc)) from exc
    _check_tolerance(s.underpayment_tolerance, enabled)
    from usdt_gateway import tron_energy

    try:
        tron_energy.load(enabled)  # TRON_ENERGY_MODE and TRON_FEE_LIMIT_SUN, checked at cold start
    except tron_energy.EnergyConfigError as exc:
        raise ConfigError(str(exc)) from exc
    return enabled


def _check_tolerance(tolerance: Decimal, enabled: dict[str, Network]) -> None:
    """A tolerance of a whole minimum order would confirm the smallest orders with next to nothing
    paid; and it must be a whole number of base units on every network."""
    for network in enabled.values():
        if tolerance >= network.min_amount:
            raise ConfigError(
                f"UNDERPAYMENT_TOLERANCE {plain(tolerance)} USDT must be below the minimum order of "
                f"every enabled network; {network.name} takes orders from {plain(network.min_amount)}"
            )
        if decimal_places(tolerance) > network.decimals:
            raise ConfigError(
                f"UNDERPAYMENT_TOLERANCE {plain(tolerance)} is finer than the smallest unit of "
                f"{network.name} ({network.decimals} decimals)"
            )


def reset() -> None:
    """Forget cached configuration (tests and the local stack change the environment)."""
    settings.cache_clear()
    networks.cache_clear()
