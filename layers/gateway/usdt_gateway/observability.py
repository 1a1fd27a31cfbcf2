"""One Logger and one Metrics for the whole process; configured by POWERTOOLS_* variables.

Logs: `log_keys(...)` scopes keys (an order's order_id and merchant_id, a delivery's event_id)
to the lines logged inside it, in the current thread only, so one record's or one deposit's keys
never reach the next (the webhook function handles a batch's records in threads).
URLs that may carry credentials go through `redact_url` before they reach a log line or a metric
dimension: RPC endpoint URLs often hold a provider key in the path, merchant URLs a token in the
query."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "usdt-gateway"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "UsdtGateway"))

# A read-only request emits no business metric; that is expected, not worth a warning per call.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def add_network_dimension(network: str) -> None:
    """This invocation's metrics per network, and the same figures under the function's service
    alone (a second dimension set): what the alarms watch, whichever networks are enabled."""
    metrics.add_dimension(name="network", value=network)
    across = {"service": str(metrics.service)}
    if metrics.service and across not in metrics.provider.dimension_sets:
        metrics.add_dimensions(**across)


def count_per_network(name: str, network: str) -> None:
    """One count of `name`, per network and across networks, as a metric document of its own
    (printed now): for an invocation that is not about one network (the API's, the scanner's
    schedule run)."""
    one = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
    one.add_dimension(name="network", value=network)
    if metrics.service:
        one.add_dimensions(service=str(metrics.service))
    one.add_metric(name=name, unit=MetricUnit.Count, value=1)
    one.flush_metrics()


@contextmanager
def log_keys(**keys: object) -> Iterator[None]:
    """Add `keys` to every line this thread logs inside the block (a None value removes an outer
    block's key meanwhile); on exit the keys of the outer block (or none) are back."""
    outer = dict(logger.thread_safe_get_current_keys())
    inside = {k: v for k, v in {**outer, **keys}.items() if v is not None}
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(**inside)
    try:
        yield
    finally:
        logger.thread_safe_clear_keys()
        if outer:
            logger.thread_safe_append_keys(**outer)


def order_keys(order_pk: str | None) -> dict[str, str]:
    """The log keys of an order, order_id and merchant_id, from its key ORDER#<merchantId>#<orderId>
    (neither id may contain '#')."""
    kind, _, rest = (order_pk or "").partition("#")
    merchant_id, _, order_id = rest.partition("#")
    return {"order_id": order_id, "merchant_id": merchant_id} if kind == "ORDER" and order_id else {}


def redact_url(url: str | None, *, keep_path: bool = False) -> str | None:
    """scheme://host[:port] (with `keep_path`, the path too): never user info, query or fragment,
    and without `keep_path` no path, where RPC providers put their keys."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path if keep_path else ''}"
