"""What Lambda's SQS event source mapping does, for a handler loaded in this process: receive a
batch from the queue, invoke the handler with the SQS event built from it, then delete every
message the response does not list in batchItemFailures (those stay hidden for their visibility
timeout, as the handler set it)."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from tests.integration.apiclient import ROOT


class Context:
    function_name = "WebhookFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WebhookFunction"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def load_webhook_handler() -> Any:
    """functions/webhook/app.py as Lambda loads it (its cold-start checks run now)."""
    spec = importlib.util.spec_from_file_location(f"webhook_app_{uuid.uuid4().hex}", ROOT / "functions/webhook/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def _record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": message.get("Attributes", {}), "md5OfBody": message["MD5OfBody"],
        "messageAttributes": {
            name: {"stringValue": a.get("StringValue"), "binaryValue": None, "stringListValues": [],
                   "binaryListValues": [], "dataType": a["DataType"]}
            for name, a in (message.get("MessageAttributes") or {}).items()},
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "us-east-1",
    }


@dataclass
class EventSourceMapping:
    queue_url: str
    handler: Any
    batch_size: int = 10
    invocations: list[dict[str, Any]] = field(default_factory=list)  # the handlers' responses

    def __post_init__(self) -> None:
        self._sqs = boto3.client("sqs")
        self._arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def poll(self) -> int:
        """One receive (no long poll: the moto server serves one request at a time) and, if it
        got messages, one invocation. Returns how many messages it handed over."""
        messages = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                             AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return 0
        response = self.handler({"Records": [_record(m, self._arn) for m in messages]}, Context())
        self.invocations.append(response)
        kept = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in kept:
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    def run_until(self, done: Callable[[], bool], timeout_s: float = 20) -> None:
        deadline = time.time() + timeout_s
        while not done():
            assert time.time() < deadline, "the deliveries did not settle in time"
            if not self.poll():
                time.sleep(0.1)
