"""Outbox Lambda: every minute, hands the webhook queue any committed event its writer could not
(it died right after its commit, or SQS refused)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from usdt_gateway import aws, clock, outbox
from usdt_gateway.config import settings
from usdt_gateway.observability import logger, metrics
from usdt_gateway.tracing import tracer

settings()  # validate configuration at cold start
aws.client("dynamodb"), aws.client("sqs")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {"published": len(outbox.sweep(now_ms=clock.now_ms()))}
