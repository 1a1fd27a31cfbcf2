"""Shared fixtures. `moto_server` runs one moto server on loopback for the whole session;
tests reach it over real HTTP with boto3's `endpoint_url` and keep their data apart by using
their own table names (nothing resets the server between tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest

from devstack.moto_server import AtomicMotoServer
from tests import dynamodb_limits
from tests.fake_clock import FakeClock, mid_minute

# Every DynamoDB client of the run refuses what DynamoDB would refuse and moto lets through.
dynamodb_limits.install()


def _share_service_models() -> None:
    """Every botocore session of the run reads the service models through one loader. A test that
    changes settings has the gateway's clients made again afterwards, from a new session that
    reads the environment afresh; loading DynamoDB's, KMS's... models into it again was most of
    that (~60 ms of ~70). The models are botocore's own files: sharing them changes nothing else."""
    get_session = botocore.session.get_session
    models = get_session().get_component("data_loader")

    def session_with_shared_models(
        env_vars: dict[str, tuple[Any, Any, Any, Any]] | None = None,
    ) -> botocore.session.Session:
        session = get_session(env_vars)
        session.register_component("data_loader", models)
        return session

    botocore.session.get_session = session_with_shared_models


_share_service_models()

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@pytest.fixture(autouse=True)
def dynamodb_within_limits() -> Iterator[None]:
    """Fail a test during which a DynamoDB call broke one of DynamoDB's limits, even when the
    code under test caught the error (tests/dynamodb_limits.py)."""
    start = len(dynamodb_limits.VIOLATIONS)
    yield
    broken = dynamodb_limits.VIOLATIONS[start:]
    del dynamodb_limits.VIOLATIONS[start:]
    assert not broken, "DynamoDB would refuse these calls (moto accepted them):\n" + "\n".join(broken)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The gateway's one wall clock, stopped 30 s into the current minute for this test; set
    `.ms` or call `.advance(ms)` to move it. ApiClient signs requests at this time too."""
    stopped = mid_minute()
    monkeypatch.setattr("usdt_gateway.clock.now_ms", stopped)
    return stopped


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of a moto server on 127.0.0.1 (free port), with fake AWS credentials set."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()
