"""The local API Gateway stand-in (devstack.apigateway) when a client leaves early, as a readiness
probe that gives up does: one access line with the status the function answered, no traceback,
no made-up 500."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.apigateway import ApiGateway, _RequestHandler
from devstack.template import Route

PROBE = b"GET /v1/networks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Networks:
    """A function that answers 200, counting its invocations."""

    logical_id = "NetworksFunction"

    def __init__(self) -> None:
        self.invocations = 0

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.invocations += 1
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


class LeftConnection:
    """A connection whose client sent `request` and left: reads give what it sent (or `read_error`),
    and every write fails as one to a closed socket does."""

    def __init__(self, request: bytes, write_error: OSError, read_error: OSError | None = None) -> None:
        self.request, self.write_error, self.read_error = request, write_error, read_error
        self.written = 0

    def makefile(self, mode: str, buffering: int | None = None) -> io.BytesIO:
        if self.read_error is not None:
            error = self.read_error

            class Reset(io.BytesIO):
                def readline(self, size: int | None = -1) -> bytes:
                    raise error

            return Reset()
        return io.BytesIO(self.request)

    def sendall(self, data: bytes) -> None:
        self.written += 1
        raise self.write_error

    def settimeout(self, timeout: float | None) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[ApiGateway, Networks]]:
    server = ApiGateway(0)
    function = Networks()
    route = Route(function=function.logical_id, handler="app.handler", code_uri=".", method="GET", path="/v1/networks")
    server.route([route], {function.logical_id: function})  # type: ignore[dict-item]
    try:
        yield server, function
    finally:
        server.server_close()


@pytest.mark.parametrize("error", [BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")])
def test_a_client_gone_before_the_response_is_one_access_line_and_no_error(
    gateway: tuple[ApiGateway, Networks], error: OSError, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a probe that sent its request and closed the connection
    server, function = gateway
    connection = LeftConnection(PROBE, write_error=error)
    # When the stand-in serves it
    with caplog.at_level(logging.DEBUG, logger="devstack"):
        _RequestHandler(connection, ("127.0.0.1", 40000), server)  # type: ignore[arg-type]
    # Then the function ran once, the response was tried once (no second, made-up 500), and the log
    # holds one access line with the function's 200 and nothing at warning level or above
    assert function.invocations == 1 and connection.written == 1
    access = [r.getMessage() for r in caplog.records if "HTTP/1.1" in r.getMessage()]
    assert access == ['127.0.0.1 "GET /v1/networks HTTP/1.1" 200 -']
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None for r in caplog.records)


def test_a_client_that_reset_before_its_request_was_read_leaves_no_traceback(
    gateway: tuple[ApiGateway, Networks], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a connection reset before its request line could be read
    server, function = gateway
    connection = LeftConnection(b"", write_error=BrokenPipeError(), read_error=ConnectionResetError(104, "reset"))
    # When the server handles it as socketserver does (an exception out of the handler goes to handle_error)
    try:
        _RequestHandler(connection, ("127.0.0.1", 40000), server)  # type: ignore[arg-type]
    except ConnectionResetError:
        server.handle_error(None, ("127.0.0.1", 40000))
    else:
        pytest.fail("the reset did not reach the server")
    # Then nothing ran and nothing is printed
    assert function.invocations == 0
    assert capsys.readouterr().err == ""
