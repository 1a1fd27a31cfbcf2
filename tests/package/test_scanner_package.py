"""The scanner as deployed: its `sam build` package (function + GatewayLayer + ChainLayer) runs a
scan of an EVM chain (anvil) and of a Tron full node (the fake one) in a fresh interpreter that
sees nothing else but the standard library and what the Lambda Python runtime provides (boto3
and its dependencies). A dependency missing from the layers fails here, not in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.evm import deploy_token, start_anvil
from devstack.template import create_table
from devstack.tron_node import start_tron_node
from tests.package.test_sam_package import SAM, runtime_packages

pytestmark = pytest.mark.skipif(not SAM.exists(), reason="SAM CLI venv missing: run `make test` (it installs it)")

TABLE = "scanner-package-test"

CHILD = r"""
import importlib.util, json, sys
sys.path[:0] = {paths!r}
spec = importlib.util.spec_from_file_location("app", {handler!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
class Context:
    function_name = "scanner"; memory_limit_in_mb = 512; aws_request_id = "package-test"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:scanner"
    def get_remaining_time_in_millis(self): return 60_000
reports = [app.lambda_handler({{"network": name}}, Context()) for name in ("local", "nile")]
import tronpy
print(json.dumps({{"reports": reports, "tronpy": tronpy.__file__, "web3": "web3" in sys.modules}}))
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    """A directory with only the Lambda runtime's own packages, linked from the venv."""
    return runtime_packages(tmp_path / "runtime")


@pytest.fixture
def chains(moto_server: str) -> Iterator[dict[str, str]]:
    create_table(boto3.client("dynamodb", endpoint_url=moto_server), TABLE)
    with start_anvil() as anvil, start_tron_node(blocks=30) as tron:
        w3 = anvil.web3()
        token = deploy_token(w3, w3.eth.accounts[0])
        yield {"anvil": anvil.url, "tron": tron.url, "token": str(token.address)}


def test_scanner_package_scans_with_nothing_but_its_layers(
    build: Path,
    runtime: Path,
    chains: dict[str, str],
    moto_server: str,
) -> None:
    # Given the built scanner and its two layers, and a process that sees only them and the runtime
    paths = [
        str(build / "ScannerFunction"),
        str(build / "GatewayLayer/python"),
        str(build / "ChainLayer/python"),
        str(runtime),
    ]
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in ("PATH", "HOME")} | {
        "AWS_ENDPOINT_URL": moto_server,
        "TABLE_NAME": TABLE,
        "KMS_KEY_ID": "unused-by-the-scanner",
        "ENABLED_NETWORKS": "local,nile",
        "NETWORKS_CONFIG": json.dumps({"local": {"tokenContract": chains["token"]}}),
        "RPC_ENDPOINTS": json.dumps({"local": [chains["anvil"]], "nile": [chains["tron"]]}),
        "SCAN_SECONDS": "0",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_SERVICE_NAME": "scanner",
        "POWERTOOLS_METRICS_NAMESPACE": "UsdtGatewayTest",
    }
    code = CHILD.format(paths=paths, handler=str(build / "ScannerFunction/app.py"))
    # When its handler scans each network once (-S: no site-packages; -B: as shipped, no new .pyc)
    result = subprocess.run(
        [sys.executable, "-S", "-B", "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # Then both scans ran a cycle without errors and started their cursors
    for report in out["reports"]:
        assert (report["cycles"], report["errors"]) == (1, 0), report
        assert isinstance(report["final_block"], int)
    # And the Tron client came from the chain layer; web3 is not needed at all
    assert Path(out["tronpy"]).is_relative_to(build / "ChainLayer/python")
    assert out["web3"] is False
