"""The API Gateway stand-in: an HTTP server that turns each request into a REST (v1) proxy event
for the function its route names, and writes the function's response back."""

from __future__ import annotations

import base64
import contextlib
import logging
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from devstack.functions import LocalFunction
from devstack.proxy import build_event, error_response, malformed
from devstack.routing import Resource, build_resources, find_resource
from devstack.template import Route

log = logging.getLogger("devstack")

HOST = "127.0.0.1"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}


class ApiGateway(ThreadingHTTPServer):
    """Serves HTTP on HOST:`port` (0: a free port); requests reach functions once `route` is called."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__((HOST, port), _RequestHandler)
        self.resources: list[Resource] = []
        self.functions: dict[str, LocalFunction] = {}

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def route(self, routes: list[Route], functions: dict[str, LocalFunction]) -> None:
        """Send each of the template's routes to its function, as API Gateway does for Api events."""
        self.resources, self.functions = build_resources(routes), functions

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that reset the connection before its request was read: nothing to report.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devstack"
    timeout = 120  # an idle keep-alive connection is closed after this
    # Headers and body go out in separate writes; with Nagle on, each response would wait for
    # the client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True

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
            gateway = cast(ApiGateway, self.server)
            try:
                body = self._read_body()
            except _BadRequest as exc:
                self.close_connection = True
                self._send(error_response(exc.status, exc.code, exc.message))
                return
            target = urlsplit(self.path)
            raw_path = target.path or "/"
            found = find_resource(gateway.resources, raw_path)
            if found is None:
                message = f"no route for {raw_path}; see the API reference in docs/api.md"
                self._send(error_response(404, "ROUTE_NOT_FOUND", message))
                return
            resource, params = found
            logical_id = resource.function_for(self.command)
            if logical_id is None:
                self._send(
                    error_response(
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
                server_host=HOST,
                resource=resource,
                path_params=params,
            )
            request_id = event["requestContext"]["requestId"]
            result = self._invoke(gateway.functions[logical_id], event, request_id)
            self._send(result, request_id)
        except ConnectionError as exc:
            # The client left before the response was written (a readiness probe that gave up):
            # nobody to answer, and nothing wrong with the stack.
            self.close_connection = True
            log.debug("client gone during %s %s: %s", self.command, self.path, exc)
        except Exception:
            log.exception("devstack failed to serve %s %s", self.command, self.path)
            with contextlib.suppress(Exception):
                self.close_connection = True
                self._send(
                    error_response(500, "INTERNAL_ERROR", "the local stack failed to serve this request"), request_id
                )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _invoke(self, function: LocalFunction, event: dict[str, Any], request_id: str) -> Any:
        """The function's proxy response, or what API Gateway answers when it raises (500) or
        returns a malformed one (502)."""
        path = event["path"]  # before the function can change the event
        try:
            result = function.invoke(event)
        except Exception:
            log.error(
                "%s raised on %s %s (request id %s):\n%s",
                function.logical_id,
                self.command,
                path,
                request_id,
                traceback.format_exc(),
            )
            result = error_response(500, "INTERNAL_ERROR", f"the function failed; request id {request_id}")
        if (problem := malformed(result)) is not None:
            log.error("%s returned a malformed proxy response (%s): %r", function.logical_id, problem, result)
            result = error_response(
                502, "MALFORMED_LAMBDA_RESPONSE", f"the function's response is malformed: {problem}"
            )
        return result

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
