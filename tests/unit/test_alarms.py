"""template.yaml's alarms and dashboard: each alarm pages the operator's topic, and every metric,
dimension and service name they watch is one the code emits (read from the code, so neither
can drift from the other)."""

from __future__ import annotations

import ast
import itertools
import json
import re
from typing import Any

import pytest

from devstack.template import REPO_ROOT, function_environment, load_template

NAMESPACE = "UsdtGateway"
GATEWAY = REPO_ROOT / "layers/gateway/usdt_gateway"
# Alarm -> (namespace, what it must not ignore when the data stops)
ALARMS = {
    "ScannerLagAlarm": "breaching",  # a dead scanner reports nothing: that must page
    "ScannerNotStartedAlarm": "notBreaching",  # counted only while a network has no cursor
    "FinalityViolationAlarm": "notBreaching",  # counted only when a final block is replaced
    "ScannerHaltedAlarm": "notBreaching",  # counted only while a cursor is halted
    "DepositsDisputedAlarm": "notBreaching",  # counted only when a deposit is held, disputed
    "DepositsUnverifiedAlarm": "notBreaching",  # counted only when a deposit is held, unverified
    "RpcFailureRateAlarm": "notBreaching",
    "WebhookDLQAlarm": "notBreaching",
    "ApiServerErrorsAlarm": "notBreaching",
    "FunctionErrorsAlarm": "notBreaching",
    "FunctionThrottlesAlarm": "notBreaching",
    "RelayerBalanceAlarm": "notBreaching",  # reported only while a network has money to sweep
    "SettlementStuckAlarm": "notBreaching",
    "SettlementFailedAlarm": "notBreaching",
    "SettlementBalanceShortAlarm": "notBreaching",  # reported by each settlement run, 0 included
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def emitted_metric_names() -> set[str]:
    """Every metric name the gateway's code passes to add_metric (or to the helpers that call it:
    the webhook sender's _count, observability.count_per_network, settlement_jobs._gauge), string constants of the name
    expression included (e.g. `"A" if ok else "B"`)."""
    names: set[str] = set()
    for path in GATEWAY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called == "add_metric":
                exprs = [k.value for k in node.keywords if k.arg == "name"] + node.args[:1]
            elif called in ("_count", "count_per_network", "_gauge"):
                exprs = node.args[:1]
            else:
                continue
            names |= {
                c.value for e in exprs for c in ast.walk(e) if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return names


def service_names(template: dict[str, Any]) -> dict[str, str]:
    """POWERTOOLS_SERVICE_NAME of each function -> its logical id."""
    out = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            service = function_environment(template, name).get("POWERTOOLS_SERVICE_NAME")
            assert isinstance(service, str), f"{name} has no service name of its own"
            out[service] = name
    return out


def alarm_metrics(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm watches: its single metric, or each MetricStat of its math."""
    if "MetricName" in props:
        return [
            {
                "Namespace": props["Namespace"],
                "MetricName": props["MetricName"],
                "Dimensions": props.get("Dimensions", []),
            }
        ]
    return [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The DashboardBody with its ${...} references checked and substituted, parsed."""
    sub = template["Resources"]["OperatorDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(sub, str)
    resources, parameters = template["Resources"], template["Parameters"]
    for ref in re.findall(r"\$\{([^}]+)\}", sub):
        name, _, attr = ref.partition(".")
        assert name.startswith("AWS::") or name in resources or name in parameters, ref
        assert not attr or name in resources, ref
    document: dict[str, Any] = json.loads(
        re.sub(r"\$\{([^}]+)\}", lambda m: "1" if m.group(1) in parameters else "x", sub)
    )
    return document


def dashboard_metrics(body: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every metric a widget plots, and of every
    MetricName a SEARCH expression looks for (namespace from its schema, its dimension filters)."""
    found = []
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                for schema, rest in re.findall(r"SEARCH\('\{([^}]*)\}([^']*)'", row[0]["expression"]):
                    terms = dict(re.findall(r'(\w+)="([^"]*)"', rest))
                    metric = terms.pop("MetricName", None)
                    if metric:
                        found.append((schema.split(",")[0], metric, terms))
                continue
            plain = [x for x in row if isinstance(x, str)]
            found.append((plain[0], plain[1], dict(zip(plain[2::2], plain[3::2], strict=True))))
    return found


def test_each_alarm_pages_the_operator_topic(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    alarms = {n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == set(ALARMS)
    for name, missing in ALARMS.items():
        props = resources[name]["Properties"]
        assert props["AlarmActions"] == [{"Ref": "OperatorTopic"}], name
        # back to OK too: an alarm that stays in ALARM would never page for the next occurrence
        assert props["OKActions"] == [{"Ref": "OperatorTopic"}], name
        assert props["TreatMissingData"] == missing, name
        assert props["AlarmDescription"], name
    assert resources["OperatorTopic"]["Type"] == "AWS::SNS::Topic"
    assert resources["OperatorEmailSubscription"]["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_thresholds_an_operator_tunes_are_parameters(template: dict[str, Any]) -> None:
    resources, parameters = template["Resources"], template["Parameters"]
    for alarm, parameter in {
        "ScannerLagAlarm": "ScannerLagAlarmSeconds",
        "RpcFailureRateAlarm": "RpcFailureAlarmPercent",
        "ApiServerErrorsAlarm": "ApiServerErrorsAlarmCount",
        "FunctionErrorsAlarm": "FunctionErrorsAlarmCount",
    }.items():
        assert resources[alarm]["Properties"]["Threshold"] == {"Ref": parameter}
        assert parameters[parameter]["Type"] == "Number" and parameters[parameter]["Default"] > 0


def test_the_rpc_failure_rate_is_errors_over_calls(template: dict[str, Any]) -> None:
    metrics = template["Resources"]["RpcFailureRateAlarm"]["Properties"]["Metrics"]
    by_id = {m["Id"]: m for m in metrics}
    assert by_id["errors"]["MetricStat"]["Metric"]["MetricName"] == "RpcErrors"
    assert by_id["calls"]["MetricStat"]["Metric"]["MetricName"] == "RpcCalls"
    (shown,) = [m for m in metrics if m["ReturnData"]]
    assert shown["Expression"] == "IF(calls > 0, 100 * errors / calls, 0)"


def test_a_network_never_scanned_pages_once_its_first_scan_is_clearly_overdue(template: dict[str, Any]) -> None:
    props = template["Resources"]["ScannerNotStartedAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == (NAMESPACE, "ScannerNotStarted")
    assert props["Dimensions"] == [{"Name": "service", "Value": "scanner"}]  # across networks
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == (
        "Maximum",
        "GreaterThanThreshold",
        0,
    )
    # Every period of the last 15 minutes counted a network without a cursor: a fresh deploy's
    # first scan writes it within a minute or two (two periods at most), so only a scan that
    # keeps failing from the start pages
    assert props["DatapointsToAlarm"] == props["EvaluationPeriods"]
    assert props["Period"] * props["EvaluationPeriods"] == 900


def dlq_writes() -> list[str]:
    """The SQS calls of the gateway's code that name the webhook dead-letter queue's URL."""
    calls = []
    for path in GATEWAY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and any(k.arg == "QueueUrl" and "webhook_dlq_url" in ast.unparse(k.value) for k in node.keywords)
            ):
                calls.append(node.func.attr)
    return calls


def test_new_dead_events_page_whatever_the_queue_already_holds(template: dict[str, Any]) -> None:
    # The sender puts dead events on the DLQ with SendMessage, which NumberOfMessagesSent counts
    # (a message the redrive policy moves there is not counted by it, only by the queue's depth)
    writes = dlq_writes()
    assert writes and set(writes) == {"send_message"}
    props = template["Resources"]["WebhookDLQAlarm"]["Properties"]
    by_id = {m["Id"]: m for m in props["Metrics"]}
    dlq = [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["WebhookDLQ", "QueueName"]}}]
    sent, depth = by_id["sent"]["MetricStat"], by_id["depth"]["MetricStat"]
    assert (sent["Metric"]["Namespace"], sent["Metric"]["MetricName"], sent["Stat"]) == (
        "AWS/SQS",
        "NumberOfMessagesSent",
        "Sum",
    )
    assert (depth["Metric"]["Namespace"], depth["Metric"]["MetricName"], depth["Stat"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
    )
    assert sent["Metric"]["Dimensions"] == depth["Metric"]["Dimensions"] == dlq
    assert sent["Period"] == depth["Period"] == 300
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 0)
    assert props["OKActions"] == props["AlarmActions"] == [{"Ref": "OperatorTopic"}]


Series = list[float | None]


def evaluate(expression: str, data: dict[str, Series]) -> Series:
    """The metric math functions the DLQ alarm uses, over the points of one evaluation range
    (oldest first; None: no data point): FILL(x, v) fills the gaps, DIFF(x) is each point minus
    the one before it (none for the first point of the range), MAX([...]) the largest value of
    the series at each point."""

    def value(node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            return data[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List):
            return [value(e) for e in node.elts]
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name), ast.unparse(node)
        args = [value(a) for a in node.args]
        if node.func.id == "FILL":
            return [args[1] if v is None else v for v in args[0]]
        if node.func.id == "DIFF":
            xs = args[0]
            return [None] + [b - a if a is not None and b is not None else None for a, b in itertools.pairwise(xs)]
        if node.func.id == "MAX":
            return [max((v for v in col if v is not None), default=None) for col in zip(*args[0], strict=True)]
        raise AssertionError(f"not modelled: {node.func.id}")

    result: Series = value(ast.parse(expression, mode="eval").body)
    return result


@pytest.mark.parametrize(
    ("sent", "depth", "alarm"),
    [
        # the redrive policy moves a message here: only the depth rises (NumberOfMessagesSent: none)
        ([None, None], [0, 1], True),
        # the same into an idle queue, whose depth SQS did not report before
        ([None, None], [None, 1], True),
        # the sender's SendMessage
        ([None, 1], [None, 1], True),
        # dead events in back-to-back periods: it stays in ALARM
        ([1, 1], [1, 2], True),
        # messages waiting, nothing new for two periods: OK (the next new one pages again)
        ([None, None], [3, 3], False),
        # the operator drains the queue
        ([None, None], [3, 0], False),
        ([None, None], [None, None], False),
    ],
)
def test_the_dlq_alarm_sees_each_way_a_message_arrives(
    template: dict[str, Any], sent: Series, depth: Series, alarm: bool
) -> None:
    # Given the alarm's expression, evaluated over its evaluation range (EvaluationPeriods
    # points, the newest last), missing data not breaching
    props = template["Resources"]["WebhookDLQAlarm"]["Properties"]
    (shown,) = [m for m in props["Metrics"] if m["ReturnData"]]
    periods = props["EvaluationPeriods"]
    to_alarm = props.get("DatapointsToAlarm", periods)
    assert props["TreatMissingData"] == "notBreaching"

    # When the queue's metrics over the last periods are these
    points = evaluate(shown["Expression"], {"sent": sent[-periods:], "depth": depth[-periods:]})

    # Then one new message in the newest period is enough to raise it (DIFF has the depth of the
    # period before within the range), and nothing new means OK
    breaching = sum(1 for v in points if v is not None and v > props["Threshold"])
    assert (breaching >= to_alarm) is alarm, points


def test_every_gateway_metric_watched_is_emitted_by_the_code_under_that_service(template: dict[str, Any]) -> None:
    # Given the metric names the code emits and each function's service name
    emitted = emitted_metric_names()
    assert {
        "OrdersCreated",
        "DepositsDetected",
        "DepositsCredited",
        "DetectionLatency",
        "ScannerLagBlocks",
        "ScannerLagSeconds",
        "ScannerNotStarted",
        "RpcCalls",
        "RpcErrors",
        "WebhookAttempts",
        "WebhookFailures",
        "WebhookDead",
    } <= emitted
    services = service_names(template)
    env = function_environment(template, "ScannerFunction")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert f'"POWERTOOLS_METRICS_NAMESPACE", "{NAMESPACE}"' in (GATEWAY / "observability.py").read_text()
    # When every metric of an alarm or dashboard widget in our namespace is listed
    watched = [
        (m["Namespace"], m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]})
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for m in alarm_metrics(r["Properties"])
    ]
    watched += dashboard_metrics(dashboard_body(template))
    ours = [w for w in watched if w[0] == NAMESPACE]
    assert len(ours) > 15
    # Then each is emitted, under the service of a function, with only dimensions the code sets
    for _, name, dims in ours:
        assert name in emitted, f"{name} is watched but no code emits it"
        assert dims.get("service") in services, f"{name}: service {dims.get('service')!r} is no function's"
        assert set(dims) <= {"service", "network", "endpoint"}, name


def test_aws_metrics_name_the_resources_of_this_stack(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    api = resources["GatewayApi"]["Properties"]
    # The REST API's metrics carry its title: SAM sets it to the stack name when it has no Name
    assert "Name" not in api
    dims = {d["Name"]: d["Value"] for d in resources["ApiServerErrorsAlarm"]["Properties"]["Dimensions"]}
    assert dims == {"ApiName": {"Ref": "AWS::StackName"}, "Stage": api["StageName"]}
    for alarm in ("FunctionErrorsAlarm", "FunctionThrottlesAlarm"):
        functions = {m["Dimensions"][0]["Value"]["Ref"] for m in alarm_metrics(resources[alarm]["Properties"])}
        # every function of the template: a new one is watched from its first deployment
        assert functions == {n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}, alarm
    for m in alarm_metrics(resources["WebhookDLQAlarm"]["Properties"]):
        assert m["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["WebhookDLQ", "QueueName"]}}]


def test_the_dashboard_shows_every_alarm_and_the_figures_behind_them(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    sub = template["Resources"]["OperatorDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(re.findall(r"\$\{(\w+)\.Arn\}", sub)) == set(ALARMS)
    assert len(alarm_widget["properties"]["alarms"]) == len(ALARMS)
    plotted = {(ns, name) for ns, name, _ in dashboard_metrics(body)}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            for m in alarm_metrics(resource["Properties"]):
                assert (m["Namespace"], m["MetricName"]) in plotted, m["MetricName"]
