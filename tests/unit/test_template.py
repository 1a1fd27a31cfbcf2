"""template.yaml: lint-clean, and the facts the code and the local stack rely on."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.template import REPO_ROOT, TEMPLATE_PATH, api_routes, function_environment, load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            names.add(re.split(r"[\s\[<>=!~;@]", spec, maxsplit=1)[0].lower())
    return names


def _sample_events() -> dict[tuple[str, str], tuple[Path, dict[str, Any]]]:
    events = {}
    for path in sorted((REPO_ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if "resource" in event and "httpMethod" in event:
            events[(event["httpMethod"], event["resource"])] = (path, event)
    return events


def test_cfn_lint_reports_nothing() -> None:
    # Given the cfn-lint of the environment running the tests
    cfn_lint = Path(sys.prefix) / "bin" / "cfn-lint"

    # When it lints the template
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False
    )

    # Then it exits 0 without a single finding
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


def test_table_is_on_demand_with_pitr_sse_and_ttl(template: dict[str, Any]) -> None:
    # Given the table resource
    table = template["Resources"]["Table"]

    # When its properties are read
    props = table["Properties"]

    # Then it is on-demand, recoverable, encrypted, expires items on `ttl` and survives stack deletion
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert table["DeletionPolicy"] == "Retain"
    assert [i["IndexName"] for i in props["GlobalSecondaryIndexes"]] == ["gsi1"]


def test_api_function_serves_exactly_the_routes_of_the_code(template: dict[str, Any]) -> None:
    # Given the routes the code registers (api/routes.py), each with its browser preflight when
    # public (no scope: no key, CORS on)
    import usdt_gateway.api.routes  # noqa: F401  (registers the routes)
    from usdt_gateway.api.app import ROUTES

    expected = [(spec.method, spec.path) for spec in ROUTES]
    expected += [("OPTIONS", spec.path) for spec in ROUTES if spec.scope is None]

    # When the template's API events of ApiFunction are collected
    api = [(r.method, r.path) for r in api_routes(template) if r.function == "ApiFunction"]

    # Then they are the same routes, each once: a route missing from the template would be
    # unreachable when deployed, an event without a route a 404 behind API Gateway
    assert sorted(api) == sorted(expected)
    assert len(set(api)) == len(api)


def test_only_the_public_routes_answer_a_browsers_preflight(template: dict[str, Any]) -> None:
    # Given the API's routes and the public ones among them (no scope: no key, CORS on)
    import usdt_gateway.api.routes  # noqa: F401  (registers the routes)
    from usdt_gateway.api.app import ROUTES

    routes = api_routes(template)
    public = {spec.path for spec in ROUTES if spec.scope is None}

    # When the OPTIONS methods are collected
    preflights = {r.path: r.function for r in routes if r.method == "OPTIONS"}

    # Then each public path has one, answered by the API function, and no other path does: API
    # Gateway refuses a preflight to the merchant API itself (no CORS setting of the whole API)
    assert preflights == dict.fromkeys(public, "ApiFunction")
    assert "Cors" not in template["Resources"]["GatewayApi"]["Properties"]
    assert "Cors" not in template.get("Globals", {}).get("Api", {})


def test_api_function_gets_no_chain_libraries(template: dict[str, Any]) -> None:
    # Given ApiFunction's layers and the gateway layer's requirements
    layers = template["Resources"]["ApiFunction"]["Properties"]["Layers"]
    requirements = _requirement_names(REPO_ROOT / "layers" / "gateway" / "requirements.txt")

    # When they are compared with the chain layer
    refs = {layer.get("Ref") for layer in layers if isinstance(layer, dict)}

    # Then web3 and tronpy (1-2 s of imports) stay out of the API function
    assert "ChainLayer" in template["Resources"]
    assert refs == {"GatewayLayer"}
    assert "web3" not in requirements
    assert "tronpy" not in requirements


def test_the_settlement_function_gets_the_chain_layer_and_the_tron_settings(template: dict[str, Any]) -> None:
    from usdt_gateway import tron_energy
    from usdt_gateway.networks import load_networks

    # Given the SettlementFunction and its parameters
    props = template["Resources"]["SettlementFunction"]["Properties"]
    params = template["Parameters"]
    env = function_environment(template, "SettlementFunction")
    # Then it has tronpy (Tron networks are settled with it), and the Tron settings come from
    # parameters, under the variables the code reads
    assert {layer["Ref"] for layer in props["Layers"]} == {"GatewayLayer", "ChainLayer"}
    assert env["TRON_FEE_LIMIT_SUN"] == {"Ref": "SettlementTronFeeLimitSun"}
    assert env["TRON_ENERGY_MODE"] == {"Ref": "SettlementTronEnergyMode"}
    fee, mode = params["SettlementTronFeeLimitSun"], params["SettlementTronEnergyMode"]
    assert (fee["MinValue"], fee["MaxValue"]) == (1, tron_energy.MAX_FEE_LIMIT_SUN)
    # And the defaults are the code's, and what the parameter's pattern lets through is what the
    # code accepts (at cold start a refused value would stop the function)
    enabled = load_networks("tron,nile,eth")
    assert tron_energy.load(enabled, {"TRON_FEE_LIMIT_SUN": str(fee["Default"]), "TRON_ENERGY_MODE": mode["Default"]})[
        "tron"
    ] == tron_energy.EnergySetting("burn", tron_energy.DEFAULT_FEE_LIMIT_SUN)
    pattern = re.compile(mode["AllowedPattern"])
    for value in ("burn", "staked", "tron=staked", "tron=staked,nile=burn"):
        assert pattern.fullmatch(value), value
        tron_energy.load(enabled, {"TRON_ENERGY_MODE": value})
    for value in ("", "rent", "tron=rent", "tron=staked,", "staked,burn", "tron:staked"):
        assert not pattern.fullmatch(value), value


def test_webhook_function_consumes_the_queue_with_partial_batch_responses(template: dict[str, Any]) -> None:
    # Given the webhook function
    props = template["Resources"]["WebhookFunction"]["Properties"]
    (source,) = props["Events"].values()

    # Then it reads the webhook queue in batches, reporting the messages to keep, with a bounded
    # concurrency and a timeout the queue's visibility timeout is 6 times
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Properties"]["BatchSize"] == 10
    assert source["Properties"]["ScalingConfig"]["MaximumConcurrency"] >= 2
    queue = template["Resources"]["WebhookQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == 6 * props["Timeout"]
    # And it knows the dead-letter queue, gets no chain libraries, and logs to its own group
    env = function_environment(template, "WebhookFunction")
    assert env["WEBHOOK_DLQ_URL"] == {"Ref": "WebhookDLQ"}
    assert env["WEBHOOK_QUEUE_URL"] == {"Ref": "WebhookQueue"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "webhook"
    assert [layer.get("Ref") for layer in props["Layers"]] == ["GatewayLayer"]
    assert props["LoggingConfig"] == {"LogGroup": {"Ref": "WebhookFunctionLogGroup"}}


def test_webhook_function_may_touch_only_its_queues_table_and_key(template: dict[str, Any]) -> None:
    # Given the webhook function's policy statements
    (policy,) = template["Resources"]["WebhookFunction"]["Properties"]["Policies"]
    grants = {
        (s["Sid"], json.dumps(s["Resource"], sort_keys=True)): set(
            [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        )
        for s in policy["Statement"]
    }

    # Then each action is granted on exactly the resource it needs
    def arn(resource: str) -> str:
        return json.dumps({"Fn::GetAtt": [resource, "Arn"]})

    assert grants == {
        ("TableItems", arn("Table")): {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        ("DecryptSecrets", arn("SecretsKey")): {"kms:Decrypt"},
        ("ConsumeAndReschedule", arn("WebhookQueue")): {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:SendMessage",
        },
        ("DeadLetters", arn("WebhookDLQ")): {"sqs:SendMessage"},
    }


def test_cloudwatch_alarms_can_publish_to_the_operator_topic(template: dict[str, Any]) -> None:
    # SNS encrypted with the AWS-managed key (alias/aws/sns) refuses CloudWatch alarms: that key's
    # policy cannot grant cloudwatch.amazonaws.com, so no alarm would ever reach the operator. A
    # customer-managed key would need a policy statement for CloudWatch.
    topic = template["Resources"]["OperatorTopic"]["Properties"]
    key = topic.get("KmsMasterKeyId")
    assert key is None or key not in ("alias/aws/sns", {"Fn::Sub": "alias/aws/sns"}), key
    if key is not None:  # a key of this template: its policy must let CloudWatch use it
        key_id = key["Ref"] if isinstance(key, dict) and "Ref" in key else key["Fn::GetAtt"][0]
        policy = json.dumps(template["Resources"][key_id]["Properties"]["KeyPolicy"])
        assert "cloudwatch.amazonaws.com" in policy


def test_every_route_has_a_matching_sample_event(template: dict[str, Any]) -> None:
    # Given the sample events in events/
    events = _sample_events()

    for route in api_routes(template):
        # When the event for the route is looked up
        assert (route.method, route.path) in events, f"no sample event for {route.method} {route.path}"
        path, event = events[(route.method, route.path)]

        # Then its method, resource and concrete path match the route
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(route.path))
        assert re.fullmatch(pattern, event["path"]), f"{path.name}: path {event['path']} is not {route.path}"
        context = event["requestContext"]
        assert (context["httpMethod"], context["resourcePath"], context["stage"]) == (route.method, route.path, "live")
        params = set(re.findall(r"\{([^/]+?)\}", route.path))
        assert set(event["pathParameters"] or {}) == params, path.name


def test_function_environment_merges_globals_with_the_function(template: dict[str, Any]) -> None:
    # Given the template

    # When ApiFunction's environment is resolved
    env = function_environment(template, "ApiFunction")

    # Then it holds the shared variables and its own, intrinsics unresolved
    assert env["TABLE_NAME"] == {"Ref": "Table"}
    assert env["KMS_KEY_ID"] == {"Ref": "SecretsKey"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "api"
    assert env["LOG_LEVEL"] == "INFO"
    assert env["PUBLIC_BASE_URL"] == {"Ref": "PublicBaseUrl"}


def test_every_handler_file_exists(template: dict[str, Any]) -> None:
    # Given every serverless function of the template
    functions = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert functions

    for name, props in functions.items():
        # When its Handler is resolved under its CodeUri
        module, _, handler = props["Handler"].rpartition(".")
        source = REPO_ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")

        # Then the file exists and defines the handler at top level
        assert source.is_file(), f"{name}: {source} is missing"
        tree = ast.parse(source.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        assert handler in defined, f"{name}: {source.name} does not define {handler}"


def test_short_tags_load_in_long_form(tmp_path: Path) -> None:
    # Given a template written with short-form intrinsics
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  R:\n"
        "    Properties:\n"
        "      A: !Ref Table\n"
        "      B: !GetAtt Table.Arn\n"
        "      C: !Sub ${Table.Arn}/index/*\n"
        "      D: !If [Cond, !Ref X, !Join ['', [a, b]]]\n"
        "      E: !GetAtt [Table, StreamArn]\n"
    )

    # When it is loaded
    props = load_template(path)["Resources"]["R"]["Properties"]

    # Then every tag has its long form
    assert props["A"] == {"Ref": "Table"}
    assert props["B"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert props["C"] == {"Fn::Sub": "${Table.Arn}/index/*"}
    assert props["D"] == {"Fn::If": ["Cond", {"Ref": "X"}, {"Fn::Join": ["", ["a", "b"]]}]}
    assert props["E"] == {"Fn::GetAtt": ["Table", "StreamArn"]}


def test_for_each_loops_expand_as_the_language_extensions_transform_does(tmp_path: Path) -> None:
    # Given a template with a loop over two names, its identifier in a key (as ${Id} and &{Id}),
    # a Ref, a Sub string and a Sub variable from a mapping, and a Select indexed from the mapping
    path = tmp_path / "template.yaml"
    path.write_text(
        "Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]\n"
        "Mappings:\n"
        "  Short: {Api: {Name: api, Pick: '1'}, PaymentPage: {Name: paypage, Pick: '0'}}\n"
        "Resources:\n"
        "  Kept: {Type: AWS::SNS::Topic}\n"
        "  Fn::ForEach::Groups:\n"
        "    - Fn\n"
        "    - [Api, PaymentPage]\n"
        "    - ${Fn}Group:\n"
        "        Type: AWS::Logs::LogGroup\n"
        "        Properties:\n"
        "          A: !Ref Fn\n"
        "          B: !Sub ${AWS::StackName}-${Fn}\n"
        "          C: !Sub ['/x/${Short}', {Short: !FindInMap [Short, !Ref Fn, Name]}]\n"
        "          D: !Select [!FindInMap [Short, !Ref Fn, Pick], [!Ref Count, 0]]\n"
        "          E: !Ref Kept\n"
        "      '&{Fn}Alias': {Type: AWS::SNS::Topic}\n"
    )

    # When it is loaded
    resources = load_template(path)["Resources"]

    # Then each name made its resources, and what the loop wrote with literals is the literal
    assert set(resources) == {"Kept", "ApiGroup", "PaymentPageGroup", "ApiAlias", "PaymentPageAlias"}
    assert resources["ApiGroup"]["Properties"] == {
        "A": "Api",
        "B": {"Fn::Sub": "${AWS::StackName}-Api"},
        "C": {"Fn::Sub": "/x/api"},
        "D": 0,
        "E": {"Ref": "Kept"},
    }
    assert resources["PaymentPageGroup"]["Properties"]["D"] == {"Ref": "Count"}
    # And the source form is still there for who asks for it
    assert "Fn::ForEach::Groups" in load_template(path, expand=False)["Resources"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # a key the loop makes twice
        ("  Fn::ForEach::L: [N, [a, a], {'R${N}': {Type: T}}]\n", "defined twice"),
        # a key the loop makes that the section already has
        ("  Ra: {Type: T}\n  Fn::ForEach::L: [N, [a], {'R${N}': {Type: T}}]\n", "defined twice"),
        # a collection that is not a literal list (a parameter's)
        ("  Fn::ForEach::L: [N, !Ref Names, {'R${N}': {Type: T}}]\n", "literal list"),
    ],
)
def test_a_loop_that_cannot_be_expanded_faithfully_is_refused(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Transform: [AWS::LanguageExtensions]\nResources:\n" + text)
    with pytest.raises(ValueError, match=error):
        load_template(path)


def test_a_loop_without_the_transform_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn::ForEach::L: [N, [a], {'R${N}': {}}]\n")
    with pytest.raises(ValueError, match="AWS::LanguageExtensions"):
        load_template(path)


def test_each_function_logs_to_its_own_group_named_by_its_service(template: dict[str, Any]) -> None:
    # Given every serverless function of the expanded template
    resources = template["Resources"]
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) >= 5

    for name in functions:
        # When its log group is looked up
        group_id = resources[name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = resources[group_id]

        # Then it is a group of this template, named /aws/lambda/<stack>-<service name>, kept
        # LogRetentionDays
        service = function_environment(template, name)["POWERTOOLS_SERVICE_NAME"]
        assert group["Type"] == "AWS::Logs::LogGroup", name
        assert group["Properties"] == {
            "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{service}"},
            "RetentionInDays": {"Ref": "LogRetentionDays"},
        }, name
