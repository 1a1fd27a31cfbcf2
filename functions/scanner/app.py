"""Scanner Lambda: on the schedule it fans out one invocation per enabled network; each of those
scans its network for deposits until shortly before its timeout."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from usdt_gateway import aws, scan_jobs
from usdt_gateway.observability import add_network_dimension, logger, metrics
from usdt_gateway.tracing import tracer

SCANNERS = scan_jobs.build()  # validates networks and RPC endpoints at cold start
aws.client("dynamodb")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "network" in event:
        add_network_dimension(str(event["network"]))
        logger.append_keys(network=event["network"])
        tracer.put_annotation(key="network", value=str(event["network"]))
    else:
        scan_jobs.report_cursor_lag(list(SCANNERS))  # the schedule's run: a stalled network shows here
    return scan_jobs.handle(
        SCANNERS, event, remaining_ms=context.get_remaining_time_in_millis(), function_arn=context.invoked_function_arn
    )
