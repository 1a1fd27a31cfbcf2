"""What Lambda's SQS event source mapping does, for a function loaded in this process: receive a
batch from the queue, invoke the function with the SQS event built from it, then delete every
message the response does not report as a batch item failure (ReportBatchItemFailures). Those
stay on the queue, hidden for the visibility timeout the function set, as do all of a batch whose
invocation raised or answered a malformed response.

The local stack runs one on a thread for the webhook queue; the tests drive one with `poll` and
`run_until`. Short polls only: the local moto server serves one request at a time, and a long
poll would hold every other client of it for its whole wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from devstack.background import BackgroundLoop

log = logging.getLogger("devstack")

Invoke = Callable[[dict[str, Any]], Any]  # the function's handler, context supplied: event -> response

BATCH_SIZE = 10  # the template's BatchSize
POLL_INTERVAL_S = 0.1  # after an empty receive
ERROR_PAUSE_S = 1.0  # after a failed receive
# An invocation ends within the webhook timeout (15 s) plus its DynamoDB writes.
STOP_TIMEOUT_S = 20.0


def _record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of the SQS event, as Lambda builds it from a received message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "md5OfBody": message["MD5OfBody"],
        "messageAttributes": {
            name: {
                "stringValue": a.get("StringValue"),
                "binaryValue": a.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": a["DataType"],
            }
            for name, a in (message.get("MessageAttributes") or {}).items()
        },
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def batch_item_failures(response: Any, message_ids: set[str]) -> set[str] | None:
    """The message ids a partial batch response keeps; None when Lambda would fail the whole
    batch (a malformed response, or an identifier that is not in the batch)."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    kept = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        kept.add(identifier)
    return kept


class EventSourceMapping(BackgroundLoop):
    def __init__(
        self,
        queue_url: str,
        invoke: Invoke,
        *,
        batch_size: int = BATCH_SIZE,
        poll_interval_s: float = POLL_INTERVAL_S,
        name: str = "devstack-sqs",
    ) -> None:
        super().__init__(name, stop_timeout_s=STOP_TIMEOUT_S)
        self.queue_url = queue_url
        self.invoke = invoke
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.invocations = 0
        self.deleted = 0
        self.kept = 0  # batch item failures, and messages of failed invocations
        self.errors = 0  # invocations that raised
        self.last_error: BaseException | None = None
        self._sqs = boto3.client("sqs")
        self._arn = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def poll(self) -> int:
        """One receive and, if it got messages, one invocation. Returns how many messages it
        handed over."""
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        self.invocations += 1
        try:
            response = self.invoke({"Records": [_record(m, self._arn) for m in messages]})
        except Exception as exc:
            self.errors += 1
            self.last_error = exc
            self.kept += len(messages)
            log.exception(
                "the function failed on a batch of %d from %s; it stays on the queue", len(messages), self.queue_url
            )
            return len(messages)
        kept = batch_item_failures(response, {m["MessageId"] for m in messages})
        if kept is None:
            log.error("malformed partial batch response %r: the whole batch stays on the queue", response)
            kept = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in kept]
        self.kept += len(messages) - len(done)
        if done:
            reply = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            self.deleted += len(reply.get("Successful", []))
            for failed in reply.get("Failed", []):
                log.error(
                    "could not delete message %s: %s", done[int(failed["Id"])]["MessageId"], failed.get("Message")
                )
        return len(messages)

    def run_until(self, done: Callable[[], bool], timeout_s: float = 120) -> None:
        """Poll until done() holds; an invocation that raised is raised here. `timeout_s` guards
        against a hang only: deliveries settle in seconds, more on a loaded machine."""
        errors, deadline = self.errors, time.time() + timeout_s
        while not done():
            if self.errors > errors and self.last_error is not None:
                raise self.last_error
            assert time.time() < deadline, "the deliveries did not settle in time"
            if not self.poll():
                time.sleep(self.poll_interval_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handed = self.poll()
            except Exception:
                log.exception("receiving from %s failed; retrying in %.0f s", self.queue_url, ERROR_PAUSE_S)
                self._stop.wait(ERROR_PAUSE_S)
                continue
            if not handed:
                self._stop.wait(self.poll_interval_s)
