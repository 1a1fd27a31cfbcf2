"""RPC endpoints per network, from configuration only: URLs carry provider keys, so they never
live in code. Read once at cold start from RPC_ENDPOINTS (JSON) or, in a deployment, from the
SSM SecureString parameter named by RPC_ENDPOINTS_PARAMETER, and validated there:

    {"eth": ["https://eth-mainnet.example/v2/<key>", "https://ethereum-rpc.publicnode.com"],
     "tron": [{"url": "https://api.trongrid.io", "apiKey": "<key>"}, "https://tron-rpc.publicnode.com"]}

The order is the order of preference. An endpoint is named in logs, metrics (the `endpoint`
dimension) and `admin status` by its host (and port), or by its `name` when one is given
({"url": ..., "name": "alchemy"}); never by its URL.

URLs must be https: an answer in clear text can be changed on its way (a forged payment), and a
key in the URL read. Plain http is taken only for loopback hosts (a node on the same machine,
the local stack's chain) or in local mode (LOCAL_MODE)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from usdt_gateway import aws
from usdt_gateway.config import ConfigError, settings
from usdt_gateway.networks import Network


class EndpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    url: str
    api_key: str | None = Field(None, alias="apiKey")
    label: str | None = Field(None, alias="name", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value

    @property
    def name(self) -> str:
        """For logs and metrics: the configured name, or the host (and port), never the user
        info, path or query of the URL, where providers put keys."""
        if self.label:
            return self.label
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _url_alone(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


# A bare string is shorthand for {"url": ...}; both go through the same validation.
_SPECS = TypeAdapter(dict[str, list[Annotated[EndpointSpec, BeforeValidator(_url_alone)]]])


def _raw() -> str:
    parameter = os.environ.get("RPC_ENDPOINTS_PARAMETER", "")
    if parameter:
        try:
            reply = aws.client("ssm").get_parameter(Name=parameter, WithDecryption=True)
        except ClientError as exc:
            raise ConfigError(
                f"RPC_ENDPOINTS_PARAMETER {parameter} cannot be read "
                f"({exc.response['Error']['Code']}); create it as in docs/deploy.md"
            ) from exc
        return str(reply["Parameter"]["Value"])
    return os.environ.get("RPC_ENDPOINTS", "")


def load_endpoints(enabled: dict[str, Network], raw: str | None = None) -> dict[str, list[EndpointSpec]]:
    text = _raw() if raw is None else raw
    where = "RPC_ENDPOINTS" + (" (from RPC_ENDPOINTS_PARAMETER)" if os.environ.get("RPC_ENDPOINTS_PARAMETER") else "")
    try:
        result = _SPECS.validate_json(text) if text.strip() else {}
    except ValidationError as exc:
        raise ConfigError(
            f"{where} is invalid: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}; expected "
            'a JSON object of network -> list of URLs or {"url", "apiKey"}'
        ) from exc
    missing = [name for name in enabled if not result.get(name)]
    if missing:
        raise ConfigError(f"{where} names no endpoint for enabled network(s) {', '.join(missing)}")
    _check_transport(result, where)
    return result


def _check_transport(specs: dict[str, list[EndpointSpec]], where: str) -> None:
    plain = [(name, s) for name, listed in specs.items() for s in listed if not _protected(s.url)]
    # Local mode is read only when a plain http URL to another host is there to allow.
    if plain and not settings().local_mode:
        network, spec = plain[0]
        raise ConfigError(
            f"{where}: endpoint {spec.name} of {network} is plain http; RPC endpoints must be https "
            "(http only on loopback: 127.0.0.1, ::1, localhost; or in local mode)"
        )


def _protected(url: str) -> bool:
    """https, or http to this machine (nothing on the way to change the answer)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False
