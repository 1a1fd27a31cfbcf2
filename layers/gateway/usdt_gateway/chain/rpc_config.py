"""RPC endpoints per network, from configuration only: URLs carry provider keys, so they never
live in code. Read once at cold start from RPC_ENDPOINTS (JSON) or, in a deployment, from the
SSM SecureString parameter named by RPC_ENDPOINTS_PARAMETER, and validated there:

    {"eth": ["https://eth-mainnet.example/v2/<key>", "https://ethereum-rpc.publicnode.com"],
     "tron": [{"url": "https://api.trongrid.io", "apiKey": "<key>"}, "https://tron-rpc.publicnode.com"]}

The order is the order of preference."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from usdt_gateway import aws
from usdt_gateway.config import ConfigError
from usdt_gateway.networks import Network


class EndpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    url: str
    api_key: str | None = Field(None, alias="apiKey")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value

    @property
    def name(self) -> str:
        """For logs and metrics: the host only, never the key in the path or query."""
        return urlsplit(self.url).netloc


_SPECS = TypeAdapter(dict[str, list[EndpointSpec | str]])


def _raw() -> str:
    parameter = os.environ.get("RPC_ENDPOINTS_PARAMETER", "")
    if parameter:
        reply = aws.client("ssm").get_parameter(Name=parameter, WithDecryption=True)
        return str(reply["Parameter"]["Value"])
    return os.environ.get("RPC_ENDPOINTS", "")


def load_endpoints(enabled: dict[str, Network], raw: str | None = None) -> dict[str, list[EndpointSpec]]:
    text = _raw() if raw is None else raw
    where = "RPC_ENDPOINTS" + (" (from RPC_ENDPOINTS_PARAMETER)" if os.environ.get("RPC_ENDPOINTS_PARAMETER") else "")
    try:
        parsed: dict[str, list[Any]] = _SPECS.validate_json(text) if text.strip() else {}
    except ValidationError as exc:
        raise ConfigError(f"{where} is invalid: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}; expected "
                          "a JSON object of network -> list of URLs or {\"url\", \"apiKey\"}") from exc
    result = {name: [EndpointSpec(url=e) if isinstance(e, str) else e for e in specs]
              for name, specs in parsed.items()}
    missing = [name for name in enabled if not result.get(name)]
    if missing:
        raise ConfigError(f"{where} names no endpoint for enabled network(s) {', '.join(missing)}")
    return result


def describe(specs: list[EndpointSpec]) -> str:
    return json.dumps([s.name for s in specs])
