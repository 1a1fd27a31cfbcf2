"""What the client raises.

The gateway answers every error with {"code": "STABLE_CODE", "message": "..."} and its status;
each status class has its own exception, all subclasses of GatewayError, so callers can catch
broadly or precisely and branch on `code`. A request that got no HTTP answer at all (connection
refused, reset, timed out) raises TransportError instead, which is not a GatewayError: the
request may or may not have reached the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AuthError",
    "ConflictError",
    "GatewayError",
    "NotFoundError",
    "RateLimitedError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "error_for_status",
]


class GatewayError(Exception):
    """The gateway answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            f"{status} {code or 'ERROR'}: {message}" + (f" (request id {request_id})" if request_id else "")
        )
        self.status = status
        self.code = code  # the API's stable error code, e.g. "ORDER_ID_CONFLICT"; None if the body had none
        self.message = message
        self.request_id = request_id  # quote it to the operator
        self.headers = dict(headers or {})


class ValidationError(GatewayError):
    """400 (also 413, 415, 422): the request is invalid; `message` names the field and the problem."""


class AuthError(GatewayError):
    """401 (bad key, signature or timestamp) or 403 (key revoked or expired, scope missing)."""


class NotFoundError(GatewayError):
    """404: no such order, delivery or deposit for this merchant."""


class ConflictError(GatewayError):
    """409: conflicts with the current state, e.g. ORDER_ID_CONFLICT or ORDER_NOT_CANCELLABLE."""


class RateLimitedError(GatewayError):
    """429 (over the rate limit) or 418 (temporarily blocked after hammering); `retry_after` is
    the wait the gateway asked for, in seconds, if it said."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, request_id=request_id, headers=headers)
        self.retry_after = retry_after


class ServerError(GatewayError):
    """5xx: the gateway (or something in front of it) failed."""


class TransportError(Exception):
    """No HTTP answer: the connection failed or timed out. For a request that is not idempotent
    the outcome is unknown; read the state back before repeating it."""


def error_for_status(status: int) -> type[GatewayError]:
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status in (418, 429):
        return RateLimitedError
    if status >= 500:
        return ServerError
    if status in (400, 413, 415, 422):
        return ValidationError
    return GatewayError
