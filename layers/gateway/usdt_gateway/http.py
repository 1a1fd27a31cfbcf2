"""The parts of an HTTP request the domain needs, independent of the API Gateway event shape."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

# The URL this API is served under (https://<domain>/<stage>), for links when no
# PUBLIC_BASE_URL is configured. Set per request by the API layer.
request_base_url: ContextVar[str] = ContextVar("request_base_url", default="")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)
