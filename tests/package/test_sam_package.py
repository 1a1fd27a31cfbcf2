"""The deployable artifacts, built by the real SAM CLI (in its own venv, set up by `make test`):
the template validates with SAM's own linter (which sees the transformed template, e.g.
circular dependencies), and the API and webhook functions' packages hold only what they need."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.template import REPO_ROOT

SAM = REPO_ROOT / ".venv-sam/bin/sam"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function + layers, unzipped

pytestmark = pytest.mark.skipif(not SAM.exists(), reason="SAM CLI venv missing: run `make test` (it installs it)")


def _sam(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    python_dir = Path(subprocess.check_output([str(REPO_ROOT / "scripts/find-python.sh")], text=True).strip()).parent
    env = os.environ | {"SAM_CLI_TELEMETRY": "0", "PATH": f"{python_dir}:{os.environ['PATH']}"}
    return subprocess.run([str(SAM), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("sam") / "build"
    result = _sam("build", "--build-dir", str(out), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield out
    shutil.rmtree(out, ignore_errors=True)


def test_sam_validate_lint() -> None:
    # When SAM validates and lints the template (after its own transform)
    result = _sam("validate", "--lint", "--region", "us-east-1", cwd=REPO_ROOT)
    # Then it is valid and lint-clean
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_api_package_has_no_chain_libraries_and_ships_bytecode(build: Path) -> None:
    # Given the API function and the layers it is deployed with
    package = [build / "ApiFunction", build / "GatewayLayer"]
    names = {p.name.lower() for root in package for p in root.rglob("*") if p.is_dir()}
    # Then neither web3 nor tronpy (1-2 s of cold start) is in it, nor Pillow
    assert not names & {"web3", "tronpy", "eth_account", "pil"}
    # And the gateway package and its dependencies are there, compiled to bytecode
    layer = build / "GatewayLayer/python"
    for module in ("usdt_gateway", "aws_lambda_powertools", "pydantic", "qrcode", "coincurve", "Crypto"):
        assert (layer / module).is_dir(), module
    assert any((layer / "usdt_gateway/__pycache__").glob("orders.cpython-312.pyc"))
    # And it fits Lambda's unzipped limit with a wide margin
    assert sum(_size(p) for p in package) < LAMBDA_UNZIPPED_LIMIT / 4


def test_webhook_package_has_no_chain_libraries(build: Path) -> None:
    # Given the webhook function and the layer it is deployed with
    package = [build / "WebhookFunction", build / "GatewayLayer"]
    assert (build / "WebhookFunction/app.py").is_file()
    names = {p.name.lower() for root in package for p in root.rglob("*") if p.is_dir()}
    # Then neither web3 nor tronpy is in it, and the sender is
    assert not names & {"web3", "tronpy", "eth_account"}
    assert any((build / "GatewayLayer/python/usdt_gateway/webhooks/__pycache__").glob("sender.cpython-312.pyc"))


def test_chain_layer_holds_the_chain_libraries(build: Path) -> None:
    # Given the layer meant for the scanner only
    layer = build / "ChainLayer/python"
    # Then tronpy is the pinned version (not the 0.0.1 stub), and web3, which the scanner never
    # imports (EVM chains are read with the gateway's own JSON-RPC client), is not shipped
    dists = {p.name.split("-")[0].lower(): p.name for p in layer.glob("*.dist-info")}
    assert dists["tronpy"].startswith("tronpy-0.6")
    assert "web3" not in dists
    assert _size(layer) < LAMBDA_UNZIPPED_LIMIT
