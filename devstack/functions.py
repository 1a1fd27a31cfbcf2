"""The template's Lambda functions, loaded in this process.

Each handler is imported from its CodeUri, with the function's layers on sys.path as Lambda
mounts them at /opt/python, and runs with the environment the template declares, resolved
against the local resources.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from devstack.environment import ACCOUNT_ID
from devstack.template import REPO_ROOT, Template, function_environment, function_property

log = logging.getLogger("devstack")

# The function's own environment comes from the template; these are what the local stack adds.
# No metrics: the functions share one process and Powertools keeps metrics in class-level state,
# so one function's flush would print and clear another's (and the scanner flushes every few
# seconds, a line of EMF JSON each time).
# Webhook retries compressed from seconds-to-hours to seconds-to-a-minute, so a failing local
# receiver is retried while the developer watches: 7 attempts over about 2 minutes.
LOCAL_RETRY_SCHEDULE = "1,2,5,10,30,60"
LOCAL_FUNCTION_ENV = {
    "LOCAL_MODE": "1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_DISABLED": "1",
    "WEBHOOK_RETRY_SCHEDULE": LOCAL_RETRY_SCHEDULE,
}

# Variables that only label a function's logs and metrics, so they differ from function to
# function by design. The functions share one process, and with it the one Logger and Metrics of
# usdt_gateway.observability, built from the first function's value.
PER_FUNCTION_LABELS = frozenset({"POWERTOOLS_SERVICE_NAME"})

Handler = Callable[[dict[str, Any], Any], Any]

# What names the function running in this context on its log lines: its service (its
# POWERTOOLS_SERVICE_NAME) and, during an invocation, its Lambda context keys. The functions share
# one Logger, whose keys are those of the first function's service and of the last invocation of
# any function; _FunctionLabels puts each line's own over them, as each deployed function's Logger has.
_labels: ContextVar[dict[str, object]] = ContextVar("devstack_function_labels", default={})  # noqa: B039 (never mutated)


class _FunctionLabels(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _labels.get().items():
            setattr(record, name, value)  # record attributes: Powertools puts them over its own keys
        return True


@contextlib.contextmanager
def _labelled(**labels: object) -> Iterator[None]:
    token = _labels.set({name: value for name, value in labels.items() if value is not None})
    try:
        yield
    finally:
        _labels.reset(token)


def _label_lines() -> None:
    """Put _FunctionLabels on the handler of usdt_gateway's Logger (once)."""
    from usdt_gateway.observability import logger

    handler = logger.registered_handler
    if not any(isinstance(f, _FunctionLabels) for f in handler.filters):
        handler.addFilter(_FunctionLabels())


@dataclass
class LambdaContext:
    """The parts of the Lambda context object the handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


@dataclass
class LocalFunction:
    """One function of the template, loaded in this process: a single warm Lambda container."""

    logical_id: str
    name: str  # the deployed function's name
    arn: str
    handler: Handler
    memory_mb: int
    timeout_s: int
    service: str | None = None  # its POWERTOOLS_SERVICE_NAME: the service its log lines name
    # The handlers keep per-invocation state in module globals (the resolver's current event),
    # so, like one Lambda container, the function serves one invocation at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, event: dict[str, Any]) -> Any:
        with self.lock:
            started = time.time()
            context = LambdaContext(
                function_name=self.name,
                memory_limit_in_mb=self.memory_mb,
                invoked_function_arn=self.arn,
                aws_request_id=str(uuid.uuid4()),
                deadline_ms=int(started * 1000) + self.timeout_s * 1000,
                log_group_name=f"/aws/lambda/{self.name}",
            )
            try:
                with _labelled(
                    service=self.service,
                    function_name=self.name,
                    function_arn=self.arn,
                    function_memory_size=self.memory_mb,
                    function_request_id=context.aws_request_id,
                ):
                    return self.handler(event, context)
            finally:
                _drop_metrics()
                elapsed = time.time() - started
                if elapsed > self.timeout_s:
                    log.warning(
                        "%s took %.1f s, beyond its %d s timeout: Lambda would have stopped it",
                        self.logical_id,
                        elapsed,
                        self.timeout_s,
                    )


def _drop_metrics() -> None:
    """Forget the invocation's metrics. With metrics disabled, Powertools' flush leaves them in its
    class-level state: they would pile up over the invocations and be printed at 100 values."""
    from aws_lambda_powertools.metrics import Metrics

    Metrics().clear_metrics()


def _resolve(value: Any, *, refs: dict[str, str], attrs: dict[str, str], where: str) -> str:
    """A template value with Ref / Fn::GetAtt / Fn::Sub (string form) resolved for local use."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref" and str(arg) in refs:
            return refs[str(arg)]
        if name == "Fn::GetAtt" and isinstance(arg, list) and ".".join(map(str, arg)) in attrs:
            return attrs[".".join(map(str, arg))]
        if name == "Fn::Sub" and isinstance(arg, str):
            lookup = {**refs, **attrs}

            def substitute(match: re.Match[str]) -> str:
                if match.group(1) not in lookup:
                    raise ValueError(f"{where}: no local value for ${{{match.group(1)}}}")
                return lookup[match.group(1)]

            return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", substitute, arg)
    raise ValueError(f"{where}: {value!r} has no local value")


def resolved_environment(
    template: Template, function_ids: list[str], *, refs: dict[str, str], attrs: dict[str, str]
) -> dict[str, str]:
    """The environment of these functions as the template declares it, with Ref, GetAtt and Sub
    resolved against `refs` (over the parameters' defaults) and `attrs`. The functions share one
    process, so they must agree on every variable but the PER_FUNCTION_LABELS."""
    refs = {
        **{
            name: str(spec["Default"])
            for name, spec in (template.get("Parameters") or {}).items()
            if isinstance(spec, dict) and "Default" in spec
        },
        **refs,
    }
    merged: dict[str, str] = {}
    for logical_id in function_ids:
        declared = {
            name: _resolve(value, refs=refs, attrs=attrs, where=f"{logical_id}.Environment.{name}")
            for name, value in function_environment(template, logical_id).items()
        }
        for name, value in {**declared, **LOCAL_FUNCTION_ENV}.items():
            if merged.setdefault(name, value) != value and name not in PER_FUNCTION_LABELS:
                raise ValueError(
                    f"{logical_id}: {name}={value!r} conflicts with another function's value "
                    "(the local stack runs every function in one process)"
                )
    return merged


def add_layers_to_path(template: Template, function_ids: list[str]) -> None:
    """Put the ContentUri of each layer the template builds for these functions on sys.path."""
    for logical_id in function_ids:
        for layer in function_property(template, logical_id, "Layers", []) or []:
            target = template["Resources"].get(layer.get("Ref", "")) if isinstance(layer, dict) else None
            if target and target.get("Type") == "AWS::Serverless::LayerVersion":
                path = str(REPO_ROOT / str(target["Properties"]["ContentUri"]))
                if path not in sys.path:
                    sys.path.insert(0, path)


def _load_handler(template: Template, logical_id: str) -> Handler:
    """Import CodeUri/<module>.py under a module name of its own and return its handler."""
    module_name, _, function_name = str(function_property(template, logical_id, "Handler")).rpartition(".")
    code_dir = REPO_ROOT / str(function_property(template, logical_id, "CodeUri"))
    source = code_dir / (module_name.replace(".", "/") + ".py")
    unique_name = f"devstack_functions.{logical_id}.{module_name}"
    spec = importlib.util.spec_from_file_location(unique_name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"{logical_id}: cannot load {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique_name] = module
    # The code directory is the task root (/var/task) in Lambda: on the path while the module
    # initialises, so it can import files next to it.
    sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique_name, None)
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(code_dir))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise ImportError(f"{logical_id}: {source} has no callable {function_name!r}")
    return cast(Handler, handler)


def load_functions(
    template: Template, function_ids: list[str], *, stack_name: str, region: str
) -> dict[str, LocalFunction]:
    """Import the handler of each of these functions, by logical id, in this order."""
    _label_lines()
    functions = {}
    for logical_id in function_ids:
        service = function_environment(template, logical_id).get("POWERTOOLS_SERVICE_NAME")
        service = service if isinstance(service, str) else None
        # The deployed name: the template's FunctionName (the scanner invokes itself by it), else
        # one made from the stack's name as CloudFormation does.
        declared = function_property(template, logical_id, "FunctionName")
        name = (
            _resolve(declared, refs={"AWS::StackName": stack_name}, attrs={}, where=f"{logical_id}.FunctionName")
            if declared
            else f"{stack_name}-{logical_id}"
        )
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=name,
            arn=f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
            handler=_load_and_label(template, logical_id, service),
            memory_mb=int(function_property(template, logical_id, "MemorySize", 128)),
            timeout_s=int(function_property(template, logical_id, "Timeout", 3)),
            service=service,
        )
    return functions


def _load_and_label(template: Template, logical_id: str, service: str | None) -> Handler:
    """_load_handler, with what the module logs while it initialises (its cold start) labelled."""
    with _labelled(service=service):
        return _load_handler(template, logical_id)
