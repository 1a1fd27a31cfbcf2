"""What a scanner invocation does. The schedule's event (no network) fans out one asynchronous
invocation per enabled network, so a slow chain never delays another and an EVM chain added by
configuration is scanned without a template change; an event naming a network scans it until
shortly before the invocation's timeout."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from usdt_gateway import aws, clock, cursor
from usdt_gateway.chain.readers import reader_for
from usdt_gateway.chain.rpc_config import EndpointSpec, load_endpoints
from usdt_gateway.config import ConfigError, networks, settings
from usdt_gateway.networks import Network
from usdt_gateway.observability import count_per_network, logger, metrics
from usdt_gateway.scanner import DEPOSIT_WORKERS, Scanner

# Stop this long before the Lambda timeout: release the lease and flush metrics in time.
SAFETY_MARGIN_S = 10.0


def scan_seconds() -> float:
    raw = os.environ.get("SCAN_SECONDS", "62")
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"SCAN_SECONDS must be a number of seconds, not {raw!r}") from exc
    if not 0 <= value <= 900:
        raise ConfigError("SCAN_SECONDS must be between 0 (one cycle) and 900")
    return value


def build() -> dict[str, Scanner]:
    """One scanner per enabled network; validates networks, RPC endpoints and SCAN_SECONDS.
    Every enabled network needs an endpoint, except in local mode (see _scanned)."""
    enabled = networks()
    scanned, specs = _scanned(enabled) if settings().local_mode else (enabled, load_endpoints(enabled))
    scan_seconds()
    # The local stack's DynamoDB is moto in this very process, serving one request at a time: there
    # deposit workers only contend for the GIL and a block of payments takes longer, not shorter
    # (docs/benchmarks.md), so its scanner writes deposits one at a time.
    workers = 1 if settings().local_mode else DEPOSIT_WORKERS
    # Kept across warm invocations: the watch list then only reads what is new.
    return {name: Scanner(reader_for(network, specs[name]), workers=workers) for name, network in scanned.items()}


def _scanned(enabled: dict[str, Network]) -> tuple[dict[str, Network], dict[str, list[EndpointSpec]]]:
    """Local mode: the networks that have an endpoint. The local stack enables the public chains
    for creating orders but has no provider for them; those are left unscanned, not an error."""
    specs = load_endpoints({})  # validated like any configuration, without requiring a network
    skipped = [name for name in enabled if not specs.get(name)]
    if skipped:
        logger.warning(
            "local mode: enabled networks without an RPC endpoint are not scanned", extra={"networks": skipped}
        )
    return {name: network for name, network in enabled.items() if name not in skipped}, specs


def handle(
    scanners: dict[str, Scanner], event: dict[str, Any], *, remaining_ms: int, function_arn: str
) -> dict[str, Any]:
    name = event.get("network")
    if name is None:
        return dispatch(list(scanners), function_arn)
    scanner = scanners.get(str(name))
    if scanner is None:
        raise ValueError(f"network {name!r} is not scanned here; scanned: {', '.join(scanners) or 'none'}")
    budget = min(scan_seconds(), remaining_ms / 1000 - SAFETY_MARGIN_S)
    scanner.report = type(scanner.report)()
    report = scanner.run(until=clock.now_s() + max(0.0, budget))
    return {"network": name, **asdict(report)}


def dispatch(names: list[str], function_arn: str) -> dict[str, Any]:
    """One asynchronous invocation per network. A network whose invoke fails (a throttle, say)
    does not keep the others from being scanned this minute; it is logged, counted, and raised
    once every network has had its turn, so the invocation shows as failed."""
    client = aws.client("lambda")
    dispatched, failed = [], []
    for name in names:
        try:
            client.invoke(FunctionName=function_arn, InvocationType="Event", Payload=json.dumps({"network": name}))
        except ClientError as exc:
            logger.error(
                "could not start the scan of a network",
                extra={"network": name, "reason": exc.response["Error"]["Code"]},
            )
            metrics.add_metric(name="ScanDispatchFailures", unit=MetricUnit.Count, value=1)
            failed.append(name)
        else:
            dispatched.append(name)
    if failed:
        raise DispatchFailed(f"could not start the scan of {', '.join(failed)}; started {', '.join(dispatched)}")
    return {"dispatched": dispatched}


class DispatchFailed(RuntimeError):
    pass


def report_cursor_lag(names: list[str], *, now_ms: int | None = None) -> dict[str, int | None]:
    """From each network's committed cursor: how old its final block is (ScannerLagSeconds, no
    network dimension: the same series the scanners' own figures feed across networks). A
    network whose scanner has stalled or keeps failing still shows here, growing every minute.
    A network scanned here that has no cursor yet (its first scan has not completed a cycle: a
    wrong RPC key, a provider down since the deploy) has no lag to report; it is counted instead,
    ScannerNotStarted 1 per network and across networks, every minute until its first scan does.
    `names` are the networks this function scans (every enabled one; in local mode those with
    an endpoint). Returns the lag per network, None for a network not scanned yet."""
    now = clock.now_ms() if now_ms is None else now_ms
    lags: dict[str, int | None] = {}
    for name in names:
        try:
            item = cursor.read(name)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("could not read a scan cursor", extra={"network": name, "reason": type(exc).__name__})
            continue
        if item is None or item.get("finalTime") is None:
            lags[name] = None
            logger.warning("network not scanned yet: no cursor", extra={"network": name})
            count_per_network("ScannerNotStarted", name)
            continue
        lag = lags[name] = max(0, (now - int(item["finalTime"])) // 1000)
        metrics.add_metric(name="ScannerLagSeconds", unit=MetricUnit.Seconds, value=lag)
    return lags
