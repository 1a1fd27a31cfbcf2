"""Payment page Lambda: the hosted payment page (HTML) and its static files, rendered from the
public order view. Read-only on the table; no chain libraries, no KMS."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from usdt_gateway import aws
from usdt_gateway.config import networks
from usdt_gateway.observability import logger
from usdt_gateway.paypage.web import app

networks()  # validate configuration at cold start: a misconfigured function fails at init
aws.client("dynamodb")  # the SDK client at init, not on the first request


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
