"""The metrics the handlers emit, read from the EMF lines they print (metrics enabled, as
deployed): the scanner's per network, across networks and per RPC endpoint (a scan whose every
endpoint is down included), the schedule's cursor lag and networks never scanned, the webhook
sender's, the API's orders."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from devstack.evm import start_anvil
from tests.integration.apiclient import ApiClient
from tests.integration.chains import EvmChain, drive, new_chain
from tests.integration.conftest import WebhookQueues
from tests.integration.sqs_lambda import EventSourceMapping
from tests.integration.test_logs import Context, load_scanner
from tests.integration.test_scanner_evm import FlakyProxy
from tests.integration.webhook_receiver import Reply, receiver
from tests.integration.webhooks import cancelled_order, set_url, settled
from usdt_gateway import config, cursor, scan_jobs
from usdt_gateway.observability import metrics


@dataclass(frozen=True)
class Blob:
    """One EMF document: its dimension sets, dimension values and metric values (name -> list)."""

    dimensions: list[list[str]]
    values: dict[str, str]
    metrics: dict[str, list[float]]
    units: dict[str, str]
    namespace: str


def blobs(out: str) -> list[Blob]:
    found = []
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        doc = json.loads(line)
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        names = [m["Name"] for m in directive["Metrics"]]
        dims = directive["Dimensions"]
        found.append(
            Blob(
                dims,
                {d: doc[d] for ds in dims for d in ds},
                {n: doc[n] if isinstance(doc[n], list) else [doc[n]] for n in names},
                {m["Name"]: m["Unit"] for m in directive["Metrics"]},
                directive["Namespace"],
            )
        )
    return found


def total(found: list[Blob], name: str) -> float:
    return sum(sum(b.metrics.get(name, [])) for b in found)


@pytest.fixture
def emf(settings_env: pytest.MonkeyPatch) -> Iterator[None]:
    """Metrics on, as deployed, under a service name as POWERTOOLS_SERVICE_NAME gives it."""
    metrics.clear_metrics()
    settings_env.setenv("POWERTOOLS_METRICS_DISABLED", "0")
    service = metrics.service
    metrics.service = "scanner"
    yield
    metrics.service = service
    metrics.clear_metrics()


@pytest.fixture
def chain(settings_env: pytest.MonkeyPatch) -> Iterator[EvmChain]:
    with start_anvil() as anvil:
        yield new_chain(anvil, settings_env)


def test_scanner_emits_per_network_across_networks_and_per_endpoint(
    emf: None, api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, other = FlakyProxy(chain.anvil.url), FlakyProxy(chain.anvil.url)
    try:
        # Given the scanner function with three endpoints, the preferred one down, each URL with a
        # key (the third confirms each credit as the second source)
        settings_env.setenv("LOCAL_MODE", "1")
        settings_env.setenv(
            "RPC_ENDPOINTS",
            json.dumps(
                {chain.network: ["http://127.0.0.1:9/v2/DEADKEY", f"{proxy.url}/v2/LIVEKEY", f"{other.url}/v2/KEY3"]}
            ),
        )
        settings_env.setenv("SCAN_SECONDS", "0")
        config.reset()
        scan = load_scanner()
        # When an order is paid and scanned twice: seen, then final
        order = api.create(network=chain.network, amount="25.00").body
        chain.pay(order["address"], "25.00")
        capsys.readouterr()
        scan({"network": chain.network}, Context())
        chain.mine(1)
        scan({"network": chain.network}, Context())
        found = blobs(capsys.readouterr().out)
    finally:
        proxy.close()
        other.close()
    # Then each invocation's figures are per network and, second dimension set, across networks
    main = [b for b in found if "ScannerLagBlocks" in b.metrics]
    assert len(main) == 2
    for b in main:
        assert b.dimensions == [["network", "service"], ["service"]]
        assert b.values == {"network": chain.network, "service": "scanner"}
        assert b.namespace == metrics.namespace
    assert (total(main, "DepositsDetected"), total(main, "DepositsCredited")) == (1, 1)
    assert main[1].metrics["ScannerLagBlocks"][-1] == 1  # 2 confirmations: head - final cursor
    assert (
        main[1].units.items()
        >= {
            "ScannerLagBlocks": "Count",
            "ScannerLagSeconds": "Seconds",
            "DetectionLatency": "Milliseconds",
            "RpcCalls": "Count",
            "RpcErrors": "Count",
        }.items()
    )
    assert 0 < total(main, "RpcErrors") < total(main, "RpcCalls")
    # And per endpoint, named by host and port, never by URL (the keys stay out of dimensions)
    per_endpoint = [b for b in found if "endpoint" in b.values]
    hosts = {"127.0.0.1:9", proxy.url.removeprefix("http://"), other.url.removeprefix("http://")}
    assert {b.values["endpoint"] for b in per_endpoint} == hosts
    assert all(b.dimensions == [["network", "endpoint", "service"]] for b in per_endpoint)
    by_endpoint: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for b in per_endpoint:
        for name in ("RpcCalls", "RpcErrors"):
            by_endpoint[b.values["endpoint"]][name] += sum(b.metrics[name])
    dead, live = by_endpoint["127.0.0.1:9"], by_endpoint[proxy.url.removeprefix("http://")]
    assert dead["RpcErrors"] == dead["RpcCalls"] >= 1 and live["RpcErrors"] == 0 and live["RpcCalls"] > 5
    second = by_endpoint[other.url.removeprefix("http://")]
    assert second["RpcErrors"] == 0 and second["RpcCalls"] >= 1
    # And the per-endpoint figures add up to the network's
    assert sum(e["RpcCalls"] for e in by_endpoint.values()) == total(main, "RpcCalls")
    assert sum(e["RpcErrors"] for e in by_endpoint.values()) == total(main, "RpcErrors")


def rpc_figures(found: list[Blob]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """RpcCalls and RpcErrors summed: of the network's metric sets, and per endpoint."""
    network = {n: total([b for b in found if "endpoint" not in b.values], n) for n in ("RpcCalls", "RpcErrors")}
    per_endpoint: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for b in found:
        if "endpoint" in b.values:
            for n in ("RpcCalls", "RpcErrors"):
                per_endpoint[b.values["endpoint"]][n] += sum(b.metrics[n])
    return network, per_endpoint


def test_a_scan_with_every_endpoint_down_counts_its_failed_calls(
    emf: None, chain: EvmChain, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refusing = FlakyProxy(chain.anvil.url)
    refusing.mode = "fail"  # answers 429 to every call, as a provider does to a wrong or exhausted key
    try:
        # Given the scanner function whose two endpoints are down: nothing listens on one, the other refuses
        settings_env.setenv("LOCAL_MODE", "1")
        settings_env.setenv(
            "RPC_ENDPOINTS",
            json.dumps({chain.network: ["http://127.0.0.1:9/v2/DEADKEY", f"{refusing.url}/v2/WRONGKEY"]}),
        )
        settings_env.setenv("SCAN_SECONDS", "0")
        config.reset()
        scan = load_scanner()
        capsys.readouterr()
        # When it scans twice (one cycle each): every cycle fails, and the invocations do not
        result = [scan({"network": chain.network}, Context()) for _ in range(2)]
        found = blobs(capsys.readouterr().out)
    finally:
        refusing.close()
    assert [(r["cycles"], r["errors"]) for r in result] == [(1, 1), (1, 1)]
    item = cursor.read(chain.network)
    assert item is None or item.get("finalTime") is None  # no cycle completed: no cursor
    # Then each invocation still reports its RPC calls, every one failed: per network and across networks
    rpc = [b for b in found if "RpcCalls" in b.metrics and "endpoint" not in b.values]
    assert len(rpc) == 2
    for b in rpc:
        assert b.dimensions == [["network", "service"], ["service"]]
        assert b.values == {"network": chain.network, "service": "scanner"}
        assert b.metrics["RpcErrors"] == b.metrics["RpcCalls"] and sum(b.metrics["RpcCalls"]) >= 2
        assert b.units.items() >= {"RpcCalls": "Count", "RpcErrors": "Count"}.items()
        assert "ScannerLagBlocks" not in b.metrics  # no cycle completed: no lag figure of its own
    network, per_endpoint = rpc_figures(found)
    assert network["RpcErrors"] == network["RpcCalls"] > 0  # the failure rate alarm's ratio: 100 %
    # And per endpoint, each at 100 %, adding up to the network's, each call counted once
    refusing_name = refusing.url.removeprefix("http://")
    assert set(per_endpoint) == {"127.0.0.1:9", refusing_name}
    for figures in per_endpoint.values():
        assert figures["RpcErrors"] == figures["RpcCalls"] >= 1
    assert per_endpoint[refusing_name]["RpcCalls"] == refusing.served
    assert sum(e["RpcCalls"] for e in per_endpoint.values()) == network["RpcCalls"]


def test_the_schedule_reports_each_cursors_lag_and_each_network_never_scanned(
    emf: None, api: ApiClient, chain: EvmChain, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given, locally, two networks with an endpoint: one scanned once (its cursor at a block of the
    # chain's time), one whose provider refuses every call since the deploy (its scan never completed
    # a cycle: no cursor); and the base networks, enabled without an endpoint (not scanned locally)
    from tests.integration.chains import BASE_NETWORKS

    refusing = FlakyProxy(chain.anvil.url)
    refusing.mode = "fail"
    broken = f"{chain.network}-broken"
    spec = json.loads(os.environ["NETWORKS_CONFIG"])[chain.network]
    settings_env.setenv("NETWORKS_CONFIG", json.dumps({chain.network: spec, broken: {**spec, "chainId": 31338}}))
    settings_env.setenv("ENABLED_NETWORKS", f"{BASE_NETWORKS},{chain.network},{broken}")
    settings_env.setenv("LOCAL_MODE", "1")
    settings_env.setenv(
        "RPC_ENDPOINTS", json.dumps({chain.network: [chain.anvil.url], broken: [f"{refusing.url}/v2/WRONGKEY"]})
    )
    config.reset()
    try:
        scanners = scan_jobs.build()
        assert set(scanners) == {chain.network, broken}
        state = drive(scanners[chain.network])
        assert scanners[broken].run(until=0).errors == 1
    finally:
        refusing.close()
    item = cursor.read(chain.network)
    assert item is not None and int(item["finalTime"]) == state.final_time
    metrics.clear_metrics()  # the scans' own figures
    capsys.readouterr()
    # When the schedule's invocation runs an hour after that block
    now = state.final_time + 3_600_000
    lags = scan_jobs.report_cursor_lag(list(scanners), now_ms=now)
    # Then the lag is reported from the cursor, in the invocation's metric set (no network dimension)
    assert lags == {chain.network: 3600, broken: None}
    # Each metric is a key of its own, beyond Powertools' TypedDict of the document
    doc = cast("dict[str, Any]", metrics.serialize_metric_set())
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert doc["ScannerLagSeconds"] == [3600.0]
    # And the network never scanned is counted, per network and across networks; nothing else is
    (not_started,) = [b for b in blobs(capsys.readouterr().out) if "ScannerNotStarted" in b.metrics]
    assert not_started.metrics["ScannerNotStarted"] == [1.0] and not_started.units["ScannerNotStarted"] == "Count"
    assert not_started.dimensions == [["network", "service"], ["service"]]
    assert not_started.values == {"network": broken, "service": "scanner"}
    assert "ScannerNotStarted" not in doc


@pytest.fixture
def webhook_metrics(emf: None, webhook_queues: WebhookQueues) -> None:
    metrics.service = "webhook"


def test_webhook_sender_counts_attempts_failures_deliveries_and_dead_events(
    webhook_metrics: None, api: ApiClient, lambda_sqs: EventSourceMapping, capsys: pytest.CaptureFixture[str]
) -> None:
    with receiver() as shop:
        # Given one event whose first attempt fails and one whose every attempt fails
        shop.policy = lambda hit: Reply(
            503 if hit.path == "/dead" or [h.path for h in shop.hits].count("/hook") == 1 else 200
        )
        set_url(api, shop.url("/hook"))
        _, ok_event = cancelled_order(api)
        _, dead_event = cancelled_order(api, notifyUrl=shop.url("/dead"))
        capsys.readouterr()
        # When the queue is processed until both settle
        lambda_sqs.run_until(settled(ok_event, dead_event))
        found = blobs(capsys.readouterr().out)
    # Then: 2 + 4 attempts, 1 + 4 failures, 1 delivery, 1 dead event
    assert (
        total(found, "WebhookAttempts"),
        total(found, "WebhookFailures"),
        total(found, "WebhookDeliveries"),
        total(found, "WebhookDead"),
    ) == (6, 5, 1, 1)
    assert all(b.values == {"service": "webhook"} for b in found)


def test_api_counts_created_orders_per_network(emf: None, api: ApiClient, capsys: pytest.CaptureFixture[str]) -> None:
    metrics.service = "api"
    capsys.readouterr()
    # When an order is created, then created again with the same parameters (idempotent)
    payload: dict[str, Any] = {"network": "tron", "amount": "5.00", "orderId": "metrics-1"}
    assert api.create(**payload).status == 201
    assert api.create(**payload).status == 200
    # Then one OrdersCreated, per network and across networks
    (blob,) = [b for b in blobs(capsys.readouterr().out) if "OrdersCreated" in b.metrics]
    assert blob.metrics["OrdersCreated"] == [1.0]
    assert blob.dimensions == [["network", "service"], ["service"]] and blob.values == {
        "network": "tron",
        "service": "api",
    }
