"""Which AWS API calls each Lambda function's code can make, read from the source (no import).

From a handler file, follow the `usdt_gateway` code it can reach: module-level code of every
module it imports (at the top or inside a function), the functions and classes it names (called
or passed as a value), and the functions registered with a decorator call such as
`@app.get(...)` (routes). A class counts as a whole: naming it reaches all its methods. Inside
the reached code, a call `X.method(...)` is an AWS call when X is `aws.client("service")`, a
function of the gateway that returns one, or a local name assigned from one.

What comes out is (service, operation, target):

- DynamoDB `Query` with `IndexName` in the function that makes it targets the index, otherwise
  the table; both when the function sets `IndexName` only under a condition
  (`if index: kwargs["IndexName"] = index`). A `TransactWriteItems` is authorized per part: a
  reached dict literal with a `"Put"`, `"Update"`, `"Delete"` or `"ConditionCheck"` key counts as
  that part's action.
- SQS calls target the queue named by their `QueueUrl=settings().<field>` (directly or through a
  local name): the field's environment variable, as config.py names it (the one module this
  imports).

Limits, on purpose: it over-approximates (a reached function may never run for a given event)
and sees only these call shapes; a client obtained some other way (boto3 directly, a client
passed as an argument) is invisible to it. The gateway makes every AWS call through
`usdt_gateway.aws.client`, which is what keeps this honest.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

from devstack.template import REPO_ROOT
from usdt_gateway import config

PACKAGE_ROOT = REPO_ROOT / "layers" / "gateway"
PACKAGE = "usdt_gateway"
MODULE_NODE = "<module>"

# Operations whose IAM action has another name (IAM Service Authorization Reference; SQS:
# "SendMessageBatch ... authorized by SendMessage").
ACTION_OF = {
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}
TRANSACTION_PARTS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}

Node = tuple[str, str]  # (module, top-level name or MODULE_NODE)


@dataclass(frozen=True, order=True)
class Call:
    action: str  # IAM action, e.g. dynamodb:Query
    target: str  # "Table", "Table/index", an env var (SQS queues), or "" (the service decides)


@dataclass
class _Module:
    name: str
    tree: ast.Module
    defs: dict[str, ast.AST] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # local name -> "module" or "module:name"


@cache
def _operations(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, _Module]:
    modules = {}
    for path in sorted((PACKAGE_ROOT / PACKAGE).rglob("*.py")):
        modules[_module_name(path)] = _parse(_module_name(path), path)
    return modules


def _parse(name: str, path: Path) -> _Module:
    module = _Module(name, ast.parse(path.read_text(), str(path)))
    for stmt in module.tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            module.defs[stmt.name] = stmt
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    module.aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    module.aliases.setdefault(top, top)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise ValueError(f"{path}: relative imports are not followed; import {PACKAGE}.... absolutely")
            base = node.module or ""
            for alias in node.names:
                module.aliases[alias.asname or alias.name] = f"{base}:{alias.name}"
    return module


def _resolve_alias(target: str) -> Node | None:
    """An alias ("pkg.mod" or "pkg.mod:name") -> a node of the gateway, if it is one."""
    mod, _, name = target.partition(":")
    modules = _modules()
    if name and f"{mod}.{name}" in modules:
        return f"{mod}.{name}", MODULE_NODE
    if mod not in modules:
        return None
    if not name:
        return mod, MODULE_NODE
    return (mod, name) if name in modules[mod].defs else None


def _dotted(expr: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        return [expr.id, *reversed(parts)]
    return None


def _reference(module: _Module, expr: ast.expr) -> Node | None:
    """What a Name or dotted Attribute refers to among the gateway's modules and definitions."""
    dotted = _dotted(expr)
    if not dotted:
        return None
    head, rest = dotted[0], dotted[1:]
    if head in module.defs and head not in module.aliases:
        return module.name, head
    if head not in module.aliases:
        return None
    target = _resolve_alias(module.aliases[head])
    while target and target[1] == MODULE_NODE and rest:
        mod = _modules()[target[0]]
        nxt = rest.pop(0)
        if f"{mod.name}.{nxt}" in _modules():
            target = f"{mod.name}.{nxt}", MODULE_NODE
        elif nxt in mod.defs:
            target = mod.name, nxt
        else:
            return None
    return target


def _body(module: _Module, name: str) -> list[ast.AST]:
    if name != MODULE_NODE:
        return [module.defs[name]]
    # Module-level code, plus the functions it registers through a decorator call (@app.get(...)).
    body: list[ast.AST] = []
    for stmt in module.tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body.extend(stmt.decorator_list)
            if isinstance(stmt, ast.ClassDef):
                body.extend(stmt.bases)
            else:
                body.extend(a for a in (stmt.args.defaults + stmt.args.kw_defaults) if a)
        else:
            body.append(stmt)
    return body


def _registered(module: _Module) -> list[str]:
    """Functions a decorator call registers: `@app.get(...)` (a method of some object) or a
    decorator factory of the gateway's own (`@route(RouteSpec(...))`)."""

    def registers(decorator: ast.expr) -> bool:
        if not isinstance(decorator, ast.Call):
            return False
        ref = _reference(module, decorator.func)
        return ref is not None or isinstance(decorator.func, ast.Attribute)

    return [
        stmt.name
        for stmt in module.tree.body
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and any(registers(d) for d in stmt.decorator_list)
    ]


def _client_service(module: _Module, expr: ast.expr, local_clients: dict[str, str]) -> str | None:
    """The service of a client expression: aws.client("x"), a gateway function returning one, a local."""
    if isinstance(expr, ast.Name) and expr.id in local_clients:
        return local_clients[expr.id]
    if isinstance(expr, ast.BoolOp):  # `injected or aws.client("x")`: a client a test may pass, else this one
        services = {_client_service(module, v, local_clients) for v in expr.values} - {None}
        return services.pop() if len(services) == 1 else None
    if not isinstance(expr, ast.Call):
        return None
    ref = _reference(module, expr.func)
    if ref == ("usdt_gateway.aws", "client"):
        arg = expr.args[0] if expr.args else None
        return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
    if ref and ref[1] != MODULE_NODE:
        return _returns_client(ref)
    return None


@cache
def _returns_client(node: Node) -> str | None:
    module = _modules()[node[0]]
    definition = module.defs[node[1]]
    if not isinstance(definition, ast.FunctionDef):
        return None
    returns = [s for s in ast.walk(definition) if isinstance(s, ast.Return) and s.value is not None]
    services = {_client_service(module, r.value, {}) for r in returns if r.value is not None}
    return services.pop() if len(services) == 1 else None


def _settings_field(module: _Module, expr: ast.expr, local_settings: dict[str, str]) -> str | None:
    """`settings().<field>` (or a local name assigned from it) -> the field's environment variable."""
    if isinstance(expr, ast.Name):
        return local_settings.get(expr.id)
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Call)
        and _reference(module, expr.value.func) == ("usdt_gateway.config", "settings")
    ):
        return _env_of_setting(expr.attr)
    return None


def _env_of_setting(name: str) -> str:
    if name not in config.Settings.model_fields:
        raise LookupError(f"config.Settings has no field {name}")
    return config.env_var(name)


def _calls_in(module: _Module, body: list[ast.AST]) -> set[Call]:
    calls: set[Call] = set()
    for root in body:
        scopes: list[ast.AST] = [s for s in ast.walk(root) if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
        scopes = scopes or [root]
        for scope in scopes:
            local_clients: dict[str, str] = {}
            local_settings: dict[str, str] = {}
            for node in ast.walk(scope):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    service = _client_service(module, node.value, local_clients)
                    if service:
                        local_clients[node.targets[0].id] = service
                    env = _settings_field(module, node.value, local_settings)
                    if env:
                        local_settings[node.targets[0].id] = env
            uses_index = _index_use(scope)
            for node in ast.walk(scope):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    service = _client_service(module, node.func.value, local_clients)
                    if service:
                        calls |= _aws_calls(module, service, node, uses_index, local_settings)
                if isinstance(node, ast.Dict):
                    for key in node.keys:
                        if isinstance(key, ast.Constant) and key.value in TRANSACTION_PARTS:
                            calls.add(Call(f"dynamodb:{TRANSACTION_PARTS[key.value]}", "Table"))
    return calls


def _is_index_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == "IndexName"


def _index_use(scope: ast.AST) -> str:
    """How a function's queries use an index: "always", "maybe" (IndexName set inside an if) or
    "never"."""
    conditional = {
        id(n)
        for branch in ast.walk(scope)
        if isinstance(branch, ast.If)
        for stmt in branch.body + branch.orelse
        for n in ast.walk(stmt)
        if _is_index_name(n)
    }
    found = [n for n in ast.walk(scope) if _is_index_name(n)]
    if any(isinstance(n, ast.keyword) and n.arg == "IndexName" for n in ast.walk(scope)) or (
        found and any(id(n) not in conditional for n in found)
    ):
        return "always"
    return "maybe" if found else "never"


def _aws_calls(
    module: _Module, service: str, node: ast.Call, uses_index: str, local_settings: dict[str, str]
) -> set[Call]:
    assert isinstance(node.func, ast.Attribute)
    operation = _operations(service).get(node.func.attr)
    if operation is None:
        raise LookupError(f"{module.name}: {service} has no operation {node.func.attr}")
    if (service, operation) == ("dynamodb", "TransactWriteItems"):
        return set()  # authorized per part: see the dict literals
    action = ACTION_OF.get((service, operation), f"{service}:{operation}")
    target = ""
    if service == "dynamodb" and operation == "Query" and uses_index == "maybe":
        return {Call(action, "Table"), Call(action, "Table/index")}
    if service == "dynamodb":
        target = "Table/index" if operation == "Query" and uses_index == "always" else "Table"
    elif service == "sqs":
        url = next((k.value for k in node.keywords if k.arg == "QueueUrl"), None)
        target = (_settings_field(module, url, local_settings) if url is not None else None) or "?"
    return {Call(action, target)}


def handler_calls(handler: Path, why: dict[Node, Node] | None = None) -> set[Call]:
    """Every AWS call the code reachable from a handler file can make."""
    entry = _parse("<handler>", handler)
    modules = _modules()
    seen: set[Node] = set()
    calls = _calls_in(entry, list(entry.tree.body))
    todo: list[Node] = _edges(entry, list(entry.tree.body))
    while todo:
        node = todo.pop()
        if node in seen or node[0] not in modules:
            continue
        seen.add(node)
        module = modules[node[0]]
        body = _body(module, node[1])
        calls |= _calls_in(module, body)
        for nxt in _edges(module, body):
            todo.append(nxt)
            if why is not None:
                why.setdefault(nxt, node)
        if node[1] == MODULE_NODE:
            todo += [(module.name, name) for name in _registered(module)]
            parent = module.name.rpartition(".")[0]
            if parent in modules:
                todo.append((parent, MODULE_NODE))
    return calls


def _edges(module: _Module, body: list[ast.AST]) -> list[Node]:
    found: list[Node] = []
    for root in body:
        for node in ast.walk(root):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [f"{node.module}:{a.name}" for a in node.names]
                )
                # Importing a name runs its module, not the name: a def is reached once it is used.
                found += [r for r in (_resolve_alias(n) for n in names) if r and r[1] == MODULE_NODE]
                if isinstance(node, ast.ImportFrom):
                    base = _resolve_alias(node.module or "")
                    if base:
                        found.append(base)
            elif isinstance(node, ast.Name | ast.Attribute):
                ref = _reference(module, node)
                if ref:
                    found.append(ref)
    return found
