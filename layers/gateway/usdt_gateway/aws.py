"""AWS clients from botocore directly: importing boto3 also imports s3transfer and its resource
models, about 120 ms of cold start the gateway never uses. Clients honour AWS_ENDPOINT_URL
(the local stack and the tests point it at moto)."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

# Short timeouts and the SDK's standard retries: an API call fails fast instead of hanging.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def client(service: str) -> Any:
    return _session().create_client(service, config=_CONFIG)
