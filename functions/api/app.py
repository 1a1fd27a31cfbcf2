"""API Lambda: the private merchant API and the public endpoints, all on one resolver."""

from __future__ import annotations

import gc
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

import usdt_gateway.api.routes  # noqa: F401  (registers the routes)
from usdt_gateway import aws
from usdt_gateway.api.app import app
from usdt_gateway.config import networks
from usdt_gateway.observability import logger, metrics

networks()  # validate configuration at cold start: a misconfigured function fails at init
aws.client("dynamodb"), aws.client("kms")  # SDK clients at init, not on the first request
# What init created lives as long as the container: kept out of the collector's scans, so the
# first requests don't pay for full collections over it (docs/benchmarks.md).
gc.freeze()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
