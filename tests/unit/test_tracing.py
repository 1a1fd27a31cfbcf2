"""Tracing: Powertools Tracer on the scanner, webhook and outbox functions only, patching botocore
only, and its X-Ray SDK shipped in the gateway layer (pinned as in the lock, without the
botocore the runtime brings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import requires

from devstack.template import REPO_ROOT

LAMBDA_TRACE_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "0",
    "LAMBDA_TASK_ROOT": "/var/task",
    "POWERTOOLS_SERVICE_NAME": "scanner",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
}
FUNCTION_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "TABLE_NAME": "tracing-init",
    "KMS_KEY_ID": "tracing-init",
    "ENABLED_NETWORKS": "tron,eth,bsc",
    "POWERTOOLS_METRICS_DISABLED": "1",
}


def _pins(path: str) -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / path).read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if "==" in spec:
            name, version = spec.split("==", 1)
            pins[name.strip().lower()] = version.strip().split(" ")[0]
    return pins


def _child(code: str, env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **FUNCTION_ENV, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_xray_sdk_ships_in_the_layer_pinned_as_locked_without_botocore() -> None:
    shipped = _pins("layers/gateway/requirements-nodeps.txt")
    locked = _pins("requirements.lock")
    assert set(shipped) == {"aws-xray-sdk", "wrapt"}
    assert all(locked[name] == version for name, version in shipped.items())
    # Everything the SDK needs is shipped beside it, or comes with the Lambda runtime
    needed = {
        r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for r in requires("aws-xray-sdk") or []
    }
    assert needed <= set(shipped) | {"botocore"}
    assert "requirements-nodeps.txt" in (REPO_ROOT / "layers/gateway/Makefile").read_text()


def test_traced_functions_patch_botocore_only() -> None:
    # Given tracing enabled as in Lambda, when the Tracer module is imported
    found = _child(
        "import sys, json; sys.path.insert(0, 'layers/gateway')\n"
        "import usdt_gateway.tracing\n"
        "from aws_xray_sdk.core import patcher\n"
        "print(json.dumps({'patched': sorted(patcher._PATCHED_MODULES)}))",
        LAMBDA_TRACE_ENV,
    )
    # Then only botocore calls are traced: HTTP-level patches would record RPC and webhook URLs
    assert found == {"patched": ["botocore"]}


def test_the_api_function_loads_without_the_tracer() -> None:
    # Given the API handler loaded as Lambda loads it, tracing enabled
    found = _child(
        "import sys, json, importlib.util; sys.path.insert(0, 'layers/gateway')\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/api/app.py')\n"
        "app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)\n"
        "print(json.dumps({'xray': 'aws_xray_sdk' in sys.modules, 'tracing': 'usdt_gateway.tracing' in sys.modules}))",
        {**LAMBDA_TRACE_ENV, "POWERTOOLS_SERVICE_NAME": "api"},
    )
    # Then neither Tracer nor the X-Ray SDK was imported (their ~30 ms stay off its cold start)
    assert found == {"xray": False, "tracing": False}
    # And the three other handlers do use it
    for name in ("scanner", "webhook", "outbox"):
        assert "@tracer.capture_lambda_handler" in (REPO_ROOT / f"functions/{name}/app.py").read_text()
