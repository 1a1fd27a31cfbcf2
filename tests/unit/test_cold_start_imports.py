"""What the API function's init leaves for later: the QR encoder and the validators of the routes
not yet served (docs/benchmarks.md#cold-start-of-the-api-function). Each is checked in a fresh
interpreter that imports the handler as Lambda does, so an eager import can't come back unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from devstack.template import REPO_ROOT

FUNCTION_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "TABLE_NAME": "cold-start-imports",
    "KMS_KEY_ID": "cold-start-imports",
    "ENABLED_NETWORKS": "tron,eth,bsc",
    "POWERTOOLS_SERVICE_NAME": "api",
    "POWERTOOLS_METRICS_DISABLED": "1",
}

# Lambda's init of the API function: the layer on the path, the handler module executed.
INIT = """
import json, sys
sys.path[:0] = ["layers/gateway"]
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/api/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
from usdt_gateway import schemas
models = {n: m for n, m in vars(schemas).items() if isinstance(m, type) and issubclass(m, schemas.Model)}
built = [name for name, model in models.items() if model.__pydantic_complete__]
import gc
frozen = gc.get_freeze_count()
print(json.dumps({"modules": sorted(sys.modules), "models": sorted(models), "built": sorted(built), "frozen": frozen}))
"""


def _api_init() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", INIT],
        env={**os.environ, **FUNCTION_ENV},
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_api_init_defers_what_most_requests_never_need() -> None:
    # When a fresh interpreter runs the API function's init
    state = _api_init()
    modules = set(state["modules"])

    # Then it has the resolver and the routes it serves
    assert {"usdt_gateway.api.routes", "aws_lambda_powertools.event_handler"} <= modules
    # And no QR encoder (only creating an order draws a code), no HTTP client for webhooks (only
    # the test webhook sends one), no deposit or webhook-delivery module (only their own routes
    # use them), no OpenAPI generator, no chain library, no secp256k1 (only
    # deriving an xpub address needs it), and no keccak: the built-in contracts are taken in
    # their checksummed form, not re-derived (networks._BUILTIN_CONTRACTS)
    deferred = (
        "qrcode",
        "png",
        "PIL",
        "usdt_gateway.webhooks.ping",
        "usdt_gateway.api.openapi",
        "web3",
        "pycparser",
        "coincurve",
        "Crypto.Hash.keccak",
        # the deposit and delivery routes import their modules on first use
        "usdt_gateway.deposits",
        "usdt_gateway.webhooks.deliveries",
    )
    for name in deferred:
        assert name not in modules, f"{name} is imported at the API function's init"
    # (the xpub and address code itself is loaded: the routes use it)
    assert {"usdt_gateway.hdwallet", "usdt_gateway.address_codec"} <= modules
    # And no request or response model has built its validator yet: each is built on its first use
    assert len(state["models"]) > 20
    assert state["built"] == []
    # And what init created is frozen out of the collector's scans (a full collection over it
    # would otherwise land in the first request)
    assert state["frozen"] > 10_000


# The settlement function's init, as Lambda runs it with the chain layer on the path.
SETTLEMENT_INIT = """
import json, sys
sys.path[:0] = ["layers/gateway"]
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/settlement/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
print(json.dumps({"modules": sorted(sys.modules), "jobs": sorted(app.JOBS)}))
"""


def _settlement_init(endpoints: dict[str, list[str]]) -> dict[str, Any]:
    env = {
        **os.environ,
        **FUNCTION_ENV,
        "POWERTOOLS_SERVICE_NAME": "settlement",
        "RELAYER_KEY_ID": "cold-start-imports",
        "RPC_ENDPOINTS": json.dumps(endpoints),
    }
    out = subprocess.run(
        [sys.executable, "-c", SETTLEMENT_INIT], env=env, capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_settlement_loads_tronpy_only_where_a_tron_network_has_an_endpoint() -> None:
    # Given Tron enabled (ENABLED_NETWORKS has it) but endpoints for EVM networks only
    evm_only = _settlement_init({"eth": ["http://127.0.0.1:9"], "bsc": ["http://127.0.0.1:9"]})
    # Then the settlement's init settles those and imports no tronpy (nor web3)
    assert evm_only["jobs"] == ["bsc", "eth"]
    assert not {m for m in evm_only["modules"] if m.split(".")[0] in ("tronpy", "web3")}
    # Given an endpoint for Tron too, Then its job is built with tronpy's client (the chain layer)
    with_tron = _settlement_init({"eth": ["http://127.0.0.1:9"], "tron": ["http://127.0.0.1:9"]})
    assert with_tron["jobs"] == ["eth", "tron"] and "tronpy" in with_tron["modules"]
