"""The webhook function behind a queue, as Lambda's SQS event source mapping feeds it: the local
stack's emulation (devstack/event_source.py), given the handler loaded here as Lambda loads it."""

from __future__ import annotations

import importlib.util
import uuid
from typing import Any

from devstack.event_source import EventSourceMapping, Invoke
from tests.integration.apiclient import ROOT

__all__ = ["EventSourceMapping", "load_webhook_handler"]


class Context:
    function_name = "WebhookFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WebhookFunction"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def load_webhook_handler() -> Invoke:
    """functions/webhook/app.py as Lambda loads it (its cold-start checks run now), invoked with a
    fresh context each time. Not serialised: the tests may invoke it from several pollers at once,
    as Lambda runs several containers."""
    spec = importlib.util.spec_from_file_location(f"webhook_app_{uuid.uuid4().hex}", ROOT / "functions/webhook/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def invoke(event: dict[str, Any]) -> Any:
        return module.lambda_handler(event, Context())

    return invoke
