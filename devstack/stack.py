"""The local stack: the template's Lambda handlers behind a small API Gateway stand-in, on moto.

No Docker: moto runs in server mode inside this process and every boto3 client reaches it
through AWS_ENDPOINT_URL; the handlers are imported from their CodeUri (with their layers on
sys.path, as Lambda mounts them at /opt/python) and called with API Gateway REST (v1) proxy
events built from real HTTP requests, for the routes template.yaml declares.

    stack = start_stack(port=0, state_dir=Path(".local"))
    ...  # HTTP on stack.base_url; demo merchant in stack.merchant
    stack.stop()
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
import botocore.session

from devstack.moto_server import AtomicMotoServer
from devstack.template import REPO_ROOT, Route, Template, api_routes, create_table, function_environment, load_template

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

log = logging.getLogger("devstack")

STACK_NAME = "usdt-gateway-local"
TABLE_NAME = STACK_NAME
STAGE = "live"
ACCOUNT_ID = "123456789012"  # moto's default account
API_ID = "devstack"
HOST = "127.0.0.1"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DEFAULT_REGION = "us-east-1"
# The function's own environment comes from the template; these are what the local stack adds.
LOCAL_FUNCTION_ENV = {"LOCAL_MODE": "1", "POWERTOOLS_TRACE_DISABLED": "1"}
Family = Literal["evm", "tron"]
WALLET_PATHS: dict[Family, str] = {"evm": "m/44'/60'/0'", "tron": "m/44'/195'/0'"}

Handler = Callable[[dict[str, Any], Any], Any]


# --- environment --------------------------------------------------------------------------


class _Environment:
    """Changes to os.environ that the stack can undo when it stops (tests run it in-process)."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def setdefault(self, name: str, value: str) -> None:
        if not os.environ.get(name):
            self.set(name, value)

    def unset(self, name: str) -> None:
        if name in os.environ:
            self._saved.setdefault(name, os.environ[name])
            del os.environ[name]

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


def _point_aws_at(endpoint: str, env: _Environment) -> str:
    """Send every boto3 client of this process to `endpoint`; returns the region."""
    env.set("AWS_ENDPOINT_URL", endpoint)
    # Anything that would route a client elsewhere: per-service endpoints, or the switch that
    # makes the SDK ignore AWS_ENDPOINT_URL (it would then reach real AWS).
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")]:
        env.unset(name)
    env.unset("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
    env.set("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    for name, value in FAKE_CREDENTIALS.items():
        env.setdefault(name, value)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    env.setdefault("AWS_REGION", region)
    env.setdefault("AWS_DEFAULT_REGION", region)
    return region


def _resolve(value: Any, *, refs: dict[str, str], attrs: dict[str, str], where: str) -> str:
    """A template value with Ref / Fn::GetAtt / Fn::Sub (string form) resolved for local use."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref" and str(arg) in refs:
            return refs[str(arg)]
        if name == "Fn::GetAtt" and isinstance(arg, list) and ".".join(map(str, arg)) in attrs:
            return attrs[".".join(map(str, arg))]
        if name == "Fn::Sub" and isinstance(arg, str):
            lookup = {**refs, **attrs}

            def substitute(match: re.Match[str]) -> str:
                if match.group(1) not in lookup:
                    raise ValueError(f"{where}: no local value for ${{{match.group(1)}}}")
                return lookup[match.group(1)]

            return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", substitute, arg)
    raise ValueError(f"{where}: {value!r} has no local value")


def local_function_environment(
    template: Template, logical_id: str, *, refs: dict[str, str], attrs: dict[str, str]
) -> dict[str, str]:
    """The function's environment as the template declares it, resolved against local resources."""
    env = {
        name: _resolve(value, refs=refs, attrs=attrs, where=f"{logical_id}.Environment.{name}")
        for name, value in function_environment(template, logical_id).items()
    }
    return {**env, **LOCAL_FUNCTION_ENV}


def _parameter_defaults(template: Template) -> dict[str, str]:
    return {
        name: str(spec["Default"])
        for name, spec in (template.get("Parameters") or {}).items()
        if isinstance(spec, dict) and "Default" in spec
    }


def _reset_gateway_caches() -> None:
    """Forget what the gateway code caches at module level (settings, AWS clients holding their
    endpoint, decrypted secrets): the stack changes the environment all of it was built from."""
    from usdt_gateway import config

    config.reset()
    for name, module in list(sys.modules.items()):
        if name != "usdt_gateway" and not name.startswith("usdt_gateway."):
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()


def _check_endpoint(endpoint: str) -> None:
    """Never let the local stack talk to real AWS: a new SDK client must resolve to moto."""
    session = botocore.session.get_session()
    for service in ("dynamodb", "kms"):
        url = session.create_client(service).meta.endpoint_url
        if url != endpoint:
            raise RuntimeError(f"a {service} client would use {url}, not moto at {endpoint}; check AWS_* variables")


# --- functions ----------------------------------------------------------------------------


@dataclass
class LambdaContext:
    """The parts of the Lambda context object the handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


@dataclass
class LocalFunction:
    """One function of the template, loaded in this process: a single warm Lambda container."""

    logical_id: str
    handler: Handler
    memory_mb: int
    timeout_s: int
    region: str
    # The handlers keep per-invocation state in module globals (the resolver's current event),
    # so, like one Lambda container, the function serves one invocation at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, event: dict[str, Any]) -> Any:
        with self.lock:
            started = time.time()
            context = LambdaContext(
                function_name=f"{STACK_NAME}-{self.logical_id}",
                memory_limit_in_mb=self.memory_mb,
                invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{STACK_NAME}-{self.logical_id}",
                aws_request_id=str(uuid.uuid4()),
                deadline_ms=int(started * 1000) + self.timeout_s * 1000,
                log_group_name=f"/aws/lambda/{STACK_NAME}-{self.logical_id}",
            )
            try:
                return self.handler(event, context)
            finally:
                elapsed = time.time() - started
                if elapsed > self.timeout_s:
                    log.warning(
                        "%s took %.1f s, beyond its %d s timeout: Lambda would have stopped it",
                        self.logical_id,
                        elapsed,
                        self.timeout_s,
                    )


def _function_setting(template: Template, logical_id: str, name: str, default: Any) -> Any:
    props = template["Resources"][logical_id].get("Properties", {})
    if name in props:
        return props[name]
    return template.get("Globals", {}).get("Function", {}).get(name, default)


def _layer_paths(template: Template, logical_id: str) -> list[Path]:
    """The ContentUri of each layer of the function that the template itself builds."""
    paths = []
    for layer in _function_setting(template, logical_id, "Layers", []) or []:
        target = template["Resources"].get(layer.get("Ref", "")) if isinstance(layer, dict) else None
        if target and target.get("Type") == "AWS::Serverless::LayerVersion":
            paths.append(REPO_ROOT / str(target["Properties"]["ContentUri"]))
    return paths


def _load_handler(route: Route, logical_id: str) -> Handler:
    """Import CodeUri/<module>.py under a module name of its own and return its handler."""
    module_name, _, function_name = route.handler.rpartition(".")
    code_dir = REPO_ROOT / route.code_uri
    source = code_dir / (module_name.replace(".", "/") + ".py")
    unique_name = f"devstack_functions.{logical_id}.{module_name}"
    spec = importlib.util.spec_from_file_location(unique_name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"{logical_id}: cannot load {source}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[unique_name] = module
    # The code directory is the task root (/var/task) in Lambda: on the path while the module
    # initialises, so it can import files next to it.
    sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique_name, None)
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(code_dir))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise ImportError(f"{logical_id}: {source} has no callable {function_name!r}")
    return cast(Handler, handler)


# --- routing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """An API Gateway resource (path) and the methods the template declares on it."""

    path: str
    segments: tuple[str, ...]
    methods: dict[str, str]  # method -> function logical id ("ANY" matches every method)

    def match(self, segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
        """(specificity, path parameters) when the request path fits this resource."""
        rank: list[int] = []
        params: dict[str, str] = {}
        for i, pattern in enumerate(self.segments):
            if pattern.startswith("{") and pattern.endswith("+}"):  # greedy: the rest of the path
                if i >= len(segments) or not "".join(segments[i:]):
                    return None
                params[pattern[1:-2]] = unquote("/".join(segments[i:]))
                return (*rank, 2), params
            if i >= len(segments):
                return None
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segments[i]:
                    return None
                params[pattern[1:-1]] = unquote(segments[i])
                rank.append(1)
            elif unquote(segments[i]) == pattern:
                rank.append(0)
            else:
                return None
        return (tuple(rank), params) if len(segments) == len(self.segments) else None

    def function_for(self, method: str) -> str | None:
        return self.methods.get(method) or self.methods.get("ANY")

    def allow(self) -> str:
        if "ANY" in self.methods:
            return "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
        return ", ".join(sorted(self.methods))


def build_resources(routes: list[Route]) -> list[Resource]:
    by_path: dict[str, dict[str, str]] = {}
    for route in routes:
        methods = by_path.setdefault(route.path, {})
        if route.method in methods and methods[route.method] != route.function:
            raise ValueError(f"{route.method} {route.path} is declared by {methods[route.method]} and {route.function}")
        methods[route.method] = route.function
    return [Resource(path, tuple(path.strip("/").split("/")), methods) for path, methods in by_path.items()]


def find_resource(resources: list[Resource], path: str) -> tuple[Resource, dict[str, str]] | None:
    """The most specific resource for `path`: literal segments beat {param}, which beats {proxy+}."""
    if not path.startswith("/"):
        return None
    segments = path.strip("/").split("/")
    matches = [(m[0], r, m[1]) for r in resources if (m := r.match(segments)) is not None]
    if not matches:
        return None
    _, resource, params = min(matches, key=lambda m: m[0])
    return resource, params


# --- events -------------------------------------------------------------------------------


def _headers(pairs: list[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value  # API Gateway keeps the last value of a repeated header here
        multi.setdefault(name, []).append(value)
    return (single or None), (multi or None)


def build_event(
    *,
    method: str,
    raw_path: str,
    query: str,
    header_pairs: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    resource: Resource,
    path_params: dict[str, str],
) -> dict[str, Any]:
    """The API Gateway REST (v1) Lambda proxy event for one request on `resource`."""
    names = {name.lower() for name, _ in header_pairs}
    pairs = list(header_pairs)
    if "x-forwarded-for" not in names:
        pairs.append(("X-Forwarded-For", source_ip))
    if "x-forwarded-proto" not in names:
        pairs.append(("X-Forwarded-Proto", "http"))
    headers, multi_headers = _headers(pairs)
    host = next((v for k, v in header_pairs if k.lower() == "host"), HOST)
    params = parse_qsl(query, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in params:
        multi_query.setdefault(name, []).append(value)
    try:
        text, encoded = (body.decode("utf-8"), False) if body else (None, False)
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "resource": resource.path,
        "path": raw_path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": hashlib.sha256(resource.path.encode()).hexdigest()[:6],
            "resourcePath": resource.path,
            "httpMethod": method,
            "extendedRequestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{STAGE}{raw_path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": next((v for k, v in header_pairs if k.lower() == "user-agent"), None),
                "user": None,
            },
            "domainName": host,
            "apiId": API_ID,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


# --- HTTP ---------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Gateway:
    """Routes HTTP requests to the functions, as API Gateway does for the template's events."""

    def __init__(self, resources: list[Resource], functions: dict[str, LocalFunction]) -> None:
        self.resources = resources
        self.functions = functions


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    gateway: _Gateway | None = None


def _json(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps({"code": code, "message": message}),
        "isBase64Encoded": False,
    }


def _malformed(result: Any) -> str | None:
    """Why API Gateway would answer 502 instead of `result` (a Lambda proxy response), if it would."""
    try:
        json.dumps(result)  # Lambda returns it as JSON
    except (TypeError, ValueError) as exc:
        return f"not JSON-serializable: {exc}"
    if not isinstance(result, dict):
        return "not an object"
    if not isinstance(result.get("statusCode"), int) or not 100 <= result["statusCode"] <= 599:
        return "statusCode is not an HTTP status"
    if result.get("body") is not None and not isinstance(result["body"], str):
        return "body is not a string"
    return None


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devstack"
    timeout = 120  # an idle keep-alive connection is closed after this
    # Headers and body go out in separate writes; with Nagle on, each response would wait for
    # the client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024).split(b";")[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise _BadRequest(400, "BAD_REQUEST", "malformed chunked body") from None
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BadRequest(413, "PAYLOAD_TOO_LARGE", f"body larger than {MAX_BODY_BYTES} bytes")
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            raise _BadRequest(400, "BAD_REQUEST", "invalid Content-Length")
        if int(raw_length) > MAX_BODY_BYTES:
            raise _BadRequest(413, "PAYLOAD_TOO_LARGE", f"body larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(int(raw_length))

    def _serve(self) -> None:
        request_id = ""
        try:
            gateway = cast(_Server, self.server).gateway
            assert gateway is not None
            try:
                body = self._read_body()
            except _BadRequest as exc:
                self.close_connection = True
                self._send(_json(exc.status, exc.code, exc.message))
                return
            target = urlsplit(self.path)
            raw_path = target.path or "/"
            found = find_resource(gateway.resources, raw_path)
            if found is None:
                message = f"no route for {raw_path}; see the API reference in docs/api.md"
                self._send(_json(404, "ROUTE_NOT_FOUND", message))
                return
            resource, params = found
            logical_id = resource.function_for(self.command)
            if logical_id is None:
                self._send(
                    _json(
                        405,
                        "METHOD_NOT_ALLOWED",
                        f"{self.command} is not allowed on {resource.path}",
                        {"Allow": resource.allow()},
                    )
                )
                return
            event = build_event(
                method=self.command,
                raw_path=raw_path,
                query=target.query,
                header_pairs=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                resource=resource,
                path_params=params,
            )
            request_id = event["requestContext"]["requestId"]
            try:
                result = gateway.functions[logical_id].invoke(event)
            except Exception:
                log.error(
                    "%s raised on %s %s (request id %s):\n%s",
                    logical_id,
                    self.command,
                    raw_path,
                    request_id,
                    traceback.format_exc(),
                )
                result = _json(500, "INTERNAL_ERROR", f"the function failed; request id {request_id}")
            if (problem := _malformed(result)) is not None:
                log.error("%s returned a malformed proxy response (%s): %r", logical_id, problem, result)
                result = _json(502, "MALFORMED_LAMBDA_RESPONSE", f"the function's response is malformed: {problem}")
            self._send(result, request_id)
        except Exception:
            log.exception("devstack failed to serve %s %s", self.command, self.path)
            with contextlib.suppress(Exception):
                self.close_connection = True
                self._send(_json(500, "INTERNAL_ERROR", "the local stack failed to serve this request"), request_id)

    def _send(self, result: dict[str, Any], request_id: str = "") -> None:
        raw = result.get("body")
        if raw is None:
            payload = b""
        elif result.get("isBase64Encoded"):
            payload = base64.b64decode(raw)
        else:
            payload = str(raw).encode("utf-8")
        status = int(result["statusCode"])
        self.send_response(status)
        multi = {k: [str(v) for v in vs] for k, vs in (result.get("multiValueHeaders") or {}).items()}
        lowered = {k.lower(): k for k in multi}
        for name, value in (result.get("headers") or {}).items():
            key = lowered.get(name.lower())
            if key is None:
                multi[name] = [str(value)]
            elif str(value) not in multi[key]:
                multi[key].append(str(value))
        for name, values in multi.items():
            if name.lower() in _HOP_BY_HOP:
                continue
            for value in values:
                self.send_header(name, value)
        if request_id:
            self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


# --- development wallet and demo merchant ------------------------------------------------


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only, replacing the file atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    tmp.replace(path)


def dev_wallet(state_dir: Path) -> dict[Family, str]:
    """The development wallet's account xpubs: its mnemonic is made at first start and kept in
    state_dir/dev-wallet.json, so the deposit addresses stay the same from one start to the next."""
    from bip_utils import Bip39MnemonicGenerator, Bip39MnemonicValidator, Bip39SeedGenerator, Bip39WordsNum, Bip44
    from bip_utils import Bip44Coins as Coins

    path = state_dir / "dev-wallet.json"
    saved: dict[str, Any] = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            mnemonic = str(saved["mnemonic"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"{path} is not a development wallet ({exc}); move it away to get a new one") from exc
        if not Bip39MnemonicValidator().IsValid(mnemonic):
            raise RuntimeError(f"{path}: the mnemonic is not a valid BIP39 mnemonic; move the file away")
    else:
        mnemonic = Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_24).ToStr()
    seed = Bip39SeedGenerator(mnemonic).Generate()
    coins: dict[Family, Any] = {"evm": Coins.ETHEREUM, "tron": Coins.TRON}
    xpubs = {
        family: Bip44.FromSeed(seed, coin).Purpose().Coin().Account(0).PublicKey().ToExtended()
        for family, coin in coins.items()
    }
    wallet = {
        "warning": "Development wallet of the local stack. Never send real funds to its addresses.",
        "mnemonic": mnemonic,
        "evmPath": WALLET_PATHS["evm"],
        "evmXpub": xpubs["evm"],
        "tronPath": WALLET_PATHS["tron"],
        "tronXpub": xpubs["tron"],
    }
    if saved != wallet:
        _write_private(path, wallet)
    return xpubs


def _demo_merchant(state_dir: Path, base_url: str) -> dict[str, str]:
    from usdt_gateway import merchants

    merchant = merchants.create_merchant("Demo merchant (local)")
    key = merchants.create_api_key(merchant["merchantId"], label="devstack")
    for family, xpub in dev_wallet(state_dir).items():
        merchants.configure_xpub(merchant["merchantId"], family, xpub)
    info = {
        "merchantId": merchant["merchantId"],
        "apiKey": key["apiKey"],
        "secretKey": key["secretKey"],
        "webhookSecret": merchant["webhookSecret"],
        "baseUrl": base_url,
    }
    _write_private(state_dir / "merchant.json", info)
    return info


# --- the stack ----------------------------------------------------------------------------


@dataclass
class Stack:
    base_url: str
    port: int
    state_dir: Path
    merchant: dict[str, str]
    merchant_file: Path
    wallet_file: Path
    aws_endpoint: str
    table_name: str
    kms_key_id: str
    networks: list[str]
    functions: dict[str, LocalFunction]
    _moto: AtomicMotoServer
    _server: _Server
    _thread: threading.Thread
    _env: _Environment
    _stopped: bool = False

    def stop(self) -> None:
        """Stop serving, stop moto, and put the process environment back as it was."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        # moto keeps its data in module state shared by every server of this process: leave none.
        with contextlib.suppress(Exception):
            boto3.client("dynamodb").delete_table(TableName=self.table_name)
        self._moto.stop()
        self._env.restore()
        _reset_gateway_caches()
        _running.discard(id(self))

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def _cleanup_on_error(*actions: Callable[[], object]) -> Iterator[list[Callable[[], object]]]:
    pending = list(actions)
    try:
        yield pending
    except BaseException:
        for action in reversed(pending):
            with contextlib.suppress(Exception):
                action()
        raise


def _create_fresh_table(template: Template) -> None:
    """Create the table; moto's state outlives a server within a process, so replace any leftover."""
    client = boto3.client("dynamodb")
    try:
        create_table(client, TABLE_NAME, template)
    except client.exceptions.ResourceInUseException:
        client.delete_table(TableName=TABLE_NAME)
        client.get_waiter("table_not_exists").wait(TableName=TABLE_NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        create_table(client, TABLE_NAME, template)


# Stacks running in this process. One at a time: a stack points the whole process (environment,
# the gateway's cached clients and settings) at its own moto server.
_running: set[int] = set()


def start_stack(*, port: int = 0, state_dir: Path) -> Stack:
    """Start moto, create the template's table and a KMS key, load the functions, serve HTTP on
    127.0.0.1:`port` (0: a free port) and create the demo merchant (written to state_dir)."""
    if _running:
        raise RuntimeError("a local stack is already running in this process; stop it first")
    template = load_template()
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = _Environment()

    server = _Server((HOST, port), _Handler)  # first: a port in use fails before anything starts
    moto = AtomicMotoServer(ip_address=HOST, port=0, verbose=False)
    with _cleanup_on_error(server.server_close, env.restore, _reset_gateway_caches) as cleanup:
        moto.start()
        cleanup.append(moto.stop)
        moto_host, moto_port = moto.get_host_and_port()
        endpoint = f"http://{moto_host}:{moto_port}"
        region = _point_aws_at(endpoint, env)
        _check_endpoint(endpoint)

        _create_fresh_table(template)
        kms: KMSClient = boto3.client("kms")
        key = kms.create_key(
            Description=f"{STACK_NAME} merchant API and webhook secrets",
            KeySpec="SYMMETRIC_DEFAULT",
            KeyUsage="ENCRYPT_DECRYPT",
        )["KeyMetadata"]

        bound_port = int(server.server_address[1])
        base_url = f"http://{HOST}:{bound_port}"

        refs = {
            **_parameter_defaults(template),
            "PublicBaseUrl": base_url,
            "Table": TABLE_NAME,
            "SecretsKey": key["KeyId"],
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        attrs = {
            "Table.Arn": f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{TABLE_NAME}",
            "SecretsKey.Arn": key["Arn"],
        }
        routes = api_routes(template)
        function_ids = list(dict.fromkeys(r.function for r in routes))
        function_env: dict[str, str] = {}
        for logical_id in function_ids:
            for name, value in local_function_environment(template, logical_id, refs=refs, attrs=attrs).items():
                if function_env.setdefault(name, value) != value:
                    raise ValueError(
                        f"{logical_id}: {name}={value!r} conflicts with another function's value "
                        "(the local stack runs every function in one process)"
                    )
        for name, value in function_env.items():
            env.set(name, value)
        for path in (p for logical_id in function_ids for p in _layer_paths(template, logical_id)):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))

        _reset_gateway_caches()

        functions = {}
        for logical_id in function_ids:
            route = next(r for r in routes if r.function == logical_id)
            functions[logical_id] = LocalFunction(
                logical_id=logical_id,
                handler=_load_handler(route, logical_id),
                memory_mb=int(_function_setting(template, logical_id, "MemorySize", 128)),
                timeout_s=int(_function_setting(template, logical_id, "Timeout", 3)),
                region=region,
            )
        server.gateway = _Gateway(build_resources(routes), functions)

        merchant = _demo_merchant(state_dir, base_url)
        thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="devstack-http", daemon=True)
        thread.start()

    from usdt_gateway.config import networks

    stack = Stack(
        base_url=base_url,
        port=bound_port,
        state_dir=state_dir,
        merchant=merchant,
        merchant_file=state_dir / "merchant.json",
        wallet_file=state_dir / "dev-wallet.json",
        aws_endpoint=endpoint,
        table_name=TABLE_NAME,
        kms_key_id=key["KeyId"],
        networks=list(networks()),
        functions=functions,
        _moto=moto,
        _server=server,
        _thread=thread,
        _env=env,
    )
    _running.add(id(stack))
    return stack


__all__ = ["LambdaContext", "LocalFunction", "Stack", "build_event", "dev_wallet", "start_stack"]
