"""A JSON-RPC endpoint in front of a real one (anvil), for tests that make an endpoint misbehave:
single calls and batches are passed through `answer`, which a subclass bends; `refuse` can turn
a whole request away with an HTTP error first."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from usdt_gateway.chain.jsonrpc import JsonRpc, RpcError


class RpcProxy:
    def __init__(self, upstream: str) -> None:
        self.rpc = JsonRpc(upstream)
        self.served = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.served += 1
                refused = proxy.refuse()
                if refused is not None:
                    self._reply(*refused)
                    return
                request = json.loads(body)
                replies = [proxy.answer(call) for call in (request if isinstance(request, list) else [request])]
                self._reply(200, json.dumps(replies if isinstance(request, list) else replies[0]).encode())

            def _reply(self, code: int, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refuse(self) -> tuple[int, bytes] | None:
        """(HTTP status, body) to answer the whole request with, or None to serve it."""
        return None

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        """The reply to one call: the upstream's, unless a subclass bends it."""
        try:
            result = self.result(call["method"], call["params"])
        except RpcError as exc:
            return {"jsonrpc": "2.0", "id": call["id"], "error": {"code": exc.code, "message": exc.message}}
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}

    def result(self, method: str, params: list[Any]) -> Any:
        return self.rpc.call(method, params)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
