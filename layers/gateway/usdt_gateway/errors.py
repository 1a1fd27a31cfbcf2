"""Domain errors. Each carries its HTTP status and a stable code; `api/app.py` maps them to
responses in one place. Messages say what is wrong and how to fix it, and never leak internals."""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    status, code = 400, "VALIDATION_ERROR"


class Unauthorized(GatewayError):
    status, code = 401, "UNAUTHORIZED"


class Forbidden(GatewayError):
    status, code = 403, "FORBIDDEN"


class NotFound(GatewayError):
    status, code = 404, "NOT_FOUND"


class Conflict(GatewayError):
    status, code = 409, "CONFLICT"


class PayloadTooLarge(GatewayError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class Blocked(GatewayError):
    """418: a key (or IP) that kept sending while rate limited is shut out for a while."""

    status, code = 418, "TEMPORARILY_BLOCKED"


class RateLimited(GatewayError):
    status, code = 429, "RATE_LIMITED"
