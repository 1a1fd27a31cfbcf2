"""template.yaml as the single source of truth for local and test infrastructure.

The local stack and the tests read the table schema, the API routes and the function
environment from the template instead of repeating them, so they cannot drift from what
`sam deploy` creates.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev environment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
TABLE_RESOURCE = "Table"

Template = dict[str, Any]

# Short tags whose long form is not "Fn::<Name>".
_UNPREFIXED = {"Ref", "Condition"}


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # SafeLoader is Any without stubs
    """SafeLoader that turns CloudFormation short tags (!Ref, !Sub, ...) into their long forms."""


def _intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix
    key = name if name in _UNPREFIXED else f"Fn::{name}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "GetAtt":
            # !GetAtt Resource.Attribute -> ["Resource", "Attribute"]; the attribute may itself
            # contain dots (Outputs.Name of a nested stack), so split once.
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has only the three node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{name}", node.start_mark)
    return {key: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH, *, expand: bool = True) -> Template:
    """Parse a CloudFormation/SAM template; short-form intrinsics come back in long form, and
    (unless `expand` is false) its Fn::ForEach loops are expanded as the AWS::LanguageExtensions
    transform does before SAM's, so Resources holds every resource by its logical id."""
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass, only adds tag constructors
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ValueError(f"{path}: not a CloudFormation template (no Resources)")
    return expand_language_extensions(data) if expand else data


# --- AWS::LanguageExtensions ----------------------------------------------------------------

_FOR_EACH = "Fn::ForEach::"


def expand_language_extensions(template: Template) -> Template:
    """The template with every Fn::ForEach expanded, then each Fn::FindInMap, Fn::Select and
    Fn::Sub variable whose arguments are literal resolved: the part of AWS::LanguageExtensions
    this template uses (a loop over a literal list; its identifier in output keys as ${Id} or
    &{Id}, in Fn::Sub strings, and as {"Ref": Id}). Fn::Length and Fn::ToJsonString are refused."""
    keys = _all_keys(template)
    if unsupported := {"Fn::Length", "Fn::ToJsonString"} & set(keys):
        raise ValueError(f"not expanded here: {sorted(unsupported)}")
    if not any(key.startswith(_FOR_EACH) for key in keys):
        return template
    transforms = template.get("Transform", [])
    if "AWS::LanguageExtensions" not in (transforms if isinstance(transforms, list) else [transforms]):
        raise ValueError("Fn::ForEach needs the AWS::LanguageExtensions transform")
    expanded: Template = _expand(template, {})
    mappings = expanded.get("Mappings", {})
    return {k: v if k in ("Mappings", "Parameters") else resolve_literals(v, mappings) for k, v in expanded.items()}


def _all_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for k, v in value.items() for k in (k, *_all_keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in _all_keys(v)]
    return []


def _substitute(text: str, names: dict[str, str]) -> str:
    for name, value in names.items():
        text = text.replace(f"${{{name}}}", value).replace(f"&{{{name}}}", re.sub(r"[^0-9A-Za-z]", "", value))
    return text


def _expand(value: Any, names: dict[str, str]) -> Any:
    """A copy of `value` with its loops unrolled and the identifiers in `names` replaced."""
    if isinstance(value, list):
        return [_expand(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in names:
        return names[value["Ref"]]
    if set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        if isinstance(sub, str):
            return {"Fn::Sub": _substitute(sub, names)}
        return {"Fn::Sub": [_substitute(sub[0], names), *_expand(sub[1:], names)]}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key.startswith(_FOR_EACH):
            pairs = _unroll(key, item, names)
        else:
            pairs = [(_substitute(key, names), _expand(item, names))]
        for k, v in pairs:
            if k in out:
                raise ValueError(f"{k} is defined twice ({key})")
            out[k] = v
    return out


def _unroll(key: str, loop: Any, names: dict[str, str]) -> list[tuple[str, Any]]:
    """The (key, value) pairs one Fn::ForEach makes, each expanded."""
    identifier, collection, fragment = loop
    if not (isinstance(collection, list) and all(isinstance(c, str) for c in collection)):
        raise ValueError(f"{key}: only a literal list of strings is supported as the collection")
    return [pair for element in collection for pair in _expand(fragment, names | {identifier: element}).items()]


def _is_literal(value: Any) -> bool:
    if isinstance(value, dict):
        return not any(k in _UNPREFIXED or k.startswith("Fn::") for k in value) and all(
            _is_literal(v) for v in value.values()
        )
    if isinstance(value, list):
        return all(_is_literal(v) for v in value)
    return True


def resolve_literals(value: Any, mappings: dict[str, Any]) -> Any:
    """`value` with each Fn::FindInMap, Fn::Select and Fn::Sub variable whose arguments are
    literal replaced by what it gives (the same value, written without the function)."""
    if isinstance(value, list):
        return [resolve_literals(v, mappings) for v in value]
    if not isinstance(value, dict):
        return value
    value = {k: resolve_literals(v, mappings) for k, v in value.items()}
    if set(value) == {"Fn::FindInMap"} and _is_literal(args := value["Fn::FindInMap"]):
        name, top, second = args
        return copy.deepcopy(mappings[name][top][second])
    if set(value) == {"Fn::Select"} and _is_literal(value["Fn::Select"][0]):
        index, items = value["Fn::Select"]
        if isinstance(items, list):
            return items[int(index)]
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], list):
        text, variables = value["Fn::Sub"]
        literal = {k: v for k, v in variables.items() if isinstance(v, str)}
        rest = {k: v for k, v in variables.items() if k not in literal}
        text = _substitute(text, literal)
        return {"Fn::Sub": [text, rest] if rest else text}
    return value


# --- DynamoDB -----------------------------------------------------------------------------

# The table properties create_table understands; the rest (PITR, SSE, deletion policies) is
# deployment configuration with no effect on how the table behaves for the code.
_TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def _literal(value: Any, where: str) -> Any:
    """Reject unresolved intrinsics: the local table must be fully described by plain values."""
    if isinstance(value, dict):
        if len(value) == 1 and (next(iter(value)) in _UNPREFIXED or next(iter(value)).startswith("Fn::")):
            raise ValueError(f"{where}: intrinsic function {value!r} cannot be used for a local table")
        return {k: _literal(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def create_table(dynamodb_client: DynamoDBClient, table_name: str, template: Template | None = None) -> None:
    """Create the template's `Table` under `table_name` and apply its TTL setting."""
    tpl = template if template is not None else load_template()
    props = tpl["Resources"][TABLE_RESOURCE]["Properties"]
    kwargs: dict[str, Any] = {
        name: _literal(copy.deepcopy(props[name]), f"{TABLE_RESOURCE}.{name}")
        for name in _TABLE_PROPERTIES
        if name in props
    }
    if kwargs.get("BillingMode", "PROVISIONED") == "PROVISIONED":
        raise ValueError(f"{TABLE_RESOURCE}: only BillingMode PAY_PER_REQUEST is supported locally")
    dynamodb_client.create_table(TableName=table_name, **kwargs)
    dynamodb_client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled", False):
        dynamodb_client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": str(ttl["AttributeName"]), "Enabled": True},
        )


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
)


@dataclass(frozen=True)
class Queue:
    logical_id: str
    url: str  # what !Ref gives
    arn: str  # !GetAtt <id>.Arn
    name: str  # !GetAtt <id>.QueueName


def create_queues(sqs_client: SQSClient, template: Template, prefix: str) -> dict[str, Queue]:
    """Create every AWS::SQS::Queue of the template, named `<prefix>-<LogicalId>` (plus `.fifo`),
    dead-letter queues first so a RedrivePolicy's target ARN can be filled in."""
    specs = {k: v.get("Properties") or {} for k, v in template["Resources"].items() if v["Type"] == "AWS::SQS::Queue"}

    def target(props: dict[str, Any]) -> str | None:
        arn = (props.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        return arn["Fn::GetAtt"][0] if isinstance(arn, dict) and "Fn::GetAtt" in arn else None

    created: dict[str, Queue] = {}
    for logical_id in sorted(specs, key=lambda q: target(specs[q]) is not None):  # DLQs first
        props = specs[logical_id]
        attributes: dict[str, str] = {}
        for a in (a for a in _QUEUE_ATTRIBUTES if a in props):
            value = _literal(props[a], f"{logical_id}.{a}")
            attributes[a] = str(value).lower() if isinstance(value, bool) else str(value)
        if (dlq := target(props)) is not None:
            redrive = {
                "deadLetterTargetArn": created[dlq].arn,
                "maxReceiveCount": str(props["RedrivePolicy"]["maxReceiveCount"]),
            }
            attributes["RedrivePolicy"] = json.dumps(redrive)
        name = f"{prefix}-{logical_id}" + (".fifo" if attributes.get("FifoQueue") == "true" else "")
        url = sqs_client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created[logical_id] = Queue(logical_id, url, arn, name)
    return created


# --- functions and routes -----------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    function: str  # logical id of the AWS::Serverless::Function
    handler: str  # "module.function", relative to code_uri
    code_uri: str
    method: str  # upper case, e.g. "GET"
    path: str  # API Gateway resource path, e.g. "/v1/payment/order/{orderId}"


def _functions(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def function_property(template: Template, logical_id: str, name: str, default: Any = None) -> Any:
    """The function's own property `name`, else the Globals one, else `default`."""
    props = template["Resources"][logical_id].get("Properties", {})
    if name in props:
        return props[name]
    return template.get("Globals", {}).get("Function", {}).get(name, default)


def api_routes(template: Template) -> list[Route]:
    """Every `Type: Api` event of every serverless function, in template order."""
    routes = []
    for logical_id, resource in _functions(template).items():
        handler = function_property(template, logical_id, "Handler")
        code_uri = function_property(template, logical_id, "CodeUri")
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            props = event["Properties"]
            routes.append(
                Route(
                    function=logical_id,
                    handler=str(handler),
                    code_uri=str(code_uri),
                    method=str(props["Method"]).upper(),
                    path=str(props["Path"]),
                )
            )
    return routes


def _env_value(value: Any) -> str | dict[str, Any]:
    if isinstance(value, dict):
        return value  # an unresolved intrinsic, e.g. {"Ref": "Table"}
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def function_environment(template: Template, logical_id: str) -> dict[str, str | dict[str, Any]]:
    """Globals environment merged with the function's own (the function wins), unresolved."""
    resource = _functions(template).get(logical_id)
    if resource is None:
        raise KeyError(f"no AWS::Serverless::Function {logical_id!r} in the template")
    merged: dict[str, Any] = {}
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {})
    merged.update(global_env.get("Variables", {}))
    merged.update(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    return {name: _env_value(value) for name, value in merged.items()}
