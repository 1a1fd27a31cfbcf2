"""Least privilege per function: every function's policy grants exactly the AWS calls its code can
make (read from the source by tests/aws_calls.py), on exactly the resource each call goes to, and
nothing else. A new call without its grant fails here, and so does a grant no code uses."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from devstack.template import REPO_ROOT, function_environment, load_template
from tests.aws_calls import Call, handler_calls
from usdt_gateway import auth, ratelimit, store

# What Lambda's SQS event source mapping calls with the function's own role ("Execution role
# permissions", https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
EVENT_SOURCE_MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")

# The reviewed result, written out: what each function may do (the derivation below checks it
# against the code; this table makes a change of privileges visible in review).
EXPECTED_ACTIONS = {
    "ApiFunction": {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "kms:Decrypt",
        "sqs:SendMessage",
    },
    "ScannerFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "ssm:GetParameter",
        "lambda:InvokeFunction",
        "sqs:SendMessage",
    },
    "PaymentPageFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "OutboxFunction": {"dynamodb:Query", "dynamodb:DeleteItem", "sqs:SendMessage"},
    "SettlementFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
        "ssm:GetParameter",
        "kms:GetPublicKey",
        "kms:Sign",
        "sqs:SendMessage",
    },
    "WebhookFunction": {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "kms:Decrypt",
        "sqs:SendMessage",
        "sqs:ChangeMessageVisibility",
        *EVENT_SOURCE_MAPPING_ACTIONS,
    },
}

Template = dict[str, Any]


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


def _functions(template: Template) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def _handler_file(props: dict[str, Any]) -> Path:
    module: str = props["Handler"].rpartition(".")[0]
    code_uri: str = props["CodeUri"]
    return REPO_ROOT / code_uri / (module.replace(".", "/") + ".py")


def _statements(template: Template, props: dict[str, Any]) -> list[dict[str, Any]]:
    """The function's inline statements and those of the template's managed policies it attaches."""
    statements = []
    for policy in props.get("Policies", []):
        if isinstance(policy, dict) and set(policy) == {"Ref"}:
            managed = template["Resources"][policy["Ref"]]
            assert managed["Type"] == "AWS::IAM::ManagedPolicy", policy
            policy = managed["Properties"]["PolicyDocument"]
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"only statements of this template are reviewed here, not {policy!r} (SAM policy templates grant more)"
        )
        statements += policy["Statement"]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_label(resource: Any, function: str, props: dict[str, Any]) -> str:
    """A statement's Resource as a logical name: Table, Table/index/gsi1, WebhookQueue, SecretsKey,
    parameter:RpcEndpointsParameter, or self (the function's own ARN)."""
    assert resource != "*", f"{function}: a '*' resource"
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn", resource
        return str(logical)
    sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
    assert isinstance(sub, str), f"{function}: resource {resource!r} is neither !GetAtt X.Arn nor a !Sub string"
    if sub.startswith("${Table.Arn}/index/"):
        return "Table/index/" + sub.removeprefix("${Table.Arn}/index/")
    prefix = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${"
    if sub.startswith(prefix) and sub.endswith("}"):
        return "parameter:" + sub.removeprefix(prefix).removesuffix("}")
    own = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
    if sub.startswith(own) and {"Fn::Sub": sub.removeprefix(own)} == props.get("FunctionName"):
        return "self"
    raise AssertionError(f"{function}: unexpected resource {sub}")


def granted(template: Template, function: str) -> set[tuple[str, str]]:
    props = _functions(template)[function]["Properties"]
    grants = set()
    for statement in _statements(template, props):
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"{function}: wildcard action {action}"
            for resource in _as_list(statement["Resource"]):
                grants.add((action, _resource_label(resource, function, props)))
    return grants


def _logical(ref: Any, what: str) -> str:
    assert isinstance(ref, dict) and set(ref) == {"Ref"}, f"{what} is {ref!r}, not a !Ref"
    return str(ref["Ref"])


def needed(template: Template, function: str) -> set[tuple[str, str]]:
    """What the function's code calls, on which resource, plus what its event sources need."""
    props = _functions(template)[function]["Properties"]
    env = function_environment(template, function)
    indexes = [i["IndexName"] for i in template["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"]]
    needs: set[tuple[str, str]] = set()
    for call in handler_calls(_handler_file(props)):
        service = call.action.split(":")[0]
        if service == "dynamodb":
            targets = [f"Table/index/{i}" for i in indexes] if call.target == "Table/index" else ["Table"]
        elif service == "sqs":
            targets = [_logical(env.get(call.target), f"{function}'s {call.target}")]
        elif call.action in ("kms:Sign", "kms:GetPublicKey"):  # the settlement relayer's signing key
            targets = [_logical(env.get("RELAYER_KEY_ID"), f"{function}'s RELAYER_KEY_ID")]
        elif service == "kms":
            targets = [_logical(env.get("KMS_KEY_ID"), f"{function}'s KMS_KEY_ID")]
        elif service == "ssm":
            targets = ["parameter:" + _logical(env.get("RPC_ENDPOINTS_PARAMETER"), "RPC_ENDPOINTS_PARAMETER")]
        elif call.action == "lambda:InvokeFunction":
            targets = ["self"]  # the scanner fans out to its own ARN (context.invoked_function_arn)
        else:
            raise AssertionError(f"{function}: no resource rule for {call}")
        needs |= {(call.action, target) for target in targets}
    for source in props.get("Events", {}).values():
        if source["Type"] == "SQS":
            queue = source["Properties"]["Queue"]["Fn::GetAtt"][0]
            needs |= {(action, queue) for action in EVENT_SOURCE_MAPPING_ACTIONS}
    return needs


def test_every_function_is_granted_exactly_what_its_code_calls(template: Template) -> None:
    # Given every function of the template (a new one is covered without a change here)
    functions = _functions(template)
    assert set(EXPECTED_ACTIONS) <= set(functions)

    for function in functions:
        # When its policy is compared with the calls its code can make
        have, need = granted(template, function), needed(template, function)

        # Then nothing is missing and nothing is granted that no code uses
        assert not need - have, f"{function} lacks {sorted(need - have)}"
        assert not have - need, f"{function} is granted {sorted(have - need)}, which no code of it calls"


def test_the_reviewed_privileges_are_those_of_the_template(template: Template) -> None:
    for function, actions in EXPECTED_ACTIONS.items():
        # When the function's granted actions are collected
        have = {action for action, _ in granted(template, function)}
        # Then they are the reviewed set
        assert have == actions, function


def test_deleting_items_is_limited_to_outbox_markers_ledger_entries_and_candidates(template: Template) -> None:
    # Given every statement that grants dynamodb:DeleteItem
    for function, resource in _functions(template).items():
        for statement in _statements(template, resource["Properties"]):
            if "dynamodb:DeleteItem" not in _as_list(statement["Action"]):
                continue
            # Then it is alone in its statement and only for items whose key starts OUTBOX#, the
            # markers outbox.publish clears, or, for the scanner alone, LEDGER#, the by-block index
            # entries of final deposits that move or leave after a deep reorg, and HELD#, the
            # operator's entry of a held deposit, which leaves once it is credited, or, for the API
            # alone, REPLAY#, the marker of a one-time request's signature that was refused after all,
            # and REFUND#, a refund undone before it was shown (a sweep claimed its address meanwhile),
            # or, for the settlement and the scanner, SWEEP#, the candidate of a deposit whose money
            # was swept, or that a deep reorg reversed before any sweep claimed it
            assert _as_list(statement["Action"]) == ["dynamodb:DeleteItem"], function
            allowed = {
                "ScannerFunction": [["OUTBOX#*"], ["LEDGER#*"], ["SWEEP#*"], ["HELD#*"]],
                "ApiFunction": [["OUTBOX#*"], ["REPLAY#*"], ["REFUND#*"]],
                "SettlementFunction": [["SWEEP#*"], ["OUTBOX#*"]],
            }.get(function, [["OUTBOX#*"]])
            assert _leading_keys(statement) in allowed, function


def test_the_api_may_delete_the_replay_markers_it_writes(template: Template) -> None:
    # Given the API function's DeleteItem patterns and the key of a replay marker, as auth.py makes it
    statements = _statements(template, _functions(template)["ApiFunction"]["Properties"])
    patterns = [p for s in statements if "dynamodb:DeleteItem" in _as_list(s["Action"]) for p in _leading_keys(s)]
    marker = auth.replay_key("ak_live_x", "ab" * 32)[0]
    # Then the marker matches them, and no key of an API key, a merchant or an order does
    assert any(fnmatch.fnmatchcase(marker, p) for p in patterns)
    for key in (*SECRET_KEYS[:2], store.order_key("m_1", "o-1")[0]):
        assert not any(fnmatch.fnmatchcase(key, p) for p in patterns), key


# The partition keys each action of the page function may touch (dynamodb:LeadingKeys), and
# what makes them: the page reads the public pointer, the order and the scan cursor, and counts
# its request on the source IP's meter of page loads. Keys of API keys and merchants (encrypted secrets)
# must match none of them.
PAGE_KEYS = {
    "dynamodb:GetItem": [store.public_key("pub")[0], store.order_key("m_1", "o-1")[0], store.cursor_key("bsc")[0]],
    "dynamodb:UpdateItem": [ratelimit.page_ip_key("203.0.113.7")[0], ratelimit.page_ip_key("2001:db8::1")[0]],
}
SECRET_KEYS = [
    store.api_key_key("ak_live_x")[0],
    store.merchant_key("m_1")[0],
    store.outbox_key("e")[0],
    store.deposit_key("bsc", "0xab", 1)[0],
    store.events_index_pk("m_1"),
]


def _leading_keys(statement: dict[str, Any]) -> list[str]:
    condition = statement.get("Condition") or {}
    assert list(condition) == ["ForAllValues:StringLike"], statement.get("Sid")
    ((key, patterns),) = condition["ForAllValues:StringLike"].items()
    assert key == "dynamodb:LeadingKeys", statement.get("Sid")
    return list(patterns)


def test_the_page_function_reaches_only_the_items_a_page_is_made_of(template: Template) -> None:
    # Given the page function's statements
    statements = _statements(template, _functions(template)["PaymentPageFunction"]["Properties"])
    allowed: dict[str, list[str]] = {}
    for statement in statements:
        # Then each is conditioned on the partition keys it may touch (ForAllValues: every key
        # of the request must match)
        for action in _as_list(statement["Action"]):
            allowed.setdefault(action, []).extend(_leading_keys(statement))
    assert set(allowed) == set(PAGE_KEYS)
    for action, keys in PAGE_KEYS.items():
        # And the keys its code makes match them (a new key without its pattern fails here)
        for key in keys:
            assert any(fnmatch.fnmatchcase(key, p) for p in allowed[action]), (action, key)
        # And no key of an API key, a merchant or anything else the page has no business with does
        for key in SECRET_KEYS:
            assert not any(fnmatch.fnmatchcase(key, p) for p in allowed[action]), (action, key)
    # And the page writes nothing but rate meters
    assert allowed["dynamodb:UpdateItem"] == [ratelimit.PREFIX + "*"]


def test_the_table_and_the_key_outlive_the_stack(template: Template) -> None:
    # Given the resources holding the data and the key that decrypts its secrets
    for name in ("Table", "SecretsKey"):
        resource = template["Resources"][name]
        # Then neither a stack deletion nor a replacing update deletes them
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain"), name


def _calls_of(tmp_path: Path, source: str) -> set[Call]:
    handler = tmp_path / "app.py"
    handler.write_text(source)
    return handler_calls(handler)


def test_the_derivation_sees_calls_through_modules_routes_and_locals(tmp_path: Path) -> None:
    # Given handlers that reach AWS in each way the gateway does
    sweep = "from usdt_gateway import outbox\n\ndef lambda_handler(e, c):\n    return outbox.sweep(now_ms=0)\n"
    routes = "import usdt_gateway.api.routes  # noqa: F401\n"
    local = (
        "from usdt_gateway import aws\n\ndef purge():\n    sqs = aws.client('sqs')\n    sqs.purge_queue(QueueUrl='x')\n"
    )
    # Then it finds the module function's calls (a query of the index, the SQS hand-off to the
    # queue the setting names, the marker deletion)
    assert _calls_of(tmp_path, sweep) == {
        Call("dynamodb:Query", "Table/index"),
        Call("dynamodb:DeleteItem", "Table"),
        Call("sqs:SendMessage", "WEBHOOK_QUEUE_URL"),
    }
    # And the routes a decorator registers, down to the order create's transaction parts
    api = _calls_of(tmp_path, routes)
    assert {Call("dynamodb:PutItem", "Table"), Call("kms:Decrypt", ""), Call("dynamodb:UpdateItem", "Table")} <= api
    # And a client kept in a local name, even for an operation the gateway never calls
    assert _calls_of(tmp_path, local) == {Call("sqs:PurgeQueue", "?")}
    # And importing a module whose functions make calls is not calling them
    assert _calls_of(tmp_path, "from usdt_gateway.secretbox import encrypt  # noqa: F401\n") == set()


def test_a_query_whose_index_is_optional_may_target_the_table_or_the_index(tmp_path: Path) -> None:
    # Given a query that names an index only under a condition, and one that always names it
    optional = (
        "from usdt_gateway import aws\n\ndef q(index):\n    kwargs = {'TableName': 't'}\n"
        "    if index:\n        kwargs['IndexName'] = index\n    aws.client('dynamodb').query(**kwargs)\n"
    )
    always = (
        "from usdt_gateway import aws\n\ndef q():\n    aws.client('dynamodb').query(TableName='t', IndexName='i')\n"
    )
    # When their calls are derived
    # Then the first needs Query on the table and on the index (either may run), the second on
    # the index only
    assert _calls_of(tmp_path, optional) == {Call("dynamodb:Query", "Table"), Call("dynamodb:Query", "Table/index")}
    assert _calls_of(tmp_path, always) == {Call("dynamodb:Query", "Table/index")}


def test_policies_grant_no_wildcards(template: Template) -> None:
    # Given the template as JSON text
    for function, resource in _functions(template).items():
        text = json.dumps(_statements(template, resource["Properties"]))
        # Then no statement names every resource or every action of a service
        assert '"*"' not in text and ':*"' not in text, function
