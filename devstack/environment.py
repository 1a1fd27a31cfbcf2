"""The process environment of the local stack: every AWS client pointed at moto, undone at stop."""

from __future__ import annotations

import os
import sys

import botocore.session

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class Environment:
    """Changes to os.environ that the stack can undo when it stops (tests run it in-process)."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def setdefault(self, name: str, value: str) -> None:
        if not os.environ.get(name):
            self.set(name, value)

    def unset(self, name: str) -> None:
        if name in os.environ:
            self._saved.setdefault(name, os.environ[name])
            del os.environ[name]

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


def point_aws_at(endpoint: str, env: Environment) -> str:
    """Send every boto3 client of this process to `endpoint`; returns the region."""
    env.set("AWS_ENDPOINT_URL", endpoint)
    # Anything that would route a client elsewhere: per-service endpoints, or the switch that
    # makes the SDK ignore AWS_ENDPOINT_URL (it would then reach real AWS).
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")]:
        env.unset(name)
    env.unset("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
    env.set("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    for name, value in FAKE_CREDENTIALS.items():
        env.setdefault(name, value)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    env.setdefault("AWS_REGION", region)
    env.setdefault("AWS_DEFAULT_REGION", region)
    return region


def check_endpoint(endpoint: str) -> None:
    """Never let the local stack talk to real AWS: a new SDK client must resolve to moto."""
    session = botocore.session.get_session()
    for service in ("dynamodb", "kms"):
        url = session.create_client(service).meta.endpoint_url
        if url != endpoint:
            raise RuntimeError(f"a {service} client would use {url}, not moto at {endpoint}; check AWS_* variables")


def reset_gateway_caches() -> None:
    """Forget what the gateway code caches at module level (settings, AWS clients holding their
    endpoint, decrypted secrets): the stack changes the environment all of it was built from."""
    from usdt_gateway import config

    config.reset()
    for name, module in list(sys.modules.items()):
        if name != "usdt_gateway" and not name.startswith("usdt_gateway."):
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()
