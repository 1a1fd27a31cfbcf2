"""The deployable artifacts, built by the real SAM CLI (in its own venv, set up by `make test`):
the template validates with SAM's own linter (which sees the transformed template, e.g.
circular dependencies), every function's package holds only what it needs, starts with nothing
but its layers and the Lambda runtime, and fits Lambda's package size limits with its layers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from devstack.template import REPO_ROOT, load_template

SAM = REPO_ROOT / ".venv-sam/bin/sam"
# Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
# 250 MB unzipped for a function and all its layers; 50 MB for a .zip uploaded directly (sam
# deploy uploads through S3, where only the unzipped limit applies: 50 MB is the stricter bound).
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LAMBDA_ZIPPED_DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
CHAIN_LIBRARIES = {"web3", "tronpy", "eth_account"}
MB = 1024 * 1024
# What the Lambda Python runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")

INIT_CHILD = r"""
import importlib.util, sys
sys.path[:0] = {paths!r}
spec = importlib.util.spec_from_file_location("app", {handler!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
assert callable(getattr(app, {name!r}))
"""
# Configuration each function validates at init; the endpoint answers nothing (init makes no call).
INIT_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "TABLE_NAME": "package-init",
    "KMS_KEY_ID": "package-init",
    "RELAYER_KEY_ID": "package-init",
    "ENABLED_NETWORKS": "tron,eth,bsc",
    "SCAN_SECONDS": "62",
    "WEBHOOK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/queue",
    "WEBHOOK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "RPC_ENDPOINTS": '{"tron": ["https://api.trongrid.io"], "eth": ["https://ethereum-rpc.publicnode.com"],'
    ' "bsc": ["https://bsc-rpc.publicnode.com"]}',
    "POWERTOOLS_METRICS_NAMESPACE": "UsdtGatewayTest",
    "LOG_LEVEL": "INFO",
}

pytestmark = pytest.mark.skipif(not SAM.exists(), reason="SAM CLI venv missing: run `make test` (it installs it)")


def _sam(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    python_dir = Path(subprocess.check_output([str(REPO_ROOT / "scripts/find-python.sh")], text=True).strip()).parent
    env = os.environ | {"SAM_CLI_TELEMETRY": "0", "PATH": f"{python_dir}:{os.environ['PATH']}"}
    return subprocess.run([str(SAM), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _zipped_size(path: Path, out: Path) -> int:
    """The size of `path` zipped as sam deploy zips an artifact (deflate)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(f for f in path.rglob("*") if f.is_file()):
            archive.write(file, file.relative_to(path))
    return out.stat().st_size


def _functions() -> dict[str, dict[str, Any]]:
    resources = load_template()["Resources"]
    return {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}


def _layers(props: dict[str, Any]) -> list[str]:
    refs = [layer.get("Ref") for layer in props.get("Layers", []) if isinstance(layer, dict)]
    assert len(refs) == len(props.get("Layers", [])), "every layer is a layer of this template (!Ref)"
    return [str(r) for r in refs]


def _packages(names: list[str], root: Path) -> set[str]:
    return {p.name.lower() for p in root.rglob("*") if p.is_dir()} & set(names)


def runtime_packages(out: Path) -> Path:
    """A directory with only the Lambda runtime's own packages, linked from the venv."""
    import boto3

    site = Path(boto3.__file__).resolve().parents[1]
    out.mkdir()
    for name in RUNTIME_PACKAGES:
        (out / name).symlink_to(site / name)
    return out


def test_sam_validate_lint() -> None:
    # When SAM validates and lints the template (after its own transform)
    result = _sam("validate", "--lint", "--region", "us-east-1", cwd=REPO_ROOT)
    # Then it is valid and lint-clean
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_the_tests_read_the_templates_loops_as_the_sam_cli_expands_them() -> None:
    # Given template.yaml expanded by the SAM CLI's own Fn::ForEach processing (in its venv, as
    # scripts/deployed_diff.py does)
    code = (
        "import json, sys; sys.path.insert(0, 'scripts'); from deployed_diff import expanded; "
        "print(json.dumps(expanded(open('template.yaml', encoding='utf-8').read())['Resources']))"
    )
    python = SAM.parent / "python"
    result = subprocess.run([str(python), "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    by_sam = json.loads(result.stdout)

    # Then devstack.template, which the tests and the local stack read it with, sees the same
    # resources, the loops' ones included
    assert by_sam == load_template()["Resources"]
    assert {"ApiFunctionLogGroup", "WebhookFunctionLogGroup", "FunctionThrottlesAlarm"} <= set(by_sam)


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


def test_every_function_fits_lambda_limits_and_only_the_chain_readers_get_chain_libraries(
    build: Path, tmp_path: Path
) -> None:
    # Given every function of the template (a new one is covered without a change here)
    functions = _functions()
    assert {"ApiFunction", "ScannerFunction", "OutboxFunction", "WebhookFunction"} <= set(functions)
    report = ["| function | layers | function unzipped | with layers, unzipped | largest zip |"]
    zipped: dict[str, int] = {}

    for name, props in functions.items():
        # When its built directory and its layers' are measured and zipped
        parts = [build / name, *(build / layer for layer in _layers(props))]
        for part in parts:
            assert part.is_dir(), f"{name}: {part.name} was not built"
            if part.name not in zipped:
                zipped[part.name] = _zipped_size(part, tmp_path / f"{part.name}.zip")
        module = props["Handler"].rpartition(".")[0]
        assert (build / name / (module.replace(".", "/") + ".py")).is_file(), f"{name}: handler not packaged"
        unzipped = sum(_size(part) for part in parts)
        report.append(
            f"| {name} | {', '.join(_layers(props))} | {_size(build / name) / 1024:.1f} KB | "
            f"{unzipped / MB:.1f} MB | {max(zipped[p.name] for p in parts) / MB:.1f} MB |"
        )

        # Then it fits 250 MB unzipped with its layers, and each zip 50 MB
        assert unzipped < LAMBDA_UNZIPPED_LIMIT, f"{name}: {unzipped / MB:.1f} MB unzipped with its layers"
        for part in parts:
            size = zipped[part.name]
            assert size < LAMBDA_ZIPPED_DIRECT_UPLOAD_LIMIT, f"{part.name}: {size / MB:.1f} MB zipped"
        # And no chain library reaches it unless it reads a Tron node (the scanner, and the
        # settlement's Tron relayer, through the chain layer), and web3 reaches none
        found = set().union(*(_packages(sorted(CHAIN_LIBRARIES), part) for part in parts))
        if "ChainLayer" in _layers(props):
            assert name in {"ScannerFunction", "SettlementFunction"}, f"{name} has the chain layer"
            assert found == {"tronpy"}, found
        else:
            assert not found, f"{name} ships {sorted(found)}"
    print("\n".join(["", *report]))


def test_payment_page_package_has_no_chain_libraries_and_ships_its_static_files(build: Path) -> None:
    # Given the payment page function and the layer it is deployed with
    package = [build / "PaymentPageFunction", build / "GatewayLayer"]
    assert (build / "PaymentPageFunction/app.py").is_file()
    names = {p.name.lower() for root in package for p in root.rglob("*") if p.is_dir()}
    # Then neither web3 nor tronpy is in it
    assert not names & {"web3", "tronpy", "eth_account"}
    # And the page's renderer is there, compiled, with its CSS and script as package files
    paypage = build / "GatewayLayer/python/usdt_gateway/paypage"
    assert any((paypage / "__pycache__").glob("render.cpython-312.pyc"))
    for name in ("page.css", "page.js"):
        assert (paypage / "static" / name).read_bytes() == (
            REPO_ROOT / "layers/gateway/usdt_gateway/paypage/static" / name
        ).read_bytes()


def test_every_function_initialises_with_nothing_but_its_layers_and_the_runtime(build: Path, tmp_path: Path) -> None:
    # Given every function's built package and layers, and an interpreter that sees only them, the
    # standard library and what the Lambda Python runtime provides (tracing as deployed: on)
    runtime = runtime_packages(tmp_path / "runtime")
    failures = {}
    for name, props in _functions().items():
        module, _, handler = props["Handler"].rpartition(".")
        paths = [str(build / name), *(str(build / layer / "python") for layer in _layers(props)), str(runtime)]
        code = INIT_CHILD.format(
            paths=paths, handler=str(build / name / f"{module.replace('.', '/')}.py"), name=handler
        )
        service = (props.get("Environment") or {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME", name)
        env = (
            {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
            | INIT_ENV
            | {"POWERTOOLS_SERVICE_NAME": str(service)}
        )
        # When its handler module is loaded, as Lambda's init phase does (-S: no site-packages)
        result = subprocess.run(
            [sys.executable, "-S", "-B", "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            failures[name] = result.stderr.strip().splitlines()[-1]
    # Then every one of them starts: no dependency is missing from its layers
    assert not failures, failures
