"""Settlement Lambda: on the schedule, sweeps each EVM network's unsettled deposit addresses
to the merchants' treasuries (contract mode) and carries the sweep in flight to finality."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from usdt_gateway import aws, settlement_jobs
from usdt_gateway.observability import logger, metrics
from usdt_gateway.tracing import tracer

CONFIG = settlement_jobs.load_config()  # validated at cold start
JOBS = settlement_jobs.build(CONFIG)
aws.client("dynamodb")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return settlement_jobs.handle(JOBS, CONFIG, event)
