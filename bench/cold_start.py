"""Cold start of the API function: a fresh interpreter per sample imports the handler module and
runs its init (what Lambda's init phase does), then serves one signed GET of an order (the first
request pays for the lazily created clients). Beside it, a naive handler: Powertools Logger +
Tracer + a validating resolver + a boto3 client created at import.

    .venv/bin/python -m bench.cold_start [--samples 10]

Both run with `-B` after their .pyc files exist (as in a Lambda package built with compiled
bytecode); see docs/benchmarks.md for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from devstack.moto_server import AtomicMotoServer
from devstack.template import create_table

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import time, json, sys, hashlib, hmac
t0 = time.perf_counter()
sys.path[:0] = [{layer!r}]
import importlib.util
spec = importlib.util.spec_from_file_location("app", {handler!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
t1 = time.perf_counter()
class Ctx:
    function_name = "ApiFunction"; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    def get_remaining_time_in_millis(self): return 10000
ts = str(int(time.time() * 1000))
sig = hmac.new({secret!r}.encode(), (ts + '""').encode(), hashlib.sha256).hexdigest()
event = {{"resource": "/v1/payment/order/{{orderId}}", "path": "/v1/payment/order/bench-1", "httpMethod": "GET",
         "headers": {{"API-Key": {api_key!r}, "Request-Time": ts, "Signature-V1": sig}},
         "multiValueHeaders": {{}}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
         "pathParameters": {{"orderId": "bench-1"}}, "body": None, "isBase64Encoded": False,
         "requestContext": {{"requestId": "r", "stage": "live", "identity": {{"sourceIp": "127.0.0.1"}},
                            "resourcePath": "/v1/payment/order/{{orderId}}", "httpMethod": "GET"}}}}
status = mod.lambda_handler(event, Ctx())["statusCode"] if {invoke!r} else 200
t2 = time.perf_counter()
print(json.dumps({{"init_ms": (t1 - t0) * 1000, "first_ms": (t2 - t1) * 1000, "status": status}}))
"""

NAIVE = r'''
import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel
logger, tracer = Logger(), Tracer()
app = APIGatewayRestResolver(enable_validation=True)
table = boto3.client("dynamodb")
class Order(BaseModel):
    orderId: str
    amount: str
@app.post("/v1/payment/order")
def create(order: Order) -> dict:
    return {}
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
'''


def _sample(code: str, env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-B", "-c", code], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_ms"] = (time.perf_counter() - start) * 1000
    return result


def _setup(endpoint: str) -> tuple[dict[str, str], str, str]:
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    create_table(boto3.client("dynamodb"), "bench-cold")
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    env = os.environ | {"TABLE_NAME": "bench-cold", "KMS_KEY_ID": key_id, "POWERTOOLS_SERVICE_NAME": "api",
                        "ENABLED_NETWORKS": "tron,eth,bsc", "PUBLIC_BASE_URL": "https://pay.example.com",
                        "POWERTOOLS_METRICS_DISABLED": "1", "POWERTOOLS_TRACE_DISABLED": "1"}
    os.environ.update(env)
    from usdt_gateway import merchants, orders
    from usdt_gateway.schemas import CreateOrderRequest

    m = merchants.create_merchant("bench")
    key = merchants.create_api_key(m["merchantId"])
    merchants.configure_fixed(m["merchantId"], "tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
    orders.create_order(m["merchantId"], CreateOrderRequest.model_validate(
        {"network": "tron", "currency": "USDT", "amount": "1.00", "orderId": "bench-1"}))
    return env, key["apiKey"], key["secretKey"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env, api_key, secret = _setup(f"http://{host}:{port}")
    ours = CHILD.format(layer=str(ROOT / "layers/gateway"), handler=str(ROOT / "functions/api/app.py"),
                        api_key=api_key, secret=secret, invoke=True)
    naive_dir = Path(tempfile.mkdtemp(prefix="usdt-gateway-bench-"))
    (naive_dir / "app.py").write_text(NAIVE)
    naive = CHILD.format(layer=str(ROOT / "layers/gateway"), handler=str(naive_dir / "app.py"),
                         api_key=api_key, secret=secret, invoke=False)
    naive_env = env | {"POWERTOOLS_TRACE_DISABLED": "0"}
    for code, e in ((ours, env), (naive, naive_env)):  # warm-up: write .pyc files, fill the OS cache
        subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, check=True)
    rows = []
    for _ in range(args.samples):  # interleaved, so machine noise hits both alike
        rows.append((_sample(ours, env), _sample(naive, naive_env)))
    server.stop()

    def med(i: int, key: str) -> float:
        return statistics.median(r[i][key] for r in rows)

    print(f"samples: {args.samples} (python {sys.version.split()[0]}, -B, .pyc present)")
    print(f"API function   import+init median {med(0, 'init_ms'):6.0f} ms | first signed GET "
          f"{med(0, 'first_ms'):5.0f} ms | whole process {med(0, 'process_ms'):5.0f} ms "
          f"| status {rows[0][0]['status']}")
    print(f"naive handler  import+init median {med(1, 'init_ms'):6.0f} ms | whole process "
          f"{med(1, 'process_ms'):5.0f} ms")
    print(f"ratio naive/ours (import+init): {med(1, 'init_ms') / med(0, 'init_ms'):.2f}")


if __name__ == "__main__":
    main()
