"""Webhook Lambda: delivers the events of an SQS batch, concurrently. A message to retry later is
reported as a batch item failure (hidden until its next attempt); every other one is deleted."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from usdt_gateway import aws
from usdt_gateway.observability import logger, metrics
from usdt_gateway.tracing import tracer
from usdt_gateway.webhooks import sender
from usdt_gateway.webhooks.batch import ThreadedBatchProcessor

sender.require_queues()  # validate configuration at cold start
aws.client("dynamodb"), aws.client("sqs"), aws.client("kms")
# A batch whose every message waits for a retry is normal, not an invocation error.
processor = ThreadedBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> str:
    return sender.handle(record.message_id, record.receipt_handle, record.body)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    tracer.put_metadata(key="records", value=len(event.get("Records") or ()))
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
