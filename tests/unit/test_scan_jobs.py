"""What a scanner invocation does: the scanners built at cold start (every enabled network needs an
RPC endpoint, except in local mode), the schedule's fan-out, and refusing a network not scanned."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from usdt_gateway import aws, config, observability, scan_jobs
from usdt_gateway.chain.readers import EvmReader, TronReader
from usdt_gateway.config import ConfigError
from usdt_gateway.scanner import DEPOSIT_WORKERS

SCANNER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:usdt-gateway-scanner"
LOCAL_ENDPOINTS = json.dumps({"local": ["http://127.0.0.1:8545"]})


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The scanner's configuration from variables only (no SSM parameter, no AWS)."""
    for name, value in {
        "TABLE_NAME": "usdt-gateway-test",
        "KMS_KEY_ID": "key",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ENABLED_NETWORKS": "local,tron,eth,bsc",
        "SCAN_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("RPC_ENDPOINTS_PARAMETER", "RPC_ENDPOINTS", "LOCAL_MODE", "NETWORKS_CONFIG", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    config.reset()
    aws.client.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    config.reset()
    aws.client.cache_clear()


@pytest.fixture
def warnings_logged() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.WARNING)
    target = logging.getLogger(observability.logger.name)  # the logger scan_jobs writes to
    target.addHandler(handler)
    yield records
    target.removeHandler(handler)


def test_production_refuses_an_enabled_network_without_an_endpoint(env: pytest.MonkeyPatch) -> None:
    # Given four enabled networks and an endpoint for one of them, outside local mode
    env.setenv("RPC_ENDPOINTS", LOCAL_ENDPOINTS)
    # When the scanners are built (at cold start)
    with pytest.raises(ConfigError) as err:
        scan_jobs.build()
    # Then the configuration is refused, naming the networks without one
    assert "names no endpoint for enabled network(s) tron, eth, bsc" in str(err.value)


def test_production_builds_a_scanner_per_enabled_network(env: pytest.MonkeyPatch) -> None:
    # Given an endpoint for every enabled network
    env.setenv("ENABLED_NETWORKS", "tron,eth")
    env.setenv("RPC_ENDPOINTS", json.dumps({"tron": ["https://tron.example"], "eth": ["https://eth.example"]}))
    # When the scanners are built
    scanners = scan_jobs.build()
    # Then each network has its own, with the reader of its family, writing deposits with its workers
    assert list(scanners) == ["tron", "eth"]
    assert isinstance(scanners["tron"].reader, TronReader) and isinstance(scanners["eth"].reader, EvmReader)
    assert scanners["eth"].network.name == "eth"
    assert scanners["eth"].workers == DEPOSIT_WORKERS > 1


def test_local_mode_scans_only_the_networks_with_an_endpoint(
    env: pytest.MonkeyPatch, warnings_logged: list[logging.LogRecord]
) -> None:
    # Given local mode, four enabled networks and an endpoint for `local` only
    env.setenv("LOCAL_MODE", "1")
    env.setenv("RPC_ENDPOINTS", LOCAL_ENDPOINTS)
    # When the scanners are built
    scanners = scan_jobs.build()
    # Then only `local` is scanned (one deposit at a time: its DynamoDB shares the process), and
    # one warning names the others
    assert list(scanners) == ["local"]
    assert scanners["local"].network.chain_id == 31337 and scanners["local"].workers == 1
    (warning,) = warnings_logged
    assert warning.networks == ["tron", "eth", "bsc"]  # type: ignore[attr-defined]  # logged as extra
    assert "not scanned" in warning.getMessage()


def test_local_mode_still_refuses_invalid_endpoints(env: pytest.MonkeyPatch) -> None:
    # Given local mode and an endpoint that is not an http(s) URL
    env.setenv("LOCAL_MODE", "1")
    env.setenv("RPC_ENDPOINTS", json.dumps({"local": ["ftp://127.0.0.1"]}))
    # When the scanners are built
    # Then the configuration is refused as anywhere else
    with pytest.raises(ConfigError, match="must be an http"):
        scan_jobs.build()


def test_schedule_event_fans_out_one_async_invoke_per_network(env: pytest.MonkeyPatch) -> None:
    # Given scanners for three networks and the Lambda API (stubbed: moto cannot run Lambda without Docker)
    env.setenv("ENABLED_NETWORKS", "tron,eth,bsc")
    env.setenv("RPC_ENDPOINTS", json.dumps({n: [f"https://{n}.example"] for n in ("tron", "eth", "bsc")}))
    scanners = scan_jobs.build()
    with Stubber(aws.client("lambda")) as stub:
        for name in scanners:
            stub.add_response(
                "invoke",
                {"StatusCode": 202},
                {"FunctionName": SCANNER_ARN, "InvocationType": "Event", "Payload": json.dumps({"network": name})},
            )

        # When the schedule's event (no network) arrives
        result = scan_jobs.handle(scanners, {}, remaining_ms=900_000, function_arn=SCANNER_ARN)

        # Then the function invoked itself asynchronously once per network, naming it
        stub.assert_no_pending_responses()
    assert result == {"dispatched": ["tron", "eth", "bsc"]}


def test_an_event_for_a_network_not_scanned_is_refused(env: pytest.MonkeyPatch) -> None:
    # Given scanners for tron and eth
    env.setenv("ENABLED_NETWORKS", "tron,eth")
    env.setenv("RPC_ENDPOINTS", json.dumps({"tron": ["https://tron.example"], "eth": ["https://eth.example"]}))
    scanners = scan_jobs.build()
    # When an event names a network that is not enabled
    with pytest.raises(ValueError, match="network 'polygon' is not scanned here; scanned: tron, eth"):
        scan_jobs.handle(scanners, {"network": "polygon"}, remaining_ms=900_000, function_arn=SCANNER_ARN)


def test_one_network_failing_to_start_does_not_keep_the_others_from_scanning(env: pytest.MonkeyPatch) -> None:
    # Given three networks, and a Lambda API that throttles the invoke of the second
    env.setenv("ENABLED_NETWORKS", "tron,eth,bsc")
    env.setenv("RPC_ENDPOINTS", json.dumps({n: [f"https://{n}.example"] for n in ("tron", "eth", "bsc")}))
    scanners = scan_jobs.build()
    with Stubber(aws.client("lambda")) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": SCANNER_ARN, "InvocationType": "Event", "Payload": json.dumps({"network": "tron"})},
        )
        stub.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": SCANNER_ARN, "InvocationType": "Event", "Payload": json.dumps({"network": "bsc"})},
        )
        # When the schedule's event arrives
        with pytest.raises(scan_jobs.DispatchFailed, match="could not start the scan of eth; started tron, bsc"):
            scan_jobs.handle(scanners, {}, remaining_ms=900_000, function_arn=SCANNER_ARN)
        # Then bsc was still started after eth's failure
        stub.assert_no_pending_responses()
