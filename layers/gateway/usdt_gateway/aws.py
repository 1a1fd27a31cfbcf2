"""AWS clients from botocore directly: importing boto3 also imports s3transfer and its resource
models, about 120 ms of cold start the gateway never uses. Clients honour AWS_ENDPOINT_URL
(the local stack and the tests point it at moto)."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config

# Short timeouts and the SDK's standard retries: an API call fails fast instead of hanging. One
# client serves every thread (a webhook batch's 10 records; the scanner's thread and its deposit
# workers): a pool above the default 10 keeps each thread's connection instead of dropping some.
_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=20
)
# A botocore session is not thread-safe: threads asking for their first client at once take turns.
_CREATING = threading.Lock()


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def client(service: str) -> Any:
    with _CREATING:
        return _session().create_client(service, config=_CONFIG)
