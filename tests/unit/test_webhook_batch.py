"""The webhook function's batch processor runs a batch's records side by side, calling a
Powertools internal (BatchProcessor._process_record) from several threads on one processor.
These tests pin what that relies on, so an upgrade of Powertools that breaks it fails here."""

from __future__ import annotations

import dis
import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.base import BasePartialBatchProcessor, BasePartialProcessor
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from usdt_gateway.webhooks.batch import ThreadedBatchProcessor

BATCH_SIZE = 10  # the webhook function's event source mapping (template.yaml)
# A fail-safe, never reached when the records run side by side: threads only have to start.
BARRIER_TIMEOUT_S = 60


def sqs_event(count: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": str(i),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:webhooks",
                "awsRegion": "us-east-1",
            }
            for i in range(count)
        ]
    }


def side_by_side(count: int, fails: Callable[[int], bool]) -> Callable[[SQSRecord], str]:
    """A record handler that returns only once `count` records are inside it at once (a record
    run alone breaks the barrier and fails), then raises for the records `fails` picks."""
    inside = threading.Barrier(count, timeout=BARRIER_TIMEOUT_S)

    def handler(record: SQSRecord) -> str:
        inside.wait()
        if fails(int(record.body)):
            raise RuntimeError(f"keep {record.message_id}")
        return record.body

    return handler


def reported(response: Any) -> set[str]:
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}


def new_processor() -> ThreadedBatchProcessor:
    return ThreadedBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def test_the_internal_it_calls_keeps_its_shape() -> None:
    # process() maps self._process_record over self.records, one record per call, in threads
    assert ThreadedBatchProcessor._process_record is BatchProcessor._process_record
    assert list(inspect.signature(BatchProcessor._process_record).parameters) == ["self", "record"]
    assert not inspect.iscoroutinefunction(BatchProcessor._process_record)


@pytest.mark.parametrize(
    "function",
    [
        BatchProcessor._process_record,
        BasePartialBatchProcessor._to_batch_type,
        BasePartialProcessor.success_handler,
        BasePartialProcessor.failure_handler,
    ],
    ids=lambda f: f.__qualname__,
)
def test_the_per_record_path_assigns_nothing_the_other_threads_share(function: Callable[..., Any]) -> None:
    # Records of a batch share one processor: the code each record runs may append to its lists
    # (atomic), but an attribute assigned there would be overwritten by another record's thread.
    stores = [
        i.argval for i in dis.get_instructions(function) if i.opname in {"STORE_ATTR", "DELETE_ATTR", "STORE_GLOBAL"}
    ]
    assert stores == []


def test_records_run_side_by_side_and_each_failure_is_reported() -> None:
    # Given a full batch whose handler returns only when every record is in it at once, and
    # fails every third record
    handler = side_by_side(BATCH_SIZE, lambda n: n % 3 == 0)
    processor = new_processor()
    # When it is processed as the webhook function processes its batches
    response = process_partial_response(event=sqs_event(BATCH_SIZE), record_handler=handler, processor=processor)
    # Then exactly the failed records are reported, to stay on the queue; the others are deleted
    assert reported(response) == {"m0", "m3", "m6", "m9"}
    assert len(processor.success_messages) == 6 and len(processor.exceptions) == 4


def test_many_records_at_once_are_each_counted_once() -> None:
    # Given more records than a batch holds, all inside the handler at once, every other failing
    count = 200
    handler = side_by_side(count, lambda n: n % 2 == 1)
    processor = new_processor()
    # When they are processed
    response = process_partial_response(event=sqs_event(count), record_handler=handler, processor=processor)
    # Then no append to the shared lists was lost
    assert reported(response) == {f"m{n}" for n in range(1, count, 2)}
    assert len(processor.success_messages) == len(processor.fail_messages) == count // 2


def test_a_processor_reused_across_invocations_reports_each_batch_on_its_own() -> None:
    # Given one processor for the container's life, as the webhook function keeps it
    processor = new_processor()
    # When a batch fails entirely (a normal batch of retries: no invocation error), then the next succeeds
    first = process_partial_response(
        event=sqs_event(BATCH_SIZE), record_handler=side_by_side(BATCH_SIZE, lambda n: True), processor=processor
    )
    second = process_partial_response(
        event=sqs_event(BATCH_SIZE), record_handler=side_by_side(BATCH_SIZE, lambda n: False), processor=processor
    )
    # Then the first reports every record and the second none
    assert reported(first) == {f"m{n}" for n in range(BATCH_SIZE)}
    assert second == {"batchItemFailures": []}


def test_an_empty_batch_processes_nothing() -> None:
    processor = new_processor()
    with processor([], side_by_side(1, lambda n: False)):
        assert processor.process() == []
    assert processor.response() == {"batchItemFailures": []}
