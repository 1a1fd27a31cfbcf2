"""Cold start of the API function: a fresh interpreter per sample imports the handler module and
runs its init (what Lambda's init phase does), then serves one signed GET of an order (the first
request pays for the lazily created clients). Beside it, the same handler wrapped in Powertools'
Tracer (tracing enabled, as deployed with `Tracing: Active`; segments go to an X-Ray daemon
address nobody listens on), a naive handler: Powertools Logger + Tracer + a validating
resolver + a boto3 client created at import, and the floor: a bare handler that only creates a
botocore DynamoDB client at init and, as its first request, reads the order's item with one GetItem
(what any handler of this table pays). The API's init, and its init plus first request, are also
given as ratios to the floor's, sample by sample, since both vary alike with the machine's load.
`--compare REF` adds the API as committed at REF (`git archive`), interleaved with the rest.

    .venv/bin/python -m bench.cold_start [--samples 10] [--only api,floor] [--compare main]

Both run with `-B` after their .pyc files exist (as in a Lambda package built with compiled
bytecode); see docs/benchmarks.md for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

# A fresh interpreter's Lambda init: import the handler module from its layer (t0 -> t1), and the
# context the first invocation gets. Shared with bench.paypage_cold_start.
INIT = r"""
import time, json, sys, hashlib, hmac
t0, c0 = time.perf_counter(), time.process_time()
sys.path[:0] = [{layer!r}]
import importlib.util
spec = importlib.util.spec_from_file_location("app", {handler!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
t1, c1 = time.perf_counter(), time.process_time()
class Ctx:
    function_name = {function!r}; memory_limit_in_mb = 512; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + {function!r}
    def get_remaining_time_in_millis(self): return 10000
"""

CHILD = (
    INIT
    + r"""ts = str(int(time.time() * 1000))
sig = hmac.new({secret!r}.encode(), (ts + '""').encode(), hashlib.sha256).hexdigest()
event = {{"resource": "/v1/payment/order/{{orderId}}", "path": "/v1/payment/order/bench-1", "httpMethod": "GET",
         "headers": {{"API-Key": {api_key!r}, "Request-Time": ts, "Signature-V1": sig}},
         "multiValueHeaders": {{}}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
         "pathParameters": {{"orderId": "bench-1"}}, "body": None, "isBase64Encoded": False,
         "requestContext": {{"requestId": "r", "stage": "live", "identity": {{"sourceIp": "127.0.0.1"}},
                            "resourcePath": "/v1/payment/order/{{orderId}}", "httpMethod": "GET"}}}}
status = mod.lambda_handler(event, Ctx())["statusCode"] if {invoke!r} else 200
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({{"init_ms": (t1 - t0) * 1000, "first_ms": (t2 - t1) * 1000, "status": status,
                  "init_cpu_ms": (c1 - c0) * 1000, "first_cpu_ms": (c2 - c1) * 1000}}))
"""
)

NAIVE = r"""
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
"""

# The least a handler of the table pays: the interpreter, botocore and one DynamoDB client; its
# first request reads the order's item (one GetItem), the least a GET of an order does.
FLOOR = r"""
import os
import botocore.session
client = botocore.session.get_session().create_client("dynamodb")
def lambda_handler(event, context):
    key = {"pk": {"S": "ORDER#" + MERCHANT_ID + "#" + event["pathParameters"]["orderId"]}, "sk": {"S": "ORDER"}}
    item = client.get_item(TableName=os.environ["TABLE_NAME"], Key=key).get("Item")
    return {"statusCode": 200 if item else 404}
"""


# The API handler under Powertools' Tracer: created first, so its patching of botocore precedes the
# handler's clients, as a `tracer = Tracer()` in the shared observability module would.
TRACED = r"""
from aws_lambda_powertools import Tracer
tracer = Tracer(service="api")
import importlib.util
spec = importlib.util.spec_from_file_location("api_app", {handler!r})
api_app = importlib.util.module_from_spec(spec); spec.loader.exec_module(api_app)
lambda_handler = tracer.capture_lambda_handler(api_app.lambda_handler)
"""
# What Lambda sets for a traced invocation: the Tracer then records instead of refusing.
TRACED_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "0",
    "LAMBDA_TASK_ROOT": "/var/task",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
}


def _sample(code: str, env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-B", "-c", code], env=env, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_ms"] = (time.perf_counter() - start) * 1000
    return result


def _setup(endpoint: str) -> tuple[dict[str, str], str, str, str]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    create_table(boto3.client("dynamodb"), "bench-cold")
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    env = os.environ | {
        "TABLE_NAME": "bench-cold",
        "KMS_KEY_ID": key_id,
        "POWERTOOLS_SERVICE_NAME": "api",
        "ENABLED_NETWORKS": "tron,eth,bsc",
        "PUBLIC_BASE_URL": "https://pay.example.com",
        "POWERTOOLS_METRICS_DISABLED": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
    os.environ.update(env)
    from usdt_gateway import merchants, orders
    from usdt_gateway.schemas import CreateOrderRequest

    m = merchants.create_merchant("bench")
    key = merchants.create_api_key(m["merchantId"])
    merchants.configure_fixed(m["merchantId"], "tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
    orders.create_order(
        m["merchantId"],
        CreateOrderRequest.model_validate(
            {"network": "tron", "currency": "USDT", "amount": "1.00", "orderId": "bench-1"}
        ),
    )
    return env, key["apiKey"], key["secretKey"], m["merchantId"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument(
        "--only", default="", help="comma-separated words; run only the configurations whose name holds one of them"
    )
    parser.add_argument("--compare", default="", help="a git ref: also run the API as committed there")
    args = parser.parse_args()
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env, api_key, secret, merchant_id = _setup(f"http://{host}:{port}")
    work = Path(tempfile.mkdtemp(prefix="usdt-gateway-bench-"))
    (work / "naive").mkdir()
    (work / "naive/app.py").write_text(NAIVE)
    (work / "floor").mkdir()
    (work / "floor/app.py").write_text(f"MERCHANT_ID = {merchant_id!r}\n" + FLOOR)
    (work / "traced").mkdir()
    (work / "traced/app.py").write_text(TRACED.format(handler=str(ROOT / "functions/api/app.py")))

    def child(layer: Path, handler: Path, invoke: bool = True) -> str:
        return CHILD.format(
            layer=str(layer),
            handler=str(handler),
            function="ApiFunction",
            api_key=api_key,
            secret=secret,
            invoke=invoke,
        )

    configs = {
        "source tree (.pyc present)": (child(ROOT / "layers/gateway", ROOT / "functions/api/app.py"), env),
    }
    if args.compare:
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.compare, "layers/gateway", "functions/api"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        configs[f"source tree at {args.compare} (.pyc present)"] = (
            child(before / "layers/gateway", before / "functions/api/app.py"),
            env,
        )
    configs |= {
        "source tree + Tracer (.pyc present)": (
            child(ROOT / "layers/gateway", work / "traced/app.py"),
            env | TRACED_ENV,
        ),
    }
    built = ROOT / ".aws-sam/build"
    if (built / "GatewayLayer/python").is_dir():
        # The built package as Lambda gets it, and the same without bytecode (a plain pip build).
        shutil.copytree(built / "GatewayLayer/python", work / "nopyc")
        for cache in (work / "nopyc").rglob("__pycache__"):
            shutil.rmtree(cache)
        configs["sam build package (shipped .pyc)"] = (
            child(built / "GatewayLayer/python", built / "ApiFunction/app.py"),
            env,
        )
        configs["sam build package, .pyc removed"] = (child(work / "nopyc", built / "ApiFunction/app.py"), env)
        (work / "traced-built").mkdir()
        (work / "traced-built/app.py").write_text(TRACED.format(handler=str(built / "ApiFunction/app.py")))
        configs["sam build package + Tracer"] = (
            child(built / "GatewayLayer/python", work / "traced-built/app.py"),
            env | TRACED_ENV,
        )
    configs["naive handler (.pyc present)"] = (
        child(ROOT / "layers/gateway", work / "naive/app.py", invoke=False),
        env | {"POWERTOOLS_TRACE_DISABLED": "0"},
    )
    configs["floor: bare handler + botocore DynamoDB client"] = (
        child(ROOT / "layers/gateway", work / "floor/app.py"),
        env,
    )
    if args.only:
        words = args.only.split(",")
        configs = {name: c for name, c in configs.items() if any(w in name for w in words)}
    for code, e in configs.values():  # warm-up: .pyc of the source tree and the venv, OS file cache
        subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, check=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for _ in range(args.samples):  # interleaved, so machine noise hits every configuration alike
        for name, (code, e) in configs.items():
            results[name].append(_sample(code, e))
    server.stop()

    for name, rows in results.items():  # a figure of a failed request would mean nothing
        if any(r["status"] != 200 for r in rows):
            raise SystemExit(f"{name}: the first request failed: {sorted({r['status'] for r in rows})}")
    print(f"samples: {args.samples}, python {sys.version.split()[0]} -B; boto3/botocore from the venv (.pyc present)")
    for name, rows in results.items():
        init = statistics.median(r["init_ms"] for r in rows)
        first = statistics.median(r["first_ms"] for r in rows)
        whole = statistics.median(r["process_ms"] for r in rows)
        if "naive" in name:
            extra = "(no request)".ljust(26)
        elif name.startswith("floor"):
            extra = f"first GetItem     {first:5.0f} ms"
        else:
            extra = f"first signed GET {first:5.0f} ms"
        cpu = statistics.median(r["init_cpu_ms"] for r in rows)
        print(f"{name:48s} import+init {init:6.0f} ms (CPU {cpu:4.0f}) | {extra} | whole process {whole:5.0f} ms")
    floor = results.get("floor: bare handler + botocore DynamoDB client")
    if floor:
        # Per sample: the neighbours in one round share the machine's load of that moment. CPU time
        # too (the process's own, from the same clock readings): less swayed by other processes.
        def ratios(rows: list[dict[str, float]], keys: tuple[str, ...]) -> str:
            values = [sum(r[k] for k in keys) / sum(f[k] for k in keys) for r, f in zip(rows, floor, strict=True)]
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        for name, rows in results.items():
            if name.startswith("floor"):
                continue
            wall, cpu_ratio = ratios(rows, ("init_ms",)), ratios(rows, ("init_cpu_ms",))
            print(f"{name:48s} init / floor init: median {wall}, CPU time {cpu_ratio}")
            if "naive" in name:
                continue
            # The first request too: what init defers, the first request pays.
            print(
                f"{name:48s} (init + first request) / floor's: median {ratios(rows, ('init_ms', 'first_ms'))}, "
                f"CPU time {ratios(rows, ('init_cpu_ms', 'first_cpu_ms'))}"
            )


if __name__ == "__main__":
    main()
