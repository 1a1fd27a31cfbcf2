"""Cold start of the payment page function, measured as bench/cold_start.py measures the API's: a
fresh interpreter per sample imports the handler module and runs its init (Lambda's init phase),
then serves one `GET /pay/{publicId}` against a moto server (the first request: two GetItems and
the render). Beside it, the API function serving the page's poll, `GET /v1/public/orders/{publicId}`,
in the same run.

    .venv/bin/python -m bench.paypage_cold_start [--samples 10] [--build-dir .aws-sam/build]

Both run with `-B` after their .pyc files exist (as in a Lambda package built with compiled
bytecode); with `make build` done, the `sam build` package too. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.cold_start import INIT
from bench.local_aws import point_at_moto
from devstack.moto_server import AtomicMotoServer

ROOT = Path(__file__).resolve().parents[1]

CHILD = (
    INIT
    + r"""
event = {{"resource": {resource!r}, "path": {path!r}, "httpMethod": "GET",
         "headers": {{"Accept-Language": "en-US,en;q=0.9"}}, "multiValueHeaders": {{}},
         "queryStringParameters": None, "multiValueQueryStringParameters": None,
         "pathParameters": {{"publicId": {public_id!r}}}, "body": None, "isBase64Encoded": False,
         "requestContext": {{"requestId": "r", "stage": "live", "identity": {{"sourceIp": "127.0.0.1"}},
                            "resourcePath": {resource!r}, "httpMethod": "GET"}}}}
response = mod.lambda_handler(event, Ctx())
t2 = time.perf_counter()
print(json.dumps({{"init_ms": (t1 - t0) * 1000, "first_ms": (t2 - t1) * 1000, "status": response["statusCode"],
                  "bytes": len(response["body"])}}))
"""
)


def _sample(code: str, env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-B", "-c", code], env=env, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_ms"] = (time.perf_counter() - start) * 1000
    return result


def _setup(endpoint: str) -> tuple[dict[str, str], str]:
    point_at_moto(endpoint, "bench-paypage")
    env = os.environ | {
        "POWERTOOLS_SERVICE_NAME": "bench",
        "ENABLED_NETWORKS": "tron,eth,bsc",
        "PUBLIC_BASE_URL": "https://pay.example.com",
        "POWERTOOLS_METRICS_DISABLED": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    from usdt_gateway import merchants, orders
    from usdt_gateway.schemas import CreateOrderRequest

    merchant = merchants.create_merchant("bench")
    merchants.configure_fixed(merchant["merchantId"], "evm", "0x9858EfFD232B4033E47d90003D41EC34EcaEda94")
    view, _ = orders.create_order(
        merchant["merchantId"],
        CreateOrderRequest.model_validate(
            {"network": "eth", "currency": "USDT", "amount": "50.00", "orderId": "bench-1"}
        ),
    )
    return env, view.public_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=ROOT / ".aws-sam/build",
        help="a `sam build` output (default: .aws-sam/build, from `make build`)",
    )
    args = parser.parse_args()
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env, public_id = _setup(f"http://{host}:{port}")

    def child(layer: Path, handler: Path, resource: str) -> str:
        path = resource.replace("{publicId}", public_id)
        function = "PaymentPageFunction" if resource.startswith("/pay/") else "ApiFunction"
        return CHILD.format(
            layer=str(layer), handler=str(handler), function=function, resource=resource, path=path, public_id=public_id
        )

    page, poll = "/pay/{publicId}", "/v1/public/orders/{publicId}"
    source = ROOT / "layers/gateway"
    configs = {
        "payment page, source tree": child(source, ROOT / "functions/paypage/app.py", page),
        "API (public order), source tree": child(source, ROOT / "functions/api/app.py", poll),
    }
    built = args.build_dir
    if (built / "PaymentPageFunction/app.py").is_file():
        layer = built / "GatewayLayer/python"
        configs["payment page, sam build package"] = child(layer, built / "PaymentPageFunction/app.py", page)
        configs["API (public order), sam build package"] = child(layer, built / "ApiFunction/app.py", poll)
    for code in configs.values():  # warm-up: .pyc of the source tree and the venv, OS file cache
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(args.samples):  # interleaved, so machine noise hits every configuration alike
        for name, code in configs.items():
            results[name].append(_sample(code, env))
    server.stop()

    print(f"samples: {args.samples}, python {sys.version.split()[0]} -B; boto3/botocore from the venv (.pyc present)")
    for name, rows in results.items():
        assert all(r["status"] == 200 for r in rows), name
        init = statistics.median(r["init_ms"] for r in rows)
        first = statistics.median(r["first_ms"] for r in rows)
        whole = statistics.median(r["process_ms"] for r in rows)
        size = int(rows[0]["bytes"])
        print(
            f"{name:40s} import+init {init:6.0f} ms | first GET {first:5.0f} ms ({size:5d} bytes) | "
            f"whole process {whole:5.0f} ms"
        )


if __name__ == "__main__":
    main()
